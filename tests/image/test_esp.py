"""medfw.image.esp: real ESP-IDF images parse as esptool sees them; built images pass esptool; bad input fails."""

from __future__ import annotations

import hashlib
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from esptool.bin_image import LoadFirmwareImage

from medfw.errors import MalformedImageError, UsageError
from medfw.image.esp import CHIPS, AppDesc, BootloaderDesc, EspImage, build_app_image


def _esptool_view(chip: str, data: bytes) -> object:
    return LoadFirmwareImage(chip, data)


@pytest.mark.parametrize(
    ("name", "chip"),
    [
        ("images/esp32app.bin", "esp32"),
        ("images/esp_idf_blink_esp32s2.bin", "esp32s2"),
        ("images/esp32-bootloader.bin", "esp32"),
        ("espsecure/bootloader_unsigned_v2.bin", "esp32"),
    ],
)
def test_real_images_match_esptool(esp_vectors: Path, name: str, chip: str) -> None:
    data = (esp_vectors / name).read_bytes()
    image = EspImage.from_bytes(data, path=name)
    ref = _esptool_view(chip, data)
    assert image.chip == chip
    assert image.chip_id == ref.chip_id  # type: ignore[attr-defined]
    assert [(s.load_addr, s.length, s.file_offset) for s in image.segments] == [
        (s.addr, len(s.data), s.file_offs)
        for s in ref.segments  # type: ignore[attr-defined]
    ]
    assert image.checksum == ref.checksum == ref.calculate_checksum()  # type: ignore[attr-defined]
    assert image.stored_sha256 == ref.stored_digest == ref.calc_digest  # type: ignore[attr-defined]
    assert image.image_length == ref.data_length + 32  # type: ignore[attr-defined]
    assert image.checksum_valid and image.sha256_valid


def test_app_descriptions_of_real_apps(esp_vectors: Path) -> None:
    blink = EspImage.from_bytes((esp_vectors / "images/esp_idf_blink_esp32s2.bin").read_bytes())
    assert blink.app_desc is not None
    assert blink.app_desc.project_name == "blink"
    assert blink.app_desc.version == "qa-test-v5.0-20220830-4-g4532e6"
    assert blink.app_desc.idf_ver == "v5.0-beta1-427-g4532e6e0b2-dirt"
    assert blink.app_desc.date == "Sep 13 2022"
    assert blink.app_desc.time == "19:46:07"
    assert blink.app_desc.app_elf_sha256.hex().startswith("3059e6b55a965865")
    assert blink.secure_version == 0
    assert blink.image_length == 182368 and blink.trailing_length == 0

    app = EspImage.from_bytes((esp_vectors / "images/esp32app.bin").read_bytes())
    assert app.app_desc is not None
    assert (app.app_desc.project_name, app.app_desc.version) == ("app-template", "1cd5752")


def test_bootloader_has_no_app_desc_and_trailing_padding(esp_vectors: Path) -> None:
    data = (esp_vectors / "espsecure/bootloader_unsigned_v2.bin").read_bytes()
    image = EspImage.from_bytes(data)
    assert image.app_desc is None and image.secure_version is None
    assert image.image_length == 30480
    assert image.trailing_length == len(data) - 30480


def test_elf2image_output_parses(esp_vectors: Path, tmp_path: Path) -> None:
    out = tmp_path / "c6.bin"
    elf = str(esp_vectors / "images/esp32c6-appdesc.elf")
    subprocess.run(
        [sys.executable, "-m", "esptool", "--chip", "esp32c6", "elf2image", "--secure-pad-v2", "-o", str(out), elf],
        check=True,
        capture_output=True,
    )
    data = out.read_bytes()
    image = EspImage.from_bytes(data)
    assert image.chip == "esp32c6"
    assert image.image_length == len(data) == 65536  # secure padding ends the image on a 64 KiB page
    assert image.app_desc is not None
    # elf2image writes the ELF file's SHA-256 into app_elf_sha256
    elf_sha = hashlib.sha256((esp_vectors / "images/esp32c6-appdesc.elf").read_bytes()).digest()
    assert image.app_desc.app_elf_sha256 == elf_sha


