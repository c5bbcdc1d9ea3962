"""``medfw keys approve`` and ``medfw keys check-approvals``: M-of-N signed approvals of a key use."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.audit.sink import AuditEvent
from medfw.cli._common import emit, out_console
from medfw.cli._keys_common import (
    MAX_IMAGE,
    _load_json,
    _public_key,
    _sink,
    _write_json,
)
from medfw.crypto.registry import load_signer
from medfw.errors import EXIT_FAILED, EXIT_OK, ConfigError, InputError, UsageError

__all__ = []


def _load_approval(path: str) -> Any:
    from medfw.keys.approvals import Approval  # noqa: PLC0415

    return Approval.from_dict(_load_json(path, "approval record"), path=path)


def _load_approvals(paths: list[str]) -> tuple[list[Any], list[tuple[str, str]]]:
    """The approval records at ``paths``, and a refusal for each one whose fields were altered.

    A file that is not JSON, or JSON that is not an object, is bad input (exit 2). A record whose fields do not
    parse (a signature that is not hex, a malformed time, an unknown field) is not counted, like one whose
    signature does not verify: the check then fails (exit 1) unless enough other approvals are valid.
    """
    from medfw.keys.approvals import Approval  # noqa: PLC0415

    approvals: list[Any] = []
    refused: list[tuple[str, str]] = []
    for path in paths:
        data = _load_json(path, "approval record")
        if not isinstance(data, dict):
            raise ConfigError("approval record must be a JSON object", path=path)
        try:
            approvals.append(Approval.from_dict(data, path=path))
        except ConfigError as e:
            refused.append((path, f"malformed record: {e.message}" + (f" ({e.field})" if e.field else "")))
    return approvals, refused


def _load_policy(path: str) -> Any:
    from medfw.keys.approval_policy import load_policy  # noqa: PLC0415

    return load_policy(path)


def _request(args: argparse.Namespace) -> Any:
    from medfw.keys.approvals import ApprovalRequest  # noqa: PLC0415

    subject = read_bytes(args.subject, max_length=MAX_IMAGE, what="subject file")
    return ApprovalRequest.for_subject(_public_key(args.signing_key), subject, args.purpose)


def _approve(args: argparse.Namespace) -> int:
    from medfw.keys.approvals import approval_event, sign_approval  # noqa: PLC0415

    if not 0 < args.valid_hours <= 30 * 24:
        raise UsageError("--valid-hours must be between 1 and 720", field="--valid-hours")
    request = _request(args)
    approval = sign_approval(
        request, args.approver, load_signer(args.key), now=datetime.now(UTC), validity=timedelta(hours=args.valid_hours)
    )
    if not args.force and Path(args.out).exists():
        raise InputError("output file exists (use --force to overwrite)", path=args.out)
    with _sink(args) as sink:  # logged first: an approval exists only once it is in the audit log
        sink.record(approval_event(approval))
    _write_json(args.out, approval.to_dict(), force=args.force)
    result = {"approval": approval.to_dict(), "out": args.out}
    emit(
        args,
        result,
        lambda: out_console.print(
            f"{args.approver} approved {request.purpose} of {request.subject_sha256[:16]}… "
            f"with key {request.key_fingerprint[:16]}…; record written to {args.out}",
            markup=False,
        ),
    )
    return EXIT_OK


def _check_approvals(args: argparse.Namespace) -> int:
    from medfw.keys.approvals import approvals_from_events  # noqa: PLC0415

    policy = _load_policy(args.policy)
    request = _request(args)
    approvals, malformed = _load_approvals(args.approval or [])
    if args.from_audit_log:
        from medfw.audit.query import list_entries  # noqa: PLC0415

        events = [
            AuditEvent(type=r.type, outcome=str(r.body.get("outcome", "")), data=dict(r.body.get("data") or {}))
            for r in list_entries(args.from_audit_log, type_="key.approve")
        ]
        approvals += approvals_from_events(events)
    result = policy.evaluate(request, approvals, now=datetime.now(UTC))
    result = replace(result, rejected=(*malformed, *result.rejected))
    data = {
        "ok": result.ok,
        "threshold": result.threshold,
        "approved_by": list(result.approved_by),
        "missing": result.missing,
        "rejected": [{"approver": n, "reason": r} for n, r in result.rejected],
        "request": {
            "key_fingerprint": request.key_fingerprint,
            "subject_sha256": request.subject_sha256,
            "purpose": request.purpose,
        },
    }
    with _sink(args) as sink:
        sink.record(
            AuditEvent(
                type="key.approve",
                outcome="success" if result.ok else "denied",
                reason="policy_met" if result.ok else "approvals_missing",
                actor="policy",
                objects={"key_fingerprint": request.key_fingerprint, "subject_sha256": request.subject_sha256},
                data={"threshold": result.threshold, "approved_by": list(result.approved_by), "check": True},
            )
        )

    def human() -> None:
        verdict = "met" if result.ok else f"NOT met ({result.missing} more needed)"
        out_console.print(
            f"approval policy {verdict}: {len(result.approved_by)} of {result.threshold} required", markup=False
        )
        for name, reason in result.rejected:
            out_console.print(f"  not counted: {name}: {reason}", markup=False)

    emit(args, data, human)
    return EXIT_OK if result.ok else EXIT_FAILED


# ----------------------------------------------------------------------------------------------- registration
