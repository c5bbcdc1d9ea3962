"""Generate the CLI reference (``docs/cli.md``) from the argument parser itself.

``python -m medfw.cli._docgen > docs/cli.md``. A test checks the committed file is current, so the reference
never drifts from the code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator

from medfw.cli import GROUPS, build_parser

__all__ = ["render"]

_WIDTH = 100


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=_WIDTH, max_help_position=32)


def _subparsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _walk(parser: argparse.ArgumentParser, path: list[str]) -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    children = list(_subparsers(parser))
    if not children:
        yield path, parser
        return
    for name, child in children:
        yield from _walk(child, [*path, name])


def render() -> str:
    """Return the Markdown CLI reference."""
    parser = build_parser(load_all=True)
    lines = [
        "# medfw command reference",
        "",
        "Generated from the argument parser (`python -m medfw.cli._docgen > docs/cli.md`).",
        "Exit codes for every command: 0 success, 1 verification failed or policy violated, 2 bad input or usage.",
        'Every command takes `--json`: stdout then carries one envelope, `{"ok", "exit_code", "result"}` or',
        '`{"ok": false, "exit_code", "error": {"message", "path", "field", "offset"}}`; the schema of each',
        "command's `result` is in [json/](json/).",
        "",
    ]
    for group in GROUPS:
        lines += [f"## medfw {group}", "", GROUPS[group], ""]
        group_parser = dict(_subparsers(parser))[group]
        for path, leaf in _walk(group_parser, [group]):
            _fixed_width(leaf)
            lines += [f"### medfw {' '.join(path)}", ""]
            if leaf.description:
                lines += [" ".join(leaf.description.split()), ""]
            help_text = leaf.format_help()
            # drop the description paragraph argparse repeats under the usage line
            if leaf.description:
                help_text = help_text.replace(
                    argparse.HelpFormatter(leaf.prog, width=_WIDTH)._fill_text(leaf.description, _WIDTH, "") + "\n\n",
                    "",
                )
            lines += ["```text", help_text.rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render())
