"""The security rules of an ESP-IDF release build configuration.

Symbol names are those of ESP-IDF v5.4 (``components/bootloader/Kconfig.projbuild``, menus "Bootloader config"
and "Security features"; ``components/esp_https_ota/Kconfig``), the same in every 5.x release since 5.0.
Each rule names the symbols it reads, what it protects and the security property (of the evidence trace
matrix) it serves. A rule that depends on another (anti-rollback needs app rollback, as in Kconfig) is
*blocked* — not passed, and not counted as a second violation — while that one fails.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from medfw.buildcfg.sdkconfig import SdkConfig, SdkValue

__all__ = ["RULES", "Rule", "RuleId", "RuleResult", "Status"]

SECURE_BOOT = "Secure boot: only manufacturer-signed code runs"
SIGNED_UPDATE = "Signed, rollback-protected updates"
PATCHABILITY = "Field patchability without bricking"


class RuleId(enum.StrEnum):
    """The rules of the build-config gate."""

    SECURE_BOOT_V2 = "secure-boot-v2"
    APP_ANTI_ROLLBACK = "app-anti-rollback"
    APP_ROLLBACK = "app-rollback"
    FLASH_ENCRYPTION_RELEASE = "flash-encryption-release"
    JTAG_DISABLED = "jtag-disabled"
    ROM_DOWNLOAD_MODE = "rom-download-mode"
    NO_HTTP_OTA = "no-http-ota"
    NO_INSECURE_ALLOWANCES = "no-insecure-allowances"


class Status(enum.StrEnum):
    """Outcome of one rule."""

    PASS = "pass"  # noqa: S105 - a verdict, not a password
    FAIL = "fail"
    BLOCKED = "blocked"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class RuleResult:
    """One rule's outcome, the symbol values it read, and why."""

    rule: RuleId
    status: Status
    message: str
    symbols: Mapping[str, SdkValue | None] = field(default_factory=dict)
    where: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, with the rule's description."""
        r = RULES[self.rule]
        return {
            "rule": self.rule.value,
            "status": self.status.value,
            "message": self.message,
            "symbols": {f"CONFIG_{k}": v for k, v in self.symbols.items()},
            "where": self.where,
            "protects": r.protects,
            "property": r.property,
            "kconfig": [f"CONFIG_{s}" for s in r.symbols],
        }


Check = Callable[[SdkConfig, Mapping[str, Any]], tuple[bool, str, list[str]]]


@dataclass(frozen=True)
class Rule:
    """A rule: its Kconfig symbols, what it protects, the property it serves, and its check."""

    id: RuleId
    title: str
    symbols: tuple[str, ...]
    protects: str
    property: str
    check: Check
    requires: tuple[RuleId, ...] = ()
    options: Mapping[str, type] = field(default_factory=dict)


