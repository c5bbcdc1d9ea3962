"""Build-configuration policies: which rules run, with which options (``policies/default.yml`` ships)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from medfw._io import read_bytes
from medfw.buildcfg.rules import RULES, RuleId
from medfw.errors import ConfigError

__all__ = ["BuildPolicy"]

_MAX_POLICY = 1024 * 1024


@dataclass(frozen=True)
class BuildPolicy:
    """Enabled rules and their options; ``source`` names the file it came from."""

    enabled: tuple[RuleId, ...]
    options: Mapping[RuleId, Mapping[str, Any]] = field(default_factory=dict)
    source: str = "default"

    @classmethod
    def default(cls) -> BuildPolicy:
        """The shipped policy (every rule on, secure version >= 1)."""
        text = resources.files("medfw.buildcfg").joinpath("policies/default.yml").read_text(encoding="utf-8")
        return cls.from_yaml(text, path="default.yml")

    @classmethod
    def load(cls, path: str | Path | None) -> BuildPolicy:
        """Load a policy file, or the default one for ``None``."""
        if path is None:
            return cls.default()
        data = read_bytes(path, max_length=_MAX_POLICY, what="build policy")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("policy is not UTF-8 text", path=str(path)) from None
        return cls.from_yaml(text, path=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, path: str) -> BuildPolicy:
        """Parse a policy document.

        Raises:
            ConfigError: not YAML, wrong version, an unknown rule or option, or an option of the wrong type
                (the message names the file, the field and the value).
        """
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"policy is not YAML: {e}", path=path) from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ConfigError("policy must be a mapping with version: 1", path=path, field="version")
        unknown_top = sorted(set(doc) - {"version", "rules"})
        if unknown_top:
            raise ConfigError(f"unknown key {unknown_top[0]!r}", path=path, field=unknown_top[0])
        rules = doc.get("rules")
        if not isinstance(rules, dict):
            raise ConfigError("rules must be a mapping of rule name to settings", path=path, field="rules")
        enabled: list[RuleId] = []
        options: dict[RuleId, dict[str, Any]] = {}
        known = ", ".join(r.value for r in RuleId)
        for name, raw_settings in rules.items():
            try:
                rid = RuleId(str(name))
            except ValueError:
                raise ConfigError(f"unknown rule {name!r} (known: {known})", path=path, field=f"rules.{name}") from None
            settings = raw_settings if raw_settings is not None else {}
            if not isinstance(settings, dict):
                raise ConfigError("rule settings must be a mapping", path=path, field=f"rules.{name}")
            allowed = {"enabled": bool, **RULES[rid].options}
            for key, value in settings.items():
                kind = allowed.get(str(key))
                if kind is None:
                    raise ConfigError(f"unknown option {key!r} of rule {name}", path=path, field=f"rules.{name}.{key}")
                if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
                    raise ConfigError(
                        f"{key} must be {kind.__name__}, not {value!r}", path=path, field=f"rules.{name}.{key}"
                    )
                if isinstance(value, int) and value < 0:
                    raise ConfigError(f"{key} must not be negative", path=path, field=f"rules.{name}.{key}")
            if settings.get("enabled", True):
                enabled.append(rid)
            options[rid] = {k: v for k, v in settings.items() if k != "enabled"}
        return cls(enabled=tuple(enabled), options=options, source=path)
