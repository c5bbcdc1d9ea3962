"""Helpers shared by the CLI command modules: output in human or ``--json`` form, errors, groups."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console

from medfw.audit.sink import AuditSink, NullSink

__all__ = [
    "add_audit_flag",
    "add_group",
    "add_json_flag",
    "audit_sink",
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


def add_audit_flag(parser: argparse.ArgumentParser) -> None:
    """Add ``--audit-log LOG``: append this command's security events to that audit log.

    Defaults to the ``MEDFW_AUDIT_LOG`` environment variable; with neither, events are not recorded.
    """
    parser.add_argument(
        "--audit-log",
        metavar="LOG",
        default=os.environ.get("MEDFW_AUDIT_LOG"),
        help="append security events to this audit log (default: $MEDFW_AUDIT_LOG)",
    )


def audit_sink(args: argparse.Namespace) -> AuditSink:
    """Return the audit sink selected by ``--audit-log`` (a :class:`NullSink` when none is given)."""
    path = getattr(args, "audit_log", None)
    if not path:
        return NullSink()
    from medfw.audit import open_log  # noqa: PLC0415 - keep CLI start-up light

    sink: AuditSink = open_log(path)
    return sink
