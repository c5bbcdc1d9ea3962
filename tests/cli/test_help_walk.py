"""Every leaf command has a description and every argument a help text that names its default."""

from __future__ import annotations

import argparse

from medfw.cli import build_parser
from medfw.cli._docgen import _subparsers, _walk


def _leaves() -> list[tuple[str, argparse.ArgumentParser]]:
    parser = build_parser(load_all=True)
    out = []
    for group, gp in _subparsers(parser):
        for path, leaf in _walk(gp, [group]):
            out.append((" ".join(path), leaf))
    return out


def test_every_leaf_command_has_a_description() -> None:
    leaves = _leaves()
    assert len(leaves) > 50
    missing = [cmd for cmd, leaf in leaves if not (leaf.description or "").strip()]
    assert missing == []


def test_every_argument_has_help_with_its_default() -> None:
    no_help, no_default = [], []
    for cmd, leaf in _leaves():
        for a in leaf._actions:
            if isinstance(a, argparse._HelpAction) or getattr(a, "refused", False):
                continue  # a refused option (a secret in argv) is deliberately undocumented
            label = a.option_strings[0] if a.option_strings else a.dest
            if not a.help or a.help == argparse.SUPPRESS:
                no_help.append(f"{cmd} {label}")
                continue
            shows_default = "default" in a.help
            trivial = a.default in (None, False, [], argparse.SUPPRESS) or isinstance(
                a, argparse._StoreTrueAction | argparse._StoreFalseAction
            )
            if a.option_strings and not trivial and not shows_default:
                no_default.append(f"{cmd} {label} = {a.default!r}")
    assert no_help == []
    assert no_default == []


def test_rollout_error_threshold_shows_its_default() -> None:
    leaf = dict(_leaves())["ota rollout create"]
    text = leaf.format_help()
    assert "--error-threshold" in text and "(default: 10)" in text
