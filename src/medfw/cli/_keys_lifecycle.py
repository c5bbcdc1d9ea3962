"""CLI commands for HSM keys and the key lifecycle (registered by ``medfw.cli.keys``).

* ``medfw keys export-public KEY --out PUB.pem`` — the public key of a token key (or key file).
* ``medfw keys rotate --old KEY --new KEY ...`` — the rotation plan, the transition image, the TUF root rotation.
* ``medfw keys revoke --plan PLAN --device DIR`` — the device-side revocation step (conservative).
* ``medfw keys approve ...`` / ``medfw keys check-approvals ...`` — M-of-N signing approvals.

KEY arguments are key files (``file:`` prefix allowed) or ``pkcs11:`` URIs; a PIN never goes on the command line.
"""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.cli._common import add_audit_flag, add_json_flag, emit, out_console
from medfw.cli._keys_approvals import (
    _approve,
    _check_approvals,
    _load_approval,
    _load_policy,
)
from medfw.cli._keys_common import (
    MAX_IMAGE,
    _fingerprint,
    _key_label,
    _load_json,
    _public_key,
    _sink,
    _write_json,
)
from medfw.crypto.keys import key_type_of, public_key_pem
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import Signer
from medfw.errors import EXIT_OK, InputError, UsageError

__all__ = ["register"]


def _export_public(args: argparse.Namespace) -> int:
    key = _public_key(args.key)
    pem = public_key_pem(key)
    if args.out:
        atomic_write(args.out, pem, mode=0o644, overwrite=args.force)
    result = {
        "key": _key_label(args.key),
        "type": str(key_type_of(key)),
        "fingerprint": _fingerprint(key),
        "out": args.out,
    }

    def human() -> None:
        if args.out:
            out_console.print(f"{result['type']} public key written to {args.out}", markup=False)
            out_console.print(f"fingerprint (SHA-256 of SPKI): {result['fingerprint']}", markup=False)
        else:
            out_console.print(pem.decode().rstrip(), markup=False)

    if args.json:
        result["pem"] = pem.decode()
    emit(args, result, human)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- rotate / revoke


@dataclass(frozen=True)
class _Slot:
    index: int
    digest: bytes | None
    revoked: bool


def _slots_from_args(args: argparse.Namespace) -> list[Any]:
    if args.device and args.key_digest:
        raise UsageError("give either --device or --key-digest, not both", field="--device")
    if args.device:
        from medfw.device.device import Device  # noqa: PLC0415

        return list(Device.open(args.device).efuse.key_slots())
    if args.key_digest:
        slots: list[Any] = []
        for i, text in enumerate(args.key_digest):
            try:
                digest = bytes.fromhex(text)
            except ValueError:
                raise UsageError(f"--key-digest {i} is not hex", field="--key-digest") from None
            if len(digest) not in (16, 32):
                raise UsageError(f"--key-digest {i} is {len(digest)} bytes, expected 32", field="--key-digest")
            slots.append(_Slot(i, digest, False))
        return slots
    raise UsageError(
        "the plan needs the device's burned key digests: give --device DIR or --key-digest HEX per slot",
        field="--device",
    )


