"""``medfw device ca-init | provision-identity | busy | approve``: the unit's identity and clinical state."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.cli._common import emit, out_console
from medfw.errors import EXIT_OK, UsageError

__all__ = ["register"]


def _cmd_ca_init(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415 - keep CLI start-up light

    from medfw.crypto.registry import load_signer  # noqa: PLC0415
    from medfw.identity.ca import create_ca  # noqa: PLC0415
    from medfw.identity.certs import certificate_fingerprint  # noqa: PLC0415

    ca = create_ca(load_signer(args.key), organisation=args.org, days=args.days)
    if Path(args.out).exists():
        raise UsageError(f"{args.out} exists; refusing to overwrite a CA certificate", path=args.out)
    if args.audit_master_out and Path(args.audit_master_out).exists():
        raise UsageError(f"{args.audit_master_out} exists", path=args.audit_master_out)
    atomic_write(args.out, ca.certificate.public_bytes(serialization.Encoding.PEM), overwrite=False)
    if args.audit_master_out:
        atomic_write(args.audit_master_out, os.urandom(32).hex().encode() + b"\n", mode=0o600, overwrite=False)
    data = {
        "certificate": str(args.out),
        "subject": ca.certificate.subject.rfc4514_string(),
        "fingerprint": certificate_fingerprint(ca.certificate),
        "not_after": ca.certificate.not_valid_after_utc.isoformat(),
        "audit_master": str(args.audit_master_out) if args.audit_master_out else None,
    }
    emit(args, data, lambda: out_console.print(f"device CA {data['subject']} written to {args.out}", markup=False))
    return EXIT_OK


def _sink(args: argparse.Namespace) -> Any:
    from medfw.cli._common import audit_sink  # noqa: PLC0415

    sink = audit_sink(args)
    args._audit_sink = sink  # closed when the command ends
    return sink


def _agent_config(args: argparse.Namespace, ident: Any) -> None:
    from medfw.update.agent import provision  # noqa: PLC0415

    root = read_bytes(args.tuf_root, max_length=1 << 20, what="TUF root")
    provision(
        args.dir,
        device_id=ident.device_id,
        model=ident.model,
        chip=ident.chip,
        credential="",  # a certificate unit authenticates by mutual TLS
        root=root,
        server=args.server,
    )


def _cmd_provision(args: argparse.Namespace) -> int:
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415
    from medfw.crypto.registry import load_signer  # noqa: PLC0415
    from medfw.identity.ca import DeviceCA, load_certificate  # noqa: PLC0415
    from medfw.identity.errors import IdentityError  # noqa: PLC0415
    from medfw.identity.unit import load_audit_master, provision_identity  # noqa: PLC0415

    ca_cert = load_certificate(read_bytes(args.ca, max_length=64 * 1024, what="CA certificate"), path=args.ca)
    ca = DeviceCA(ca_cert, load_signer(args.ca_key))
    master = load_audit_master(args.audit_master) if args.audit_master else None
    csr = read_bytes(args.csr, max_length=64 * 1024, what="CSR") if args.csr else None
    sink = _sink(args)
    try:
        ident = provision_identity(
            args.dir,
            ca,
            device_id=args.id,
            model=args.model,
            chip=args.chip,
            audit_master=master,
            days=args.days,
            csr=csr,
        )
    except IdentityError as e:
        sink.record(
            AuditEvent(
                "device.register", "denied", e.reason, "provisioning", {"device": args.id}, {"detail": e.message}
            )
        )
        raise
    objects = {"device": ident.device_id, "certificate_sha256": ident.fingerprint}
    issued = {"serial": ident.serial, "model": ident.model, "chip": ident.chip, "not_after": str(ident.not_after)}
    sink.record(AuditEvent("device.register", "success", "identity_issued", "provisioning", objects, issued))
    if args.tuf_root:
        _agent_config(args, ident)
    data = {
        **ident.to_dict(),
        "directory": str(args.dir),
        "audit_log": master is not None,
        "agent": bool(args.tuf_root),
    }
    emit(
        args,
        data,
        lambda: out_console.print(
            f"unit {ident.device_id} ({ident.model}, {ident.chip}): certificate {ident.serial} until "
            f"{ident.not_after.date()}" + (", own audit log created" if master is not None else ""),
            markup=False,
        ),
    )
    return EXIT_OK


def register(group: Any, leaf: Callable[..., argparse.ArgumentParser], open_device: Callable[..., Any]) -> None:
    """Add the identity and clinical-state commands to the ``device`` group."""
    from medfw.cli._common import add_json_flag  # noqa: PLC0415

    p = group.add_parser(
        "ca-init",
        help="create the manufacturer device CA certificate for a key file or pkcs11: key",
        description="Create a self-signed device CA (pathlen 0) that issues each unit's identity certificate.",
    )
    p.add_argument("--key", required=True, metavar="KEY", help="CA private key: file or pkcs11: URI")
    p.add_argument("--out", required=True, metavar="CA.crt", help="CA certificate to write (PEM)")
    p.add_argument("--org", required=True, metavar="NAME", help="manufacturer organisation name")
    p.add_argument("--days", type=int, default=7300, metavar="N", help="validity (default 7300 days)")
    p.add_argument("--audit-master-out", metavar="FILE", help="also write a fresh device-audit master secret (0600)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_ca_init)

    p = leaf(group, "provision-identity", "give the unit its key, CSR and device certificate", _cmd_provision)
    p.add_argument("--ca", required=True, metavar="CA.crt", help="device CA certificate")
    p.add_argument("--ca-key", required=True, metavar="KEY", help="device CA key: file or pkcs11: URI")
    p.add_argument("--id", required=True, metavar="ID", help="device id (the certificate's subject serialNumber)")
    p.add_argument("--model", required=True, metavar="MODEL", help="device model")
    p.add_argument("--chip", required=True, metavar="CHIP", help="chip (esp32c3, esp32c6, ...)")
    p.add_argument("--days", type=int, default=3650, metavar="N", help="certificate validity (default 3650 days)")
    p.add_argument("--csr", metavar="CSR", help="a CSR the unit made itself (its key never leaves the chip)")
    p.add_argument(
        "--audit-master", metavar="FILE", help="device-audit master secret: create the unit's own sealed audit log"
    )
    p.add_argument("--tuf-root", metavar="root.json", help="also set up the OTA agent with this TUF root of trust")
    p.add_argument("--server", metavar="URL", help="with --tuf-root: the fleet server (https://…)")

    def busy(args: argparse.Namespace) -> int:
        device = open_device(args)
        device.set_busy(args.state == "on")
        emit(args, {"busy": device.clinical.busy}, lambda: out_console.print(f"busy: {args.state}", markup=False))
        return EXIT_OK

    p = leaf(group, "busy", "therapy in progress (on) or ended (off): a busy unit defers every install", busy)
    p.add_argument("state", choices=["on", "off"], help="on: therapy running; off: idle")

    def approve(args: argparse.Namespace) -> int:
        device = open_device(args)
        device.approve(args.release)
        data = {"approved": list(device.clinical.approved)}
        emit(args, data, lambda: out_console.print(f"approved {args.release}", markup=False))
        return EXIT_OK

    p = leaf(group, "approve", "the user approves installing a release on this unit", approve)
    p.add_argument("release", metavar="MODEL/NAME", help="the release's TUF target path")
