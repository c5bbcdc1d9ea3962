"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

VECTORS = Path(__file__).parent / "vectors"

# Property tests judge results, never speed: on a shared 2-core CI machine input generation and single examples
# can be slow, so neither the deadline nor the generation-speed health check may fail a run.
settings.register_profile("medfw", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("medfw")


@pytest.fixture
def vectors() -> Path:
    """The directory of golden vectors and real test data shipped with the repository."""
    return VECTORS


# --- every --json result a test produces is checked against its command's JSON Schema (docs/json/) ----------------

DOCS_JSON = Path(__file__).resolve().parents[1] / "docs" / "json"


def command_of(args: object) -> str:
    """``group.sub.leaf`` of parsed CLI arguments (each group stores its subcommand in ``<name>_command``)."""
    name = getattr(args, "command_group", None)
    parts = [str(name)]
    while name is not None and (sub := getattr(args, f"{name}_command", None)):
        parts.append(str(sub))
        name = sub
    return ".".join(parts)


def _undocumented(data: object, schema: dict[str, object]) -> set[str]:
    """Fields of a result (or of each item of a list result) its schema does not name in ``properties``."""
    items = schema.get("items")
    if isinstance(data, list) and isinstance(items, dict):
        return set().union(*(_undocumented(item, items) for item in data)) if data else set()
    properties = schema.get("properties")
    if isinstance(data, dict) and isinstance(properties, dict):
        return set(data) - set(properties)
    return set()


@pytest.fixture(autouse=True)
def _check_json_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import json
    import os

    import jsonschema

    import medfw.cli
    from medfw.cli import _common

    real = medfw.cli.finish_json
    record = os.environ.get("MEDFW_JSON_RECORD")

    def finish_json(args: object, exit_code: int) -> None:
        if _common.json_mode(args) and not getattr(args, "_medfw_emitted", False):  # type: ignore[arg-type]
            result = getattr(args, "_medfw_result", {})
            command = command_of(args)
            data = json.loads(json.dumps(result, default=_common._default))
            if record:
                with open(Path(record) / f"{command}.jsonl", "a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"exit_code": exit_code, "result": data}) + "\n")
            schema_path = DOCS_JSON / f"{command}.schema.json"
            if schema_path.is_file():
                schema = json.loads(schema_path.read_text(encoding="utf-8"))
                jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)
                undocumented = _undocumented(data, schema)
                assert not undocumented, f"{schema_path.name} does not document {sorted(undocumented)}"
        real(args, exit_code)  # type: ignore[arg-type]

    monkeypatch.setattr(medfw.cli, "finish_json", finish_json)
