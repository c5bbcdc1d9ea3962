"""``medfw audit``: the tamper-evident audit log (init, append, verify, checkpoint, migrate, prove, export, show)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.keys import CHECKPOINT_KEY_TYPES
from medfw.audit.vocabulary import OUTCOMES, check_event_type, check_outcome
from medfw.cli import _common
from medfw.cli._common import add_group, add_json_flag, emit, no_teardown
from medfw.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from medfw.audit.checkpoint import SignedCheckpoint
    from medfw.audit.keys import VerificationKey
    from medfw.audit.sink import AuditEvent

# Each command imports what it needs when it runs (``audit verify`` is started once per CI job and per device
# upload; the bundle, migration, witness-posting and table code stay unloaded there).

__all__ = ["COMMANDS", "load_key", "register"]

_MAX_EVENTS = 64 * 1024 * 1024


def _say(text: str, *, err: bool = False, style: str | None = None) -> None:
    """One line of human output: styled by rich on a terminal, else written as it is (a piped or logged
    ``audit append`` or ``audit verify`` never loads rich)."""
    stream = sys.stderr if err else sys.stdout
    if not stream.isatty():
        stream.write(text + "\n")
        return
    (_common.err_console if err else _common.out_console).print(text, markup=False, style=style)


def _init(args: argparse.Namespace) -> int:
    from medfw.audit.log import init_log  # noqa: PLC0415
    from medfw.audit.store import sibling  # noqa: PLC0415

    key_out = args.key_out
    if key_out is None:
        key_out = sibling(args.log, ".vkey")
        if key_out is None:
            raise UsageError("a PostgreSQL log needs --key-out for its verification key")
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
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415 - appending commands only

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
        _say(f"appended {what} (epoch {entry.epoch})")
        if session.checkpoint is not None:
            _say(f"checkpoint of size {session.checkpoint.checkpoint.size} signed")
        if session.deferred_checkpoint:
            _say(f"warning: {session.deferred_checkpoint}", err=True, style="yellow")

    emit(args, result, human)
    return EXIT_OK


def load_key(path: str) -> VerificationKey:
    """Read a verification key file."""
    from medfw.audit.keys import VerificationKey  # noqa: PLC0415

    return VerificationKey.from_bytes(read_bytes(path, max_length=64 * 1024, what="verification key"), path=path)


def _load_checkpoint(path: str) -> SignedCheckpoint:
    from medfw.audit.checkpoint import SignedCheckpoint  # noqa: PLC0415

    return SignedCheckpoint.from_bytes(read_bytes(path, max_length=1024 * 1024, what="checkpoint"), path=path)


def _verify(args: argparse.Namespace) -> int:
    from medfw.audit.verify import verify_log  # noqa: PLC0415

    key = load_key(args.key)
    held = [_load_checkpoint(c) for c in args.checkpoint or []]
    token = os.environ.get("MEDFW_OTA_TOKEN")
    if args.witness:
        from medfw.audit.witness import load_witness  # noqa: PLC0415

        held += [load_witness(w, log_id=key.log_id, token=token) for w in args.witness]
    pub = read_bytes(args.pubkey, max_length=64 * 1024, what="public key") if args.pubkey else None
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise UsageError("--workers must be at least 1", field="workers")
    if args.json or workers > 1 or not _common.err_console.is_terminal:  # no progress thread across fork()
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
            _say(f"warning: {w}", err=True, style="yellow")
        if report.ok:
            _say(f"OK: {report.message} (root {report.root})", style="green")
        else:
            cls = (report.classification or "").replace("_", " ")
            where = f"first bad seq {report.first_bad_seq}: " if report.first_bad_seq is not None else ""
            if report.first_bad_seq is None and report.bad_checkpoint is not None:
                where = f"bad checkpoint of size {report.bad_checkpoint}: "
            _say(f"FAILED ({cls}): {where}{report.message}", style="red")

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


#: the audit commands and their one-line help
COMMANDS: dict[str, str] = {
    "init": "create an audit log and its verification key",
    "append": "append one event (or --events) in one writer session",
    "verify": "verify the whole log from the verification key",
    "checkpoint": "make a signed checkpoint",
    "migrate": "move an embedded checkpoint signing key out of the log",
    "prove": "print the Merkle inclusion proof of one entry",
    "export": "export entries, a fresh checkpoint and inclusion proofs",
    "verify-bundle": "verify an exported bundle offline",
    "show": "list entries",
}


def register(sub: Any, command: str | None = None) -> None:
    """Register ``medfw audit`` and its commands (:data:`COMMANDS`).

    With ``command`` only that command gets its full parser and the others are listed with their one-line help:
    running one command (``audit verify`` in every CI job) sets up and imports what it needs, not the others.
    """
    group = add_group(sub, "audit", "tamper-evident audit log: hash chain, forward-secure HMAC, Merkle proofs")
    for name, help_text in COMMANDS.items():
        if command is not None and name != command:
            group.add_parser(name, help=help_text, description=help_text)
            continue
        p = group.add_parser(name, help=help_text)
        add_arguments = _ARGUMENTS.get(name)
        if add_arguments is None:
            from medfw.cli._audit_records import RECORD_ARGUMENTS  # noqa: PLC0415 - see the docstring

            add_arguments = RECORD_ARGUMENTS[name]
        add_arguments(p)


def _init_arguments(p: argparse.ArgumentParser) -> None:
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


def _append_arguments(p: argparse.ArgumentParser) -> None:
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


def _verify_arguments(p: argparse.ArgumentParser) -> None:
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
    no_teardown(p)  # read-only: no sink; the log is closed and the workers reaped when verify_log returns


def _checkpoint_arguments(p: argparse.ArgumentParser) -> None:
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


#: the arguments of the commands defined here (the others: :data:`medfw.cli._audit_records.RECORD_ARGUMENTS`)
_ARGUMENTS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "init": _init_arguments,
    "append": _append_arguments,
    "verify": _verify_arguments,
    "checkpoint": _checkpoint_arguments,
}
