"""``medfw audit``: the tamper-evident audit log (init, append, verify, checkpoint, prove, export, show)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from medfw._io import atomic_write, read_bytes
from medfw.audit.bundle import export_bundle, verify_bundle
from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.keys import CHECKPOINT_KEY_TYPES, VerificationKey
from medfw.audit.log import init_log, open_log
from medfw.audit.query import list_entries, prove
from medfw.audit.sink import AuditEvent
from medfw.audit.store import is_url
from medfw.audit.verify import verify_log
from medfw.audit.vocabulary import EVENT_TYPES, OUTCOMES, check_event_type, check_outcome
from medfw.cli._common import add_group, add_json_flag, emit, err_console, out_console, print_table
from medfw.errors import EXIT_FAILED, EXIT_OK, AuditError, UsageError

__all__ = ["register"]

_MAX_DOC = 1024 * 1024 * 1024


def _load_key(path: str) -> VerificationKey:
    return VerificationKey.from_bytes(read_bytes(path, max_length=64 * 1024, what="verification key"), path=path)


def _init(args: argparse.Namespace) -> int:
    key_out = args.key_out
    if key_out is None:
        if is_url(args.log):
            raise UsageError("a PostgreSQL log needs --key-out for its verification key")
        key_out = str(args.log) + ".vkey"
    result = init_log(
        args.log,
        key_out=key_out,
        log_id=args.log_id,
        epoch_length=args.epoch_length,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_key_type=args.checkpoint_key,
    )
    if args.pub_out:
        atomic_write(args.pub_out, result.verification_key.checkpoint_public_key_pem)
    data = {
        "log": result.location,
        "log_id": result.log_id,
        "verification_key": str(result.key_path),
        "checkpoint_key_id": result.checkpoint_key_id,
        "public_key": args.pub_out,
    }

    def human() -> None:
        out_console.print(f"created audit log {result.location} (id {result.log_id})", markup=False)
        out_console.print(f"verification key written to {result.key_path} (mode 0600)", markup=False)
        err_console.print(
            "keep the verification key offline: whoever holds it can forge entries of every epoch",
            markup=False,
            style="yellow",
        )

    emit(args, data, human)
    return EXIT_OK


def _parse_objects(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise UsageError(f"--object expects NAME=VALUE, got {item!r}", field="object")
        out[name] = value
    return out


def _append(args: argparse.Namespace) -> int:
    data: Any = {}
    if args.data is not None:
        try:
            data = json.loads(args.data)
        except ValueError as e:
            raise UsageError(f"--data is not JSON: {e}", field="data") from None
        if not isinstance(data, dict):
            raise UsageError("--data must be a JSON object", field="data")
    check_event_type(args.type)
    check_outcome(args.outcome)
    event = AuditEvent(
        type=args.type,
        outcome=args.outcome,
        reason=args.reason,
        actor=args.actor,
        objects=_parse_objects(args.object or []),
        data=data,
    )
    with open_log(args.log) as log:
        entry = log.append(event)
    result = {"seq": entry.seq, "epoch": entry.epoch, "entry_hash": entry.entry_hash.hex(), "tag": entry.tag.hex()}
    emit(args, result, lambda: out_console.print(f"appended seq {entry.seq} (epoch {entry.epoch})", markup=False))
    return EXIT_OK


def _load_checkpoint(path: str) -> SignedCheckpoint:
    return SignedCheckpoint.from_bytes(read_bytes(path, max_length=1024 * 1024, what="checkpoint"), path=path)


def _verify(args: argparse.Namespace) -> int:
    key = _load_key(args.key)
    cp = _load_checkpoint(args.checkpoint) if args.checkpoint else None
    if args.workers < 1:
        raise UsageError("--workers must be at least 1", field="workers")
    if args.json or not err_console.is_terminal or args.workers > 1:  # no progress thread across fork()
        report = verify_log(args.log, key, checkpoint=cp, workers=args.workers)
    else:
        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("verify", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = verify_log(args.log, key, checkpoint=cp, progress=tick, workers=args.workers)

    def human() -> None:
        for w in report.warnings:
            err_console.print(f"warning: {w}", markup=False, style="yellow")
        if report.ok:
            out_console.print(f"OK: {report.message} (root {report.root})", markup=False, style="green")
        else:
            cls = (report.classification or "").replace("_", " ")
            where = f"first bad seq {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
            out_console.print(f"FAILED ({cls}): {where}{report.message}", markup=False, style="red")

    emit(args, report.to_dict(), human)
    return EXIT_OK if report.ok else EXIT_FAILED


def _checkpoint(args: argparse.Namespace) -> int:
    with open_log(args.log) as log:
        signed = log.checkpoint(args.reason)
    if args.out:
        atomic_write(args.out, signed.to_bytes())
    doc = signed.to_dict()

    def human() -> None:
        cp = signed.checkpoint
        if args.out:
            out_console.print(f"checkpoint size {cp.size} root {cp.root.hex()} written to {args.out}", markup=False)
        else:
            out_console.print(signed.to_bytes().decode(), markup=False, end="")

    emit(args, doc, human)
    return EXIT_OK


def _prove(args: argparse.Namespace) -> int:
    result = prove(args.log, args.seq, size=args.against, from_size=args.from_size)
    data = result.to_dict()

    def human() -> None:
        out_console.print(f"seq {result.seq} in tree of size {result.size}, root {result.root.hex()}", markup=False)
        out_console.print(f"leaf hash {result.leaf_hash.hex()}", markup=False)
        for i, p in enumerate(result.inclusion):
            out_console.print(f"  inclusion[{i}] {p.hex()}", markup=False)
        if result.consistency is not None and result.from_root is not None:
            out_console.print(f"consistency {result.from_size} -> {result.size}: root {result.from_root.hex()}")
            for i, p in enumerate(result.consistency):
                out_console.print(f"  consistency[{i}] {p.hex()}", markup=False)

    emit(args, data, human)
    return EXIT_OK


def _export(args: argparse.Namespace) -> int:
    doc = export_bundle(args.log, args.out, seqs=args.seq)
    cp = doc["checkpoint"]["checkpoint"]
    data = {"bundle": args.out, "log_id": doc["log_id"], "size": cp["size"], "entries": len(doc["entries"])}
    emit(
        args,
        data,
        lambda: out_console.print(
            f"exported {len(doc['entries'])} entries with proofs against checkpoint size {cp['size']} to {args.out}",
            markup=False,
        ),
    )
    return EXIT_OK


def _verify_bundle(args: argparse.Namespace) -> int:
    data = read_bytes(args.bundle, max_length=_MAX_DOC, what="bundle")
    key = _load_key(args.key) if args.key else None
    pub = read_bytes(args.pubkey, max_length=64 * 1024, what="public key") if args.pubkey else None
    report = verify_bundle(data, key=key, public_key_pem=pub, path=args.bundle)

    def human() -> None:
        if not report.key_pinned:
            err_console.print(
                "warning: checkpoint key not pinned (give --key or --pubkey); only internal consistency was checked",
                markup=False,
                style="yellow",
            )
        if not report.hmac_checked:
            err_console.print("note: HMAC tags not checked (no --key)", markup=False, style="yellow")
        if report.ok:
            out_console.print(
                f"OK: {report.entries} entries included in checkpoint of size {report.checkpoint_size}",
                markup=False,
                style="green",
            )
        else:
            for e in report.errors:
                out_console.print(f"FAILED: {e}", markup=False, style="red")

    emit(args, report.to_dict(), human)
    return EXIT_OK if report.ok else EXIT_FAILED


def _parse_since(value: str) -> datetime:
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--since expects an ISO 8601 date or time, got {value!r}", field="since") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def _show(args: argparse.Namespace) -> int:
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


def register(sub: Any) -> None:
    """Register ``medfw audit init|append|verify|checkpoint|prove|export|verify-bundle|show``."""
    group = add_group(sub, "audit", "tamper-evident audit log: hash chain, forward-secure HMAC, Merkle proofs")

    p = group.add_parser("init", help="create an audit log and its verification key")
    p.add_argument("log", metavar="LOG", help="log file (SQLite) or postgresql:// URL")
    p.add_argument("--key-out", metavar="K", help="where to write the verification key (default LOG.vkey)")
    p.add_argument("--pub-out", metavar="P", help="also write the checkpoint public key (PEM) here")
    p.add_argument("--log-id", help="log id (default: random)")
    p.add_argument("--epoch-length", type=int, default=1024, help="entries per key epoch (default 1024)")
    p.add_argument("--checkpoint-interval", type=int, default=4096, help="entries between checkpoints")
    p.add_argument(
        "--checkpoint-key", choices=CHECKPOINT_KEY_TYPES, default="ed25519", help="checkpoint signing key type"
    )
    add_json_flag(p)
    p.set_defaults(func=_init)

    p = group.add_parser("append", help="append one event")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--type", required=True, metavar="T", help="event type (e.g. boot.verify)")
    p.add_argument("--outcome", required=True, metavar="O", help=f"one of {', '.join(sorted(OUTCOMES))}")
    p.add_argument("--data", metavar="JSON", help="extra detail as a JSON object")
    p.add_argument("--reason", metavar="R", help="reason code")
    p.add_argument("--actor", metavar="A", help="who or what acted")
    p.add_argument("--object", action="append", metavar="NAME=DIGEST", help="object digest or id (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=_append)

    p = group.add_parser("verify", help="verify the whole log from the verification key")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--key", required=True, metavar="K", help="verification key file")
    p.add_argument("--checkpoint", metavar="CP", help="an earlier checkpoint to check against")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="scan a large SQLite log in N processes")
    add_json_flag(p)
    p.set_defaults(func=_verify)

    p = group.add_parser("checkpoint", help="make a signed checkpoint")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--out", metavar="CP", help="write the checkpoint here")
    p.add_argument("--reason", default="request", help="why (request, pre-update, …)")
    add_json_flag(p)
    p.set_defaults(func=_checkpoint)

    p = group.add_parser("prove", help="print the Merkle inclusion proof of one entry")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--seq", type=int, required=True, metavar="N", help="sequence number of the entry to prove")
    p.add_argument("--against", type=int, metavar="SIZE", help="tree size to prove against (default: all)")
    p.add_argument("--from-size", type=int, metavar="M", help="also a consistency proof from size M")
    add_json_flag(p)
    p.set_defaults(func=_prove)

    p = group.add_parser("export", help="export entries, a fresh checkpoint and inclusion proofs")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="where to write the bundle (JSON)")
    p.add_argument("--seq", type=int, action="append", metavar="N", help="entry to export (repeatable; default all)")
    add_json_flag(p)
    p.set_defaults(func=_export)

    p = group.add_parser("verify-bundle", help="verify an exported bundle offline")
    p.add_argument("bundle", metavar="BUNDLE", help="bundle written by `medfw audit export`")
    p.add_argument("--key", metavar="K", help="verification key (pins the checkpoint key, checks HMAC tags)")
    p.add_argument("--pubkey", metavar="P", help="pinned checkpoint public key (PEM) when no --key is given")
    add_json_flag(p)
    p.set_defaults(func=_verify_bundle)

    p = group.add_parser("show", help="list entries")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--type", metavar="T", help="only entries of this event type")
    p.add_argument("--since", metavar="DATE", help="only entries at or after this ISO 8601 date/time (UTC)")
    add_json_flag(p)
    p.set_defaults(func=_show)
