"""``medfw keys rotation start | status | pause | resume``: the fleet key-rotation campaign on the fleet server."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table

from medfw._io import read_bytes
from medfw.cli._common import add_group, emit, out_console, print_table
from medfw.cli._ota_client import add_server_flags, fleet_client
from medfw.errors import EXIT_OK, UsageError

__all__ = ["register"]


def _human(c: dict[str, Any]) -> None:
    out_console.print(
        f"campaign {c['id']}: {c['state']}"
        + (f" ({escape(str(c['state_reason']))})" if c.get("state_reason") else "")
        + f"; rollout {c['rollout']} {c['rollout_state']}; old slot {c['old_slot']}"
        + f" -> new key {c['new_key_digest'][:16]}…"
    )
    t = Table(title="units")
    for col in ("device", "state", "reason"):
        t.add_column(col)
    for u in c["units"]:
        t.add_row(escape(u["device"]), u["state"], escape(str(u["reason"] or "")))
    print_table(t)


def _start(args: argparse.Namespace) -> int:
    from medfw.crypto.keys import load_public_key_bytes, public_key_pem  # noqa: PLC0415
    from medfw.crypto.registry import load_signer  # noqa: PLC0415

    if args.new_key.startswith("pkcs11:"):
        pem = public_key_pem(load_signer(args.new_key).public_key())
    else:
        raw = read_bytes(args.new_key, max_length=64 * 1024, what="new key")
        try:
            pem = public_key_pem(load_public_key_bytes(raw, path=args.new_key))
        except Exception:
            pem = public_key_pem(load_signer(args.new_key).public_key())
    approvals = []
    for path in args.approval or []:
        try:
            approvals.append(json.loads(read_bytes(path, max_length=64 * 1024, what="approval record")))
        except ValueError:
            raise UsageError("approval record is not JSON", path=path) from None
    if not approvals:
        raise UsageError("a campaign needs M-of-N approvals: give --approval FILE (repeat)", field="--approval")
    body = {
        "release": args.release,
        "old_slot": args.old_slot,
        "new_key": pem.decode("ascii"),
        "approvals": approvals,
        "group": args.group,
        "devices": args.device,
        "phases": [p for p in args.phases.split(",") if p],
        "success_threshold": args.success_threshold,
        "error_threshold": args.error_threshold,
    }
    r = fleet_client(args).request("POST", "/api/v1/campaigns", json=body)
    emit(args, r, lambda: _human(r))
    return EXIT_OK


def _status(args: argparse.Namespace) -> int:
    client = fleet_client(args)
    if args.id is None:
        rows = client.request("GET", "/api/v1/campaigns")

        def human() -> None:
            for c in rows:
                _human(c)

        emit(args, rows, human)
        return EXIT_OK
    r = client.request("GET", f"/api/v1/campaigns/{args.id}")
    emit(args, r, lambda: _human(r))
    return EXIT_OK


def _control(args: argparse.Namespace) -> int:
    r = fleet_client(args).request("POST", f"/api/v1/campaigns/{args.id}/{args.action}")
    emit(args, r, lambda: _human(r))
    return EXIT_OK


def register(group: Any) -> None:
    """Add ``keys rotation …`` to the ``keys`` group."""
    rotation = add_group(group, "rotation", "fleet key-rotation campaigns (run by the fleet server)")
    p = rotation.add_parser(
        "start",
        help="roll out a dual-signed release, burn the new key, revoke the old slot, unit by unit",
        description="Start a key-rotation campaign on the fleet server: release R (signed with the old and the new "
        "key) is rolled out by phases; each unit whose R confirmed burns the new key digest into a free eFuse slot "
        "and then revokes the old slot; a unit that never confirms keeps the old key. Needs M-of-N approvals "
        "('medfw keys approve --signing-key NEW --subject R.bin --purpose key-rotation') under the server's policy.",
    )
    p.add_argument("--old-slot", type=int, required=True, metavar="N", help="eFuse digest slot of the old key")
    p.add_argument("--new-key", required=True, metavar="K", help="the new key: public/private key file or pkcs11: URI")
    p.add_argument("--release", required=True, metavar="R", help="the dual-signed release (target path or id)")
    p.add_argument("--approval", action="append", metavar="FILE", help="approval record (repeat)")
    p.add_argument("--group", help="limit to this group's units (default: every unit of the release's model)")
    p.add_argument("--device", action="append", help="limit to these units (repeatable)")
    p.add_argument("--phases", default="10%,100%", help="comma-separated counts or percentages (canary first)")
    p.add_argument(
        "--success-threshold", type=int, default=90, metavar="PCT", help="confirmed share to advance (default 90)"
    )
    p.add_argument(
        "--error-threshold", type=int, default=10, metavar="PCT", help="failed share that pauses (default 10)"
    )
    add_server_flags(p)
    p.set_defaults(func=_start)
    p = rotation.add_parser("status", help="one campaign (or all) with per-unit progress")
    p.add_argument("id", nargs="?", type=int, help="campaign id (default: all campaigns)")
    add_server_flags(p)
    p.set_defaults(func=_status)
    for action in ("pause", "resume"):
        p = rotation.add_parser(action, help=f"{action} a campaign")
        p.add_argument("id", type=int, help="campaign id")
        add_server_flags(p)
        p.set_defaults(func=_control, action=action)
