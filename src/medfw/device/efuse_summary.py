"""A parsed ``espefuse summary --format json`` read-out: raw values and writability by eFuse name, and the eFuse
family the field names reveal (what the policy rules of :mod:`medfw.device.policy` read)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from medfw.chips import EfuseFamily
from medfw.errors import InputError

__all__ = ["EfuseSummary"]

_PURPOSE_NAMES = {"SECURE_BOOT_DIGEST0": 9, "SECURE_BOOT_DIGEST1": 10, "SECURE_BOOT_DIGEST2": 11, "USER": 0}


@dataclass(frozen=True)
class _Field:
    raw: int
    writeable: bool


class EfuseSummary:
    """A parsed ``espefuse summary --format json`` document (only what the rules need)."""

    def __init__(self, fields: Mapping[str, _Field], path: str | None) -> None:
        self._fields = dict(fields)
        self.path = path

    @classmethod
    def from_json(cls, data: object, *, path: str | None = None) -> EfuseSummary:
        """Parse espefuse's JSON.

        Raises:
            InputError: not an object of eFuse objects, or a field's ``raw_value`` is malformed.
        """
        if not isinstance(data, dict) or not data:
            raise InputError("not an espefuse summary: expected a JSON object of eFuse fields", path=path)
        fields: dict[str, _Field] = {}
        for name, entry in data.items():
            if not isinstance(entry, dict):
                raise InputError(f"eFuse {name!r} is not an object", path=path, field=str(name))
            fields[str(name)] = _Field(_raw_of(str(name), entry, path), entry.get("writeable", True) is not False)
        return cls(fields, path)

    def has(self, name: str) -> bool:
        """True when the summary holds eFuse ``name``."""
        return name in self._fields

    def raw(self, name: str) -> int:
        """The raw value of ``name``.

        Raises:
            InputError: the summary lacks ``name``.
        """
        try:
            return self._fields[name].raw
        except KeyError:
            raise InputError(f"summary lacks eFuse {name}", path=self.path, field=name) from None

    def writeable(self, name: str) -> bool:
        """Whether espefuse reports ``name`` as still writable."""
        self.raw(name)
        return self._fields[name].writeable

    def family(self) -> EfuseFamily:
        """Detect the eFuse family from the field names.

        Raises:
            InputError: neither family's secure boot fields are present.
        """
        if self.has("ABS_DONE_1") and self.has("BLOCK2"):
            return EfuseFamily.CLASSIC
        if self.has("SECURE_BOOT_EN") and self.has("KEY_PURPOSE_0"):
            return EfuseFamily.KEY_PURPOSE
        raise InputError(
            "cannot tell the chip from this summary (no ABS_DONE_1/BLOCK2 nor SECURE_BOOT_EN/KEY_PURPOSE_0)",
            path=self.path,
            field="SECURE_BOOT_EN",
        )


def _raw_of(name: str, entry: Mapping[str, Any], path: str | None) -> int:
    raw = entry.get("raw_value")
    if isinstance(raw, str):
        try:
            return int(raw, 16)
        except ValueError:
            raise InputError(
                f"eFuse {name}: raw_value {raw!r} is not hex", path=path, field=f"{name}.raw_value"
            ) from None
    value = entry.get("value")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if name.startswith("KEY_PURPOSE_") and isinstance(value, str) and value in _PURPOSE_NAMES:
        return _PURPOSE_NAMES[value]
    raise InputError(f"eFuse {name} has no usable raw_value", path=path, field=f"{name}.raw_value")
