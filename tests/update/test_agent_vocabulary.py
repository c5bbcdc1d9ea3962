"""The agent's closed sets are enums, checked where a value is created, and serialise as their plain strings."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import pytest
from tuf.api import exceptions as tuf_exc

from medfw.update.agent import AgentOutcome, AgentResult, ReportStatus
from medfw.update.agent_tuf import MetadataReason, metadata_reason


def test_agent_result_outcome_is_validated_and_serialises_as_a_string() -> None:
    result = AgentResult("rejected", "rollback")  # type: ignore[arg-type]
    assert result.outcome is AgentOutcome.REJECTED
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