def _rotate(args: argparse.Namespace) -> int:
    from medfw.keys.rotation import plan_rotation, rotate_tuf_root, sign_transition  # noqa: PLC0415

    if bool(args.image) != bool(args.out):
        raise UsageError("--image and --out go together (the transition image)", field="--out")
    if bool(args.tuf_repo) != bool(args.tuf_root_key and args.tuf_new_root_key):
        raise UsageError(
            "a TUF root rotation needs --tuf-repo, --tuf-root-key (current) and --tuf-new-root-key", field="--tuf-repo"
        )
    slots = _slots_from_args(args)
    new_pub = _public_key(args.new)
    old_pubs = [(_key_label(k), _public_key(k)) for k in args.old]
    plan = plan_rotation(slots, (_key_label(args.new), new_pub), old_pubs)
    result: dict[str, Any] = {"plan": plan.to_dict()}
    for path in (args.plan_out, args.out):  # refuse early, before any key is used
        if path and not args.force and Path(path).exists():
            raise InputError("output file exists (use --force to overwrite)", path=path)
    signed: bytes | None = None
    with _sink(args) as sink:
        sink.record(
            AuditEvent(
                type="key.rotate",
                outcome="info",
                reason="plan",
                actor=plan.new.key_id,
                objects={"new_key_fingerprint": plan.new.fingerprint, "new_key_digest": plan.new.sbv2_digest.hex()},
                data={
                    "phase": "plan",
                    "old_key_fingerprints": [k.fingerprint for k in plan.old],
                    "revoke": [r.efuse_field for r in plan.revocations],
                },
            )
        )
        if args.image:
            data = read_bytes(args.image, max_length=MAX_IMAGE, what="image")
            signers = [_guard(args, load_signer(args.new), data, sink, with_policy=True)]
            signers += [_guard(args, load_signer(k), data, sink, with_policy=False) for k in args.old]
            signed = sign_transition(data, plan, signers, sink)
            result["transition_image"] = {"path": args.out, "sha256": hashlib.sha256(signed).hexdigest()}
        if args.tuf_repo:
            from medfw.update.repository import TufRepository  # noqa: PLC0415 - TUF only for this step

            repo = TufRepository(args.tuf_repo)
            version = rotate_tuf_root(
                repo,
                [load_signer(k) for k in args.tuf_root_key],
                [load_signer(k) for k in args.tuf_new_root_key],
                sink,
                threshold=args.tuf_threshold,
            )
            result["tuf"] = {"repo": args.tuf_repo, "root_version": version}
    # outputs last: a failed step leaves no plan or image behind
    if signed is not None:
        atomic_write(args.out, signed, overwrite=args.force)
    if args.plan_out:
        _write_json(args.plan_out, plan.to_dict(), force=args.force)
        result["plan_file"] = args.plan_out

    def human() -> None:
        out_console.print(
            f"rotation plan: {len(plan.old)} old key(s) -> new key in eFuse slot {plan.new.slot}", markup=False
        )
        for step in plan.steps():
            out_console.print(f"  {step}", markup=False)
        if "transition_image" in result:
            out_console.print(f"transition image written to {args.out}", markup=False)
        if "tuf" in result:
            out_console.print(f"TUF root rotated to version {result['tuf']['root_version']}", markup=False)

    emit(args, result, human)
    return EXIT_OK


def _guard(args: argparse.Namespace, signer: Signer, data: bytes, sink: AuditSink, *, with_policy: bool) -> Signer:
    """Wrap a key so each signature is audited; the new key also in the approval policy (``--policy``)."""
    from medfw.keys.guard import GuardedSigner  # noqa: PLC0415

    policy = _load_policy(args.policy) if with_policy and args.policy else None
    approvals = [_load_approval(p) for p in args.approval or []] if policy is not None else []
    return GuardedSigner(
        signer,
        sink,
        policy=policy,
        approvals=approvals,
        subject_sha256=hashlib.sha256(data).hexdigest(),
        purpose="release-sign",
        now=datetime.now(UTC),
    )


def _revoke(args: argparse.Namespace) -> int:
    from medfw.device.device import Device  # noqa: PLC0415
    from medfw.keys.rotation import RotationPlan, revoke_on_device  # noqa: PLC0415

    plan = RotationPlan.from_dict(_load_json(args.plan, "rotation plan"), path=args.plan)
    with _sink(args) as sink:
        device = Device.open(args.device, audit=sink)
        revoked = revoke_on_device(device, device.efuse.key_slots(), plan)
        sink.record(
            AuditEvent(
                type="key.rotate",
                outcome="success",
                reason="revoked" if revoked else "nothing_to_revoke",
                actor="device",
                objects={"new_key_fingerprint": plan.new.fingerprint},
                data={"phase": "revoke", "revoked_slots": revoked, "device": str(args.device)},
            )
        )
    result = {
        "device": args.device,
        "revoked_slots": revoked,
        "key_slots": [
            {"slot": s.index, "digest": s.digest.hex() if s.digest else None, "revoked": s.revoked}
            for s in device.efuse.key_slots()
        ],
    }

    def human() -> None:
        if revoked:
            out_console.print(f"revoked eFuse key slot(s) {', '.join(map(str, revoked))}", markup=False)
        else:
            out_console.print("nothing to revoke: the plan's old key slots are already revoked", markup=False)

    emit(args, result, human)
    return EXIT_OK


# ----------------------------------------------------------------------------------------------- approvals


def _common(p: argparse.ArgumentParser) -> None:
    add_json_flag(p)
    add_audit_flag(p)


