"""``medfw efuse check``: check a unit's ``espefuse summary --format json`` against a security policy.

Exit codes: 0 every rule passes (or is skipped / not applicable), 1 a rule fails, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.table import Table

from medfw._io import read_bytes
from medfw.cli._common import add_group, add_json_flag, emit, out_console, print_table
from medfw.device.policy import EfuseSummary, Policy, PolicyReport, check_summary
from medfw.errors import EXIT_FAILED, EXIT_OK, InputError

__all__ = ["register"]

_MAX_SUMMARY = 4 * 1024 * 1024
_STYLE = {"pass": "green", "fail": "red", "skipped": "yellow", "not_applicable": "cyan"}


def _print(report: PolicyReport) -> None:
    table = Table(title=f"eFuse policy check ({report.chip})")
    for col in ("rule", "result", "eFuses", "detail"):
        table.add_column(col)
    for r in report.results:
        table.add_row(r.rule, f"[{_STYLE[r.status]}]{r.status}[/]", ", ".join(r.efuses), r.detail.replace("[", r"\["))
    print_table(table)
    out_console.print("PASS" if report.passed else f"FAIL: {', '.join(r.rule for r in report.failed)}", markup=False)


def _cmd_check(args: argparse.Namespace) -> int:
    raw = read_bytes(args.summary, max_length=_MAX_SUMMARY, what="eFuse summary")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        pos = getattr(e, "pos", None) if isinstance(e, json.JSONDecodeError) else getattr(e, "start", None)
        raise InputError(f"eFuse summary is not JSON: {e}", path=str(args.summary), offset=pos) from None
    summary = EfuseSummary.from_json(doc, path=str(args.summary))
    report = check_summary(summary, Policy.load(args.policy), chip=args.chip)
    data: dict[str, Any] = {"summary": str(args.summary)} | report.to_dict()
    emit(args, data, lambda: _print(report))
    return EXIT_OK if report.passed else EXIT_FAILED


def register(sub: Any) -> None:
    """Register the ``efuse`` command group."""
    group = add_group(sub, "efuse", "check eFuse read-outs of real units")
    p = group.add_parser(
        "check",
        help="check an 'espefuse summary --format json' file against a security policy",
        description="check an 'espefuse summary --format json' file against a security policy",
    )
    p.add_argument("summary", metavar="SUMMARY.json", help="output of espefuse summary --format json")
    p.add_argument("--policy", metavar="POLICY.yml", help="policy file (default: the shipped default policy)")
    p.add_argument("--chip", metavar="CHIP", help="chip name (esp32, esp32c3, esp32s3, …); detected when omitted")
    add_json_flag(p)
    p.set_defaults(func=_cmd_check)
