"""``medfw ota device audit | revoke-cert``, ``medfw ota enroll …``, ``medfw ota window …``: device trust over the
management API."""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape

from medfw._io import read_bytes
from medfw.cli._common import emit, out_console
from medfw.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
Client = Callable[[argparse.Namespace], Any]
Table = Callable[[str, list[str], list[list[Any]]], None]


def _preauth_file(path: str) -> list[dict[str, str]]:
    """Lines ``SERIAL,MODEL`` (``#`` comments and blank lines ignored)."""
    text = read_bytes(path, max_length=8 * 1024 * 1024, what="serial list").decode("utf-8", "replace")
    out = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        serial, _, model = (x.strip() for x in line.partition(","))
        if not serial or not model:
            raise UsageError(f"line {n}: expected SERIAL,MODEL", path=path, field=f"line {n}")
        out.append({"serial": serial, "model": model})
    return out


def register(ota: Any, device: Any, client: Client, table: Table, server_flags: Callable[[Any], None]) -> None:
    """Add the device-trust commands to ``medfw ota``."""
    from medfw.cli._common import add_group  # noqa: PLC0415

    def audit(args: argparse.Namespace) -> int:
        params: dict[str, Any] = {"start": args.start, "limit": args.limit, "verify": args.verify}
        r = client(args).request("GET", f"/api/v1/devices/{args.id}/audit", params=params)
        cols = ["seq", "ts", "type", "outcome", "reason"]

        def human() -> None:
            out_console.print(
                f"{escape(args.id)}: {r['size']} entries verified (unit log {r['log_size']}), "
                f"{r['refused']} refused upload(s)"
                + (f"; last: {escape(str(r['last_refusal']))}" if r["refused"] else "")
            )
            table(f"audit trail of {args.id}", cols, [[e[c] for c in cols] for e in r["entries"]])
            if "verification" in r:
                v = r["verification"]
                out_console.print("re-verified: " + ("ok" if v["ok"] else f"FAILED {escape(str(v['reason']))}"))

        emit(args, r, human)
        return EXIT_FAILED if args.verify and not r["verification"]["ok"] else EXIT_OK

    p = device.add_parser("audit", help="show a unit's collected audit trail (verified at upload)")
    p.add_argument("id", metavar="ID", help="device id")
    p.add_argument("--start", type=int, default=0, metavar="SEQ", help="first entry to show (default 0)")
    p.add_argument("--limit", type=int, default=200, metavar="N", help="entries to show, 1..1000 (default 200)")
    p.add_argument("--verify", action="store_true", help="re-verify the whole stored chain (exit 1 when broken)")
    server_flags(p)
    p.set_defaults(func=audit)

    def revoke(args: argparse.Namespace) -> int:
        r = client(args).request("POST", f"/api/v1/devices/{args.id}/certificate/revoke", json={"reason": args.reason})
        emit(args, r, lambda: out_console.print(f"revoked {len(r['revoked'])} certificate(s) of {escape(args.id)}"))
        return EXIT_OK

    def trails(args: argparse.Namespace) -> int:
        from medfw._io import atomic_write  # noqa: PLC0415

        docs = client(args).request("GET", f"/api/v1/rollouts/{args.rollout}/trails", params={"phase": args.phase})
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for doc in docs:
            name = f"{doc['device']}.json"
            if not _SAFE.match(doc["device"]):
                raise UsageError("server sent a malformed device id", field="device")
            atomic_write(out / name, (json.dumps(doc, indent=1, sort_keys=True) + "\n").encode("utf-8"))
            written.append(str(out / name))
        data = {"rollout": args.rollout, "phase": args.phase, "files": written}
        emit(args, data, lambda: out_console.print(f"wrote {len(written)} unit trail(s) to {escape(str(out))}"))
        return EXIT_OK

    p = device.add_parser("trails", help="export the collected trails of a rollout phase's units (for evidence)")
    p.add_argument("--rollout", type=int, required=True, metavar="ID", help="rollout id")
    p.add_argument("--phase", type=int, default=0, help="phase (default 0: the canary)")
    p.add_argument("--out", required=True, metavar="DIR", help="directory for <device>.json files")
    server_flags(p)
    p.set_defaults(func=trails)

    p = device.add_parser("revoke-cert", help="put a unit's certificates on the server's revocation list")
    p.add_argument("id", metavar="ID", help="device id")
    p.add_argument("--reason", default="revoked", help="reason code (default revoked)")
    server_flags(p)
    p.set_defaults(func=revoke)

    enroll = add_group(ota, "enroll", "enrollment of units with factory certificates")

    def preauth(args: argparse.Namespace) -> int:
        serials = _preauth_file(args.file)
        r = client(args).request("POST", "/api/v1/enrollment/preauthorized", json={"serials": serials})
        emit(args, r, lambda: out_console.print(f"pre-authorised {r['added']} new serial(s) of {len(serials)}"))
        return EXIT_OK

    p = enroll.add_parser("preauthorize", help="upload a list of SERIAL,MODEL lines that may enrol on first contact")
    p.add_argument("file", metavar="FILE", help="text file of SERIAL,MODEL lines (# comments allowed)")
    server_flags(p)
    p.set_defaults(func=preauth)

    def requests(args: argparse.Namespace) -> int:
        rows = client(args).request(
            "GET", "/api/v1/enrollment/requests", params={"state": args.state} if args.state else None
        )
        cols = ["device", "model", "chip", "state", "attempts", "updated"]
        emit(args, rows, lambda: table("enrollment requests", cols, [[r[c] for c in cols] for r in rows]))
        return EXIT_OK

    p = enroll.add_parser("list", help="enrollment requests (held units first of all)")
    p.add_argument("--state", choices=["held", "approved", "rejected"], help="only this state (default: all)")
    server_flags(p)
    p.set_defaults(func=requests)

    def decide(args: argparse.Namespace) -> int:
        body = {"approve": args.approve, **({"group": args.group} if getattr(args, "group", None) else {})}
        r = client(args).request("POST", f"/api/v1/enrollment/requests/{args.id}", json=body)
        emit(args, r, lambda: out_console.print(f"{escape(args.id)}: {r['state']}"))
        return EXIT_OK

    for name, approve in (("approve", True), ("reject", False)):
        p = enroll.add_parser(name, help=f"{name} a held enrollment")
        p.add_argument("id", metavar="ID", help="device id (the certificate's serialNumber)")
        if approve:
            p.add_argument("--group", help="group to register the unit in (default: its model's group)")
        server_flags(p)
        p.set_defaults(func=decide, approve=approve)

    def model_group(args: argparse.Namespace) -> int:
        r = client(args).request("PUT", f"/api/v1/models/{args.model}/group", json={"group": args.group})
        emit(args, r, lambda: out_console.print(f"{escape(args.model)} units enrol into {escape(args.group)}"))
        return EXIT_OK

    p = enroll.add_parser("model-group", help="the group a model's units enrol into")
    p.add_argument("model", help="device model")
    p.add_argument("group", help="group its units enrol into")
    server_flags(p)
    p.set_defaults(func=model_group)

    window = add_group(ota, "window", "maintenance windows of groups")

    def set_window(args: argparse.Namespace) -> int:
        body = {"timezone": args.tz, "days": args.days.split(","), "start": args.start, "end": args.end}
        r = client(args).request("PUT", f"/api/v1/groups/{args.group}/window", json=body)
        emit(
            args,
            r,
            lambda: out_console.print(
                f"{escape(args.group)}: {', '.join(r['days'])} {r['start']}-{r['end']} {r['timezone']}"
            ),
        )
        return EXIT_OK

    p = window.add_parser("set", help="installs are assigned to GROUP only within this window")
    p.add_argument("group", help="device group")
    p.add_argument("--tz", required=True, help="site time zone (IANA, e.g. Europe/Berlin)")
    p.add_argument("--days", required=True, help="comma-separated days: mon,tue,...")
    p.add_argument("--start", required=True, metavar="HH:MM", help="local time the window opens")
    p.add_argument("--end", required=True, metavar="HH:MM", help="before --start: the window spans midnight")
    server_flags(p)
    p.set_defaults(func=set_window)

    def clear_window(args: argparse.Namespace) -> int:
        client(args).request("DELETE", f"/api/v1/groups/{args.group}/window")
        emit(args, {"group": args.group, "window": None}, lambda: out_console.print(f"{escape(args.group)}: no window"))
        return EXIT_OK

    p = window.add_parser("clear", help="remove a group's window")
    p.add_argument("group", help="device group")
    server_flags(p)
    p.set_defaults(func=clear_window)

    def list_windows(args: argparse.Namespace) -> int:
        rows = client(args).request("GET", "/api/v1/windows")
        cols = ["group", "timezone", "days", "start", "end", "open", "next_open"]
        emit(args, rows, lambda: table("maintenance windows", cols, [[r[c] for c in cols] for r in rows]))
        return EXIT_OK

    p = window.add_parser("list", help="windows, open now or not, next opening")
    server_flags(p)
    p.set_defaults(func=list_windows)
