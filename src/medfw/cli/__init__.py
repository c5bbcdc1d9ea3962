"""The ``medfw`` command line: a thin layer over the library.

Each command group lives in its own module (``medfw.cli.<group>``) exposing ``register(subparsers)``; a group that
also lists its commands (``COMMANDS``) is given the command being run, ``register(subparsers, command)``, and builds
only that command's parser.
Leaf commands set ``func(args) -> int`` and report their result through :func:`medfw.cli._common.emit`.
:class:`medfw.errors.MedfwError` is caught once, here, and printed with its diagnostics; the exit code is 0 on
success, 1 when a verification or policy check fails, 2 on bad input or usage. With ``--json`` stdout carries
exactly one envelope, for errors too: ``{"ok", "exit_code", "result"}`` or
``{"ok": false, "exit_code", "error": {"message", "path", "field", "offset"}}``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

from medfw import __version__
from medfw.cli._common import (
    error_envelope,
    exit_without_teardown,
    finish_json,
    json_mode,
    print_error,
    write_json,
)
from medfw.errors import EXIT_BAD_INPUT, MedfwError

__all__ = ["UsageExit", "build_parser", "main", "run"]

_EXIT_INTERRUPTED = 130

#: command groups and their one-line help; a group's module is imported only when that group runs (or for --help)
GROUPS: dict[str, str] = {
    "keys": "generate keys, print key digests, manage the key lifecycle",
    "sign": "sign firmware images (ESP32 Secure Boot v2, MCUboot)",
    "verify": "verify signed firmware images as the bootloader does",
    "image": "inspect firmware images",
    "device": "simulated device: provision, flash, boot, update, confirm, agent",
    "efuse": "check a unit's eFuse security configuration against a policy",
    "audit": "tamper-evident audit log: append, verify, checkpoint, prove, export",
    "build": "check an ESP-IDF build's security configuration before release",
    "sbom": "CycloneDX SBOM from the firmware build: generate, check, diff",
    "vuln": "vulnerability feeds, scans, patch-or-justify decisions, VEX, rescans",
    "ota": "signed OTA: TUF repository, fleet server, devices and rollouts",
    "evidence": "release evidence bundle for regulatory reviewers: build, verify",
}


class UsageExit(SystemExit):
    """A command-line usage error: exits 2; :func:`main` reports it in the JSON envelope under ``--json``."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_BAD_INPUT)
        self.message = message


def _help_width() -> int:
    """The width argparse formats help for: the terminal's (``COLUMNS``, else stdout's terminal, else 80) minus 2."""
    try:
        columns = int(os.environ.get("COLUMNS", ""))
    except ValueError:
        columns = 0
    if columns <= 0 and sys.__stdout__ is not None:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return (columns if columns > 0 else 80) - 2


class _Formatter(argparse.HelpFormatter):
    """argparse's help formatter, given the width (argparse asks shutil for it, which loads the compression modules
    into every command)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        super().__init__(prog, indent_increment, max_help_position, _help_width() if width is None else width)


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors exit 2 through the same path as medfw's own errors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print_error(f"{self.prog}: {message}")
        raise UsageExit(f"{self.prog}: {message}")


def _show_default(action: argparse.Action) -> None:
    """Append ``(default: X)`` to an option's help unless it already names its default."""
    default = action.default
    if not action.option_strings or not action.help or action.help == argparse.SUPPRESS:
        return
    if default in (None, False, argparse.SUPPRESS) or default == [] or "default" in action.help:
        return
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction | argparse._VersionAction):
        return
    shown = ",".join(map(str, default)) if isinstance(default, list | tuple) else str(default)
    action.help = f"{action.help} (default: {shown.replace('%', '%%')})"


def complete_help(parser: argparse.ArgumentParser) -> None:
    """Give every command its one-line help as description when it has none, and show every option's default.

    Run once over the whole tree after the groups registered their commands, so each group module states only
    what is specific to it.
    """
    for action in parser._actions:
        _show_default(action)
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        for name, child in action.choices.items():
            if not child.description and helps.get(name):
                child.description = helps[name]
            complete_help(child)


def _selected(argv: Sequence[str] | None) -> tuple[str | None, str | None]:
    """The group and the command ``argv`` names (its first two non-option arguments), the group if it is known."""
    args = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    group = args[0] if args and args[0] in GROUPS else None
    return group, args[1] if group is not None and len(args) > 1 else None


def build_parser(argv: Sequence[str] | None = None, *, load_all: bool = True) -> argparse.ArgumentParser:
    """Build the ``medfw`` argument parser.

    With ``load_all=False`` only the group ``argv`` selects is loaded (the others appear in ``--help`` with
    their one-line description), which keeps start-up fast: each group imports its own dependencies.
    """
    parser = _Parser(
        prog="medfw",
        description="Secure boot signing, signed OTA, SBOM, vulnerability management and audit for device firmware.",
    )
    parser.add_argument("--version", action="version", version=f"medfw {__version__}")
    sub = parser.add_subparsers(dest="command_group", metavar="COMMAND", parser_class=_Parser)
    selected, command = (None, None) if load_all else _selected(argv)
    for name, help_text in GROUPS.items():
        if load_all or name == selected:
            module = importlib.import_module(f"medfw.cli.{name}")
            if command is not None and hasattr(module, "COMMANDS"):  # it can register the one command only
                module.register(sub, command)
            else:
                module.register(sub)
        else:
            sub.add_parser(name, help=help_text, description=help_text)
    complete_help(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run medfw with ``argv`` and return the process exit code."""
    return _main(argv)[0]


def _main(argv: Sequence[str] | None) -> tuple[int, argparse.Namespace | None]:
    """:func:`main`, also returning the parsed arguments (None when there is no command to run)."""
    arglist = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arglist, load_all=False)
    try:
        args = parser.parse_args(arglist)
    except UsageExit as e:
        if "--json" in arglist:
            write_json(error_envelope(EXIT_BAD_INPUT, e.message))
        raise
    if getattr(args, "func", None) is None:
        # A group without a subcommand: show that group's help.
        target = getattr(args, "_group_parser", parser)
        target.print_help(sys.stderr)
        return EXIT_BAD_INPUT, None
    return _run_command(args), args


def _run_command(args: argparse.Namespace) -> int:
    """Run the parsed command; its errors become exit codes (and the JSON envelope under ``--json``)."""
    func = args.func
    try:
        code: int = func(args)
    except MedfwError as e:
        print_error(e.diagnostics())
        if json_mode(args):
            write_json(
                error_envelope(
                    e.exit_code, e.message, path=None if e.path is None else str(e.path), field=e.field, offset=e.offset
                )
            )
        return e.exit_code
    except KeyboardInterrupt:
        print_error("interrupted")
        if json_mode(args):
            write_json(error_envelope(_EXIT_INTERRUPTED, "interrupted"))
        return _EXIT_INTERRUPTED
    finish_json(args, code)
    return code


def run() -> None:
    """Console-script entry point."""
    code, args = _main(None)
    if getattr(args, "_no_teardown", False):
        exit_without_teardown(code)  # returns when something still needs the interpreter's teardown
    sys.exit(code)