@pytest.mark.parametrize("chip", sorted(CHIPS))
def test_built_images_pass_esptool(chip: str) -> None:
    data = build_app_image(chip=chip, version="2.0.1", secure_version=7, payload=b"firmware" * 100, size=64 * 1024)
    assert len(data) == 64 * 1024
    ref = _esptool_view(chip, data)
    assert ref.checksum == ref.calculate_checksum()  # type: ignore[attr-defined]
    assert ref.stored_digest == ref.calc_digest  # type: ignore[attr-defined]
    image = EspImage.from_bytes(data)
    assert image.chip == chip and image.secure_version == 7
    assert image.app_desc is not None and image.app_desc.version == "2.0.1"
    assert image.app_desc.app_elf_sha256 == hashlib.sha256(b"firmware" * 100).digest()
    for seg in image.segments:  # flash-mapped segments respect the MMU page congruence
        assert seg.load_addr % 0x10000 == seg.data_offset % 0x10000


def test_built_image_passes_esptool_image_info(tmp_path: Path) -> None:
    path = tmp_path / "app.bin"
    path.write_bytes(build_app_image(version="1.2.3", secure_version=5, project_name="infusion-pump"))
    result = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(path)], check=True, capture_output=True, text=True
    )
    assert result.stdout.count("(valid)") == 2
    assert "Secure version: 5" in result.stdout
    assert "Project name: infusion-pump" in result.stdout
    assert "App version: 1.2.3" in result.stdout


def test_build_without_size_is_minimal_and_deterministic() -> None:
    a = build_app_image(version="1", secure_version=0)
    b = build_app_image(version="1", secure_version=0)
    assert a == b and len(a) % 16 == 0
    assert EspImage.from_bytes(a).image_length == len(a)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"chip": "esp8266"},
        {"size": 100},
        {"size": 1000},
        {"size": 65536 + 8},
        {"secure_version": -1},
        {"version": "x" * 32},
        {"project_name": "a\x00b"},
    ],
)
def test_build_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {"version": "1.0", "secure_version": 1, **kwargs}
    with pytest.raises(UsageError):
        build_app_image(**args)  # type: ignore[arg-type]


def test_app_desc_round_trip() -> None:
    desc = AppDesc(
        secure_version=3,
        version="v1",
        project_name="p",
        time="12:00:00",
        date="Jan  2 2026",
        idf_ver="v5.4",
        app_elf_sha256=bytes(range(32)),
        min_efuse_blk_rev_full=1,
        max_efuse_blk_rev_full=99,
        mmu_page_size=0x10000,
    )
    raw = desc.to_bytes()
    assert len(raw) == 256
    assert AppDesc.from_bytes(raw) == desc


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture
def good() -> bytes:
    return build_app_image(version="1.0", secure_version=1, payload=b"\x5a" * 64)


def _expect(data: bytes, field: str, offset: int | None = None) -> MalformedImageError:
    with pytest.raises(MalformedImageError) as info:
        EspImage.from_bytes(data, path="fw.bin")
    assert info.value.path == "fw.bin"
    assert info.value.field is not None and field in info.value.field
    if offset is not None:
        assert info.value.offset == offset
    return info.value


def test_wrong_magic(good: bytes) -> None:
    _expect(b"\xe8" + good[1:], "magic", 0)


def test_segment_count_out_of_range(good: bytes) -> None:
    _expect(good[:1] + b"\x00" + good[2:], "segment_count", 1)
    _expect(good[:1] + b"\x11" + good[2:], "segment_count", 1)


def test_unknown_chip(good: bytes) -> None:
    _expect(good[:12] + struct.pack("<H", 0x77) + good[14:], "chip_id", 12)


def test_bad_hash_appended_flag(good: bytes) -> None:
    _expect(good[:23] + b"\x02" + good[24:], "hash_appended", 23)