def _secure_boot(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    if not c.enabled("SECURE_BOOT"):
        return False, "hardware secure boot is off (CONFIG_SECURE_BOOT is not set)", ["SECURE_BOOT"]
    if not c.enabled("SECURE_BOOT_V2_ENABLED"):
        return (
            False,
            "secure boot is not version 2 (CONFIG_SECURE_BOOT_V2_ENABLED is not set)",
            ["SECURE_BOOT_V2_ENABLED"],
        )
    schemes = {
        "SECURE_SIGNED_APPS_RSA_SCHEME": ("RSA-3072", "SOC_SECURE_BOOT_V2_RSA"),
        "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME": ("ECDSA", "SOC_SECURE_BOOT_V2_ECC"),
    }
    chosen = [s for s in schemes if c.enabled(s)]
    if len(chosen) != 1:
        return False, f"expected one Secure Boot v2 signing scheme, found {len(chosen)}", list(schemes)
    name, soc = schemes[chosen[0]]
    if not c.enabled(soc):
        return False, f"scheme {name} is not supported by {c.target} (CONFIG_{soc} is not set)", [chosen[0], soc]
    if c.enabled("SECURE_BOOT_ECDSA_KEY_LEN_192_BITS"):
        return False, "ECDSA P-192 signing key: use P-256", ["SECURE_BOOT_ECDSA_KEY_LEN_192_BITS"]
    return True, f"Secure Boot v2 with {name}, which {c.target} supports", [chosen[0], soc]


def _anti_rollback(c: SdkConfig, o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    if not c.enabled("BOOTLOADER_APP_ANTI_ROLLBACK"):
        return False, "app anti-rollback is off", ["BOOTLOADER_APP_ANTI_ROLLBACK"]
    svn = c.integer("BOOTLOADER_APP_SECURE_VERSION")
    minimum = int(o.get("min_secure_version", 1))
    syms = ["BOOTLOADER_APP_SECURE_VERSION", "BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD"]
    if svn is None or svn < minimum:
        return False, f"secure version is {svn}, the policy requires at least {minimum}", syms
    bits = c.integer("BOOTLOADER_APP_SEC_VER_SIZE_EFUSE_FIELD")
    if bits is not None and svn > bits:
        return False, f"secure version {svn} does not fit the {bits}-bit eFuse field", syms
    return True, f"anti-rollback on, secure version {svn}" + (f" of {bits}" if bits else ""), syms


def _flag(symbol: str, on: str, off: str) -> Check:
    def check(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
        return (True, on, [symbol]) if c.enabled(symbol) else (False, off, [symbol])

    return check


def _flash_encryption(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    syms = ["SECURE_FLASH_ENC_ENABLED", "SECURE_FLASH_ENCRYPTION_MODE_RELEASE"]
    if not c.enabled("SECURE_FLASH_ENC_ENABLED"):
        return False, "flash encryption is off", syms
    if not c.enabled("SECURE_FLASH_ENCRYPTION_MODE_RELEASE"):
        return False, "flash encryption is in development mode (plaintext re-flashing stays possible)", syms
    return True, "flash encryption on, release mode", syms


def _jtag(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    syms = ["SECURE_BOOT_ALLOW_JTAG", "SECURE_BOOT", "SECURE_FLASH_ENCRYPTION_MODE_RELEASE"]
    if c.enabled("SECURE_BOOT_ALLOW_JTAG"):
        return False, "JTAG is deliberately left enabled (CONFIG_SECURE_BOOT_ALLOW_JTAG)", syms
    if not (c.enabled("SECURE_BOOT") or c.enabled("SECURE_FLASH_ENCRYPTION_MODE_RELEASE")):
        return False, "nothing disables JTAG: the bootloader burns DIS_*JTAG only with secure boot or FE release", syms
    return True, "the bootloader permanently disables JTAG on first boot", syms


def _rom_dl(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    syms = ["SECURE_DISABLE_ROM_DL_MODE", "SECURE_ENABLE_SECURE_ROM_DL_MODE", "SECURE_INSECURE_ALLOW_DL_MODE"]
    if c.enabled("SECURE_DISABLE_ROM_DL_MODE"):
        return True, "UART ROM download mode permanently disabled", syms
    if c.enabled("SECURE_ENABLE_SECURE_ROM_DL_MODE"):
        return True, "UART ROM download mode permanently switched to Secure Download Mode", syms
    return False, "UART ROM download mode stays fully enabled", syms


_HTTP_SYMBOLS = ("ESP_HTTPS_OTA_ALLOW_HTTP", "OTA_ALLOW_HTTP")


def _http(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    on = [s for s in _HTTP_SYMBOLS if c.enabled(s)]
    if on:
        return False, "OTA over plaintext HTTP is allowed (" + ", ".join(f"CONFIG_{s}" for s in on) + ")", on
    return True, "OTA only over HTTPS", list(_HTTP_SYMBOLS)


#: Allowances the insecure-options menu and the development mode offer (JTAG and download mode have own rules).
INSECURE_PATTERNS = (
    re.compile(r"^SECURE_BOOT_ALLOW_(?!JTAG$)\w+$"),
    re.compile(r"^SECURE_FLASH_UART_BOOTLOADER_ALLOW_\w+$"),
    re.compile(r"^SECURE_BOOT_V2_ALLOW_EFUSE_RD_DIS$"),
    re.compile(r"^SECURE_FLASH_REQUIRE_ALREADY_ENABLED$"),
    re.compile(r"^SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE$"),
    re.compile(r"^BOOTLOADER_SKIP_VALIDATE_\w+$"),
    re.compile(r"^ESP_TLS_INSECURE$"),
)


def _insecure(c: SdkConfig, _o: Mapping[str, Any]) -> tuple[bool, str, list[str]]:
    on = sorted(n for n, v in c.values.items() if v is True and any(p.match(n) for p in INSECURE_PATTERNS))
    if c.enabled("SECURE_BOOT_ALLOW_JTAG"):
        # selected by CONFIG_SECURE_BOOT_ALLOW_JTAG, which the jtag-disabled rule reports
        on = [n for n in on if n != "SECURE_FLASH_SKIP_WRITE_PROTECTION_CACHE"]
    if on:
        return False, "insecure allowances enabled: " + ", ".join(f"CONFIG_{s}" for s in on), on
    return True, "no insecure allowance enabled", []


_RULE_LIST = (
    Rule(
        RuleId.SECURE_BOOT_V2,
        "Secure Boot v2 with a scheme the chip supports",
        (
            "SECURE_BOOT",
            "SECURE_BOOT_V2_ENABLED",
            "SECURE_SIGNED_APPS_RSA_SCHEME",
            "SECURE_SIGNED_APPS_ECDSA_V2_SCHEME",
        ),
        "only images signed with the manufacturer's key boot (ROM verifies the bootloader, bootloader the app)",
        SECURE_BOOT,
        _secure_boot,
    ),
    Rule(
        RuleId.APP_ROLLBACK,
        "App rollback enabled",
        ("BOOTLOADER_APP_ROLLBACK_ENABLE",),
        "a new app that does not confirm itself is reverted to the last good slot instead of bricking the unit",
        PATCHABILITY,
        _flag("BOOTLOADER_APP_ROLLBACK_ENABLE", "app rollback on", "app rollback is off"),
    ),
    Rule(
        RuleId.APP_ANTI_ROLLBACK,
        "App anti-rollback with a secure version >= 1",
        ("BOOTLOADER_APP_ANTI_ROLLBACK", "BOOTLOADER_APP_SECURE_VERSION"),
        "an attacker cannot reinstall an older, vulnerable image once a newer one has confirmed",
        SIGNED_UPDATE,
        _anti_rollback,
        requires=(RuleId.APP_ROLLBACK,),
        options={"min_secure_version": int},
    ),
    Rule(
        RuleId.FLASH_ENCRYPTION_RELEASE,
        "Flash encryption in release mode",
        ("SECURE_FLASH_ENC_ENABLED", "SECURE_FLASH_ENCRYPTION_MODE_RELEASE"),
        "firmware and data in flash cannot be read out or replaced with plaintext",
        SECURE_BOOT,
        _flash_encryption,
    ),
    Rule(
        RuleId.JTAG_DISABLED,
        "JTAG not left enabled",
        ("SECURE_BOOT_ALLOW_JTAG",),
        "no debugger can halt the CPU, read memory or bypass the boot checks",
        SECURE_BOOT,
        _jtag,
    ),
    Rule(
        RuleId.ROM_DOWNLOAD_MODE,
        "ROM download mode disabled or secure",
        ("SECURE_DISABLE_ROM_DL_MODE", "SECURE_ENABLE_SECURE_ROM_DL_MODE"),
        "the serial bootloader cannot read flash, write eFuses or load unsigned code into RAM",
        SECURE_BOOT,
        _rom_dl,
    ),
    Rule(
        RuleId.NO_HTTP_OTA,
        "No plaintext-HTTP OTA",
        ("ESP_HTTPS_OTA_ALLOW_HTTP",),
        "update images and metadata are fetched over an authenticated channel",
        SIGNED_UPDATE,
        _http,
    ),
    Rule(
        RuleId.NO_INSECURE_ALLOWANCES,
        "No insecure allowances",
        ("SECURE_BOOT_ALLOW_*", "SECURE_FLASH_UART_BOOTLOADER_ALLOW_*", "BOOTLOADER_SKIP_VALIDATE_*"),
        "none of the protections above is weakened by an option of the 'Potentially insecure options' menu",
        SECURE_BOOT,
        _insecure,
    ),
)

RULES: dict[RuleId, Rule] = {r.id: r for r in _RULE_LIST}
