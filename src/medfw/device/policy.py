"""Check a real unit's eFuses (``espefuse summary --format json``) against a security policy.

The summary is espefuse's JSON: one object per eFuse name with ``raw_value`` (hex), ``value``, ``writeable``,
``readable`` and layout fields. Two eFuse families are understood (see :mod:`medfw.device.chips`): the classic
ESP32 (``ABS_DONE_1``, ``BLOCK2``, ``JTAG_DISABLE``, ``UART_DOWNLOAD_DIS``, ``FLASH_CRYPT_CNT``) and the
key-purpose chips (ESP32-S2/S3/C3/C5/C6/H2/P4: ``SECURE_BOOT_EN``, ``BLOCK_KEYn`` + ``KEY_PURPOSE_n``,
``SECURE_BOOT_KEY_REVOKEi``, ``DIS_PAD_JTAG``/``DIS_USB_JTAG``, ``DIS_DOWNLOAD_MODE``/``ENABLE_SECURITY_DOWNLOAD``,
``SPI_BOOT_CRYPT_CNT``). The rules and their options are documented in ``docs/device.md``; the shipped default
policy is ``medfw/device/policies/default.yml``. Pure apart from :meth:`Policy.load`.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from medfw._io import read_bytes
from medfw.chips import CHIPS, EfuseFamily
from medfw.device.efuse_summary import EfuseSummary
from medfw.errors import ConfigError, InputError

__all__ = [
    "KEY_PURPOSE_CHIPS",
    "POLICY_CHIPS",
    "RULES",
    "EfuseSummary",
    "Policy",
    "PolicyReport",
    "RuleResult",
    "RuleStatus",
    "check_summary",
]

#: the chips the rules understand and their eFuse family, from the chip registry
POLICY_CHIPS: dict[str, EfuseFamily] = {
    name: c.efuse.family
    for name, c in CHIPS.items()
    if c.efuse is not None and c.efuse.family in (EfuseFamily.CLASSIC, EfuseFamily.KEY_PURPOSE)
}
#: chips with the key-purpose eFuse layout
KEY_PURPOSE_CHIPS = tuple(name for name, family in POLICY_CHIPS.items() if family is EfuseFamily.KEY_PURPOSE)
_CLASSIC_CHIP = next(name for name, family in POLICY_CHIPS.items() if family is EfuseFamily.CLASSIC)
_MAX_POLICY = 256 * 1024
_DIGEST_PURPOSES = {9: 0, 10: 1, 11: 2}  # KEY_PURPOSE value -> secure boot digest index


class RuleStatus(enum.StrEnum):
    """The verdict of one rule."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    SKIPPED = "skipped"
    NOT_APPLICABLE = "not_applicable"


PASS, FAIL, SKIPPED, NOT_APPLICABLE = RuleStatus.PASS, RuleStatus.FAIL, RuleStatus.SKIPPED, RuleStatus.NOT_APPLICABLE


def _popcount(value: int) -> int:
    return bin(value).count("1")


@dataclass(frozen=True)
class RuleResult:
    """The verdict on one rule: ``pass``, ``fail``, ``skipped`` (disabled) or ``not_applicable``."""

    rule: str
    title: str
    status: RuleStatus
    efuses: tuple[str, ...]
    detail: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", RuleStatus(self.status))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "rule": self.rule,
            "title": self.title,
            "status": self.status,
            "efuses": list(self.efuses),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class PolicyReport:
    """All rule results for one summary."""

    chip: str
    family: str
    results: tuple[RuleResult, ...]

    @property
    def passed(self) -> bool:
        """True when no rule failed."""
        return all(r.status != FAIL for r in self.results)

    @property
    def failed(self) -> tuple[RuleResult, ...]:
        """The failing rules."""
        return tuple(r for r in self.results if r.status == FAIL)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "chip": self.chip,
            "family": self.family,
            "ok": self.passed,
            "failed": [r.rule for r in self.failed],
            "rules": [r.to_dict() for r in self.results],
        }


# -- rules --------------------------------------------------------------------------------------------------

_Rule = Callable[[EfuseSummary, EfuseFamily, Mapping[str, Any]], tuple[RuleStatus, tuple[str, ...], str]]


