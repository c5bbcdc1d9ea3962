"""``medfw ota device add | rotate | list | remove | set-group``, ``ota reports`` and ``ota fleet`` (operators, over
the management API)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.cli import _ota_trust
from medfw.cli._common import add_group, emit, out_console
from medfw.cli._ota_client import add_server_flags, duration, fleet_client, table
from medfw.cli._ota_repo import open_repo
from medfw.errors import EXIT_OK, UsageError

__all__ = ["register", "register_fleet"]


def _device_rotate(args: argparse.Namespace) -> int:
    client = fleet_client(args)
    body = {"grace": args.grace}
    duration(args.grace, "--grace")
    created = client.request("POST", f"/api/v1/devices/{args.id}/credential", json=body)
    data: dict[str, Any] = {"id": created["id"], "grace": args.grace}
    if args.provision:
        from medfw.update.agent import load_config, provision  # noqa: PLC0415

        old = load_config(args.provision)
        root = Path(args.provision, "ota", "tuf", "root.json").read_bytes()
        provision(
            args.provision,
            device_id=old.device_id,
            model=old.model,
            chip=old.chip,
            credential=created["credential"],
            root=root,
            server=old.server,
        )
        data["provisioned"] = str(args.provision)
    else:
        data["credential"] = created["credential"]
    emit(args, data, lambda: out_console.print(f"device {created['id']} has a new credential" + _cred_note(data)))
    return EXIT_OK


def _device_add(args: argparse.Namespace) -> int:
    root: bytes | None = None
    if args.provision:
        if args.repo:
            root = open_repo(args.repo).root_bytes()
        elif args.root:
            root = read_bytes(args.root, max_length=8 * 1024 * 1024, what="TUF root")
        else:
            raise UsageError("--provision needs the root of trust: --repo DIR or --root FILE", field="--provision")
    client = fleet_client(args)
    body = {"id": args.id, "model": args.model, "chip": args.chip or "", "group": args.group}
    if args.reprovision:  # a decommissioned id, registered again (admin); without the flag it is 409
        del body["id"]
        created = client.request("POST", f"/api/v1/devices/{args.id}/reprovision", json=body)
    else:
        created = client.request("POST", "/api/v1/devices", json=body)
    data: dict[str, Any] = {"id": created["id"], "model": args.model, "group": args.group}
    if args.provision and root is not None:
        from medfw.update.agent import provision  # noqa: PLC0415

        provision(
            args.provision,
            device_id=created["id"],
            model=args.model,
            chip=args.chip or "",
            credential=created["credential"],
            root=root,
            server=client.server,
        )
        data["provisioned"] = str(args.provision)
    else:
        data["credential"] = created["credential"]
    emit(args, data, lambda: out_console.print(f"device {created['id']} registered" + _cred_note(data)))
    return EXIT_OK


def _cred_note(data: dict[str, Any]) -> str:
    if "provisioned" in data:
        return f"; credential and TUF root stored in {data['provisioned']}"
    return f"; credential (shown once): {data['credential']}"


def _device_list(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("group", args.group), ("model", args.model)) if v}
    rows = fleet_client(args).request("GET", "/api/v1/devices", params=params)
    cols = ["id", "model", "group", "version", "secure_version", "slot", "last_status", "last_seen"]
    emit(args, rows, lambda: table("devices", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _reports(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.device:
        params["device"] = args.device
    if args.rollout is not None:
        params["rollout"] = args.rollout
    rows = fleet_client(args).request("GET", "/api/v1/reports", params=params)
    cols = ["id", "created", "device", "rollout", "status", "reason", "version", "secure_version", "slot"]
    emit(args, rows, lambda: table("reports", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _device_remove(args: argparse.Namespace) -> int:
    fleet_client(args).request("DELETE", f"/api/v1/devices/{args.id}")
    emit(args, {"id": args.id, "removed": True}, lambda: out_console.print(f"device {args.id} decommissioned"))
    return EXIT_OK


def _device_set_group(args: argparse.Namespace) -> int:
    row = fleet_client(args).request("PUT", f"/api/v1/devices/{args.id}/group", json={"group": args.group})
    emit(args, row, lambda: out_console.print(f"device {row['id']} is now in group {row['group']}", markup=False))
    return EXIT_OK


def _fleet(args: argparse.Namespace) -> int:
    rows = fleet_client(args).request("GET", "/api/v1/fleet")
    cols = ["model", "version", "secure_version", "devices"]
    emit(args, rows, lambda: table("fleet", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def register(ota: Any) -> None:
    """Add ``ota device …`` (with the device-trust commands) and ``ota reports``."""
    device = add_group(ota, "device", "devices of the fleet")
    p = device.add_parser("add", help="register a device (and provision its directory)")
    p.add_argument("--id", required=True, help="device id (unique in the fleet)")
    p.add_argument("--model", required=True, help="device model the release is for (target path prefix)")
    p.add_argument("--chip", default="", help="chip of the device (esp32c3, …; empty: any)")
    p.add_argument("--group", default="default", help="device group rollouts target")
    p.add_argument("--provision", metavar="DEVICE_DIR", help="store credential and TUF root in this device dir")
    p.add_argument("--repo", metavar="DIR", help="TUF repository whose root the device trusts")
    p.add_argument("--root", metavar="FILE", help="TUF root.json the device trusts")
    p.add_argument("--reprovision", action="store_true", help="register a decommissioned id again (admin)")
    add_server_flags(p)
    p.set_defaults(func=_device_add)
    p = device.add_parser("rotate", help="give a device a new credential; the old one works for --grace more")
    p.add_argument("--id", required=True, help="device id")
    p.add_argument("--grace", default="0", metavar="DURATION", help="old credential stays valid (default 0: refused)")
    p.add_argument("--provision", metavar="DEVICE_DIR", help="store the new credential in this device directory")
    add_server_flags(p)
    p.set_defaults(func=_device_rotate)
    p = device.add_parser("list", help="list devices")
    p.add_argument("--group", help="only this device group")
    p.add_argument("--model", help="only this device model")
    add_server_flags(p)
    p.set_defaults(func=_device_list)
    _ota_trust.register(ota, device, fleet_client, table, add_server_flags)
    p = device.add_parser("remove", help="decommission a device: its credential stops working, its history stays")
    p.add_argument("id", help="device id")
    add_server_flags(p)
    p.set_defaults(func=_device_remove)
    p = device.add_parser("set-group", help="move a device to another group (rollouts created later see it)")
    p.add_argument("id", help="device id")
    p.add_argument("group", help="the new group")
    add_server_flags(p)
    p.set_defaults(func=_device_set_group)

    p = ota.add_parser("reports", help="device reports, newest first (with refusal reasons)")
    p.add_argument("--device", metavar="ID", help="only this device's reports (default: all devices)")
    p.add_argument("--rollout", type=int, metavar="ID", help="only reports about this rollout (default: all)")
    p.add_argument("--limit", type=int, default=100, help="at most this many reports, 1-1000 (default: 100)")
    add_server_flags(p)
    p.set_defaults(func=_reports)


def register_fleet(ota: Any) -> None:
    """Add ``ota fleet``."""
    p = ota.add_parser("fleet", help="versions across the fleet")
    add_server_flags(p)
    p.set_defaults(func=_fleet)
