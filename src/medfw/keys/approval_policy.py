"""Approval policies: how many of which keys must approve a subject before it is signed (``RequireApprovals``),
loaded from a policy file (``medfw-approval-policy/1``) and evaluated against signed approvals
(:mod:`medfw.keys.approvals`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from medfw._io import read_bytes
from medfw.crypto.keys import PublicKey, load_public_key, public_key_fingerprint
from medfw.errors import ConfigError, MedfwError, PolicyViolationError, SignatureError
from medfw.keys.approvals import (
    MAX_POLICY_FILE,
    POLICY_FORMAT,
    Approval,
    ApprovalRequest,
    utc,
    verify_approval,
)

__all__ = ["ApprovalResult", "RequireApprovals", "load_policy"]


@dataclass(frozen=True)
class ApprovalResult:
    """The outcome of evaluating approvals against a policy (no exception; see :meth:`RequireApprovals.check`).

    Attributes:
        threshold: approvals required.
        approved_by: approver key fingerprints whose approval counted (each once), in input order.
        rejected: ``(approver name, reason)`` for every approval that did not count.
    """

    threshold: int
    approved_by: tuple[str, ...]
    rejected: tuple[tuple[str, str], ...]

    @property
    def ok(self) -> bool:
        """True when enough distinct approvers approved."""
        return len(self.approved_by) >= self.threshold

    @property
    def missing(self) -> int:
        """How many more approvals are needed."""
        return max(0, self.threshold - len(self.approved_by))


@dataclass(frozen=True)
class RequireApprovals:
    """A policy: at least ``threshold`` of the ``approvers`` (fingerprint -> public key) must approve.

    Raises (on construction):
        ConfigError: no approvers, a threshold outside 1..N, or a key listed under a wrong fingerprint.
    """

    threshold: int
    approvers: Mapping[str, PublicKey]
    names: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.approvers:
            raise ConfigError("an approval policy needs at least one approver key", field="approvers")
        if not 1 <= self.threshold <= len(self.approvers):
            raise ConfigError(
                f"approval threshold {self.threshold} must be between 1 and the {len(self.approvers)} approvers",
                field="threshold",
            )
        for fp, key in self.approvers.items():
            if public_key_fingerprint(key) != fp:
                raise ConfigError("approver key listed under a fingerprint that is not its own", field="approvers")

    @classmethod
    def of(cls, threshold: int, keys: Sequence[PublicKey], names: Sequence[str] | None = None) -> RequireApprovals:
        """Build a policy from a list of approver public keys (and optional display names).

        Raises:
            ConfigError: a key is listed twice, or the threshold is out of range.
        """
        fps = [public_key_fingerprint(k) for k in keys]
        if len(set(fps)) != len(fps):
            raise ConfigError("the same approver key is listed twice", field="approvers")
        labels = dict(zip(fps, names, strict=True)) if names is not None else {}
        return cls(threshold, dict(zip(fps, keys, strict=True)), labels)

    def evaluate(self, request: ApprovalRequest, approvals: Iterable[Approval], *, now: datetime) -> ApprovalResult:
        """Count the approvals that satisfy this policy for ``request`` at ``now`` (never raises on bad records)."""
        at = utc(now, "now")
        counted: list[str] = []
        rejected: list[tuple[str, str]] = []
        for a in approvals:
            key = self.approvers.get(a.approver_key)
            if key is None:
                rejected.append((a.approver, "approver key is not in the policy"))
            elif a.request != request:
                rejected.append((a.approver, "approves a different key, subject or purpose"))
            elif not a.issued_at <= at < a.expires_at:
                rejected.append((a.approver, "outside its validity window"))
            elif a.approver_key in counted:
                rejected.append((a.approver, "approver already counted"))
            else:
                try:
                    verify_approval(a, key)
                except SignatureError as e:
                    rejected.append((a.approver, e.message))
                    continue
                counted.append(a.approver_key)
        return ApprovalResult(self.threshold, tuple(counted), tuple(rejected))

    def check(self, request: ApprovalRequest, approvals: Iterable[Approval], *, now: datetime) -> ApprovalResult:
        """Like :meth:`evaluate`, but fail closed.

        Raises:
            PolicyViolationError: fewer than ``threshold`` valid approvals (the message lists why each was refused).
        """
        result = self.evaluate(request, approvals, now=now)
        if not result.ok:
            why = "; ".join(f"{name}: {reason}" for name, reason in result.rejected)
            raise PolicyViolationError(
                f"signing needs {self.threshold} approval(s), {len(result.approved_by)} valid"
                + (f" ({why})" if why else ""),
                field="approvals",
            )
        return result


def load_policy(path: str | os.PathLike[str]) -> RequireApprovals:
    """Load an approval policy file (JSON or YAML), reading the approvers' public key files (I/O edge).

    Format::

        format: medfw-approval-policy/1
        threshold: 2
        approvers:
          - name: alice
            public_key: keys/alice.pub.pem     # relative to the policy file

    Raises:
        ConfigError: the file is malformed (names the field), or a key file cannot be used.
    """
    p = Path(path)
    raw = read_bytes(p, max_length=MAX_POLICY_FILE, what="approval policy")
    try:
        data = yaml.safe_load(raw)  # YAML is a superset of JSON
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(
            f"approval policy is not YAML/JSON: {e}", path=str(p), offset=mark.index if mark is not None else None
        ) from None
    if not isinstance(data, dict) or data.get("format") != POLICY_FORMAT:
        raise ConfigError(f"not a {POLICY_FORMAT} document", path=str(p), field="format")
    unknown = set(data) - {"format", "threshold", "approvers", "description"}
    if unknown:
        raise ConfigError(f"unknown policy fields: {', '.join(sorted(map(str, unknown)))}", path=str(p))
    threshold = data.get("threshold")
    if not isinstance(threshold, int) or isinstance(threshold, bool):
        raise ConfigError("threshold must be an integer", path=str(p), field="threshold")
    entries = data.get("approvers")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("approvers must be a non-empty list", path=str(p), field="approvers")
    keys: list[PublicKey] = []
    names: list[str] = []
    for i, entry in enumerate(entries):
        where = f"approvers[{i}]"
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("name"), str)
            or not isinstance(entry.get("public_key"), str)
        ):
            raise ConfigError("each approver needs a name and a public_key file", path=str(p), field=where)
        key_path = p.parent / entry["public_key"]
        try:
            keys.append(load_public_key(key_path))
        except MedfwError as e:
            raise ConfigError(f"{where}: {e.message}", path=str(key_path), field=f"{where}.public_key") from None
        names.append(entry["name"])
    try:
        return RequireApprovals.of(threshold, keys, names)
    except ConfigError as e:
        raise e.with_path(str(p)) from None
