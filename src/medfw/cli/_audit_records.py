"""``medfw audit migrate|prove|export|verify-bundle|show`` (their parsers are made by :mod:`medfw.cli.audit`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime

from medfw._io import read_bytes
from medfw.audit.vocabulary import EVENT_TYPES
from medfw.cli import _common
from medfw.cli._common import add_json_flag, emit, print_table
from medfw.cli.audit import load_key
from medfw.errors import EXIT_FAILED, EXIT_OK, AuditError, UsageError

__all__ = ["RECORD_ARGUMENTS"]

_MAX_DOC = 1024 * 1024 * 1024


def _migrate(args: argparse.Namespace) -> int:
    from medfw.audit.migrate import migrate_log  # noqa: PLC0415

    key = load_key(args.key) if args.key else None
    res = migrate_log(args.log, checkpoint_key_out=args.checkpoint_key_out, key=key)
    data = {
        "migrated": res.migrated,
        "checkpoint_key": res.checkpoint_key,
        "checkpoint_key_id": res.checkpoint_key_id,
        "entry_seq": res.entry_seq,
        "checkpoint": res.checkpoint.to_dict() if res.checkpoint is not None else None,
        "verify": res.report.to_dict() if res.report is not None else None,
    }

    def human() -> None:
        if res.migrated:
            _common.out_console.print(
                f"checkpoint signing key moved to {res.checkpoint_key} (mode 0600); recorded as seq {res.entry_seq}",
                markup=False,
            )
        elif res.report is not None:
            where = f" at seq {res.report.first_bad_seq}" if res.report.first_bad_seq is not None else ""
            _common.out_console.print(
                f"NOT migrated: the log does not verify{where}: {res.report.message}", markup=False
            )

    emit(args, data, human)
    return EXIT_OK if res.migrated else EXIT_FAILED


def _prove(args: argparse.Namespace) -> int:
    from medfw.audit.query import prove  # noqa: PLC0415

    result = prove(args.log, args.seq, size=args.against, from_size=args.from_size)
    data = result.to_dict()

    def human() -> None:
        _common.out_console.print(
            f"seq {result.seq} in tree of size {result.size}, root {result.root.hex()}", markup=False
        )
        _common.out_console.print(f"leaf hash {result.leaf_hash.hex()}", markup=False)
        for i, p in enumerate(result.inclusion):
            _common.out_console.print(f"  inclusion[{i}] {p.hex()}", markup=False)
        if result.consistency is not None and result.from_root is not None:
            _common.out_console.print(f"consistency {result.from_size} -> {result.size}: root {result.from_root.hex()}")
            for i, p in enumerate(result.consistency):
                _common.out_console.print(f"  consistency[{i}] {p.hex()}", markup=False)

    emit(args, data, human)
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    from medfw.audit.bundle import export_bundle  # noqa: PLC0415

    doc = export_bundle(args.log, args.out, seqs=args.seq)
    cp = doc["checkpoint"]["checkpoint"]
    data = {"bundle": args.out, "log_id": doc["log_id"], "size": cp["size"], "entries": len(doc["entries"])}
    emit(
        args,
        data,
        lambda: _common.out_console.print(
            f"exported {len(doc['entries'])} entries with proofs against checkpoint size {cp['size']} to {args.out}",
            markup=False,
        ),
    )
    return EXIT_OK


def _verify_bundle(args: argparse.Namespace) -> int:
    from medfw.audit.bundle import verify_bundle  # noqa: PLC0415

    data = read_bytes(args.bundle, max_length=_MAX_DOC, what="bundle")
    key = load_key(args.key) if args.key else None
    pub = read_bytes(args.pubkey, max_length=64 * 1024, what="public key") if args.pubkey else None
    report = verify_bundle(data, key=key, public_key_pem=pub, path=args.bundle)

    def human() -> None:
        if not report.key_pinned:
            _common.err_console.print(
                "warning: checkpoint key not pinned (give --key or --pubkey); only internal consistency was checked",
                markup=False,
                style="yellow",
            )
        if not report.hmac_checked:
            _common.err_console.print("note: HMAC tags not checked (no --key)", markup=False, style="yellow")
        if report.ok:
            _common.out_console.print(
                f"OK: {report.entries} entries included in checkpoint of size {report.checkpoint_size}",
                markup=False,
                style="green",
            )
        else:
            for e in report.errors:
                _common.out_console.print(f"FAILED: {e}", markup=False, style="red")

    emit(args, report.to_dict(), human)
    return EXIT_OK if report.ok else EXIT_FAILED


def _parse_since(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since expects an ISO 8601 date or time, got {value!r}", field="since") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _show(args: argparse.Namespace) -> int:
    from rich.table import Table  # noqa: PLC0415

    from medfw.audit.query import list_entries  # noqa: PLC0415

    if args.type is not None and args.type not in EVENT_TYPES:
        raise AuditError(f"unknown audit event type {args.type!r}", field="type")
    since = _parse_since(args.since) if args.since else None
    records = list_entries(args.log, type_=args.type, since=since)
    data = [{"seq": r.seq, "epoch": r.epoch, **r.body} for r in records]

    def human() -> None:
        table = Table(title=f"audit log {args.log}", caption="stored entries (not verified; use 'medfw audit verify')")
        for col in ("seq", "time (UTC)", "type", "outcome", "reason", "actor", "epoch", "boot"):
            table.add_column(col)
        for r in records:
            b = r.body
            table.add_row(
                str(r.seq),
                str(b.get("ts", "")),
                str(b.get("type", "")),
                str(b.get("outcome", "")),
                str(b.get("reason") or ""),
                str(b.get("actor") or ""),
                str(r.epoch),
                str(b.get("boot_n", "")),
            )
        print_table(table)

    emit(args, data, human)
    return EXIT_OK


def _migrate_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--checkpoint-key-out", metavar="F", help="where to write the key (default LOG.ckey, mode 0600)")
    p.add_argument("--key", metavar="K", help="verification key: verify the log first and refuse if it fails")
    add_json_flag(p)
    p.set_defaults(func=_migrate)


def _prove_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--seq", type=int, required=True, metavar="N", help="sequence number of the entry to prove")
    p.add_argument("--against", type=int, metavar="SIZE", help="tree size to prove against (default: all)")
    p.add_argument("--from-size", type=int, metavar="M", help="also a consistency proof from size M")
    add_json_flag(p)
    p.set_defaults(func=_prove)


def _export_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="where to write the bundle (JSON)")
    p.add_argument("--seq", type=int, action="append", metavar="N", help="entry to export (repeatable; default all)")
    add_json_flag(p)
    p.set_defaults(func=_export)


def _verify_bundle_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="BUNDLE", help="bundle written by `medfw audit export`")
    p.add_argument("--key", metavar="K", help="verification key (pins the checkpoint key, checks HMAC tags)")
    p.add_argument("--pubkey", metavar="P", help="pinned checkpoint public key (PEM) when no --key is given")
    add_json_flag(p)
    p.set_defaults(func=_verify_bundle)


def _show_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--type", metavar="T", help="only entries of this event type")
    p.add_argument("--since", metavar="DATE", help="only entries at or after this ISO 8601 date/time (UTC)")
    add_json_flag(p)
    p.set_defaults(func=_show)


#: the arguments of each command defined here
RECORD_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "migrate": _migrate_arguments,
    "prove": _prove_arguments,
    "export": _export_arguments,
    "verify-bundle": _verify_bundle_arguments,
    "show": _show_arguments,
}
