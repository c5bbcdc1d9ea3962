"""Helpers shared by the CLI command modules: output in human or ``--json`` form, errors, groups."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

__all__ = [
    "add_group",
    "add_json_flag",
    "emit",
    "err_console",
    "out_console",
    "print_error",
]

out_console = Console(highlight=False, soft_wrap=True)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(message: str) -> None:
    """Print an error line to stderr (markup disabled: messages may hold brackets)."""
    err_console.print(f"medfw: error: {message}", markup=False, style="red")


def add_group(sub: Any, name: str, help_text: str) -> Any:
    """Add a command group and return its sub-parser collection.

    Running the group without a subcommand prints the group's help and exits 2.
    """
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(_group_parser=parser)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", parser_class=type(parser))


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """Add the ``--json`` flag every command supports."""
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON on stdout")


def _default(o: object) -> object:
    if isinstance(o, bytes):
        return o.hex()
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if isinstance(o, set | frozenset):
        return sorted(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def emit(args: argparse.Namespace, data: Any, human: Callable[[], None] | None = None) -> None:
    """Print ``data`` as JSON when ``--json`` was given, else call ``human()`` (or pretty-print ``data``)."""
    if getattr(args, "json", False) or human is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=_default) + "\n")
        sys.stdout.flush()
    else:
        human()
