"""Postmarket: releases, rescans with risk-change alerts that stay open until decided or acknowledged, history."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.errors import FeedError, InputError
from medfw.vuln import add_release, import_feeds, open_index, record_decision, rescan
from medfw.vuln.alerts import AlertKind, acknowledge
from medfw.vuln.gate import parse_fail_on
from medfw.vuln.index import VulnIndex
from medfw.vuln.postmarket import release_history, retire_release
from medfw.vuln.sbom_input import read_sbom

V = Path(__file__).parent.parent / "vectors" / "vuln"
OPENSSL = {"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}
MBEDTLS = {"bom-ref": "m", "name": "mbedtls", "version": "3.5.1", "cpe": "cpe:2.3:a:arm:mbed_tls:3.5.1:*:*:*:*:*:*:*"}
HEARTBLEED = V / "custom/heartbleed-nvd-api-2.0.json"
KEV = V / "kev/known_exploited_vulnerabilities.json"


@pytest.fixture
def index(tmp_path: Path) -> VulnIndex:
    ix = open_index(str(tmp_path / "pm.db"))
    yield ix  # type: ignore[misc]
    ix.close()


def _kinds(report: object) -> list[tuple[str, str]]:
    return [(a.vuln_id, a.kind.value) for d in report.releases for a in d.opened]  # type: ignore[attr-defined]


def test_kev_added_to_open_finding_alerts_until_decided(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    import_feeds(index, nvd=[str(HEARTBLEED)])
    data = sbom_factory([OPENSSL], name="pump-a")
    rid, sbom, created = add_release(index, data)
    assert created and add_release(index, data)[2] is False  # registering twice is idempotent
    first = rescan(index)
    assert _kinds(first) == [] and first.failing(frozenset()) == []  # baseline: nothing changed

    import_feeds(index, kev=[str(KEV)])
    sink = MemorySink()
    second = rescan(index, sink=sink)
    (alert,) = second.releases[0].opened
    assert (alert.vuln_id, alert.kind, alert.detail["due_date"]) == ("CVE-2014-0160", AlertKind.KEV, "2022-05-25")
    assert second.failing(frozenset()) == [alert]
    assert second.failing(parse_fail_on("kev")) == [alert] and second.failing(parse_fail_on("new")) == []
    assert sink.events[-1].type == "vuln.rescan" and sink.events[-1].data["alerts_opened"] == 1

    third = rescan(index)  # not decided yet: reported again, not opened twice
    assert third.releases[0].opened == () and [a.id for a in third.releases[0].open] == [alert.id]
    assert third.failing(frozenset())

    record_decision(
        index, sbom, "CVE-2014-0160", "o", state="exploitable", responses=("update",), detail="patch in 2.4.1",
        author="user:qa", sink=MemorySink(),
    )  # fmt: skip
    fourth = rescan(index)
    assert [a.id for a in fourth.releases[0].closed] == [alert.id] and fourth.releases[0].open == ()
    assert fourth.failing(frozenset()) == []
    hist = release_history(index, str(rid))
    assert [len(s["alerts_raised"]) for s in hist["scans"]] == [0, 0, 1, 0, 0]
    (closed,) = hist["alerts_closed"]
    assert closed["close_reason"] == "decision exploitable" and closed["closed_by"] == "user:qa"
    assert hist["scans"][-1]["feed"]["kev"]["version"] == "2025.08.25"


def test_score_raised_from_unscored(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    import_feeds(index, nvd=[str(V / "nvd/anchore-overrides/2024/CVE-2024-28755.json")])
    add_release(index, sbom_factory([MBEDTLS]))
    report = rescan(index)
    f = report.releases[0].findings["m|CVE-2024-28755"]
    assert f.severity == "unscored" and _kinds(report) == []
    import_feeds(index, cve5=[str(V / "cve5/vulnrichment/2024/28xxx/CVE-2024-28755.json")])
    report = rescan(index)
    (alert,) = report.releases[0].opened
    assert alert.kind is AlertKind.RAISED and alert.detail["from"] == {"severity": "unscored", "score": None}
    assert alert.detail["severity_source"] == "CISA-ADP CVSS 3.1" and alert.detail["score"] is not None
    assert report.failing(parse_fail_on("new")) == []  # raised is not new
    assert report.failing(parse_fail_on("low")) == [alert]


def test_new_unscored_cve_alerts_and_ack_closes(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    import_feeds(index, nvd=[str(V / "nvd/anchore-overrides/2024/CVE-2024-28755.json")])
    add_release(index, sbom_factory([MBEDTLS]))
    import_feeds(index, nvd=[str(V / "nvd/anchore-overrides/2024/CVE-2024-28836.json")])
    report = rescan(index)
    (alert,) = report.releases[0].opened
    assert (alert.vuln_id, alert.kind, alert.detail["severity"]) == ("CVE-2024-28836", AlertKind.NEW, "unscored")
    assert report.failing(parse_fail_on("critical")) == [alert]  # unscored never silently passes a severity gate
    assert rescan(index).failing(frozenset()) == [alert]  # repeats on the next run
    with pytest.raises(InputError, match="needs a reason"):
        acknowledge(index, [alert.id], by="user:qa", reason=" ", now=dt.datetime.now(dt.UTC))
    acknowledge(index, [alert.id], by="user:qa", reason="tracked in CAPA-17", now=dt.datetime.now(dt.UTC))
    assert rescan(index).failing(frozenset()) == []
    with pytest.raises(InputError, match="not an open alert"):
        acknowledge(index, [alert.id], by="user:qa", reason="again", now=dt.datetime.now(dt.UTC))


def test_epss_crossing_threshold(index: VulnIndex, sbom_factory: Callable[..., bytes], tmp_path: Path) -> None:
    def epss(day: str, score: str) -> str:
        p = tmp_path / f"epss-{day}.csv"
        p.write_text(f"#model_version:v2025.03.14,score_date:{day}T00:00:00+0000\ncve,epss,percentile\n"
                     f"CVE-2014-0160,{score},0.5\n")  # fmt: skip
        return str(p)

    import_feeds(index, nvd=[str(HEARTBLEED)], epss=[epss("2026-11-01", "0.01")])
    add_release(index, sbom_factory([OPENSSL]))
    import_feeds(index, epss=[epss("2026-11-02", "0.05")])
    assert _kinds(rescan(index)) == []
    import_feeds(index, epss=[epss("2026-11-03", "0.42")])
    report = rescan(index, epss_threshold=0.2)
    assert _kinds(report) == [("CVE-2014-0160", "epss")]
    assert report.releases[0].opened[0].detail["threshold"] == 0.2


def test_decision_stale_when_component_version_changes(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    import_feeds(index, nvd=[str(HEARTBLEED)])
    serial = "urn:uuid:6b1c1d2e-0000-4000-8000-000000000001"
    v1 = json.loads(sbom_factory([OPENSSL], serial=serial))
    add_release(index, json.dumps(v1).encode())
    record_decision(
        index, read_sbom(json.dumps(v1).encode()), "CVE-2014-0160", "o", state="not_affected",
        justification="requires_configuration", detail="heartbeats compiled out", author="user:qa", sink=MemorySink(),
    )  # fmt: skip
    assert _kinds(rescan(index)) == []
    v2 = {**v1, "version": 2, "components": [{**v1["components"][0], "version": "1.0.1e"}]}
    v2["components"][0]["purl"] = "pkg:generic/openssl@1.0.1e"
    add_release(index, json.dumps(v2).encode())  # a revised SBOM of the same release
    report = rescan(index)
    (alert,) = report.releases[0].opened
    assert alert.kind is AlertKind.DECISION_STALE
    assert (alert.detail["decided_for_version"], alert.detail["now"]) == ("1.0.1f", "1.0.1e")


def test_retired_release_is_not_rescanned(index: VulnIndex, sbom_factory: Callable[..., bytes]) -> None:
    rid, _, _ = add_release(index, sbom_factory([OPENSSL], name="old-pump"))
    sink = MemorySink()
    with pytest.raises(InputError, match="needs a reason"):
        retire_release(index, "old-pump", by="user:qa", reason="")
    retire_release(index, "old-pump", by="user:qa", reason="end of support", sink=sink)
    assert rescan(index).releases == ()
    assert sink.events[0].type == "vuln.release" and sink.events[0].reason == "retire"
    retire_release(index, str(rid), by="user:qa", reason="back in the field", undo=True)
    assert len(rescan(index).releases) == 1
    with pytest.raises(InputError, match="no registered release"):
        release_history(index, "nope")


def test_older_kev_refused_keeps_alert_state(
    index: VulnIndex, sbom_factory: Callable[..., bytes], tmp_path: Path
) -> None:
    import_feeds(index, nvd=[str(HEARTBLEED)], kev=[str(KEV)])
    add_release(index, sbom_factory([OPENSSL]))
    doc = json.loads(KEV.read_text())
    doc["catalogVersion"], doc["dateReleased"] = "2025.08.01", "2025-08-01T12:00:00.000Z"
    doc["vulnerabilities"] = [v for v in doc["vulnerabilities"] if v["cveID"] != "CVE-2014-0160"]
    older = tmp_path / "older-kev.json"
    older.write_text(json.dumps(doc))
    with pytest.raises(FeedError, match=r"older than the stored catalog 2025\.08\.25"):
        import_feeds(index, kev=[str(older)])
    report = rescan(index)
    assert report.releases[0].findings["o|CVE-2014-0160"].kev  # the entry was not silently removed
