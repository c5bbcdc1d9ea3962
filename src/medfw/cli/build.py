"""``medfw build check``: the security options of an ESP-IDF release build against a policy.

Exit codes: 0 every enabled rule passes, 1 a rule fails (or is blocked by one that fails), 2 bad input.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from medfw.cli._common import add_group, add_json_flag, emit, out_console, print_table
from medfw.errors import EXIT_FAILED, EXIT_OK

__all__ = ["register"]

_STYLE = {"pass": "green", "fail": "red", "blocked": "red", "skipped": "yellow"}


def _print(data: dict[str, Any]) -> None:
    title = f"Build configuration {data['config']} ({data['target']}, policy {data['policy']})"
    table = Table(title=Text(title))
    for col in ("rule", "result", "detail"):
        table.add_column(col)
    for r in data["rules"]:
        table.add_row(Text(r["rule"]), Text(r["status"], style=_STYLE[r["status"]]), Text(r["message"]))
    print_table(table)
    failed = [r["rule"] for r in data["rules"] if r["status"] in ("fail", "blocked")]
    verdict = "PASS" if not failed else f"FAIL: {', '.join(failed)}"
    out_console.print(Text(verdict, style="green" if not failed else "red"))


def _cmd_check(args: argparse.Namespace) -> int:
    from medfw.buildcfg import BuildPolicy, check_config, load_config  # noqa: PLC0415

    result = check_config(load_config(args.config), BuildPolicy.load(args.policy))
    data = result.to_dict()
    emit(args, data, lambda: _print(data))
    return EXIT_OK if result.passed else EXIT_FAILED


def register(sub: Any) -> None:
    """Register the ``build`` command group."""
    group = add_group(sub, "build", "check an ESP-IDF build's security configuration before release")
    p = group.add_parser(
        "check",
        help="check sdkconfig / sdkconfig.json / a build directory against the build-config policy",
        description="check the security options of an ESP-IDF release build (sdkconfig, sdkconfig.json or a "
        "build directory) against a policy: Secure Boot v2, anti-rollback, app rollback, flash encryption "
        "in release mode, JTAG, ROM download mode, HTTPS-only OTA, no insecure allowances",
    )
    p.add_argument("config", metavar="CONFIG", help="sdkconfig, sdkconfig.json or an ESP-IDF build directory")
    p.add_argument("--policy", metavar="POLICY.yml", help="policy file (default: the shipped default policy)")
    add_json_flag(p)
    p.set_defaults(func=_cmd_check)
