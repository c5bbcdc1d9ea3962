"""The ``medfw`` command line: a thin layer over the library.

Each command group lives in its own module (``medfw.cli.<group>``) exposing ``register(subparsers)``.
Leaf commands set ``func(args) -> int``. :class:`medfw.errors.MedfwError` is caught once, here, and printed
with its diagnostics; the exit code is 0 on success, 1 when a verification or policy check fails, 2 on bad
input or usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from medfw import __version__
from medfw.cli._common import print_error
from medfw.errors import EXIT_BAD_INPUT, MedfwError

__all__ = ["main", "run"]

GROUPS: tuple[str, ...] = (
    "keys",
    "sign",
    "verify",
    "image",
    "device",
    "efuse",
    "audit",
    "sbom",
    "vuln",
    "ota",
    "evidence",
)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit 2 through the same path as medfw's own errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print_error(f"{self.prog}: {message}")
        raise SystemExit(EXIT_BAD_INPUT)


def build_parser() -> argparse.ArgumentParser:
    """Build the full ``medfw`` argument parser."""
    parser = _Parser(
        prog="medfw",
        description="Secure boot signing, signed OTA, SBOM, vulnerability management and audit for device firmware.",
    )
    parser.add_argument("--version", action="version", version=f"medfw {__version__}")
    sub = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=_Parser)
    for name in GROUPS:
        module = importlib.import_module(f"medfw.cli.{name}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run medfw with ``argv`` and return the process exit code."""
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    func = getattr(args, "func", None)
    if func is None:
        # A group without a subcommand: show that group's help.
        target = getattr(args, "_group_parser", parser)
        target.print_help(sys.stderr)
        return EXIT_BAD_INPUT
    try:
        code: int = func(args)
    except MedfwError as e:
        print_error(e.diagnostics())
        return e.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        return 130
    return code


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
