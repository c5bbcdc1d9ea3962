"""MCUboot layout parser: header, TLV areas, trailer, versions; strict errors; fuzzing."""

from __future__ import annotations

import contextlib
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgtool.image import Image as ImgtoolImage

from medfw.errors import IntegrityError, MalformedImageError, MedfwError, UsageError
from medfw.image.mcuboot import ImageVersion, parse_image, trailer_size
from medfw.image.mcuboot_format import BOOT_MAGIC, boot_magic

HDR = struct.Struct("<IIHHIIBBHII")


def _vec(vectors: Path, name: str) -> bytes:
    return (vectors / "mcuboot" / name).read_bytes()


def _image(
    *,
    body: bytes = b"\xaa" * 16,
    hdr_size: int = 32,
    prot: bytes = b"",
    prot_size: int | None = None,
    unprot: bytes | None = None,
    magic: int = 0x96F3B83D,
) -> bytes:
    """Assemble an (unsigned) image from raw parts for layout tests."""
    if unprot is None:
        unprot = struct.pack("<HH", 0x6907, 4 + 36) + struct.pack("<HH", 0x10, 32) + bytes(32)
    header = HDR.pack(magic, 0, hdr_size, len(prot) if prot_size is None else prot_size, len(body), 0, 1, 2, 3, 4, 0)
    return header + bytes(hdr_size - 32) + body + prot + unprot


def _sec_cnt(value: int) -> bytes:
    return struct.pack("<HH", 0x6908, 12) + struct.pack("<HHI", 0x50, 4, value)


class TestVersion:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("1", (1, 0, 0, 0)),
            ("1.2", (1, 2, 0, 0)),
            ("1.2.3", (1, 2, 3, 0)),
            ("1.2.3+4", (1, 2, 3, 4)),
            ("255.255.65535+4294967295", (255, 255, 65535, 4294967295)),
            ("0.0.0", (0, 0, 0, 0)),
        ],
    )
    def test_parse(self, text: str, expected: tuple[int, int, int, int]) -> None:
        v = ImageVersion.parse(text)
        assert (v.major, v.minor, v.revision, v.build) == expected

    @pytest.mark.parametrize(
        "text", ["", "1.", "01.2", "1.2.3.4", "1.2+3", "a.b.c", "256.0.0", "1.256", "1.0.65536", "-1"]
    )
    def test_parse_rejects(self, text: str) -> None:
        with pytest.raises(UsageError):
            ImageVersion.parse(text)

    def test_auto_security_counter_matches_imgtool(self) -> None:
        assert ImageVersion.parse("2.3.4").auto_security_counter() == 0x02030004
        img = ImgtoolImage(
            version=ImgtoolImage().version._replace(major=7, minor=1, revision=300), security_counter="auto"
        )
        assert ImageVersion(7, 1, 300).auto_security_counter() == img.security_counter

    def test_str(self) -> None:
        assert str(ImageVersion.parse("1.2")) == "1.2.0+0"


class TestTrailerLayout:
    @pytest.mark.parametrize("align", [1, 2, 4, 8, 16, 32])
    @pytest.mark.parametrize("max_align", [8, 16, 32])
    @pytest.mark.parametrize("overwrite_only", [False, True])
    def test_trailer_size_matches_imgtool(self, align: int, max_align: int, overwrite_only: bool) -> None:
        ref = ImgtoolImage(align=align, max_align=max_align, overwrite_only=overwrite_only)
        expected = ref._trailer_size(align, 128, overwrite_only, None, False, 0)
        assert trailer_size(align=align, max_align=max_align, overwrite_only=overwrite_only) == expected

    @pytest.mark.parametrize("max_align", [8, 16, 32])
    def test_magic_matches_imgtool(self, max_align: int) -> None:
        assert boot_magic(max_align) == ImgtoolImage(max_align=max_align).boot_magic

    def test_known_sizes(self) -> None:
        assert trailer_size() == 128 * 3 + 8 * 4 + 16
        assert boot_magic() == BOOT_MAGIC

    @pytest.mark.parametrize(("kwargs"), [{"align": 3}, {"max_align": 4}, {"max_sectors": 0}])
    def test_bad_options(self, kwargs: dict[str, int]) -> None:
        with pytest.raises(UsageError):
            trailer_size(**kwargs)