@pytest.mark.parametrize("cut", [0, 10, 23, 24, 30, 200, 300, 360, 380])
def test_truncated(good: bytes, cut: int) -> None:
    with pytest.raises(MalformedImageError):
        EspImage.from_bytes(good[:cut])


def test_truncated_hash(good: bytes) -> None:
    _expect(good[:-1], "sha256")


def test_segment_overrun(good: bytes) -> None:
    bad = bytearray(good)
    struct.pack_into("<I", bad, 24 + 4, 0x100000)
    _expect(bytes(bad), "segment[0].data_len", 28)


def test_unaligned_segment_length(good: bytes) -> None:
    bad = bytearray(good)
    struct.pack_into("<I", bad, 28, 255)
    _expect(bytes(bad), "segment[0].data_len", 28)


def test_checksum_and_hash_mismatch(good: bytes) -> None:
    bad = bytearray(good)
    bad[0x40] ^= 0x01  # inside the app description (segment 0 data)
    err = _expect(bytes(bad), "checksum")
    lenient = EspImage.from_bytes(bytes(bad), strict=False)
    assert not lenient.checksum_valid and lenient.sha256_valid is False
    assert err.offset == len(good) - 33
    bad2 = bytearray(good)
    bad2[-1] ^= 0x01
    _expect(bytes(bad2), "sha256", len(good) - 32)


def test_bad_app_desc_magic_is_not_an_app_desc(good: bytes) -> None:
    with pytest.raises(MalformedImageError) as info:
        AppDesc.from_bytes(b"\x00" * 256, path="x")
    assert info.value.field == "esp_app_desc_t.magic_word"
    with pytest.raises(MalformedImageError):
        AppDesc.from_bytes(b"\x00" * 10)


def _bootloader_like(secure_version: int, version: int) -> bytes:
    """An image whose first (DRAM) segment starts with esp_bootloader_desc_t, checksum and hash recomputed."""
    base = bytearray(build_app_image(chip="esp32c3", version="x", secure_version=0, payload=b"\x01" * 64))
    struct.pack_into("<I", base, 24, 0x3FCD0000)  # segment 0 now loads into DRAM
    desc = struct.pack("<B2sBI32s24s16s", 0x50, b"", secure_version, version, b"v5.4", b"Jan  1 2026 00:00:00", b"")
    base[32 : 32 + 256] = desc + bytes(256 - len(desc))
    image = EspImage.from_bytes(bytes(base), strict=False)
    checksum = 0xEF
    for seg in image.segments:
        for b in base[seg.data_offset : seg.data_offset + seg.length]:
            checksum ^= b
    end = image.image_length - 32
    base[end - 1] = checksum
    base[end:] = hashlib.sha256(base[:end]).digest()
    return bytes(base)


def test_bootloader_desc_parsed_like_esptool(tmp_path: Path) -> None:
    data = _bootloader_like(secure_version=3, version=42)
    image = EspImage.from_bytes(data)
    assert image.app_desc is None and image.bootloader_desc is not None
    assert (image.bootloader_desc.secure_version, image.bootloader_desc.version) == (3, 42)
    assert image.bootloader_desc.idf_ver == "v5.4"
    assert image.to_dict()["bootloader_desc"]["date_time"] == "Jan  1 2026 00:00:00"  # type: ignore[index]
    path = tmp_path / "bl.bin"
    path.write_bytes(data)
    result = subprocess.run(
        [sys.executable, "-m", "esptool", "image-info", str(path)], check=True, capture_output=True, text=True
    )
    assert "Bootloader version: 42" in result.stdout and result.stdout.count("(valid)") == 2


def test_bootloader_desc_errors() -> None:
    with pytest.raises(MalformedImageError, match="truncated"):
        BootloaderDesc.from_bytes(b"\x50" * 10)
    with pytest.raises(MalformedImageError, match="magic") as info:
        BootloaderDesc.from_bytes(b"\x51" + bytes(79), path="bl.bin")
    assert info.value.field == "esp_bootloader_desc_t.magic_byte"
