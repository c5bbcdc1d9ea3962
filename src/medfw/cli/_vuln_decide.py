"""``medfw vuln decide`` (one decision or a batch) and ``medfw vuln release add`` (with inherited decisions)."""

from __future__ import annotations

import argparse
import getpass
from typing import Any

from medfw._io import read_bytes
from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_json_flag, audit_sink, emit
from medfw.cli._vuln_feed import add_db
from medfw.errors import EXIT_OK, UsageError
from medfw.vuln.vocabulary import Justification, Response, State

__all__ = ["close_sink", "default_author", "register_decide", "register_release_add"]


def default_author() -> str:
    """``user:<login>`` of whoever runs the command."""
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def close_sink(sink: Any) -> None:
    """Close an audit sink that has a ``close``."""
    close = getattr(sink, "close", None)
    if callable(close):
        close()


def _requests(args: argparse.Namespace) -> list[Any]:
    from medfw.vuln.decision_batch import read_batch  # noqa: PLC0415
    from medfw.vuln.decisions import DecisionRequest  # noqa: PLC0415

    if args.batch:
        if args.cve or args.component or args.state or args.detail:
            raise UsageError("--batch takes every field from the file: give no CVE, --component, --state, --detail")
        return read_batch(read_bytes(args.batch, what="batch file"), args.batch)
    missing = [n for n, v in (("CVE", args.cve), ("--component", args.component), ("--state", args.state)) if not v]
    missing += ["--detail"] if not args.detail else []
    if missing:
        raise UsageError(f"give {', '.join(missing)} (or --batch FILE)", field=missing[0])
    return [
        DecisionRequest(
            args.cve,
            args.component,
            args.state,
            args.detail,
            args.justification,
            tuple(args.response or ()),
            args.author,
            args.fixed_in,
            args.applies_to,
        )
    ]


def _decide(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index, read_sbom  # noqa: PLC0415
    from medfw.vuln.decisions import record_decisions  # noqa: PLC0415

    sbom = read_sbom(read_bytes(args.sbom, what="SBOM"), args.sbom)
    requests = _requests(args)
    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        source = "batch" if args.batch else "cli"
        decisions = record_decisions(index, sbom, requests, author=args.author, sink=sink, source=source)
    finally:
        index.close()
        close_sink(sink)
    data: dict[str, Any] = {"decisions": [d.as_dict() for d in decisions], "count": len(decisions)}
    if len(decisions) == 1:
        data["decision"] = decisions[0].as_dict()

    def human() -> None:
        for d in decisions:
            fixed = f" (fixed in {d.fixed_in})" if d.fixed_in else ""
            _common.out_console.print(
                f"recorded {d.state}{fixed} for {d.vuln_id} on {d.component_ref} (decision {d.decision_id})",
                markup=False,
            )

    emit(args, data, human)
    return EXIT_OK


def register_decide(group: Any) -> None:
    """Register ``vuln decide``."""
    p = group.add_parser("decide", help="record patch-or-justify decisions (one, or a YAML/CSV batch)")
    p.add_argument("sbom", metavar="SBOM", help="SBOM of the release the decision is about")
    p.add_argument("cve", metavar="CVE", nargs="?", help="vulnerability id (case-insensitive)")
    p.add_argument("--component", metavar="REF", help="bom-ref of the component")
    p.add_argument("--state", choices=[str(s) for s in State], help="analysis state (VEX)")
    p.add_argument(
        "--justification",
        choices=[str(j) for j in Justification],
        help="why the product is not affected (with not_affected)",
    )
    p.add_argument(
        "--response", action="append", choices=[str(r) for r in Response], help="response taken (repeatable)"
    )
    p.add_argument("--detail", metavar="TEXT", help="free-text rationale recorded with the decision")
    p.add_argument("--fixed-in", metavar="VERSION", help="with resolved: the component version that fixes it")
    p.add_argument("--applies-to", metavar="RANGE", help="version range the decision holds for (>=3.5.0,<3.6.0)")
    p.add_argument("--batch", metavar="FILE", help="YAML or CSV file of decisions (one transaction)")
    p.add_argument("--author", default=default_author(), metavar="A", help="who decides (default: user:<login name>)")
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_decide)


def _release_add(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.carryover import register_release  # noqa: PLC0415

    sbom_bytes = read_bytes(args.sbom, what="SBOM")
    if args.image:
        from medfw.sbom.binding import verify_binding  # noqa: PLC0415
        from medfw.sbom.document import parse_sbom  # noqa: PLC0415

        doc = parse_sbom(sbom_bytes, path=str(args.sbom))
        props = doc.component.properties if doc.component else ()
        verify_binding(props, read_bytes(args.image, what="firmware image"), sbom_path=args.sbom, image_path=args.image)
    index = open_index(args.db)
    sink = audit_sink(args)
    try:
        rid, sbom, created, report = register_release(index, sbom_bytes, args.sbom, sink=sink)
        baseline = index.last_scan(rid) or []
    finally:
        index.close()
        close_sink(sink)
    data = {
        "release_id": rid,
        "serial": sbom.serial,
        "name": sbom.name,
        "created": created,
        "findings": len(baseline),
        "inherited": report.as_dict(),
    }

    def human() -> None:
        _common.out_console.print(
            f"release {rid} {'registered' if created else 'already registered'}: {sbom.name or sbom.serial}, "
            f"{len(baseline)} finding(s) in the baseline scan; decisions: {len(report.carried)} carried, "
            f"{len(report.held)} held (fixed), {len(report.reopened)} re-opened for review",
            markup=False,
        )
        for d in report.reopened:
            _common.out_console.print(f"  re-opened: {d.vuln_id} on {d.component_ref}: {d.detail}", markup=False)

    emit(args, data, human)
    return EXIT_OK


def register_release_add(rel: Any) -> None:
    """Register ``vuln release add``."""
    p = rel.add_parser("add", help="register a released SBOM (baseline scan; earlier decisions carried over)")
    p.add_argument("sbom", metavar="SBOM", help="SBOM of the release the decision is about")
    p.add_argument(
        "--image",
        metavar="IMAGE",
        help="the released firmware image: refuse the SBOM unless it describes this image (signed or not)",
    )
    add_db(p)
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_release_add)