def _flag(ok: bool) -> RuleStatus:
    return PASS if ok else FAIL


def _secure_boot(s: EfuseSummary, fam: EfuseFamily, _o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    name = "ABS_DONE_1" if fam is EfuseFamily.CLASSIC else "SECURE_BOOT_EN"
    on = bool(s.raw(name))
    detail = f"{name} = {int(on)}"
    if fam is EfuseFamily.CLASSIC and not on and s.has("ABS_DONE_0") and s.raw("ABS_DONE_0"):
        detail += " (only Secure Boot v1, ABS_DONE_0, is enabled)"
    return _flag(on), (name,), detail


def _key_blocks(s: EfuseSummary) -> list[int]:
    return [n for n in range(6) if s.has(f"KEY_PURPOSE_{n}") and s.has(f"BLOCK_KEY{n}")]


def _key_digests(s: EfuseSummary, fam: EfuseFamily, o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    need = int(o.get("min_keys", 1))
    if fam is EfuseFamily.CLASSIC:
        burned = s.raw("BLOCK2") != 0
        protected = not s.writeable("BLOCK2")
        good = int(burned and protected)
        detail = (
            f"BLOCK2 {'holds a digest' if burned else 'is empty'}, {'write-protected' if protected else 'writable'}"
        )
        if need > 1:
            detail += "; ESP32 holds a single key digest"
        return _flag(good >= need), ("BLOCK2",), detail
    names: list[str] = []
    notes: list[str] = []
    good = 0
    for n in _key_blocks(s):
        index = _DIGEST_PURPOSES.get(s.raw(f"KEY_PURPOSE_{n}"))
        if index is None:
            continue
        revoke = f"SECURE_BOOT_KEY_REVOKE{index}"
        names += [f"KEY_PURPOSE_{n}", f"BLOCK_KEY{n}", revoke]
        burned = s.raw(f"BLOCK_KEY{n}") != 0
        revoked = s.has(revoke) and bool(s.raw(revoke))
        protected = not s.writeable(f"BLOCK_KEY{n}")
        ok = burned and not revoked and protected
        good += ok
        state = (
            "ok"
            if ok
            else ", ".join(
                w for w, bad in (("empty", not burned), ("revoked", revoked), ("writable", not protected)) if bad
            )
        )
        notes.append(f"BLOCK_KEY{n} = SECURE_BOOT_DIGEST{index}: {state}")
    if not names:
        names = [f"KEY_PURPOSE_{n}" for n in _key_blocks(s)]
        notes.append("no key block has a SECURE_BOOT_DIGESTn purpose")
    notes.append(f"{good} usable digest(s), {need} required")
    return _flag(good >= need), tuple(names), "; ".join(notes)


def _unused_slots(s: EfuseSummary, fam: EfuseFamily, _o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    if fam is EfuseFamily.CLASSIC:
        return NOT_APPLICABLE, ("BLOCK2",), "ESP32 has a single key digest slot (BLOCK2)"
    blocks = _key_blocks(s)
    used = {_DIGEST_PURPOSES[p] for n in blocks if (p := s.raw(f"KEY_PURPOSE_{n}")) in _DIGEST_PURPOSES}
    if not used:
        return NOT_APPLICABLE, (), "no key digest is burned at all (see key_digest_burned)"
    programmable = [
        n
        for n in blocks
        if s.raw(f"KEY_PURPOSE_{n}") == 0
        and s.raw(f"BLOCK_KEY{n}") == 0
        and s.writeable(f"KEY_PURPOSE_{n}")
        and s.writeable(f"BLOCK_KEY{n}")
    ]
    names: list[str] = []
    open_slots: list[str] = []
    for i in range(3):
        if i in used:
            continue
        revoke = f"SECURE_BOOT_KEY_REVOKE{i}"
        names.append(revoke)
        if not (s.has(revoke) and s.raw(revoke)) and programmable:
            open_slots.append(f"digest slot {i} is neither revoked nor unreachable")
    if open_slots:
        names += [f"KEY_PURPOSE_{n}" for n in programmable]
        free = ", ".join(f"BLOCK_KEY{n}" for n in programmable)
        return FAIL, tuple(names), "; ".join(open_slots) + f" (writable key blocks: {free})"
    if not names:
        return PASS, (), "all three digest slots hold keys"
    return PASS, tuple(names), "every unused digest slot is revoked or no key block can be programmed"


def _jtag(s: EfuseSummary, fam: EfuseFamily, _o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    names = (
        ("JTAG_DISABLE",)
        if fam is EfuseFamily.CLASSIC
        else tuple(n for n in ("DIS_PAD_JTAG", "DIS_USB_JTAG") if s.has(n) or n == "DIS_PAD_JTAG")
    )
    values = {n: s.raw(n) for n in names}
    return _flag(all(values.values())), names, ", ".join(f"{n} = {v}" for n, v in values.items())


def _download(s: EfuseSummary, fam: EfuseFamily, o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    if fam is EfuseFamily.CLASSIC:
        v = s.raw("UART_DOWNLOAD_DIS")
        return _flag(bool(v)), ("UART_DOWNLOAD_DIS",), f"UART_DOWNLOAD_DIS = {v}"
    disabled = s.raw("DIS_DOWNLOAD_MODE")
    secure = s.raw("ENABLE_SECURITY_DOWNLOAD") if s.has("ENABLE_SECURITY_DOWNLOAD") else 0
    allow_secure = bool(o.get("allow_secure_download", True))
    ok = bool(disabled) or (allow_secure and bool(secure))
    detail = f"DIS_DOWNLOAD_MODE = {disabled}, ENABLE_SECURITY_DOWNLOAD = {secure}"
    if secure and not disabled and not allow_secure:
        detail += " (secure download mode is not accepted by this policy)"
    return _flag(ok), ("DIS_DOWNLOAD_MODE", "ENABLE_SECURITY_DOWNLOAD"), detail


def _flash_encryption(
    s: EfuseSummary, fam: EfuseFamily, _o: Mapping[str, Any]
) -> tuple[RuleStatus, tuple[str, ...], str]:
    name = "FLASH_CRYPT_CNT" if fam is EfuseFamily.CLASSIC else "SPI_BOOT_CRYPT_CNT"
    v = s.raw(name)
    on = _popcount(v) % 2 == 1
    return _flag(on), (name,), f"{name} = 0b{v:b} ({_popcount(v)} bit(s) set: {'on' if on else 'off'})"


def _anti_rollback(s: EfuseSummary, fam: EfuseFamily, o: Mapping[str, Any]) -> tuple[RuleStatus, tuple[str, ...], str]:
    need = int(o.get("min_secure_version", 1))
    count = _popcount(s.raw("SECURE_VERSION"))
    writable = s.writeable("SECURE_VERSION")
    names: tuple[str, ...] = ("SECURE_VERSION",)
    problems: list[str] = []
    if count < need:
        problems.append(f"counter {count} is below {need}")
    if not writable:
        problems.append("SECURE_VERSION is write-protected, so the counter can never advance")
    if fam is EfuseFamily.CLASSIC and s.has("CODING_SCHEME"):
        names += ("CODING_SCHEME",)
        if s.raw("CODING_SCHEME") != 0:
            problems.append("CODING_SCHEME is not NONE, so ESP-IDF cannot burn SECURE_VERSION")
    detail = f"SECURE_VERSION counter = {count}" + (": " + "; ".join(problems) if problems else "")
    return _flag(not problems), names, detail


RULES: dict[str, tuple[str, _Rule, frozenset[str]]] = {
    "secure_boot_enabled": ("Secure Boot v2 enabled", _secure_boot, frozenset()),
    "key_digest_burned": ("a key digest burned and not revoked", _key_digests, frozenset({"min_keys"})),
    "unused_digest_slots_locked": ("unused digest slots revoked or write-protected", _unused_slots, frozenset()),
    "jtag_disabled": ("JTAG disabled", _jtag, frozenset()),
    "download_mode_restricted": (
        "ROM download mode disabled or secure",
        _download,
        frozenset({"allow_secure_download"}),
    ),
    "flash_encryption_enabled": ("flash encryption on", _flash_encryption, frozenset()),
    "anti_rollback_enabled": ("anti-rollback enabled", _anti_rollback, frozenset({"min_secure_version"})),
}


@dataclass(frozen=True)
class Policy:
    """Which rules run, with their options. Rules the policy does not list are reported as skipped."""

    rules: Mapping[str, Mapping[str, Any]]

    @classmethod
    def default(cls) -> Policy:
        """The shipped default policy (every rule on)."""
        text = resources.files("medfw.device.policies").joinpath("default.yml").read_text(encoding="utf-8")
        return cls.from_yaml(text, path="default.yml")

    @classmethod
    def load(cls, path: str | Path | None) -> Policy:
        """Load a policy file, or the default when ``path`` is None."""
        if path is None:
            return cls.default()
        raw = read_bytes(path, max_length=_MAX_POLICY, what="policy file")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ConfigError("policy file is not UTF-8 text", path=str(path)) from None
        return cls.from_yaml(text, path=str(path))

    @classmethod
    def from_yaml(cls, text: str, *, path: str | None = None) -> Policy:
        """Parse and validate a policy document.

        Raises:
            ConfigError: bad YAML, wrong version, unknown rule or option, wrong option type.
        """
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"policy is not valid YAML: {e}", path=path) from None
        if not isinstance(doc, dict) or doc.get("version") != 1:
            raise ConfigError("policy must be a mapping with version: 1", path=path, field="version")
        rules = doc.get("rules")
        if not isinstance(rules, dict) or not rules:
            raise ConfigError("policy has no rules", path=path, field="rules")
        unknown_top = set(doc) - {"version", "rules"}
        if unknown_top:
            raise ConfigError(f"unknown policy key {sorted(unknown_top)[0]!r}", path=path, field=sorted(unknown_top)[0])
        parsed: dict[str, dict[str, Any]] = {}
        for rule, raw_options in rules.items():
            if rule not in RULES:
                raise ConfigError(f"unknown rule {rule!r}; known: {', '.join(RULES)}", path=path, field=f"rules.{rule}")
            options = {} if raw_options is None else raw_options
            if not isinstance(options, dict):
                raise ConfigError("rule options must be a mapping", path=path, field=f"rules.{rule}")
            allowed = RULES[rule][2] | {"enabled"}
            for key, value in options.items():
                where = f"rules.{rule}.{key}"
                if key not in allowed:
                    raise ConfigError(f"unknown option {key!r} for rule {rule}", path=path, field=where)
                if key in ("enabled", "allow_secure_download") and not isinstance(value, bool):
                    raise ConfigError(f"{key} must be true or false", path=path, field=where)
                if key in ("min_keys", "min_secure_version") and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0
                ):
                    raise ConfigError(f"{key} must be a non-negative integer", path=path, field=where)
            parsed[rule] = dict(options)
        return cls(parsed)


def check_summary(summary: EfuseSummary, policy: Policy, *, chip: str | None = None) -> PolicyReport:
    """Evaluate every rule of ``policy`` on ``summary``.

    Args:
        chip: the espefuse chip name; when given it must agree with the fields present.

    Raises:
        InputError: unsupported chip, a chip that does not match the summary, or a required eFuse missing.
    """
    family = summary.family()
    if chip is not None:
        name = chip.lower().replace("-", "")
        if name not in POLICY_CHIPS:
            raise InputError(f"unsupported chip {chip!r}; supported: {', '.join(POLICY_CHIPS)}", field="chip")
        if POLICY_CHIPS[name] is not family:
            raise InputError(f"summary does not look like an {name} eFuse read-out", path=summary.path, field="chip")
        chip = name
    else:
        chip = _CLASSIC_CHIP if family is EfuseFamily.CLASSIC else "key-purpose chip"
    results: list[RuleResult] = []
    for rule, (title, fn, _opts) in RULES.items():
        options = policy.rules.get(rule)
        if options is None or options.get("enabled", True) is False:
            results.append(RuleResult(rule, title, SKIPPED, (), "disabled by the policy"))
            continue
        status, names, detail = fn(summary, family, options)
        results.append(RuleResult(rule, title, status, names, detail))
    return PolicyReport(chip=chip, family=family.value, results=tuple(results))
