"""M-of-N signing approvals: statements, signatures, the RequireApprovals policy, audit events."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.errors import ConfigError, PolicyViolationError, SignatureError, UsageError
from medfw.keys.approval_policy import RequireApprovals
from medfw.keys.approvals import (
    Approval,
    ApprovalRequest,
    approval_event,
    approvals_from_events,
    sign_approval,
    verify_approval,
)

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def approvers() -> list[FileSigner]:
    kinds = [KeyType.ED25519, KeyType.ECDSA_P256, KeyType.ECDSA_P384]
    return [FileSigner(generate_private_key(k), key_id=f"approver-{i}") for i, k in enumerate(kinds)]


@pytest.fixture(scope="module")
def release_key() -> FileSigner:
    return FileSigner(generate_private_key(KeyType.ECDSA_P256), key_id="release")


def _request(release_key: FileSigner, subject: bytes = b"firmware v2") -> ApprovalRequest:
    return ApprovalRequest.for_subject(release_key.public_key(), subject)


def test_two_of_three(approvers: list[FileSigner], release_key: FileSigner) -> None:
    policy = RequireApprovals.of(2, [a.public_key() for a in approvers], ["alice", "bob", "carol"])
    req = _request(release_key)
    alice = sign_approval(req, "alice", approvers[0], now=NOW)
    bob = sign_approval(req, "bob", approvers[1], now=NOW)
    with pytest.raises(PolicyViolationError, match="needs 2 approval"):
        policy.check(req, [alice], now=NOW)
    result = policy.check(req, [alice, bob], now=NOW + timedelta(hours=1))
    assert result.ok
    assert result.missing == 0
    assert len(result.approved_by) == 2
    # the same approver twice counts once
    again = sign_approval(req, "alice", approvers[0], now=NOW)
    result = policy.evaluate(req, [alice, again], now=NOW)
    assert not result.ok
    assert result.missing == 1
    assert ("alice", "approver already counted") in result.rejected


def test_refusals(approvers: list[FileSigner], release_key: FileSigner) -> None:
    policy = RequireApprovals.of(1, [approvers[0].public_key()])
    req = _request(release_key)
    outsider = FileSigner(generate_private_key(KeyType.ED25519))
    cases = {
        "not in the policy": sign_approval(req, "mallory", outsider, now=NOW),
        "different key, subject or purpose": sign_approval(
            _request(release_key, b"other firmware"), "alice", approvers[0], now=NOW
        ),
        "validity window": sign_approval(req, "alice", approvers[0], now=NOW - timedelta(days=2)),
    }
    for needle, approval in cases.items():
        with pytest.raises(PolicyViolationError, match=needle):
            policy.check(req, [approval], now=NOW)
    # a forged approval: statement altered after signing
    good = sign_approval(req, "alice", approvers[0], now=NOW)
    forged = Approval.from_dict({**good.to_dict(), "statement": {**good.statement(), "approver": "eve"}})
    with pytest.raises(PolicyViolationError, match="signature does not verify"):
        policy.check(req, [forged], now=NOW)
    with pytest.raises(SignatureError, match="does not match approver_key"):
        verify_approval(good, approvers[1].public_key())


def test_rsa_approver() -> None:
    rsa_signer = FileSigner(generate_private_key(KeyType.RSA3072))
    req = ApprovalRequest("ab" * 32, "cd" * 32, "key-rotate")
    approval = sign_approval(req, "root-officer", rsa_signer, now=NOW)
    verify_approval(approval, rsa_signer.public_key())
    assert RequireApprovals.of(1, [rsa_signer.public_key()]).check(req, [approval], now=NOW).ok


def test_record_round_trip_and_audit_event(approvers: list[FileSigner], release_key: FileSigner) -> None:
    req = _request(release_key)
    approval = sign_approval(req, "alice", approvers[0], now=NOW, validity=timedelta(hours=2))
    record = json.loads(json.dumps(approval.to_dict()))
    assert Approval.from_dict(record) == approval
    assert approval.statement_bytes().startswith(b'{"approver":"alice"')  # canonical, sorted keys
    sink = MemorySink()
    sink.record(approval_event(approval))
    [event] = sink.of_type("key.approve")
    assert event.objects["key_fingerprint"] == req.key_fingerprint
    assert approvals_from_events(sink.events) == [approval]


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.pop("statement"), "statement"),
        (lambda d: d.update(signature="zz"), "not hex"),
        (lambda d: d["statement"].update(format="other/1"), "format"),
        (lambda d: d["statement"].update(issued_at="yesterday"), "issued_at"),
        (lambda d: d["statement"].update(subject_sha256="abc"), "subject_sha256"),
        (lambda d: d["statement"].update(extra=1), "unknown approval statement fields"),
        (lambda d: d["statement"].update(approver=5), "approver"),
    ],
)
def test_malformed_records(approvers: list[FileSigner], release_key: FileSigner, mutate: object, needle: str) -> None:
    record = sign_approval(_request(release_key), "alice", approvers[0], now=NOW).to_dict()
    record["statement"] = dict(record["statement"])
    mutate(record)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=needle):
        Approval.from_dict(record, path="a.json")


@settings(max_examples=60)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda c: st.dictionaries(st.text(max_size=12), c, max_size=8) | st.lists(c, max_size=4),
        max_leaves=20,
    )
)
def test_from_dict_fails_closed(data: object) -> None:
    with contextlib.suppress(ConfigError):
        Approval.from_dict(data)


def test_policy_validation(approvers: list[FileSigner]) -> None:
    keys = [a.public_key() for a in approvers]
    with pytest.raises(ConfigError, match="threshold"):
        RequireApprovals.of(4, keys)
    with pytest.raises(ConfigError, match="threshold"):
        RequireApprovals.of(0, keys)
    with pytest.raises(ConfigError, match="twice"):
        RequireApprovals.of(1, [keys[0], keys[0]])
    with pytest.raises(ConfigError, match="at least one"):
        RequireApprovals(1, {})
    with pytest.raises(ConfigError, match="not its own"):
        RequireApprovals(1, {"00" * 32: keys[0]})


def test_sign_approval_argument_checks(approvers: list[FileSigner], release_key: FileSigner) -> None:
    req = _request(release_key)
    with pytest.raises(UsageError, match="UTC"):
        sign_approval(req, "alice", approvers[0], now=datetime(2026, 1, 1))
    with pytest.raises(UsageError, match="validity"):
        sign_approval(req, "alice", approvers[0], now=NOW, validity=timedelta(days=31))
    with pytest.raises(UsageError, match="approver name"):
        sign_approval(req, "", approvers[0], now=NOW)
