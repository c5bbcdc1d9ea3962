"""``medfw evidence``: build and verify a release's signed evidence bundle (and its HTML report)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from medfw._io import read_bytes
from medfw.audit.keys import VerificationKey
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, err_console, out_console
from medfw.crypto.keys import load_public_key
from medfw.crypto.registry import load_signer
from medfw.errors import EXIT_FAILED, EXIT_OK, UsageError


class _LazySink:
    """Opens the ``--audit-log`` sink only when the first event is recorded.

    The build exports the release's audit log, which may be the same log; opening it as a writer only after
    the export keeps the two from interleaving.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self._args = args
        self._sink: AuditSink | None = None

    def record(self, event: AuditEvent) -> None:
        if self._sink is None:
            self._sink = audit_sink(self._args)
        self._sink.record(event)

    def close(self) -> None:
        close = getattr(self._sink, "close", None)
        if callable(close):
            close()


def _build(args: argparse.Namespace) -> int:
    from medfw.evidence.build import BUILD_STEPS, build_bundle  # noqa: PLC0415 - keep CLI start-up light
    from medfw.evidence.spec import load_release_spec  # noqa: PLC0415

    spec = load_release_spec(args.release)
    key_uri = args.key or spec.evidence_key
    if not key_uri:
        raise UsageError("no evidence key: pass --key or set evidence_key in release.yml", field="evidence_key")
    signer = load_signer(key_uri)
    sink = _LazySink(args)
    with Progress(
        TextColumn("[bold]evidence[/bold] {task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=bool(args.json) or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("starting", total=len(BUILD_STEPS))

        def step(name: str) -> None:
            bar.update(task, description=name, advance=1)

        try:
            result = build_bundle(
                spec, args.out, signer=signer, force=args.force, sink=sink, progress=step, pdf=not args.no_pdf
            )
        finally:
            sink.close()

    def human() -> None:
        for c in result.checks:
            mark = "[green]pass[/green]" if c.ok else "[red]FAIL[/red]"
            out_console.print(f"{mark}  {c.name}: {c.detail}", markup=True, highlight=False)
        out_console.print(f"bundle: {result.path} ({result.files} files, manifest sha256 {result.manifest_sha256})")
        out_console.print(f"report: {result.path / 'report.html'}")
        if not result.ok:
            out_console.print("[red]some checks failed; the bundle records why[/red]")

    emit(args, result.to_dict(), human)
    return EXIT_OK if result.ok else EXIT_FAILED


def _verify(args: argparse.Namespace) -> int:
    from medfw.evidence.verify import verify_evidence  # noqa: PLC0415

    key = load_public_key(args.key) if args.key else None
    audit_key = (
        VerificationKey.from_bytes(
            read_bytes(args.audit_key, max_length=1 << 16, what="audit key"), path=args.audit_key
        )
        if args.audit_key
        else None
    )
    result = verify_evidence(Path(args.bundle), key=key, audit_key=audit_key)

    def human() -> None:
        for name, ok in result.checks.items():
            mark = "[green]ok[/green]  " if ok else "[red]FAIL[/red]"
            out_console.print(f"{mark} {name}")
        for p in result.problems:
            out_console.print(f"  {p.file}: {p.problem}", markup=False, style="red")
        for n in result.notes:
            out_console.print(f"note: {n}", markup=False, style="yellow")
        verdict = "verified" if result.ok else "FAILED"
        out_console.print(f"{result.bundle}: {verdict} ({result.files_checked} files checked)", markup=False)

    emit(args, result.to_dict(), human)
    return EXIT_OK if result.ok else EXIT_FAILED


def register(sub: Any) -> None:
    """Register ``medfw evidence build|verify``."""
    group = add_group(sub, "evidence", "release evidence bundles for regulatory review")

    p = group.add_parser("build", help="build the signed evidence bundle of a release")
    p.add_argument("--release", required=True, metavar="DIR", help="release directory holding release.yml")
    p.add_argument("--out", required=True, metavar="BUNDLE", help="bundle directory to create")
    p.add_argument("--key", metavar="KEY_URI", help="evidence signing key: file or pkcs11: URI (default: release.yml)")
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument(
        "--no-pdf", action="store_true", help="do not print report.pdf (default: headless Chromium prints it)"
    )
    add_audit_flag(p)
    add_json_flag(p)
    p.set_defaults(func=_build)

    p = group.add_parser("verify", help="verify an evidence bundle offline")
    p.add_argument("bundle", metavar="BUNDLE", help="evidence bundle directory")
    p.add_argument("--key", metavar="PUB", help="pinned evidence public key (PEM)")
    p.add_argument("--audit-key", metavar="K", help="audit verification key: pins the checkpoint key, checks HMACs")
    add_json_flag(p)
    p.set_defaults(func=_verify)
