"""MCUboot verification: imgtool-made images, tamper detection (every byte), key matching, fuzzing."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgtool.main import imgtool

from medfw.crypto.keys import PublicKey, load_private_key, load_public_key_bytes, public_key_pem
from medfw.crypto.signer import FileSigner
from medfw.errors import IntegrityError, MalformedImageError, MedfwError, SignatureError, UsageError, VerificationError
from medfw.image.mcuboot import key_hash, parse_image, sign_image, verify_image

KEY_TYPES = ["rsa-3072", "ecdsa-p256", "ecdsa-p384", "ed25519"]
GOLDEN = [
    ("ed25519-sc7.bin", "ed25519", 7, "1.2.3+4"),
    ("ecdsa-p256-confirm.bin", "ecdsa-p256", 0x02000001, "2.0.1+0"),
    ("ecdsa-p384.bin", "ecdsa-p384", None, "0.9.0+77"),
    ("rsa-3072-pad.bin", "rsa-3072", 12, "3.1.4+0"),
]


def _key(vectors: Path, kt: str) -> Path:
    return vectors / "mcuboot" / f"key-{kt}.pem"


def _pub(vectors: Path, kt: str) -> PublicKey:
    return load_private_key(_key(vectors, kt)).public_key()


def _imgtool_sign(tmp_path: Path, key: Path, payload: bytes, opts: list[str]) -> bytes:
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(payload)
    result = CliRunner().invoke(imgtool, ["sign", "-k", str(key), *opts, str(src), str(out)])
    assert result.exit_code == 0, result.output
    return out.read_bytes()


def _rebuild(image: bytes, tlvs: list[tuple[int, bytes]]) -> bytes:
    """Replace the unprotected TLV area of a signed image (the hash does not cover it)."""
    end = parse_image(image).hashed_size
    body = b"".join(struct.pack("<HH", t, len(v)) + v for t, v in tlvs)
    return image[:end] + struct.pack("<HH", 0x6907, 4 + len(body)) + body


@pytest.mark.parametrize(("name", "kt", "counter", "version"), GOLDEN)
def test_golden_vectors_verify(vectors: Path, name: str, kt: str, counter: int | None, version: str) -> None:
    data = (vectors / "mcuboot" / name).read_bytes()
    result = verify_image(data, [_pub(vectors, kt)])
    assert result.image.security_counter == counter
    assert str(result.image.version) == version
    assert result.key_hash == key_hash(_pub(vectors, kt), result.hash_name)
    assert result.hash_name == ("sha384" if kt == "ecdsa-p384" else "sha256")
    assert result.to_dict()["ok"] is True


@pytest.mark.parametrize(("name", "kt", "counter", "version"), GOLDEN)
def test_golden_vectors_reject_other_keys(vectors: Path, name: str, kt: str, counter: int | None, version: str) -> None:
    data = (vectors / "mcuboot" / name).read_bytes()
    others = [_pub(vectors, k) for k in KEY_TYPES if k != kt]
    with pytest.raises(SignatureError) as info:
        verify_image(data, others)
    assert info.value.field == "KEYHASH"


def test_trusted_key_among_others(vectors: Path) -> None:
    data = (vectors / "mcuboot" / "ecdsa-p256-confirm.bin").read_bytes()
    keys = [_pub(vectors, k) for k in KEY_TYPES]
    assert verify_image(data, keys).key_type == "ecdsa-p256"


def test_public_key_pem_is_enough(vectors: Path) -> None:
    pub = load_public_key_bytes(public_key_pem(_pub(vectors, "rsa-3072")))
    verify_image((vectors / "mcuboot" / "rsa-3072-pad.bin").read_bytes(), [pub])


def test_no_keys_is_usage_error(vectors: Path) -> None:
    with pytest.raises(UsageError):
        verify_image((vectors / "mcuboot" / "ecdsa-p384.bin").read_bytes(), [])


@pytest.mark.parametrize("kt", KEY_TYPES)
@pytest.mark.parametrize(
    "opts",
    [
        ["-S", "0x10000", "--pad-header"],
        ["-S", "0x10000", "--pad-header", "-s", "auto", "--align", "8", "--confirm"],
        ["-S", "0x10000", "--pad-header", "-s", "1", "--max-align", "32", "--pad", "-R", "0"],
    ],
    ids=["plain", "confirm", "maxalign32"],
)
def test_medfw_verifies_fresh_imgtool_images(tmp_path: Path, vectors: Path, kt: str, opts: list[str]) -> None:
    data = _imgtool_sign(tmp_path, _key(vectors, kt), b"\x42" * 3000, ["-H", "0x200", "-v", "5.6.7+8", *opts])
    result = verify_image(data, [_pub(vectors, kt)])
    assert str(result.image.version) == "5.6.7+8"
    if "--confirm" in opts:
        assert result.image.trailer is not None
        assert result.image.trailer.confirmed
    if "--max-align" in opts:
        assert result.image.trailer is not None
        assert result.image.trailer.max_align == 32


def test_imgtool_full_public_key_tlv(tmp_path: Path, vectors: Path) -> None:
    for kt in KEY_TYPES:
        data = _imgtool_sign(
            tmp_path,
            _key(vectors, kt),
            b"p" * 500,
            ["-H", "0x20", "--pad-header", "-v", "1.0.0", "-S", "0x8000", "--public-key-format", "full"],
        )
        assert "PUBKEY" in [t.name for t in parse_image(data).tlvs]
        verify_image(data, [_pub(vectors, kt)])
        others = [_pub(vectors, k) for k in KEY_TYPES if k != kt]
        with pytest.raises(SignatureError):
            verify_image(data, others)


def test_imgtool_padded_ecdsa_signature(tmp_path: Path, vectors: Path) -> None:
    opts = ["-H", "0x20", "--pad-header", "-v", "1.0.0", "-S", "0x8000", "--pad-sig"]
    # --pad-sig pads the DER signature with zeros to 72 bytes (MCUboot < 1.5); retry until padding is present.
    for _ in range(20):
        data = _imgtool_sign(tmp_path, _key(vectors, "ecdsa-p256"), b"q" * 64, opts)
        sig = parse_image(data).tlvs[-1]
        if sig.value[1] + 2 < len(sig.value):
            break
    assert len(sig.value) == 72
    verify_image(data, [_pub(vectors, "ecdsa-p256")])
    if sig.value[1] + 2 < len(sig.value):
        bad = bytearray(data)
        bad[sig.value_offset + 71] = 0x01  # non-zero bytes after the DER structure
        with pytest.raises(SignatureError):
            verify_image(bytes(bad), [_pub(vectors, "ecdsa-p256")])


def test_imgtool_ed25519_sha512(tmp_path: Path, vectors: Path) -> None:
    opts = ["-H", "0x20", "--pad-header", "-v", "1.0.0", "-S", "0x8000", "--sha", "512"]
    data = _imgtool_sign(tmp_path, _key(vectors, "ed25519"), b"r" * 300, opts)
    result = verify_image(data, [_pub(vectors, "ed25519")])
    assert result.hash_name == "sha512"
    assert len(result.key_hash) == 64


def test_imgtool_ed25519_pure(tmp_path: Path, vectors: Path) -> None:
    opts = ["-H", "0x20", "--pad-header", "-v", "1.0.0", "-S", "0x8000", "--pure"]
    data = _imgtool_sign(tmp_path, _key(vectors, "ed25519"), b"s" * 300, opts)
    result = verify_image(data, [_pub(vectors, "ed25519")])
    assert result.pure
    bad = bytearray(data)
    bad[40] ^= 0x80
    with pytest.raises(VerificationError):
        verify_image(bytes(bad), [_pub(vectors, "ed25519")])


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_every_single_byte_flip_is_rejected(vectors: Path, kt: str) -> None:
    """Header, header padding, body, protected TLVs, hash, KEYHASH, signature: no byte may change."""
    signer = FileSigner.from_file(str(_key(vectors, kt)))
    image = sign_image(bytes(range(48)), signer, version="1.2.3+4", header_size=48, pad_header=True, security_counter=9)
    img = parse_image(image)
    assert img.tlv_end == len(image)
    assert len(img.protected_tlvs) == 1
    keys = [signer.public_key()]
    verify_image(image, keys)
    for pos in range(len(image)):
        for mask in (0x01, 0x80, 0xFF):
            tampered = bytearray(image)
            tampered[pos] ^= mask
            with pytest.raises(MedfwError):
                verify_image(bytes(tampered), keys)


def test_flip_classes(vectors: Path) -> None:
    """Where a flip lands decides the error: layout → malformed (exit 2), content → verification (exit 1)."""
    signer = FileSigner.from_file(str(_key(vectors, "ed25519")))
    image = sign_image(b"\x00" * 64, signer, version="1.0.0", header_size=32, pad_header=True, security_counter=1)
    img = parse_image(image)
    keys = [signer.public_key()]

    def err(pos: int) -> MedfwError:
        t = bytearray(image)
        t[pos] ^= 0x01
        with pytest.raises(MedfwError) as info:
            verify_image(bytes(t), keys)
        return info.value

    assert isinstance(err(0), MalformedImageError)  # magic
    assert isinstance(err(40), VerificationError)  # body
    sec = img.protected_tlvs[0]
    assert isinstance(err(sec.value_offset), VerificationError)  # security counter value
    hash_tlv, keyhash, sig = img.tlvs
    e = err(hash_tlv.value_offset)
    assert isinstance(e, VerificationError)
    assert (e.field, e.offset) == ("SHA256", hash_tlv.value_offset)
    assert isinstance(err(keyhash.value_offset + 5), SignatureError)
    e = err(sig.value_offset + 10)
    assert isinstance(e, SignatureError)
    assert e.field == "ED25519"


class TestTlvRules:
    @pytest.fixture
    def parts(self, vectors: Path) -> tuple[bytes, list[tuple[int, bytes]], PublicKey]:
        data = (vectors / "mcuboot" / "ed25519-sc7.bin").read_bytes()
        tlvs = [(t.type, t.value) for t in parse_image(data).tlvs]
        return data, tlvs, _pub(vectors, "ed25519")

    def test_no_signature(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(SignatureError, match="not signed"):
            verify_image(_rebuild(data, tlvs[:2]), [pub])

    def test_no_hash(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(SignatureError, match="no hash"):
            verify_image(_rebuild(data, tlvs[1:]), [pub])

    def test_two_hashes(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(IntegrityError, match="more than one hash"):
            verify_image(_rebuild(data, [tlvs[0], *tlvs]), [pub])

    def test_hash_wrong_length(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(IntegrityError):
            verify_image(_rebuild(data, [(0x10, tlvs[0][1][:31]), *tlvs[1:]]), [pub])

    def test_no_keyhash(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(SignatureError, match="no signing key"):
            verify_image(_rebuild(data, [tlvs[0], tlvs[2]]), [pub])

    def test_keyhash_wrong_length(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(IntegrityError):
            verify_image(_rebuild(data, [tlvs[0], (0x01, tlvs[1][1] + b"\x00"), tlvs[2]]), [pub])

    def test_signature_type_must_fit_key(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(SignatureError, match="does not fit"):
            verify_image(_rebuild(data, [tlvs[0], tlvs[1], (0x22, tlvs[2][1])]), [pub])

    def test_bad_trusted_signature_fails_even_if_another_verifies(
        self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]
    ) -> None:
        data, tlvs, pub = parts
        forged = (0x24, bytes(64))
        with pytest.raises(SignatureError):
            verify_image(_rebuild(data, [*tlvs, tlvs[1], forged]), [pub])

    def test_untrusted_signature_is_skipped(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        other = ed25519.Ed25519PrivateKey.generate().public_key()
        extra = [(0x01, key_hash(other)), (0x24, bytes(64))]
        assert verify_image(_rebuild(data, [*extra, *tlvs]), [pub]).signature_tlv.name == "ED25519"

    def test_sig_pure_must_be_one(self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]) -> None:
        data, tlvs, pub = parts
        with pytest.raises(IntegrityError):
            verify_image(_rebuild(data, [*tlvs, (0x25, b"\x02")]), [pub])

    def test_encrypted_flag_set_afterwards_breaks_the_hash(
        self, parts: tuple[bytes, list[tuple[int, bytes]], PublicKey]
    ) -> None:
        data, _tlvs, pub = parts
        enc = bytearray(data)
        struct.pack_into("<I", enc, 16, 0x4)
        with pytest.raises(VerificationError, match="ENCRYPTED flag") as info:
            verify_image(bytes(enc), [pub])
        assert info.value.exit_code == 1 and info.value.field == "SHA256"

    def test_hash_is_over_header_body_and_protected_area(self, vectors: Path) -> None:
        data = (vectors / "mcuboot" / "ecdsa-p256-confirm.bin").read_bytes()
        img = parse_image(data)
        assert img.tlvs[0].value == hashlib.sha256(data[: 0x200 + 1500 + 12]).digest()


def test_wrong_key_type_for_p384_image(vectors: Path) -> None:
    """A P-256 key can never match a SHA-384 image: verification fails (exit 1), nothing crashes."""
    data = (vectors / "mcuboot" / "ecdsa-p384.bin").read_bytes()
    with pytest.raises(SignatureError):
        verify_image(data, [_pub(vectors, "ecdsa-p256")])


def test_truncated_images(vectors: Path) -> None:
    data = (vectors / "mcuboot" / "ed25519-sc7.bin").read_bytes()
    pub = _pub(vectors, "ed25519")
    for cut in (0, 10, 31):
        with pytest.raises(MalformedImageError):  # not even a header: not an MCUboot image
            verify_image(data[:cut], [pub])
    for cut in (32, 100, 0x200 + 1500, 0x200 + 1500 + 6, len(data) - 1):
        with pytest.raises(IntegrityError):  # a recognised image cut short does not verify
            verify_image(data[:cut], [pub])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes_raise_only_medfw_errors(vectors: Path, data: bytes) -> None:
    pub = _pub(vectors, "ed25519")
    with pytest.raises(MedfwError):
        verify_image(data, [pub])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    edits=st.lists(st.tuples(st.integers(0, 2300), st.integers(0, 255)), min_size=1, max_size=6),
    cut=st.integers(0, 2300),
)
def test_fuzz_mutated_image_raises_only_medfw_errors(vectors: Path, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray((vectors / "mcuboot" / "ed25519-sc7.bin").read_bytes())
    for pos, value in edits:
        if pos < len(data):
            data[pos] = value
    mutated = bytes(data[: max(cut, 1)]) if cut < len(data) else bytes(data)
    try:
        verify_image(mutated, [_pub(vectors, "ed25519"), _pub(vectors, "ecdsa-p256")])
    except MedfwError:
        return
    # Anything that still verifies must be the original signed content (changes outside the signed bytes only).
    original = (vectors / "mcuboot" / "ed25519-sc7.bin").read_bytes()
    img = parse_image(mutated)
    assert mutated[: img.tlv_end] == original[: img.tlv_end]
