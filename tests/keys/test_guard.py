"""GuardedSigner: approvals checked before the key is used; every signature audited."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from datetime import UTC, datetime

import pytest

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner, Signer
from medfw.errors import PolicyViolationError, UsageError
from medfw.image import sbv2
from medfw.keys.approval_policy import RequireApprovals
from medfw.keys.approvals import ApprovalRequest, sign_approval
from medfw.keys.guard import GuardedSigner

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


class CountingSigner(Signer):
    """Counts calls, to prove a denied signer never touches the key."""

    def __init__(self, inner: FileSigner) -> None:
        self.inner = inner
        self.key_id = "counting"
        self.calls = 0

    def public_key(self):  # type: ignore[no-untyped-def]
        return self.inner.public_key()

    def _sign_digest(self, digest, hash_name):  # type: ignore[no-untyped-def]
        self.calls += 1
        return self.inner.sign_digest(digest, hash_name)

    def _sign_message(self, message: bytes) -> bytes:
        self.calls += 1
        return self.inner.sign_message(message)


def test_denied_without_approvals_and_key_unused() -> None:
    release = CountingSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))
    approver = FileSigner(generate_private_key(KeyType.ED25519))
    policy = RequireApprovals.of(1, [approver.public_key()])
    image = b"\x00" * 5000
    sink = MemorySink()
    with pytest.raises(PolicyViolationError):
        GuardedSigner(release, sink, policy=policy, subject_sha256=hashlib.sha256(image).hexdigest(), now=NOW)
    assert release.calls == 0
    [event] = sink.of_type("key.sign")
    assert event.outcome == "denied"
    assert event.reason == "approvals_missing"


def test_approved_signing_is_audited() -> None:
    release = FileSigner(generate_private_key(KeyType.ECDSA_P256), key_id="release.pem")
    approver = FileSigner(generate_private_key(KeyType.ED25519))
    policy = RequireApprovals.of(1, [approver.public_key()])
    image = bytes(range(256)) * 20
    req = ApprovalRequest.for_subject(release.public_key(), image)
    approval = sign_approval(req, "alice", approver, now=NOW)
    sink = MemorySink()
    guarded = GuardedSigner(
        release, sink, policy=policy, approvals=[approval], subject_sha256=req.subject_sha256, now=NOW
    )
    signed = sbv2.sign_image(image, [guarded])
    assert sbv2.verify_image(signed, public_keys=[release.public_key()]).block_index == 0
    [event] = sink.of_type("key.sign")
    assert event.outcome == "success"
    assert event.objects["subject_sha256"] == req.subject_sha256
    assert event.data["approved_by"] == [approval.approver_key]
    assert "PRIVATE" not in json.dumps([asdict(e) for e in sink.events], default=str)


def test_ed25519_and_no_policy() -> None:
    inner = FileSigner(generate_private_key(KeyType.ED25519))
    sink = MemorySink()
    guarded = GuardedSigner(inner, sink)
    sig = guarded.sign_message(b"hello")
    inner.public_key().verify(sig, b"hello")  # type: ignore[union-attr]
    assert [e.outcome for e in sink.of_type("key.sign")] == ["success"]
    with pytest.raises(UsageError):
        GuardedSigner(inner, sink, policy=RequireApprovals.of(1, [inner.public_key()]))
