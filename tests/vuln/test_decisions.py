"""Decisions: validation, append-only history, audit events."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest

from medfw.audit.sink import MemorySink
from medfw.errors import InputError, UsageError
from medfw.vuln import current_decisions, decision_history, record_decision, scan
from medfw.vuln.decisions import validate_decision
from medfw.vuln.index import VulnIndex
from medfw.vuln.sbom_input import read_sbom

SERIAL = "urn:uuid:11111111-2222-3333-4444-555555555555"


@pytest.mark.parametrize(
    ("state", "justification", "responses", "message"),
    [
        ("not_affected", None, (), "requires a justification"),
        ("exploitable", "code_not_present", ("update",), "only valid with not_affected"),
        ("exploitable", None, (), "requires a response"),
        ("bogus", None, (), "unknown analysis state"),
        ("not_affected", "because", (), "unknown justification"),
        ("in_triage", None, ("patch",), "unknown response"),
    ],
)
def test_invalid_pairs(state: str, justification: str | None, responses: tuple[str, ...], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        validate_decision(state, justification, responses, "detail")


def test_detail_required() -> None:
    with pytest.raises(UsageError, match="detail"):
        validate_decision("in_triage", None, (), "  ")


def test_append_only_history_and_audit(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = read_sbom(
        sbom_factory(
            [{"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}],
            serial=SERIAL,
        )
    )
    sink = MemorySink()
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    record_decision(
        full_index, sbom, "CVE-2014-0160", "o", state="in_triage", detail="looking", author="user:a", sink=sink, now=t0
    )
    record_decision(
        full_index,
        sbom,
        "CVE-2014-0160",
        "o",
        state="not_affected",
        justification="requires_configuration",
        detail="built with OPENSSL_NO_HEARTBEATS",
        author="user:b",
        sink=sink,
        now=t0 + dt.timedelta(days=1),
    )
    history = decision_history(full_index, SERIAL)
    assert [d.state for d in history] == ["in_triage", "not_affected"]  # nothing overwritten
    current = current_decisions(full_index, SERIAL)[("o", "CVE-2014-0160")]
    assert current.author == "user:b" and current.justification == "requires_configuration"
    events = sink.of_type("vuln.decision")
    assert len(events) == 2 and events[1].objects["vulnerability"] == "CVE-2014-0160"
    assert events[1].objects["sbom_serial"] == SERIAL and events[1].data["state"] == "not_affected"
    f = next(x for x in scan(full_index, sbom).findings if x.vuln_id == "CVE-2014-0160")
    assert f.handled and f.decision is not None and f.decision.author == "user:b"


def test_unknown_cve_and_component(full_index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    sbom = read_sbom(
        sbom_factory(
            [{"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}],
            serial=SERIAL,
        )
    )
    sink = MemorySink()
    with pytest.raises(InputError, match="unknown vulnerability"):
        record_decision(full_index, sbom, "CVE-2099-99999", "o", state="in_triage", detail="x", author="a", sink=sink)
    with pytest.raises(InputError, match="not in the SBOM"):
        record_decision(full_index, sbom, "CVE-2014-0160", "nope", state="in_triage", detail="x", author="a", sink=sink)
    assert sink.events == [] and decision_history(full_index, SERIAL) == []