def register(sub: Any) -> None:
    """Register ``medfw keys export-public|rotate|revoke|approve|check-approvals``."""
    p = sub.add_parser(
        "export-public",
        help="write the public key of a PKCS#11 token key (or key file) as PEM",
        description="Read the public half of a key pair: from the token named by a pkcs11: URI (no PIN needed when "
        "the public key object is public) or from a key file. Without --out the PEM is printed.",
    )
    p.add_argument("key", metavar="KEY", help="pkcs11: URI or key file")
    p.add_argument("--out", metavar="PUB.pem", help="write the PEM here (mode 0644)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_json_flag(p)
    p.set_defaults(func=_export_public)

    p = sub.add_parser(
        "rotate",
        help="plan a Secure Boot v2 key rotation; sign the transition image; rotate the TUF root",
        description="Rotate from --old key(s) to --new: check the device trusts the new key (its digest burned in a "
        "usable eFuse slot), name the revoke bit of each old key, optionally sign a transition image with the new "
        "and old keys (at most 3 blocks, new first) and rotate the TUF root (N+1 signed by old and new root keys). "
        "Revocation itself is done per device afterwards with 'medfw keys revoke'.",
    )
    p.add_argument("--old", action="append", required=True, metavar="KEY", help="key to retire (repeat for two)")
    p.add_argument("--new", required=True, metavar="KEY", help="key to move to")
    p.add_argument("--device", metavar="DIR", help="device directory whose eFuse key slots the plan uses")
    p.add_argument(
        "--key-digest", action="append", metavar="HEX", help="burned key digest of slot 0, 1, 2 (instead of --device)"
    )
    p.add_argument("--plan-out", metavar="PLAN.json", help="write the plan (no secrets) here")
    p.add_argument("--image", metavar="IN.bin", help="unsigned image to sign as the transition release")
    p.add_argument("--out", metavar="OUT.bin", help="signed transition image")
    p.add_argument("--policy", metavar="POLICY", help="approval policy the new key's use must satisfy")
    p.add_argument("--approval", action="append", metavar="FILE", help="approval record (repeat)")
    p.add_argument("--tuf-repo", metavar="DIR", help="TUF repository whose root keys are rotated")
    p.add_argument("--tuf-root-key", action="append", metavar="KEY", help="current TUF root key (repeat)")
    p.add_argument("--tuf-new-root-key", action="append", metavar="KEY", help="new TUF root key (repeat)")
    p.add_argument("--tuf-threshold", type=int, default=1, metavar="N", help="new root threshold (default 1)")
    p.add_argument("--force", action="store_true", help="overwrite existing output files")
    _common(p)
    p.set_defaults(func=_rotate)

    p = sub.add_parser(
        "revoke",
        help="burn the revoke bits of a rotation plan on a device (conservative: after the new image is confirmed)",
        description="Apply the device-side step of a rotation plan: for each old key, burn SECURE_BOOT_KEY_REVOKE<n> "
        "only if the device's running app is confirmed (VALID) and it and the bootloader verify without that key. "
        "Exit 1 when the device refuses.",
    )
    p.add_argument("--plan", required=True, metavar="PLAN.json", help="plan written by 'medfw keys rotate'")
    p.add_argument("--device", required=True, metavar="DIR", help="device directory")
    _common(p)
    p.set_defaults(func=_revoke)

    p = sub.add_parser(
        "approve",
        help="approve signing a file with a release key (signed approval record, logged as key.approve)",
        description="Sign an approval statement with your own key (--key): it binds the release key "
        "(--signing-key), the SHA-256 of --subject, the purpose and a validity window. The record is written to "
        "--out and appended to the audit log.",
    )
    p.add_argument("--key", required=True, metavar="KEY", help="the approver's own signing key (file or pkcs11:)")
    p.add_argument("--approver", required=True, metavar="NAME", help="the approver's name")
    p.add_argument("--signing-key", required=True, metavar="KEY", help="the release key to be used (public is enough)")
    p.add_argument("--subject", required=True, metavar="FILE", help="the file that will be signed")
    p.add_argument("--purpose", default="release-sign", help="what the key will do (default release-sign)")
    p.add_argument("--valid-hours", type=int, default=24, metavar="H", help="validity (default 24, max 720)")
    p.add_argument("--out", required=True, metavar="APPROVAL.json", help="approval record")
    p.add_argument("--force", action="store_true", help="overwrite an existing output file")
    _common(p)
    p.set_defaults(func=_approve)

    p = sub.add_parser(
        "check-approvals",
        help="check an M-of-N approval policy before a release key is used (exit 1 if not met)",
        description="Count the valid approvals (from --approval files and/or key.approve events of an audit log) "
        "for signing --subject with --signing-key; exit 0 when the policy's threshold is met, 1 otherwise.",
    )
    p.add_argument("--policy", required=True, metavar="POLICY", help="approval policy (JSON or YAML)")
    p.add_argument("--signing-key", required=True, metavar="KEY", help="the release key (public is enough)")
    p.add_argument("--subject", required=True, metavar="FILE", help="the file to be signed")
    p.add_argument("--purpose", default="release-sign", help="purpose the approvals must name")
    p.add_argument("--approval", action="append", metavar="FILE", help="approval record (repeat)")
    p.add_argument(
        "--from-audit-log", metavar="LOG", help="also take approvals from this audit log's key.approve events"
    )
    _common(p)
    p.set_defaults(func=_check_approvals)
