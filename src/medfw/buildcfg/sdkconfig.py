"""Read an ESP-IDF build configuration strictly: ``sdkconfig``, ``build/config/sdkconfig.json`` or a build directory.

``sdkconfig`` lines are ``CONFIG_NAME=VALUE`` (``y``, a decimal or ``0x`` hex integer, or a double-quoted
string), ``# CONFIG_NAME is not set`` (false), comments and blank lines; anything else is an error naming the
line. ``sdkconfig.json`` (what ``kconfgen`` writes next to the build) maps names without the prefix to
``true``/``false``, integers and strings. A configuration must name its target (``CONFIG_IDF_TARGET``) —
without it the file is not an ESP-IDF configuration.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from medfw._io import read_bytes
from medfw.errors import ConfigError

__all__ = ["MAX_SDKCONFIG", "SdkConfig", "SdkValue", "load_config", "parse_sdkconfig", "parse_sdkconfig_json"]

SdkValue = bool | int | str
MAX_SDKCONFIG = 4 * 1024 * 1024

_NAME = r"[A-Z0-9_]+"
_SET_RE = re.compile(rf"^CONFIG_({_NAME})=(.*)$")
_UNSET_RE = re.compile(rf"^# CONFIG_({_NAME}) is not set$")
_VERSION_RE = re.compile(r"^# Espressif IoT Development Framework \(ESP-IDF\) (\S+) Project Configuration$")
_STRING_RE = re.compile(r'^"((?:[^"\\]|\\.)*)"$')
_INT_RE = re.compile(r"^-?\d+$")
_HEX_RE = re.compile(r"^0[xX][0-9a-fA-F]+$")


@dataclass(frozen=True)
class SdkConfig:
    """One configuration: values by symbol name (without ``CONFIG_``), and where each was read."""

    path: str
    format: str
    values: Mapping[str, SdkValue]
    lines: Mapping[str, int] = field(default_factory=dict)
    idf_version: str | None = None

    @property
    def target(self) -> str:
        """The chip the configuration is for (``CONFIG_IDF_TARGET``)."""
        return str(self.values.get("IDF_TARGET", ""))

    def enabled(self, name: str) -> bool:
        """True when boolean symbol ``name`` is ``y`` (absent and ``not set`` are false)."""
        return self.values.get(name) is True

    def integer(self, name: str) -> int | None:
        """The integer value of ``name`` (``None`` when absent or not an integer)."""
        v = self.values.get(name)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    def where(self, name: str) -> str:
        """``path:line`` of ``name`` (or just the path)."""
        line = self.lines.get(name)
        return f"{self.path}:{line}" if line else self.path


def _value(raw: str, *, path: str, line: int, name: str) -> SdkValue:
    if raw == "y":
        return True
    if raw == "n":
        return False
    m = _STRING_RE.match(raw)
    if m:
        return re.sub(r"\\(.)", r"\1", m.group(1))
    if _HEX_RE.match(raw):
        return int(raw, 16)
    if _INT_RE.match(raw):
        return int(raw)
    raise ConfigError(
        f"line {line}: CONFIG_{name} has value {raw!r}: expected y, an integer or a quoted string",
        path=path,
        field=f"CONFIG_{name}",
    )


def _require_target(values: Mapping[str, SdkValue], path: str) -> None:
    target = values.get("IDF_TARGET")
    if not isinstance(target, str) or not target:
        raise ConfigError(
            "not an ESP-IDF configuration: CONFIG_IDF_TARGET is missing", path=path, field="CONFIG_IDF_TARGET"
        )


def parse_sdkconfig(text: str, *, path: str = "sdkconfig") -> SdkConfig:
    """Parse ``sdkconfig`` text.

    Raises:
        ConfigError: a line that is not a setting, a comment or blank (line number and text named), a symbol
            set twice to different values, or no ``CONFIG_IDF_TARGET``.
    """
    values: dict[str, SdkValue] = {}
    lines: dict[str, int] = {}
    idf_version: str | None = None
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if "\x00" in raw:
            raise ConfigError(f"line {no}: NUL byte", path=path, field=f"line {no}")
        m = _SET_RE.match(line)
        unset = _UNSET_RE.match(line)
        if m:
            name, value = m.group(1), _value(m.group(2), path=path, line=no, name=m.group(1))
        elif unset:
            name, value = unset.group(1), False
        elif not line or line.startswith("#"):
            v = _VERSION_RE.match(line)
            idf_version = v.group(1) if v else idf_version
            continue
        else:
            shown = line if len(line) <= 80 else line[:77] + "..."
            raise ConfigError(f"line {no} is not a CONFIG_NAME=VALUE setting: {shown!r}", path=path, field=f"line {no}")
        if name in values:
            if values[name] == value:
                continue  # kconfgen repeats some deprecated aliases verbatim
            raise ConfigError(
                f"line {no}: CONFIG_{name} is set to {value!r}, but line {lines[name]} set it to {values[name]!r}",
                path=path,
                field=f"CONFIG_{name}",
            )
        values[name] = value
        lines[name] = no
    _require_target(values, path)
    return SdkConfig(path=path, format="sdkconfig", values=values, lines=lines, idf_version=idf_version)


def parse_sdkconfig_json(data: bytes, *, path: str = "sdkconfig.json") -> SdkConfig:
    """Parse ``sdkconfig.json``.

    Raises:
        ConfigError: not JSON, not an object, a value that is not a boolean, integer or string, or no
            ``IDF_TARGET``.
    """
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ConfigError(f"not JSON: {e}", path=path) from None
    if not isinstance(doc, dict):
        raise ConfigError("sdkconfig.json must be a JSON object", path=path)
    values: dict[str, SdkValue] = {}
    for name, value in doc.items():
        if not isinstance(name, str) or not re.fullmatch(_NAME, name):
            raise ConfigError(f"{name!r} is not a Kconfig symbol name", path=path, field=str(name))
        if not isinstance(value, bool | int | str):
            raise ConfigError(
                f"{name} is {type(value).__name__}: expected a boolean, an integer or a string", path=path, field=name
            )
        values[name] = value
    _require_target(values, path)
    return SdkConfig(path=path, format="sdkconfig.json", values=values)


def _from_build_dir(directory: Path) -> Path:
    """The configuration a build directory (or a project directory) was built with."""
    for candidate in (directory / "config" / "sdkconfig.json", directory / "sdkconfig"):
        if candidate.is_file():
            return candidate
    pd = directory / "project_description.json"
    if pd.is_file():
        try:
            desc = json.loads(read_bytes(pd, max_length=MAX_SDKCONFIG, what="project_description.json"))
        except ValueError:
            raise ConfigError("project_description.json is not JSON", path=str(pd)) from None
        config = desc.get("config_file") if isinstance(desc, dict) else None
        if isinstance(config, str) and config:
            path = Path(config) if os.path.isabs(config) else directory / config
            if path.is_file():
                return path
            raise ConfigError("the build's config_file does not exist", path=str(path), field="config_file")
    raise ConfigError(
        "no build configuration here: expected config/sdkconfig.json, sdkconfig or project_description.json",
        path=str(directory),
    )


def load_config(path: str | os.PathLike[str]) -> SdkConfig:
    """Load ``sdkconfig``, ``sdkconfig.json`` (a ``.json`` name or JSON content) or a build directory's configuration.

    Raises:
        InputError: the file is missing or too large.
        ConfigError: malformed (see :func:`parse_sdkconfig` / :func:`parse_sdkconfig_json`).
    """
    p = Path(path)
    if p.is_dir():
        p = _from_build_dir(p)
    data = read_bytes(p, max_length=MAX_SDKCONFIG, what="build configuration")
    if p.suffix == ".json" or data.lstrip()[:1] in (b"{", b"["):
        return parse_sdkconfig_json(data, path=str(p))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", path=str(p)) from None
    return parse_sdkconfig(text, path=str(p))
