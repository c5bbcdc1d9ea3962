"""``medfw sbom``: generate, check and diff CycloneDX SBOMs of firmware builds."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import uuid
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent
from medfw.cli._common import (
    add_audit_flag,
    add_group,
    add_json_flag,
    audit_sink,
    emit,
    err_console,
    out_console,
    print_table,
)
from medfw.errors import EXIT_FAILED, EXIT_OK, MedfwError, UsageError

__all__ = ["register"]


def _parse_serial(value: str) -> uuid.UUID:
    try:
        return uuid.UUID(value.removeprefix("urn:uuid:"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {value!r}") from None


def _parse_timestamp(value: str) -> dt.datetime:
    try:
        ts = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 timestamp: {value!r}") from None
    if ts.tzinfo is None:
        raise argparse.ArgumentTypeError("timestamp needs a timezone (e.g. 2025-01-01T00:00:00Z)")
    return ts


def register(sub: Any) -> None:
    """Register the ``sbom`` command group."""
    group = add_group(sub, "sbom", "CycloneDX SBOM of a firmware build: generate, check, diff")

    gen = group.add_parser("generate", help="generate a CycloneDX 1.6 SBOM from a build")
    src = gen.add_mutually_exclusive_group(required=True)
    src.add_argument("--idf-build", metavar="DIR", help="ESP-IDF build directory (holds project_description.json)")
    src.add_argument("--manifest", metavar="FILE", help="project manifest (medfw-sbom.yml) for any other build")
    gen.add_argument(
        "--binary",
        metavar="FW",
        action="append",
        default=[],
        help="firmware image or ELF to scan for embedded library versions (repeatable)",
    )
    gen.add_argument(
        "--allow-mismatch",
        metavar="REASON",
        help="record the SBOM although the image's version/chip/IDF version differ from the build (reason kept)",
    )
    gen.add_argument("--format", choices=("json", "xml"), default="json", help="output format (default json)")
    gen.add_argument("--all-components", action="store_true", help="include configuration-only and unlinked components")
    gen.add_argument("--serial", type=_parse_serial, help="fixed serial number (UUID)")
    gen.add_argument("--timestamp", type=_parse_timestamp, help="fixed timestamp (ISO 8601 with timezone)")
    gen.add_argument("--out", required=True, metavar="SBOM", help="output file (e.g. fw.cdx.json)")
    add_json_flag(gen)
    add_audit_flag(gen)
    gen.set_defaults(func=_generate)

    chk = group.add_parser("check", help="validate an SBOM and score its completeness (NTIA, CISA 2024, FDA)")
    chk.add_argument("sbom", metavar="SBOM", help="CycloneDX SBOM (JSON or XML)")
    add_json_flag(chk)
    chk.set_defaults(func=_check)

    dif = group.add_parser("diff", help="components added, removed and changed between two SBOMs")
    dif.add_argument("old", metavar="OLD", help="the earlier SBOM")
    dif.add_argument("new", metavar="NEW", help="the later SBOM")
    add_json_flag(dif)
    dif.set_defaults(func=_diff)


def _generate(args: argparse.Namespace) -> int:
    from medfw.sbom import build_bom, read_idf_build, read_project_manifest, scan_files, serialize  # noqa: PLC0415

    sink = audit_sink(args)
    source = args.idf_build or args.manifest
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=bool(args.json),
        ) as progress:
            task = progress.add_task("reading build inputs", total=2 + len(args.binary))
            if args.idf_build:
                project = read_idf_build(args.idf_build, all_components=args.all_components)
            else:
                if args.all_components:
                    raise UsageError("--all-components applies to --idf-build only", field="--all-components")
                project = read_project_manifest(args.manifest)
            progress.update(task, advance=1, description="scanning binaries")
            findings = scan_files(args.binary, progress=lambda _p: progress.update(task, advance=1))
            project, images = _bind(project, args)
            progress.update(task, description="writing SBOM")
            bom = build_bom(project, findings=findings, serial=args.serial, timestamp=args.timestamp)
            data = serialize(bom, args.format)
            atomic_write(args.out, data)
            progress.update(task, advance=1)
    except MedfwError as e:
        sink.record(
            AuditEvent(
                type="sbom.generate",
                outcome="failure",
                reason=type(e).__name__,
                actor="medfw sbom",
                objects={"source": str(source)},
                data={"error": e.diagnostics()},
            )
        )
        raise
    digest = hashlib.sha256(data).hexdigest()
    serial = bom.serial_number.urn if bom.serial_number else ""
    components = sorted(bom.components, key=lambda c: str(c.bom_ref.value))
    warnings: list[str] = []
    for c in components:
        if not c.version:
            warnings.append(f"component {c.name!r} ({c.bom_ref.value}) has no version")
        for p in c.properties:
            if p.name == "medfw:evidence:version-mismatch":
                warnings.append(f"component {c.name!r}: {p.value}")
            if p.name == "medfw:evidence:undeclared":
                warnings.append(f"component {c.name!r} {c.version or ''} found in a binary but declared nowhere")
    sink.record(
        AuditEvent(
            type="sbom.generate",
            outcome="success",
            actor="medfw sbom",
            objects={"sbom_sha256": digest, "serial": serial},
            data={
                "out": str(args.out),
                "format": args.format,
                "source": str(source),
                "components": len(components),
                "binaries": [Path(b).name for b in args.binary],
            },
        )
    )
    result = {
        "out": str(args.out),
        "format": args.format,
        "serial": serial,
        "sha256": digest,
        "components": len(components),
        "warnings": warnings,
        "image": None if not images else {**dataclasses.asdict(images[0]), "format": images[0].format.value},
    }

    def human() -> None:
        out_console.print(f"wrote {args.out}: {len(components)} components, {serial}", markup=False)
        for img in images:
            out_console.print(
                f"bound to {img.file} ({img.format.value}, {img.version or '?'}, {img.chip or '-'}): "
                f"SHA-256 {img.sha256} of the unsigned content",
                markup=False,
            )
        for w in warnings:
            err_console.print(f"warning: {w}", markup=False, style="yellow")

    emit(args, result, human)
    return EXIT_OK


def _bind(project: Any, args: argparse.Namespace) -> tuple[Any, list[Any]]:
    """Read the firmware image among ``--binary`` and record it in ``metadata.component`` (see sbom.binding)."""
    from medfw.sbom import MAX_BINARY  # noqa: PLC0415
    from medfw.sbom.binding import bind_project, identify_files  # noqa: PLC0415

    if args.allow_mismatch is not None and not args.allow_mismatch.strip():
        raise UsageError("--allow-mismatch needs a reason", field="--allow-mismatch")
    images = identify_files(args.binary, max_length=MAX_BINARY)
    source = args.idf_build or args.manifest
    return bind_project(project, images, allow_mismatch=args.allow_mismatch, source=str(source)), images


def _check(args: argparse.Namespace) -> int:
    from medfw.sbom import check_sbom  # noqa: PLC0415
    from medfw.sbom.document import MAX_SBOM  # noqa: PLC0415

    data = read_bytes(args.sbom, max_length=MAX_SBOM, what="SBOM")
    report = check_sbom(data, path=args.sbom)

    def human() -> None:
        schema = "valid" if report.schema_valid else f"INVALID: {report.schema_error}"
        line = Text("PASS" if report.passed else "FAIL", style="green" if report.passed else "red")
        line.append(f" {args.sbom}: CycloneDX {report.spec_version} {report.format}, schema {schema}", style="")
        out_console.print(line)
        out_console.print(
            f"completeness score {report.score:.1%} over {len(report.components)} components", markup=False
        )
        if report.document_missing_required or report.document_missing_recommended:
            out_console.print(
                "document: missing "
                + ", ".join(
                    [
                        *report.document_missing_required,
                        *(f"{m} (recommended)" for m in report.document_missing_recommended),
                    ]
                ),
                markup=False,
            )
        table = Table("component", "version", "score", "missing (required)", "missing (recommended)", "warnings")
        for c in report.components:
            if not (c.missing_required or c.missing_recommended or c.warnings):
                continue
            table.add_row(
                Text(c.name),
                Text(c.version or "-"),
                f"{c.score:.0%}",
                ", ".join(c.missing_required),
                ", ".join(c.missing_recommended),
                Text("; ".join(c.warnings)),
            )
        if table.row_count:
            print_table(table)

    emit(args, report.to_dict(), human)
    return EXIT_OK if report.passed else EXIT_FAILED


def _diff(args: argparse.Namespace) -> int:
    from medfw.sbom import diff_sboms, load_sbom  # noqa: PLC0415

    result = diff_sboms(load_sbom(args.old), load_sbom(args.new))

    def human() -> None:
        o, n = result.old_firmware, result.new_firmware
        out_console.print(f"{o[0]} {o[1] or ''} -> {n[0]} {n[1] or ''}", markup=False)
        if result.empty:
            out_console.print("no component changes", markup=False)
        for c in result.added:
            out_console.print(f"+ {c.name} {c.version or ''}", style="green", markup=False)
        for c in result.removed:
            out_console.print(f"- {c.name} {c.version or ''}", style="red", markup=False)
        for ch in result.changed:
            fields = ", ".join(sorted(ch.changes))
            out_console.print(
                f"~ {ch.new.name} {ch.old.version or ''} -> {ch.new.version or ''} ({fields})",
                style="yellow",
                markup=False,
            )

    emit(args, result.to_dict(), human)
    return EXIT_OK