class TestGoldenVectors:
    def test_ecdsa_p256_confirm(self, vectors: Path) -> None:
        img = parse_image(_vec(vectors, "ecdsa-p256-confirm.bin"))
        assert img.header.hdr_size == 0x200
        assert img.header.img_size == 1500
        assert img.header.protect_tlv_size == 12
        assert str(img.version) == "2.0.1+0"
        assert img.security_counter == 0x02000001
        assert [t.name for t in img.protected_tlvs] == ["SEC_CNT"]
        assert [t.name for t in img.tlvs] == ["SHA256", "KEYHASH", "ECDSA_SIG"]
        assert img.hashed_size == 0x200 + 1500 + 12
        assert img.size == 0x2000
        assert img.trailer is not None
        assert img.trailer.confirmed
        assert img.trailer.max_align == 8
        assert img.trailer.offset == 0x2000 - 16
        assert img.trailer.copy_done == 0xFF

    def test_ecdsa_p384_no_protected_area(self, vectors: Path) -> None:
        img = parse_image(_vec(vectors, "ecdsa-p384.bin"))
        assert img.header.protect_tlv_size == 0
        assert img.protected_tlvs == ()
        assert img.security_counter is None
        assert [(t.name, len(t.value)) for t in img.tlvs][:2] == [("SHA384", 48), ("KEYHASH", 48)]
        assert str(img.version) == "0.9.0+77"
        assert img.trailer is None
        assert img.tlv_end == img.size

    def test_rsa_padded_test_trailer(self, vectors: Path) -> None:
        img = parse_image(_vec(vectors, "rsa-3072-pad.bin"))
        assert img.security_counter == 12
        assert img.trailer is not None
        assert not img.trailer.confirmed
        assert img.trailer.image_ok == 0xFF
        sig = img.tlvs[-1]
        assert sig.name == "RSA3072_PSS"
        assert len(sig.value) == 384

    def test_tlv_offsets_point_at_headers(self, vectors: Path) -> None:
        data = _vec(vectors, "ed25519-sc7.bin")
        img = parse_image(data)
        for tlv in (*img.protected_tlvs, *img.tlvs):
            t, n = struct.unpack_from("<HH", data, tlv.offset)
            assert (t, n) == (tlv.type, len(tlv.value))
            assert data[tlv.value_offset : tlv.value_offset + n] == tlv.value

    def test_accepts_bytearray_and_memoryview(self, vectors: Path) -> None:
        data = _vec(vectors, "ed25519-sc7.bin")
        assert parse_image(bytearray(data)) == parse_image(data) == parse_image(memoryview(data))


