"""``medfw ota rollout create | status | pause | resume | cancel``: staged rollouts (over the management API)."""

from __future__ import annotations

import argparse
from typing import Any

from medfw.cli._common import add_group, emit, out_console
from medfw.cli._ota_client import add_server_flags, fleet_client, table
from medfw.errors import EXIT_OK

__all__ = ["register"]


def _rollout_human(r: dict[str, Any]) -> None:
    out_console.print(
        f"rollout {r['id']} {r['name']}: {r['state']}"
        + (f" ({r['state_reason']})" if r.get("state_reason") else "")
        + f", release {r['release']} v{r['version']} svn {r['secure_version']}, phase {r['current_phase']}"
        + f"/{len(r['phases'])}",
        markup=False,
        highlight=False,
    )
    states = sorted({s for p in r["phases"] for s in p["counts"]})
    table(
        "phases",
        ["phase", "spec", *states],
        [[p["phase"], p["spec"]] + [p["counts"].get(s, 0) for s in states] for p in r["phases"]],
    )
    if r.get("reasons"):
        rows = [[x["state"], x["reason"], x["devices"]] for x in r["reasons"]]
        table("reasons", ["state", "reason", "devices"], rows)
    trust = r.get("trust") or {}
    notes = [f"deferred {k}: {v}" for k, v in (trust.get("deferred") or {}).items()]
    notes += [f"outside maintenance window ({g}): {n}" for g, n in (trust.get("outside_window") or {}).items()]
    if trust.get("require_approval"):
        notes.append("installs need the user's approval on each unit")
    if trust.get("campaign"):
        notes.append(f"key-rotation campaign {trust['campaign']}")
    for note in notes:
        out_console.print(note, markup=False)


def _rollout_create(args: argparse.Namespace) -> int:
    release: str | int = int(args.release) if args.release.isdigit() else args.release
    body = {
        "release": release,
        "name": args.name,
        "group": args.group,
        "devices": args.device,
        "version": args.from_version,
        "phases": [p for p in args.phases.split(",") if p],
        "success_threshold": args.success_threshold,
        "error_threshold": args.error_threshold,
        "require_approval": args.require_approval,
    }
    r = fleet_client(args).request("POST", "/api/v1/rollouts", json=body)
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def _rollout_status(args: argparse.Namespace) -> int:
    client = fleet_client(args)
    if args.id is None:
        rows = client.request("GET", "/api/v1/rollouts")
        cols = ["id", "name", "release", "state", "current_phase"]
        cells = [
            [*(r[c] for c in cols), ", ".join(f"{x['reason']} ×{x['devices']}" for x in r["reasons"])] for r in rows
        ]
        emit(args, rows, lambda: table("rollouts", [*cols, "reasons"], cells))
        return EXIT_OK
    r = client.request("GET", f"/api/v1/rollouts/{args.id}")
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def _rollout_control(args: argparse.Namespace) -> int:
    r = fleet_client(args).request("POST", f"/api/v1/rollouts/{args.id}/{args.action}")
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def register(ota: Any) -> None:
    """Add ``ota rollout …``."""
    rollout = add_group(ota, "rollout", "staged rollouts")
    p = rollout.add_parser("create", help="start a staged rollout")
    p.add_argument("--release", required=True, help="release target path or id")
    p.add_argument("--name", help="rollout name (default: the release name)")
    p.add_argument("--group", help="only this device group")
    p.add_argument("--device", action="append", help="limit to these devices (repeatable)")
    p.add_argument("--from-version", help="only devices reporting this version")
    p.add_argument("--phases", default="10%,100%", help="comma-separated counts or percentages (canary first)")
    p.add_argument(
        "--success-threshold",
        type=int,
        default=90,
        metavar="PCT",
        help="percent of a phase that must succeed before the next starts",
    )
    p.add_argument(
        "--error-threshold",
        type=int,
        default=10,
        metavar="PCT",
        help="percent of failures in a phase that halts the rollout",
    )
    p.add_argument("--require-approval", action="store_true", help="each unit installs only after on-device approval")
    add_server_flags(p)
    p.set_defaults(func=_rollout_create)
    p = rollout.add_parser("status", help="show one rollout (or all)")
    p.add_argument("id", nargs="?", type=int, help="rollout id (default: all rollouts)")
    add_server_flags(p)
    p.set_defaults(func=_rollout_status)
    for action in ("pause", "resume", "cancel"):
        p = rollout.add_parser(action, help=f"{action} a rollout")
        p.add_argument("id", type=int, help="rollout id")
        add_server_flags(p)
        p.set_defaults(func=_rollout_control, action=action)
