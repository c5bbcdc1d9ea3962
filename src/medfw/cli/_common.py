"""Helpers shared by the CLI command modules: output in human or ``--json`` form, errors, groups."""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from medfw.audit.sink import AuditSink

    out_console: Console
    err_console: Console

__all__ = [
    "add_audit_flag",
    "add_group",
    "add_json_flag",
    "audit_sink",
    "emit",
    "envelope",
    "err_console",
    "error_envelope",
    "exit_without_teardown",
    "finish_json",
    "json_mode",
    "no_teardown",
    "out_console",
    "print_error",
    "print_table",
    "write_json",
]

_CONSOLES = {"out_console": False, "err_console": True}  # name: on stderr


def __getattr__(name: str) -> Any:
    """``out_console`` and ``err_console`` are made on first use: a ``--json`` command never loads rich."""
    if name not in _CONSOLES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _console(name)


def _console(name: str) -> Console:
    made: Console | None = globals().get(name)
    if made is None:
        from rich.console import Console  # noqa: PLC0415 - see __getattr__

        made = Console(stderr=_CONSOLES[name], highlight=False, soft_wrap=True)
        globals()[name] = made
    return made


def print_error(message: str) -> None:
    """Print an error line to stderr (markup disabled: messages may hold brackets)."""
    _console("err_console").print(f"medfw: error: {message}", markup=False, style="red")


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


#: the attribute of the parsed arguments that holds a command's pending ``--json`` result until it exits
_RESULT_ATTR = "_medfw_result"
_EMITTED_ATTR = "_medfw_emitted"


def _dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, default=_default) + "\n"


def envelope(exit_code: int, result: Any) -> dict[str, Any]:
    """The JSON envelope every ``--json`` command prints on stdout: ``{"ok", "exit_code", "result"}``."""
    return {"ok": exit_code == 0, "exit_code": exit_code, "result": result}


def error_envelope(
    exit_code: int, message: str, *, path: str | None = None, field: str | None = None, offset: int | None = None
) -> dict[str, Any]:
    """The JSON envelope of a command that failed with an error (exit 1 or 2, or 130 when interrupted)."""
    return {
        "ok": False,
        "exit_code": exit_code,
        "error": {"message": message, "path": path, "field": field, "offset": offset},
    }


def write_json(doc: Any) -> None:
    """Write one JSON document on stdout (sorted keys, bytes as hex, dates as ISO 8601)."""
    sys.stdout.write(_dumps(doc))
    sys.stdout.flush()


def json_mode(args: argparse.Namespace) -> bool:
    """True when the command was asked for ``--json`` output."""
    return bool(getattr(args, "json", False))


def emit(args: argparse.Namespace, data: Any, human: Callable[[], None] | None = None, *, now: bool = False) -> None:
    """Report a command's result: with ``--json`` as the ``result`` of the one envelope, else call ``human()``.

    With ``--json`` nothing is printed here: the envelope ``{"ok", "exit_code", "result"}`` is printed once by
    :func:`medfw.cli.main` when the command returns its exit code (a later ``emit`` replaces an earlier one).
    ``now=True`` prints the envelope at once with exit code 0, for long-running commands that report before they
    finish (a server that starts listening). Without ``--json`` and without ``human``, ``data`` is printed as
    plain JSON.
    """
    if json_mode(args):
        if now:
            write_json(envelope(0, data))
            setattr(args, _EMITTED_ATTR, True)
        else:
            setattr(args, _RESULT_ATTR, data)
    elif human is None:
        write_json(data)
    else:
        human()


def finish_json(args: argparse.Namespace, exit_code: int) -> None:
    """Print the envelope of a ``--json`` command that returned ``exit_code`` (once; called by ``main``)."""
    if not json_mode(args) or getattr(args, _EMITTED_ATTR, False):
        return
    write_json(envelope(exit_code, getattr(args, _RESULT_ATTR, {})))
    setattr(args, _EMITTED_ATTR, True)


def no_teardown(parser: argparse.ArgumentParser) -> None:
    """Mark a read-only command that leaves nothing for the interpreter's teardown to do: the console script ends
    its process with :func:`exit_without_teardown`.

    For commands that may be the whole of a short-lived process (``audit verify`` in CI and on each upload): they
    hold no audit sink, close what they open and leave no thread behind. Tearing down the interpreter (freeing
    every module and object) takes longer than some of these commands' own work.
    """
    parser.set_defaults(_no_teardown=True)


def exit_without_teardown(exit_code: int) -> None:
    """End the process with ``exit_code`` right after flushing stdout and stderr, skipping the interpreter's
    teardown; return instead when something still needs that teardown.

    That is when anything registered an exit handler (an audit sink, coverage measurement), a thread other than
    the main one is alive, or a flush fails (a closed pipe): the normal exit then runs those handlers, joins the
    threads, or reports the failure as it always does.
    """
    if atexit._ncallbacks():
        return
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    os._exit(exit_code)


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
        from medfw.audit.sink import NullSink  # noqa: PLC0415 - keep CLI start-up light

        return NullSink()
    from medfw.audit import open_log  # noqa: PLC0415 - keep CLI start-up light

    log = open_log(path)
    atexit.register(log.close)  # end the writer session when the command ends: the key that sealed it is erased
    sink: AuditSink = log
    return sink


def _plain(cell: object) -> str:
    from rich.text import Text  # noqa: PLC0415 - see __getattr__

    text = cell.plain if isinstance(cell, Text) else str(cell)
    return " ".join(text.split())  # one line: no newlines or tabs inside a record


def _longest_word(values: list[str]) -> int:
    return max((len(w) for v in values for w in v.split()), default=0)


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table so that no word is ever split.

    On a terminal wide enough to give every column its longest word, the table is drawn with those minimum
    widths; on a narrower terminal each record is a block of ``column: value`` lines wrapped between words. When
    stdout is not a terminal (a pipe, a file) it prints one record per line, ``column=value`` pairs separated by
    two spaces, after a ``# title`` line. Cell text is printed as it is (no markup), so values from devices or
    feeds cannot inject styling.
    """
    console = console or _console("out_console")
    headers = [_plain(c.header) for c in table.columns]
    columns = [[_plain(cell) for cell in c.cells] for c in table.columns]
    rows = list(zip(*columns, strict=True)) if columns else []
    widths = [max(_longest_word([h, *col]), 1) for h, col in zip(headers, columns, strict=True)]
    # borders and padding: 3 characters per column plus one
    if console.is_terminal and sum(w + 3 for w in widths) + 1 <= console.width:
        for column, width in zip(table.columns, widths, strict=True):
            column.min_width = max(column.min_width or 0, width)
            column.overflow = "fold"
        console.print(table)
        return
    if console.is_terminal:
        if table.title:
            console.print(_plain(table.title), markup=False, highlight=False, style="bold")
        for row in rows:
            for h, v in zip(headers, row, strict=True):
                console.print(f"  {h}: {v}", markup=False, highlight=False, soft_wrap=False)
            console.print()
        return
    if table.title:
        console.print(f"# {_plain(table.title)}", markup=False, highlight=False, soft_wrap=True)
    for row in rows:
        line = "  ".join(f"{h}={v}" for h, v in zip(headers, row, strict=True))
        console.print(line, markup=False, highlight=False, soft_wrap=True)
