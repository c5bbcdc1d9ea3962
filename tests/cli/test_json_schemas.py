"""Every command with ``--json`` has a JSON Schema for its result in docs/json/ (and nothing else is there).

The schemas are enforced on real output: ``tests/conftest.py`` validates the result of every ``--json`` command
any test runs against ``docs/json/<group>.<command>.schema.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import jsonschema
import pytest

from medfw.cli import build_parser, main
from medfw.cli._docgen import _subparsers, _walk

from ._json import envelope

DOCS_JSON = Path(__file__).resolve().parents[2] / "docs" / "json"


def _json_commands() -> list[str]:
    parser = build_parser(load_all=True)
    out = []
    for group, gp in _subparsers(parser):
        for path, leaf in _walk(gp, [group]):
            if any("--json" in a.option_strings for a in leaf._actions if isinstance(a, argparse.Action)):
                out.append(".".join(path))
    return sorted(out)


def test_every_json_command_has_a_valid_schema() -> None:
    commands = _json_commands()
    assert len(commands) > 50
    for cmd in commands:
        path = DOCS_JSON / f"{cmd}.schema.json"
        assert path.is_file(), f"no schema for `medfw {cmd.replace('.', ' ')} --json`: {path.name}"
        schema = json.loads(path.read_text(encoding="utf-8"))
        jsonschema.Draft202012Validator.check_schema(schema)


def test_no_schema_without_a_command() -> None:
    known = {f"{c}.schema.json" for c in _json_commands()} | {"envelope.schema.json"}
    assert sorted(p.name for p in DOCS_JSON.glob("*.json") if p.name not in known) == []


def test_a_result_that_breaks_its_schema_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The check the test suite applies is real: a result whose fields have the wrong type is refused."""
    out = tmp_path / "k.pem"
    assert main(["keys", "generate", "--type", "ecdsa-p256", "--out", str(out), "--json"]) == 0
    result = envelope(capsys.readouterr().out)["result"]
    schema = json.loads((DOCS_JSON / "keys.generate.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(result, schema)
    broken = {**result, "type": 256}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_a_result_field_its_schema_does_not_name_is_caught() -> None:
    """The suite-wide check (``tests/conftest.py``) also refuses fields a schema does not document."""
    from conftest import _undocumented  # the suite's own conftest (tests/ is on sys.path)

    schema = json.loads((DOCS_JSON / "ota.device.list.schema.json").read_text(encoding="utf-8"))
    row = {"id": "d1", "model": "pump", "group": "default", "last_status": "rejected"}
    assert _undocumented([row], schema) == set()
    assert _undocumented([{**row, "last_reason": "hash_mismatch"}], schema) == {"last_reason"}
    keys = json.loads((DOCS_JSON / "keys.generate.schema.json").read_text(encoding="utf-8"))
    assert _undocumented({"key": "k.pem", "secret": "x"}, keys) == {"secret"}
