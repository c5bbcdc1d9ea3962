"""The eFuse model: write-once bits with ESP-IDF's secure-boot, revocation and anti-rollback fields.

Every field is stored by its real eFuse name (``SECURE_BOOT_EN``, ``BLOCK_KEY0``, ``KEY_PURPOSE_0``,
``SECURE_VERSION``, …, the rows of each chip's module in :mod:`medfw.chips`). Burning ORs bits in: a burned bit
never clears, asking for a value that would clear one is refused, and a field whose ``WR_DIS`` bit is burned cannot be
written at all. The anti-rollback counter is ESP-IDF's thermometer code: its value is the number of set bits in
the lowest ``width`` bits, and advancing it burns only the new bits.

:class:`Efuses` is pure (no I/O); :meth:`Efuses.to_dict` / :meth:`Efuses.from_dict` give the JSON persisted in a
device directory, and :meth:`Efuses.to_espefuse_summary` the shape of ``espefuse summary --format json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medfw.chips import FieldDef
from medfw.device.chips import ChipSpec, EfuseFamily, get_chip
from medfw.device.errors import EfuseWriteError
from medfw.errors import DeviceError

__all__ = ["FORMAT", "KEY_PURPOSE_DIGEST0", "Efuses", "KeySlot"]

FORMAT = "medfw-efuse/1"
KEY_PURPOSE_USER = 0
KEY_PURPOSE_DIGEST0 = 9  # SECURE_BOOT_DIGEST0; DIGEST1 = 10, DIGEST2 = 11
_SINGLE_KEY_DIGEST = "BLOCK_KEY0_HI_128"  # ESP32-C2: the secure boot digest half of the one key block
_CODING_SCHEMES = {0: "NONE (BLK1-3 len=256 bits)", 1: "3/4 (BLK1-3 len=192 bits)", 2: "REPEAT (BLK1-3 len=128 bits)"}
_KEY_PURPOSE_NAMES = {0: "USER", 9: "SECURE_BOOT_DIGEST0", 10: "SECURE_BOOT_DIGEST1", 11: "SECURE_BOOT_DIGEST2"}


@dataclass(frozen=True)
class KeySlot:
    """One secure-boot key digest slot.

    Attributes:
        index: digest index (0..2), the ``i`` of ``SECURE_BOOT_KEY_REVOKEi``.
        digest: the burned SHA-256 public key digest, or None when the slot is empty.
        revoked: the slot's revoke bit is burned.
        block: the eFuse block holding the digest (``BLOCK_KEY0``, ``BLOCK2``), or None.
    """

    index: int
    digest: bytes | None
    revoked: bool
    block: str | None

    @property
    def usable(self) -> bool:
        """True when the slot holds a digest that is not revoked."""
        return self.digest is not None and not self.revoked


def _popcount(value: int) -> int:
    return bin(value).count("1")


class Efuses:
    """The eFuse bank of one chip. Mutating methods burn bits; nothing ever clears one."""

    def __init__(self, chip: ChipSpec, values: dict[str, int] | None = None) -> None:
        self.chip = chip
        self._fields: dict[str, FieldDef] = {f.name: f for f in chip.fields}
        self._values: dict[str, int] = dict.fromkeys(self._fields, 0)
        for name, value in (values or {}).items():
            if name not in self._fields:
                raise DeviceError(f"unknown eFuse {name!r} for {chip.name}", field=name)
            if not 0 <= value < (1 << self._fields[name].bit_len):
                raise DeviceError(f"eFuse {name} value out of range", field=name)
            self._values[name] = value

    def copy(self) -> Efuses:
        """An independent copy (for what-if checks such as a revocation dry run)."""
        return Efuses(self.chip, dict(self._values))

    # -- raw access ---------------------------------------------------------------------------------------

    def field(self, name: str) -> FieldDef:
        """Return the definition of eFuse ``name``."""
        try:
            return self._fields[name]
        except KeyError:
            raise DeviceError(f"unknown eFuse {name!r} for {self.chip.name}", field=name) from None

    def get(self, name: str) -> int:
        """Return the raw value of eFuse ``name`` (byte fields as a big-endian integer of their bytes)."""
        self.field(name)
        return self._values[name]

    def get_bytes(self, name: str) -> bytes:
        """Return a ``bytes:N`` field's bytes."""
        f = self.field(name)
        return self._values[name].to_bytes(f.bit_len // 8, "big")

    def is_write_protected(self, name: str) -> bool:
        """True when the field's ``WR_DIS`` bit is burned."""
        bit = self.field(name).wr_dis_bit
        return bit is not None and bool(self._values["WR_DIS"] >> bit & 1)

    def burn(self, name: str, value: int) -> None:
        """Burn ``value`` into field ``name`` (bits already burned stay burned).

        Raises:
            EfuseWriteError: the field is write-protected, or ``value`` lacks a bit that is already burned.
        """
        f = self.field(name)
        if not 0 <= value < (1 << f.bit_len):
            raise EfuseWriteError(f"value does not fit eFuse {name} ({f.bit_len} bits)", field=name)
        old = self._values[name]
        if old | value == old:
            return
        if self.is_write_protected(name):
            raise EfuseWriteError(f"eFuse {name} is write-protected", field=name, reason="write_protected")
        if old & ~value:
            raise EfuseWriteError(
                f"eFuse {name}: burned bits cannot be cleared (0x{old:x} -> 0x{value:x})",
                field=name,
                reason="cannot_clear_bits",
            )
        self._values[name] = old | value

    def burn_bytes(self, name: str, data: bytes) -> None:
        """Burn a ``bytes:N`` field."""
        f = self.field(name)
        if not f.is_bytes or len(data) != f.bit_len // 8:
            raise EfuseWriteError(f"eFuse {name} takes {f.bit_len // 8} bytes", field=name)
        self.burn(name, int.from_bytes(data, "big"))

    def write_protect(self, name: str) -> None:
        """Burn the ``WR_DIS`` bit of ``name`` (this protects every field sharing that bit, as on silicon)."""
        bit = self.field(name).wr_dis_bit
        if bit is None:
            raise EfuseWriteError(f"eFuse {name} has no write-disable bit", field=name)
        self.burn("WR_DIS", self._values["WR_DIS"] | (1 << bit))

    # -- secure boot --------------------------------------------------------------------------------------

    @property
    def secure_boot_enabled(self) -> bool:
        """Secure Boot v2 is enabled (``SECURE_BOOT_EN``, or ``ABS_DONE_1`` on ESP32)."""
        name = "ABS_DONE_1" if self.chip.family is EfuseFamily.CLASSIC else "SECURE_BOOT_EN"
        return bool(self._values[name])

    def enable_secure_boot(self) -> None:
        """Burn the Secure Boot v2 enable bit."""
        self.burn("ABS_DONE_1" if self.chip.family is EfuseFamily.CLASSIC else "SECURE_BOOT_EN", 1)

    def key_slots(self) -> list[KeySlot]:
        """Return every digest slot of the chip, burned or not, in index order."""
        if self.chip.family is EfuseFamily.SINGLE_KEY:
            hi = self.get_bytes(_SINGLE_KEY_DIGEST)
            burned = any(hi)
            return [KeySlot(0, hi if burned else None, False, "BLOCK_KEY0" if burned else None)]
        if self.chip.family is EfuseFamily.CLASSIC:
            block2 = self.get_bytes("BLOCK2")
            burned = any(block2)
            return [KeySlot(0, block2 if burned else None, False, "BLOCK2" if burned else None)]
        slots: list[KeySlot] = []
        for i in range(self.chip.digest_slots):
            revoked = bool(self._values[f"SECURE_BOOT_KEY_REVOKE{i}"])
            block = self._digest_block(i)
            digest = self.get_bytes(f"BLOCK_KEY{block}") if block is not None else None
            slots.append(KeySlot(i, digest, revoked, f"BLOCK_KEY{block}" if block is not None else None))
        return slots

    def _digest_block(self, index: int) -> int | None:
        digest0 = self.chip.purpose_digest0 or KEY_PURPOSE_DIGEST0
        for n in range(self.chip.key_blocks):
            if self._values[f"KEY_PURPOSE_{n}"] == digest0 + index:
                return n
        return None

    def trusted_digests(self) -> list[bytes]:
        """Return the burned, non-revoked key digests in slot order (the bootloader's trust anchors)."""
        return [s.digest for s in self.key_slots() if s.usable and s.digest is not None]

    def burn_key_digest(self, digest: bytes) -> int:
        """Burn ``digest`` into the next free digest slot and write-protect it (as ``espefuse burn-key-digest``).

        Returns:
            The digest index used.

        Raises:
            EfuseWriteError: no free slot or key block is left, or the digest is not 32 bytes.
        """
        if len(digest) != 32:
            raise EfuseWriteError("a secure boot key digest is 32 bytes (SHA-256)", field="digest")
        if self.chip.family is EfuseFamily.SINGLE_KEY:
            # as espefuse burn-key-digest on ESP32-C2: the first 128 bits go to the high half of BLOCK_KEY0
            if any(self.get_bytes(_SINGLE_KEY_DIGEST)):
                raise EfuseWriteError(
                    f"{self.chip.name} has a single key digest slot and it is burned", field="BLOCK_KEY0"
                )
            self.burn_bytes(_SINGLE_KEY_DIGEST, digest[: self.chip.digest_bytes])
            self.write_protect(_SINGLE_KEY_DIGEST)
            return 0
        if self.chip.family is EfuseFamily.CLASSIC:
            if any(self.get_bytes("BLOCK2")):
                raise EfuseWriteError("ESP32 has a single key digest slot and it is burned", field="BLOCK2")
            self.burn_bytes("BLOCK2", digest)
            self.write_protect("BLOCK2")
            return 0
        index = next((s.index for s in self.key_slots() if s.digest is None and not s.revoked), None)
        if index is None:
            raise EfuseWriteError("no free secure boot digest slot", field="KEY_PURPOSE")
        for n in range(self.chip.key_blocks):
            purpose, block = f"KEY_PURPOSE_{n}", f"BLOCK_KEY{n}"
            if self._values[purpose] == KEY_PURPOSE_USER and self._values[block] == 0:
                if self.is_write_protected(purpose) or self.is_write_protected(block):
                    continue
                self.burn_bytes(block, digest)
                self.burn(purpose, (self.chip.purpose_digest0 or KEY_PURPOSE_DIGEST0) + index)
                self.write_protect(block)
                self.write_protect(purpose)
                return index
        raise EfuseWriteError("no free key block", field="BLOCK_KEY")

    def revoke_digest(self, index: int) -> None:
        """Burn ``SECURE_BOOT_KEY_REVOKE<index>``.

        Raises:
            EfuseWriteError: the chip has no revoke bits or the index is out of range.
        """
        if not self.chip.can_revoke:
            raise EfuseWriteError(f"{self.chip.name} has no key revoke eFuses", field="SECURE_BOOT_KEY_REVOKE")
        if not 0 <= index < self.chip.digest_slots:
            raise EfuseWriteError(f"digest slot {index} does not exist", field="SECURE_BOOT_KEY_REVOKE")
        self.burn(f"SECURE_BOOT_KEY_REVOKE{index}", 1)

    @property
    def sha384_enabled(self) -> bool:
        """P-384 signatures verify: the chip needs no enable bit, or its ``SECURE_BOOT_SHA384_EN`` is burned."""
        name = self.chip.sha384_enable
        return name is None or bool(self._values[name])

    def enable_sha384(self) -> None:
        """Burn the chip's SHA-384 secure-boot enable bit (ESP32-C5 ``SECURE_BOOT_SHA384_EN``).

        Raises:
            EfuseWriteError: the chip has no such bit.
        """
        if self.chip.sha384_enable is None:
            raise EfuseWriteError(f"{self.chip.name} has no SHA-384 secure boot enable eFuse", field="sha384")
        self.burn(self.chip.sha384_enable, 1)

    # -- lock-down bits -----------------------------------------------------------------------------------

    def _lock_fields(self) -> dict[str, tuple[str, ...]]:
        if self.chip.family is EfuseFamily.CLASSIC:
            return {"jtag": ("JTAG_DISABLE",), "download": ("UART_DOWNLOAD_DIS",)}
        if self.chip.family is EfuseFamily.SINGLE_KEY:
            return {"jtag": ("DIS_PAD_JTAG",), "download": ("DIS_DOWNLOAD_MODE",)}
        return {"jtag": ("DIS_PAD_JTAG", "DIS_USB_JTAG"), "download": ("DIS_DOWNLOAD_MODE",)}

    @property
    def jtag_disabled(self) -> bool:
        """Hardware JTAG is permanently disabled."""
        return all(self._values[n] for n in self._lock_fields()["jtag"])

    def disable_jtag(self) -> None:
        """Burn the JTAG disable bits."""
        for n in self._lock_fields()["jtag"]:
            self.burn(n, 1)

    @property
    def download_mode_disabled(self) -> bool:
        """ROM (UART/USB) download mode is disabled."""
        return all(self._values[n] for n in self._lock_fields()["download"])

    def disable_download_mode(self) -> None:
        """Burn the ROM download-mode disable bit."""
        for n in self._lock_fields()["download"]:
            self.burn(n, 1)

    @property
    def _crypt_cnt_name(self) -> str:
        return "FLASH_CRYPT_CNT" if self.chip.family is EfuseFamily.CLASSIC else "SPI_BOOT_CRYPT_CNT"

    @property
    def flash_encryption_enabled(self) -> bool:
        """Flash encryption is on (an odd number of bits of the crypt counter is set)."""
        return _popcount(self._values[self._crypt_cnt_name]) % 2 == 1

    def enable_flash_encryption(self) -> None:
        """Burn the next crypt-counter bit when encryption is off (the model does not encrypt flash contents)."""
        if not self.flash_encryption_enabled:
            cnt = self._values[self._crypt_cnt_name]
            self.burn(self._crypt_cnt_name, cnt | (1 << _popcount(cnt)))

    # -- anti-rollback ------------------------------------------------------------------------------------

    def secure_version(self, width: int) -> int:
        """Return the anti-rollback counter: set bits among the lowest ``width`` bits of ``SECURE_VERSION``."""
        return _popcount(self._values["SECURE_VERSION"] & ((1 << width) - 1))

    def burn_secure_version(self, version: int, width: int) -> bool:
        """Advance the counter to ``version`` by burning only the new thermometer bits.

        Returns:
            True when bits were burned, False when the counter was already at or above ``version``.

        Raises:
            EfuseWriteError: ``version`` exceeds the field width.
        """
        if version > width:
            raise EfuseWriteError(
                f"secure_version {version} exceeds the {width}-bit anti-rollback field",
                field="SECURE_VERSION",
                reason="secure_version_too_large",
            )
        if version <= self.secure_version(width):
            return False
        self.burn("SECURE_VERSION", self._values["SECURE_VERSION"] | ((1 << version) - 1))
        return True

    # -- persistence and export ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-serialisable state (raw values by name; byte fields as hex)."""
        values: dict[str, Any] = {}
        for name, f in self._fields.items():
            values[name] = self.get_bytes(name).hex() if f.is_bytes else self._values[name]
        return {"format": FORMAT, "chip": self.chip.name, "values": values}

    @classmethod
    def from_dict(cls, data: object, *, path: str | None = None) -> Efuses:
        """Rebuild from :meth:`to_dict` output.

        Raises:
            DeviceError: the document is not a medfw eFuse state.
        """
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DeviceError(f"not a {FORMAT} document", path=path, field="format")
        chip = get_chip(str(data.get("chip", "")))
        raw = data.get("values")
        if not isinstance(raw, dict):
            raise DeviceError("eFuse values missing", path=path, field="values")
        fields = {f.name: f for f in chip.fields}
        values: dict[str, int] = {}
        for name, value in raw.items():
            f = fields.get(name)
            if f is None:
                raise DeviceError(f"unknown eFuse {name!r}", path=path, field=f"values.{name}")
            try:
                values[name] = int(value, 16) if f.is_bytes else int(value)
            except (TypeError, ValueError):
                raise DeviceError(f"bad value for eFuse {name}", path=path, field=f"values.{name}") from None
        try:
            return cls(chip, values)
        except DeviceError as e:
            raise e.with_path(path) if path else e from None

    def to_espefuse_summary(self, chip: str | None = None) -> dict[str, dict[str, Any]]:
        """Return this bank in the shape of ``espefuse summary --format json`` (security fields only).

        Args:
            chip: must name this bank's chip when given (a guard for callers that pass it explicitly).
        """
        if chip is not None and get_chip(chip) != self.chip:
            raise DeviceError(f"eFuses are for {self.chip.name}, not {chip}", field="chip")
        out: dict[str, dict[str, Any]] = {}
        for name in sorted(self._fields):
            f = self._fields[name]
            raw = self._values[name]
            out[name] = {
                "bit_len": f.bit_len,
                "block": f.block,
                "category": f.category,
                "description": f.description,
                "efuse_type": f.efuse_type,
                "name": name,
                "pos": f.pos,
                "raw_value": f"0x{raw:0{(f.bit_len + 3) // 4}x}",
                "readable": True,
                "value": self._display_value(f, raw),
                "word": f.word,
                "writeable": not self.is_write_protected(name),
            }
        return out

    def _display_value(self, f: FieldDef, raw: int) -> object:
        if f.is_bytes:
            return " ".join(f"{b:02x}" for b in raw.to_bytes(f.bit_len // 8, "big"))
        if f.efuse_type == "bool":
            return bool(raw)
        if f.name.startswith("KEY_PURPOSE_"):
            return _KEY_PURPOSE_NAMES.get(raw, str(raw))
        if f.name == "CODING_SCHEME":
            return _CODING_SCHEMES.get(raw, str(raw))
        if f.name == "SPI_BOOT_CRYPT_CNT":
            return "Enable" if _popcount(raw) % 2 else "Disable"
        return raw
