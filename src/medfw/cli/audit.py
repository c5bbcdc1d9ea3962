"""``medfw audit``: the tamper-evident audit log (init, append, verify, checkpoint, migrate, prove, export, show)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.keys import CHECKPOINT_KEY_TYPES, VerificationKey
from medfw.audit.sink import AuditEvent
from medfw.audit.vocabulary import EVENT_TYPES, OUTCOMES, check_event_type, check_outcome
from medfw.cli import _common
from medfw.cli._common import add_group, add_json_flag, emit, print_table
from medfw.errors import EXIT_FAILED, EXIT_OK, AuditError, UsageError

if TYPE_CHECKING:
    from medfw.audit.checkpoint import SignedCheckpoint

# Each command imports what it needs when it runs (``audit verify`` is started once per CI job and per device
# upload; the bundle, migration, witness-posting and table code stay unloaded there).

__all__ = ["register"]

_MAX_DOC = 1024 * 1024 * 1024
_MAX_EVENTS = 64 * 1024 * 1024


def _load_key(path: str) -> VerificationKey:
    return VerificationKey.from_bytes(read_bytes(path, max_length=64 * 1024, what="verification key"), path=path)


def _init(args: argparse.Namespace) -> int:
    from medfw.audit.log import init_log  # noqa: PLC0415
    from medfw.audit.store import is_url  # noqa: PLC0415

    key_out = args.key_out
    if key_out is None:
        if is_url(args.log):
            raise UsageError("a PostgreSQL log needs --key-out for its verification key")
        key_out = str(args.log) + ".vkey"
    kind, ref = args.checkpoint_key_type, args.checkpoint_key
    if ref in CHECKPOINT_KEY_TYPES and not Path(ref).exists():  # the older spelling: --checkpoint-key TYPE
        kind, ref = ref, None
    result = init_log(
        args.log,
        key_out=key_out,
        log_id=args.log_id,
        epoch_length=args.epoch_length,
        checkpoint_interval=args.checkpoint_interval,
        checkpoint_key_type=kind,
        checkpoint_key=ref,
        checkpoint_key_out=args.checkpoint_key_out,
    )
    if args.pub_out:
        atomic_write(args.pub_out, result.verification_key.checkpoint_public_key_pem)
    data = {
        "log": result.location,
        "log_id": result.log_id,
        "verification_key": str(result.key_path),
        "checkpoint_key_id": result.checkpoint_key_id,
        "checkpoint_key": result.checkpoint_key,
        "public_key": args.pub_out,
    }

    def human() -> None:
        _common.out_console.print(f"created audit log {result.location} (id {result.log_id})", markup=False)
        _common.out_console.print(f"verification key written to {result.key_path} (mode 0600)", markup=False)
        _common.out_console.print(
            f"checkpoint signing key: {result.checkpoint_key} (not stored in the log)", markup=False
        )
        _common.err_console.print(
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


def _one_event(args: argparse.Namespace) -> AuditEvent:
    if args.type is None or args.outcome is None:
        raise UsageError("give --type and --outcome, or --events FILE", field="type")
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
    return AuditEvent(
        type=args.type,
        outcome=args.outcome,
        reason=args.reason,
        actor=args.actor,
        objects=_parse_objects(args.object or []),
        data=data,
    )


def _append(args: argparse.Namespace) -> int:
    from medfw.audit.events import parse_events  # noqa: PLC0415
    from medfw.audit.log import append_session  # noqa: PLC0415

    if args.events is not None:
        if any(v is not None for v in (args.type, args.outcome, args.data, args.reason, args.actor, args.object)):
            raise UsageError("--events replaces --type/--outcome/--data/--reason/--actor/--object", field="events")
        raw = sys.stdin.buffer.read(_MAX_EVENTS + 1) if args.events == "-" else None
        if raw is not None and len(raw) > _MAX_EVENTS:
            raise UsageError("events on stdin exceed 64 MiB", field="events")
        if raw is None:
            raw = read_bytes(args.events, max_length=_MAX_EVENTS, what="events")
        events = parse_events(raw, path=args.events)
    else:
        events = [_one_event(args)]
    session = append_session(args.log, events, checkpoint_reason="request" if args.checkpoint else None)
    entry, first = session.entries[-1], session.entries[0]
    result: dict[str, Any] = {
        "seq": entry.seq,
        "epoch": entry.epoch,
        "entry_hash": entry.entry_hash.hex(),
        "tag": entry.tag.hex(),
        "appended": len(session.entries),
        "first_seq": first.seq,
        "checkpoint": session.checkpoint.to_dict() if session.checkpoint is not None else None,
        "deferred_checkpoint": session.deferred_checkpoint,
    }

    def human() -> None:
        what = f"seq {entry.seq}" if len(events) == 1 else f"{len(events)} events, seq {first.seq}..{entry.seq}"
        _common.out_console.print(f"appended {what} (epoch {entry.epoch})", markup=False)
        if session.checkpoint is not None:
            _common.out_console.print(f"checkpoint of size {session.checkpoint.checkpoint.size} signed", markup=False)
        if session.deferred_checkpoint:
            _common.err_console.print(f"warning: {session.deferred_checkpoint}", markup=False, style="yellow")

    emit(args, result, human)
    return EXIT_OK


def _load_checkpoint(path: str) -> SignedCheckpoint:
    from medfw.audit.checkpoint import SignedCheckpoint  # noqa: PLC0415

    return SignedCheckpoint.from_bytes(read_bytes(path, max_length=1024 * 1024, what="checkpoint"), path=path)


def _verify(args: argparse.Namespace) -> int:
    from medfw.audit.verify import verify_log  # noqa: PLC0415

    key = _load_key(args.key)
    held = [_load_checkpoint(c) for c in args.checkpoint or []]
    token = os.environ.get("MEDFW_OTA_TOKEN")
    if args.witness:
        from medfw.audit.witness import load_witness  # noqa: PLC0415

        held += [load_witness(w, log_id=key.log_id, token=token) for w in args.witness]
    pub = read_bytes(args.pubkey, max_length=64 * 1024, what="public key") if args.pubkey else None
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers must be at least 1", field="workers")
    if args.json or not _common.err_console.is_terminal or workers > 1:  # no progress thread across fork()
        report = verify_log(args.log, key, checkpoint=held, public_key_pem=pub, workers=workers)
    else:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn  # noqa: PLC0415

        with Progress(
            TextColumn("verifying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=_common.err_console,
            transient=True,
        ) as bar:
            task = bar.add_task("verify", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            report = verify_log(args.log, key, checkpoint=held, public_key_pem=pub, progress=tick, workers=1)

    def human() -> None:
        for w in report.warnings:
            _common.err_console.print(f"warning: {w}", markup=False, style="yellow")
        if report.ok:
            _common.out_console.print(f"OK: {report.message} (root {report.root})", markup=False, style="green")
        else:
            cls = (report.classification or "").replace("_", " ")
            where = f"first bad seq {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
            if report.first_bad_seq is None and report.bad_checkpoint is not None:
                where = f"bad checkpoint of size {report.bad_checkpoint}: "
            _common.out_console.print(f"FAILED ({cls}): {where}{report.message}", markup=False, style="red")

    emit(args, report.to_dict(), human)
    return EXIT_OK if report.ok else EXIT_FAILED


def _checkpoint(args: argparse.Namespace) -> int:
    from medfw.audit.log import open_log  # noqa: PLC0415
    from medfw.audit.witness import post_checkpoint  # noqa: PLC0415

    if args.out and args.export:
        raise UsageError("give --export or --out, not both", field="export")
    out = args.export or args.out
    with open_log(args.log, checkpoint_key=args.checkpoint_key) as log:
        signed = log.checkpoint(args.reason)
    if out:
        atomic_write(out, signed.to_bytes())
    posted = (
        post_checkpoint(args.log, args.post, signed, token=os.environ.get("MEDFW_OTA_TOKEN")) if args.post else None
    )
    doc = {**signed.to_dict(), "exported": out, "witness": posted}

    def human() -> None:
        cp = signed.checkpoint
        if out:
            _common.out_console.print(f"checkpoint size {cp.size} root {cp.root.hex()} written to {out}", markup=False)
        elif posted is None:
            _common.out_console.print(signed.to_bytes().decode(), markup=False, end="")
        if posted is not None:
            _common.out_console.print(f"witnessed by {args.post} (size {cp.size})", markup=False)

    emit(args, doc, human)
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from medfw.audit.migrate import migrate_log  # noqa: PLC0415

    key = _load_key(args.key) if args.key else None
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
    key = _load_key(args.key) if args.key else None
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


def register(sub: Any) -> None:
    """Register ``medfw audit init|append|verify|checkpoint|migrate|prove|export|verify-bundle|show``."""
    group = add_group(sub, "audit", "tamper-evident audit log: hash chain, forward-secure HMAC, Merkle proofs")

    p = group.add_parser("init", help="create an audit log and its verification key")
    p.add_argument("log", metavar="LOG", help="log file (SQLite) or postgresql:// URL")
    p.add_argument("--key-out", metavar="K", help="where to write the verification key (default LOG.vkey)")
    p.add_argument("--pub-out", metavar="P", help="also write the checkpoint public key (PEM) here")
    p.add_argument("--log-id", help="log id (default: random)")
    p.add_argument("--epoch-length", type=int, default=1024, help="entries per key epoch (default 1024)")
    p.add_argument("--checkpoint-interval", type=int, default=4096, help="entries between checkpoints")
    p.add_argument(
        "--checkpoint-key",
        metavar="KEY",
        help="use this existing checkpoint signing key: a key file (mode 0600) or a pkcs11: URI (PIN via "
        "pin-source or MEDFW_PKCS11_PIN); default: generate one",
    )
    p.add_argument("--checkpoint-key-out", metavar="F", help="where to generate the checkpoint key (default LOG.ckey)")
    p.add_argument(
        "--checkpoint-key-type",
        choices=CHECKPOINT_KEY_TYPES,
        default="ed25519",
        help="type of a generated checkpoint key",
    )
    add_json_flag(p)
    p.set_defaults(func=_init)

    p = group.add_parser("append", help="append one event (or --events) in one writer session")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--type", metavar="T", help="event type (e.g. boot.verify)")
    p.add_argument("--outcome", metavar="O", help=f"one of {', '.join(sorted(OUTCOMES))}")
    p.add_argument("--data", metavar="JSON", help="extra detail as a JSON object")
    p.add_argument("--reason", metavar="R", help="reason code")
    p.add_argument("--actor", metavar="A", help="who or what acted")
    p.add_argument("--object", action="append", metavar="NAME=DIGEST", help="object digest or id (repeatable)")
    p.add_argument(
        "--events", metavar="FILE", help="append these events (JSON Lines, '-' for stdin) in one transaction"
    )
    p.add_argument("--checkpoint", action="store_true", help="also sign a checkpoint at the end of this session")
    add_json_flag(p)
    p.set_defaults(func=_append)

    p = group.add_parser("verify", help="verify the whole log from the verification key")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--key", required=True, metavar="K", help="verification key file")
    p.add_argument("--checkpoint", action="append", metavar="CP", help="an earlier checkpoint to check against")
    p.add_argument(
        "--witness",
        action="append",
        metavar="FILE|URL",
        help="a witnessed checkpoint: a file, or the fleet server (token from $MEDFW_OTA_TOKEN); repeatable",
    )
    p.add_argument("--pubkey", metavar="P", help="pin this checkpoint public key (PEM) instead of the key file's")
    p.add_argument(
        "--workers", type=int, metavar="N", help="scan a large SQLite log in N processes (default: up to 2 cores)"
    )
    add_json_flag(p)
    p.set_defaults(func=_verify)

    p = group.add_parser("checkpoint", help="make a signed checkpoint")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--out", metavar="CP", help="write the checkpoint here")
    p.add_argument("--export", metavar="FILE", help="export the checkpoint to a witness file")
    p.add_argument(
        "--post", metavar="URL", help="hand the checkpoint to the fleet server's witness (token: $MEDFW_OTA_TOKEN)"
    )
    p.add_argument("--reason", default="request", help="why (request, pre-update, release, …)")
    p.add_argument("--checkpoint-key", metavar="KEY", help="the signing key, if not where the log says")
    add_json_flag(p)
    p.set_defaults(func=_checkpoint)

    p = group.add_parser("migrate", help="move an embedded checkpoint signing key out of the log")
    p.add_argument("log", metavar="LOG", help="audit log (SQLite file or postgresql:// URL)")
    p.add_argument("--checkpoint-key-out", metavar="F", help="where to write the key (default LOG.ckey, mode 0600)")
    p.add_argument("--key", metavar="K", help="verification key: verify the log first and refuse if it fails")
    add_json_flag(p)
    p.set_defaults(func=_migrate)

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