class TestMalformed:
    def _err(self, data: bytes) -> MedfwError:
        """The error for ``data``: MalformedImageError only when it is not an MCUboot image at all."""
        with pytest.raises((MalformedImageError, IntegrityError)) as info:
            parse_image(data)
        not_the_format = info.value.field in ("header", "ih_magic")
        assert isinstance(info.value, MalformedImageError if not_the_format else IntegrityError), info.value
        return info.value

    def test_minimal_image_parses(self) -> None:
        img = parse_image(_image())
        assert [t.name for t in img.tlvs] == ["SHA256"]

    def test_truncated_header(self) -> None:
        e = self._err(_image()[:31])
        assert (e.field, e.offset) == ("header", 0)

    def test_wrong_magic(self) -> None:
        e = self._err(_image(magic=0x12345678))
        assert (e.field, e.offset) == ("ih_magic", 0)
        assert "0x12345678" in e.message

    def test_legacy_magic_named(self) -> None:
        assert "legacy" in self._err(_image(magic=0x96F3B83C)).message

    def test_header_size_too_small(self) -> None:
        data = bytearray(_image())
        struct.pack_into("<H", data, 8, 16)
        e = self._err(bytes(data))
        assert (e.field, e.offset) == ("ih_hdr_size", 8)

    def test_body_truncated(self) -> None:
        e = self._err(_image()[:40])
        assert (e.field, e.offset) == ("ih_img_size", 12)

    def test_tlv_area_missing(self) -> None:
        data = _image()
        e = self._err(data[: 32 + 16])
        assert e.offset == 48
        assert "truncated" in e.message

    def test_wrong_tlv_magic(self) -> None:
        data = bytearray(_image())
        data[48] ^= 0xFF
        e = self._err(bytes(data))
        assert (e.field, e.offset) == ("TLV area magic", 48)

    def test_tlv_total_too_large(self) -> None:
        data = bytearray(_image())
        struct.pack_into("<H", data, 50, 200)
        e = self._err(bytes(data))
        assert e.field == "TLV area tlv_tot"

    def test_tlv_total_too_small(self) -> None:
        data = bytearray(_image())
        struct.pack_into("<H", data, 50, 2)
        assert self._err(bytes(data)).field == "TLV area tlv_tot"

    def test_tlv_overruns_area(self) -> None:
        data = bytearray(_image())
        struct.pack_into("<H", data, 54, 33)
        e = self._err(bytes(data))
        assert (e.field, e.offset) == ("TLV length", 54)

    def test_tlv_header_overruns_area(self) -> None:
        unprot = struct.pack("<HH", 0x6907, 6) + b"\x10\x00"
        e = self._err(_image(unprot=unprot))
        assert (e.field, e.offset) == ("TLV header", 52)

    def test_security_counter_not_allowed_unprotected(self) -> None:
        unprot = struct.pack("<HH", 0x6907, 12) + struct.pack("<HHI", 0x50, 4, 9)
        e = self._err(_image(unprot=unprot))
        assert (e.field, e.offset) == ("TLV type", 52)
        assert "SEC_CNT" in e.message

    def test_protected_area(self) -> None:
        img = parse_image(_image(prot=_sec_cnt(5)))
        assert img.security_counter == 5
        assert img.hashed_size == 32 + 16 + 12

    def test_protected_size_mismatch(self) -> None:
        e = self._err(_image(prot=_sec_cnt(5), prot_size=16))
        assert (e.field, e.offset) == ("protected TLV area tlv_tot", 50)

    def test_protected_wrong_magic(self) -> None:
        prot = struct.pack("<HH", 0x6907, 12) + struct.pack("<HHI", 0x50, 4, 5)
        e = self._err(_image(prot=prot))
        assert (e.field, e.offset) == ("protected TLV area magic", 48)

    def test_protected_area_without_header_size(self) -> None:
        e = self._err(_image(prot=_sec_cnt(5), prot_size=0))
        assert (e.field, e.offset) == ("ih_protect_tlv_size", 10)

    def test_security_counter_wrong_length(self) -> None:
        prot = struct.pack("<HH", 0x6908, 10) + struct.pack("<HHH", 0x50, 2, 5)
        e = self._err(_image(prot=prot))
        assert e.field == "SEC_CNT"

    def test_duplicate_security_counter(self) -> None:
        tlv = struct.pack("<HHI", 0x50, 4, 5)
        prot = struct.pack("<HH", 0x6908, 20) + tlv + tlv
        e = self._err(_image(prot=prot))
        assert (e.field, e.offset) == ("SEC_CNT", 60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    with contextlib.suppress(MalformedImageError, IntegrityError):
        parse_image(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.integers(0, 400))
def test_fuzz_valid_magic_random_sizes(tail: bytes, hdr_size: int, prot_size: int, img_size: int) -> None:
    data = HDR.pack(0x96F3B83D, 0, hdr_size, prot_size, img_size, 0, 0, 0, 0, 0, 0) + tail
    try:
        img = parse_image(data)
    except IntegrityError:
        return
    assert img.tlv_end <= len(data)
    assert img.hashed_size <= img.tlv_end
