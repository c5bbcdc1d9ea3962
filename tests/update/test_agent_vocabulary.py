"""The agent's closed sets are enums, checked where a value is created, and serialise as their plain strings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exc

from medfw.device.clinical import Permission
from medfw.device.verify import CheckReason
from medfw.update.agent import (
    AgentOutcome,
    AgentResult,
    DeferReason,
    RejectReason,
    ReportStatus,
    RevertReason,
    UnreachableReason,
)
from medfw.update.agent_model import _Deferred, _Rejected, device_refusal
from medfw.update.agent_tuf import MetadataReason, metadata_reason

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_agent_result_outcome_is_validated_and_serialises_as_a_string() -> None:
    result = AgentResult("rejected", "rollback")  # type: ignore[arg-type]
    assert result.outcome is AgentOutcome.REJECTED
    assert result.reason is RejectReason.ROLLBACK
    assert json.loads(json.dumps(asdict(result)))["outcome"] == "rejected"
    with pytest.raises(ValueError, match="'rejectd' is not a valid AgentOutcome"):
        AgentResult("rejectd")  # type: ignore[arg-type]


def test_report_statuses_failure_flag() -> None:
    assert {s for s in ReportStatus if s.failed} == {ReportStatus.REVERTED, ReportStatus.REJECTED}
    with pytest.raises(ValueError, match="not a valid ReportStatus"):
        ReportStatus("key-rotated")


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (tuf_exc.ExpiredMetadataError("x"), MetadataReason.EXPIRED),
        (tuf_exc.UnsignedMetadataError("x"), MetadataReason.BAD_SIGNATURE),
        (tuf_exc.LengthOrHashMismatchError("x"), MetadataReason.HASH_MISMATCH),
        (tuf_exc.RepositoryError("x"), MetadataReason.INVALID),
        # a version error with no record of the refused file cannot be placed
        (tuf_exc.BadVersionNumberError("Expected 3"), MetadataReason.INVALID),
    ],
)
def test_metadata_reason_by_exception_type(error: Exception, reason: MetadataReason, tmp_path: Path) -> None:
    assert metadata_reason(error, None, tmp_path) is reason


def test_a_refused_file_that_is_not_metadata_is_invalid(tmp_path: Path) -> None:
    refused = ("http://127.0.0.1/tuf/metadata/3.snapshot.json", b"not json")
    assert metadata_reason(tuf_exc.BadVersionNumberError("x"), refused, tmp_path) is MetadataReason.INVALID


@pytest.mark.parametrize(
    ("outcome", "reason", "member"),
    [
        ("rejected", "hash_mismatch", RejectReason.HASH_MISMATCH),
        ("rejected", "metadata_expired", MetadataReason.EXPIRED),
        ("rejected", "untrusted_key", CheckReason.UNTRUSTED_KEY),
        ("reverted", "app_not_confirmed", RevertReason.APP_NOT_CONFIRMED),
        ("deferred", "download_deadline", DeferReason.DOWNLOAD_DEADLINE),
        ("deferred", "device_busy", Permission.DEVICE_BUSY),
        ("unreachable", "server_unreachable", UnreachableReason.SERVER_UNREACHABLE),
    ],
)
def test_result_reasons_become_members_of_their_outcomes_vocabulary(outcome: str, reason: str, member: object) -> None:
    result = AgentResult(AgentOutcome(outcome), reason)
    assert result.reason is member
    assert json.loads(json.dumps(asdict(result)))["reason"] == reason  # the wire value is the plain string


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        ("rejected", "hash-mismatch"),
        ("rejected", "app_not_confirmed"),  # a revert reason is not a refusal
        ("rejected", "ok"),
        ("reverted", "rollback"),
        ("deferred", "granted"),
        ("unreachable", "poll_http_99"),
        ("idle", "rollback"),
        ("confirmed", "already_installed"),
    ],
)
def test_a_reason_outside_the_outcomes_vocabulary_is_refused(outcome: str, reason: str) -> None:
    with pytest.raises(ValueError, match="is not a reason of"):
        AgentResult(AgentOutcome(outcome), reason)


def test_an_http_poll_answer_keeps_its_status_in_the_reason() -> None:
    assert AgentResult(AgentOutcome.UNREACHABLE, "poll_http_401").reason == "poll_http_401"


def test_refusals_are_validated_where_raised() -> None:
    assert _Rejected(CheckReason.REVOKED_KEY, "x", stage="install").reason is CheckReason.REVOKED_KEY
    for bad in ("rollback", CheckReason.OK):
        with pytest.raises(ValueError, match="not a refusal reason"):
            _Rejected(bad, "x", stage="manifest")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="not a valid DeferReason"):
        _Deferred("download_stalled", "x")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("bad_signature", CheckReason.BAD_SIGNATURE),
        ("rollback", CheckReason.ROLLBACK),
        ("install_interrupted", RejectReason.INSTALL_INTERRUPTED),
        ("ok", RejectReason.IMAGE_REFUSED),
        ("flash_on_fire", RejectReason.IMAGE_REFUSED),
        (None, RejectReason.IMAGE_REFUSED),
    ],
)
def test_device_refusals_map_onto_the_devices_vocabulary(code: object, reason: object) -> None:
    assert device_refusal(code) is reason


def test_every_refusal_and_revert_reason_is_documented() -> None:
    table = (DOCS / "ota.md").read_text(encoding="utf-8")
    for reason in [*RejectReason, *MetadataReason, *RevertReason]:
        assert f"`{reason}`" in table, f"docs/ota.md does not explain {reason}"


def test_the_agent_schema_lists_exactly_the_reason_vocabulary() -> None:
    schema = json.loads((DOCS / "json" / "device.agent.schema.json").read_text(encoding="utf-8"))
    listed = set(schema["properties"]["reason"]["anyOf"][1]["enum"])
    vocabulary = {str(m) for e in (RejectReason, MetadataReason, CheckReason, RevertReason) for m in e}
    vocabulary |= {str(m) for e in (DeferReason, Permission, UnreachableReason) for m in e}
    assert listed == vocabulary - {CheckReason.OK, Permission.GRANTED}
    assert set(schema["properties"]["outcome"]["enum"]) == set(AgentOutcome)
