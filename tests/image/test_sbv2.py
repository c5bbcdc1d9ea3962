"""medfw.image.sbv2: golden vectors, signing, assembly, bootloader-like verification, bad input."""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from medfw.crypto.keys import KeyType, load_public_key
from medfw.crypto.signer import FileSigner
from medfw.errors import IntegrityError, KeyMaterialError, MalformedImageError, SignatureError, UsageError
from medfw.image import sbv2
from medfw.image.esp import build_app_image

SIGNED = {
    "rsa": "rsa_secure_boot_signing_key.pem",
    "ecdsa256": "ecdsa256_secure_boot_signing_key.pem",
    "ecdsa384": "ecdsa384_secure_boot_signing_key.pem",
}
SCHEMES = {
    "rsa": sbv2.Sbv2Scheme.RSA3072,
    "ecdsa192": sbv2.Sbv2Scheme.ECDSA_P192,
    "ecdsa256": sbv2.Sbv2Scheme.ECDSA_P256,
    "ecdsa384": sbv2.Sbv2Scheme.ECDSA_P384,
}


def _p192_public(path: Path) -> ec.EllipticCurvePublicKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key.public_key()


# ------------------------------------------------------------------------------------------ golden vectors


@pytest.mark.parametrize("name", sorted(SIGNED))
def test_espsecure_signed_vectors_verify_with_their_key(esp_vectors: Path, name: str) -> None:
    vec = esp_vectors / "espsecure"
    data = (vec / f"bootloader_signed_v2_{name}.bin").read_bytes()
    key = load_public_key(vec / SIGNED[name])
    result = sbv2.verify_image(data, public_keys=[key])
    assert (result.block_index, result.key_slot, result.scheme) == (0, 0, SCHEMES[name])
    assert result.signed_length == len(data) - 4096
    assert data[: result.signed_length] == (vec / "bootloader_unsigned_v2.bin").read_bytes()


def test_p192_vector_verifies_by_key_digest(esp_vectors: Path) -> None:
    vec = esp_vectors / "espsecure"
    data = (vec / "bootloader_signed_v2_ecdsa192.bin").read_bytes()
    digest = sbv2.public_key_digest(_p192_public(vec / "ecdsa192_secure_boot_signing_key.pem"))
    assert sbv2.verify_image(data, trusted_digests=[digest]).scheme is sbv2.Sbv2Scheme.ECDSA_P192


def test_golden_key_digests(esp_vectors: Path) -> None:
    vec = esp_vectors / "espsecure"
    rsa_digest = (vec / "rsa_public_key_digest.bin").read_bytes()
    assert sbv2.public_key_digest(load_public_key(vec / "rsa_secure_boot_signing_key.pem")) == rsa_digest
    assert sbv2.public_key_digest(load_public_key(vec / "rsa_secure_boot_signing_pubkey.pem")) == rsa_digest
    p256 = load_public_key(vec / "ecdsa256_secure_boot_signing_key_v2.pem")
    assert sbv2.public_key_digest(p256) == (vec / "ecdsa256_public_key_digest_v2.bin").read_bytes()
    p192 = _p192_public(vec / "ecdsa192_secure_boot_signing_key_v2.pem")
    assert sbv2.public_key_digest(p192) == (vec / "ecdsa192_public_key_digest_v2.bin").read_bytes()


def test_multi_signed_rsa_vector_slots_and_revocation(esp_vectors: Path) -> None:
    vec = esp_vectors / "espsecure"
    data = (vec / "bootloader_multi_signed_v2_rsa.bin").read_bytes()
    keys = [load_public_key(vec / n) for n in ("rsa_secure_boot_signing_key.pem", "rsa_secure_boot_signing_key2.pem")]
    keys.append(load_public_key(vec / "rsa_secure_boot_signing_key3.pem"))
    sector = sbv2.parse_signed_image(data)
    assert [b.key_digest for b in sector.blocks] == [sbv2.public_key_digest(k) for k in keys]
    assert sbv2.verify_image(data, public_keys=keys).block_index == 0
    # slot order is the trusted list's order; block order is the image's
    result = sbv2.verify_image(data, public_keys=[keys[2], keys[1]])
    assert (result.block_index, result.key_slot) == (1, 1)
    result = sbv2.verify_image(data, public_keys=keys, revoked={0, 1})
    assert (result.block_index, result.key_slot) == (2, 2)
    with pytest.raises(SignatureError, match="revoked slot"):
        sbv2.verify_image(data, public_keys=keys, revoked={0, 1, 2})


@pytest.mark.parametrize("name", ["ecdsa192", "ecdsa256", "ecdsa384"])
def test_multi_signed_ecdsa_vectors(esp_vectors: Path, name: str) -> None:
    data = (esp_vectors / "espsecure" / f"bootloader_multi_signed_v2_{name}.bin").read_bytes()
    sector = sbv2.parse_signed_image(data)
    assert len(sector.blocks) == 3 and sector.scheme is SCHEMES[name]
    last = sector.blocks[2].key_digest
    result = sbv2.verify_image(data, trusted_digests=[last])
    assert (result.block_index, result.key_slot) == (2, 0)


def test_pre_calculated_signature_reproduces_espsecure_vector(esp_vectors: Path) -> None:
    vec = esp_vectors / "espsecure"
    unsigned = (vec / "bootloader_unsigned_v2.bin").read_bytes()
    signature = (vec / "pre_calculated_bootloader_signature_rsa.bin").read_bytes()
    key = load_public_key(vec / "rsa_secure_boot_signing_pubkey.pem")
    block = sbv2.assemble_block(sbv2.digest_to_sign(unsigned, KeyType.RSA3072), signature, key)
    signed = sbv2.assemble_signed_image(unsigned, [block])
    assert sbv2.verify_image(signed, public_keys=[key]).block_index == 0
    # only the (randomised) PSS signature differs from espsecure's own signed vector
    golden = (vec / "bootloader_signed_v2_rsa.bin").read_bytes()
    assert signed[: len(unsigned) + 812] == golden[: len(unsigned) + 812]


# ------------------------------------------------------------------------------------------ sign / verify


@pytest.fixture(scope="module")
def image() -> bytes:
    return build_app_image(version="1.0.0", secure_version=2, payload=b"\xa5" * 5000)


@pytest.mark.parametrize("family", ["rsa", "p256", "p384"])
def test_sign_verify_round_trip(request: pytest.FixtureRequest, image: bytes, family: str) -> None:
    signers = request.getfixturevalue(f"{family}_signers")
    signed = sbv2.sign_image(image, signers[:1])
    assert len(signed) % 4096 == 0 and len(signed) == -(-len(image) // 4096) * 4096 + 4096
    assert signed[: len(image)] == image
    assert set(signed[len(image) : len(signed) - 4096]) <= {0xFF}
    assert signed[-4096 + 1216 :] == b"\xff" * (4096 - 1216)
    block = signed[-4096 : -4096 + 1216]
    assert block[0] == 0xE7 and block[1] == (2 if family == "rsa" else 3)
    assert struct.unpack("<I", block[1196:1200])[0] == zlib.crc32(block[:1196])
    assert block[1200:] == b"\x00" * 16
    result = sbv2.verify_image(signed, public_keys=[signers[0].public_key()])
    assert result.block_index == 0
    expected_hash = hashlib.sha384 if family == "p384" else hashlib.sha256
    assert result.image_digest == expected_hash(signed[:-4096]).digest()
    with pytest.raises(SignatureError, match="not trusted"):
        sbv2.verify_image(signed, public_keys=[signers[1].public_key()])


@pytest.mark.parametrize("family", ["rsa", "p256", "p384"])
def test_three_blocks_and_append(request: pytest.FixtureRequest, image: bytes, family: str) -> None:
    signers = request.getfixturevalue(f"{family}_signers")
    one = sbv2.sign_image(image, signers[:1])
    two = sbv2.sign_image(one, signers[1:2], append=True)
    three = sbv2.sign_image(two, signers[2:], append=True)
    assert len(three) == len(one)
    sector = sbv2.parse_signed_image(three)
    assert [b.key_digest for b in sector.blocks] == [sbv2.public_key_digest(s.public_key()) for s in signers]
    assert three[: len(one) - 4096 + 1216] == one[: len(one) - 4096 + 1216]  # block 0 kept as is
    result = sbv2.verify_image(three, public_keys=[signers[2].public_key()])
    assert (result.block_index, result.key_slot) == (2, 0)
    with pytest.raises(UsageError, match="at most 3"):
        sbv2.sign_image(three, signers[:1], append=True)
    direct = sbv2.sign_image(image, signers)
    assert len(sbv2.parse_signed_image(direct).blocks) == 3


def test_sign_refuses_bad_key_sets(image: bytes, rsa_signers: list[FileSigner], p256_signers: list[FileSigner]) -> None:
    with pytest.raises(UsageError):
        sbv2.sign_image(image, [])
    with pytest.raises(UsageError, match="empty"):
        sbv2.sign_image(b"", p256_signers[:1])
    with pytest.raises(KeyMaterialError, match="one scheme"):
        sbv2.sign_image(image, [rsa_signers[0], p256_signers[0]])
    with pytest.raises(KeyMaterialError, match="Ed25519"):
        sbv2.sign_image(image, [FileSigner(ed25519.Ed25519PrivateKey.generate())])
    with pytest.raises(UsageError, match="at most 3"):
        sbv2.sign_image(image, [*p256_signers, p256_signers[0]])
    rsa_signed = sbv2.sign_image(image, rsa_signers[:1])
    with pytest.raises(KeyMaterialError, match="one scheme"):
        sbv2.sign_image(rsa_signed, p256_signers[:1], append=True)
    with pytest.raises(MalformedImageError):
        sbv2.sign_image(image, p256_signers[:1], append=True)  # not signed yet


def test_rsa2048_and_other_curves_are_refused() -> None:
    with pytest.raises(KeyMaterialError, match="RSA-3072"):
        sbv2.scheme_of_key(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key())
    with pytest.raises(KeyMaterialError, match="P-256 or P-384"):
        sbv2.public_key_digest(ec.generate_private_key(ec.SECP521R1()).public_key())
    with pytest.raises(KeyMaterialError):
        sbv2.digest_to_sign(b"x", KeyType.ED25519)


def test_digest_to_sign_pads_and_selects_hash() -> None:
    data = b"\x01" * 5000
    padded = data + b"\xff" * (8192 - 5000)
    assert sbv2.pad_image(data) == padded
    assert sbv2.digest_to_sign(data, KeyType.RSA3072) == hashlib.sha256(padded).digest()
    assert sbv2.digest_to_sign(data, KeyType.ECDSA_P256) == hashlib.sha256(padded).digest()
    assert sbv2.digest_to_sign(data, KeyType.ECDSA_P384) == hashlib.sha384(padded).digest()
    assert sbv2.image_digest(padded) == sbv2.image_digest(data)
    with pytest.raises(UsageError):
        sbv2.image_digest(data, "md5")


# ------------------------------------------------------------------------------------------ remote signing


@pytest.mark.parametrize("encoding", ["der", "raw"])
@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()])
def test_assemble_from_external_ecdsa_signature(image: bytes, encoding: str, curve: ec.EllipticCurve) -> None:
    key = ec.generate_private_key(curve)
    kt = KeyType.ECDSA_P384 if isinstance(curve, ec.SECP384R1) else KeyType.ECDSA_P256
    digest = sbv2.digest_to_sign(image, kt)
    alg: hashes.HashAlgorithm = hashes.SHA384() if kt is KeyType.ECDSA_P384 else hashes.SHA256()
    der = key.sign(digest, ec.ECDSA(utils.Prehashed(alg)))
    if encoding == "raw":
        r, s = utils.decode_dss_signature(der)
        size = curve.key_size // 8
        sig = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    else:
        sig = der
    block = sbv2.assemble_block(digest, sig, key.public_key())
    signed = sbv2.assemble_signed_image(image, [block])
    assert sbv2.verify_image(signed, public_keys=[key.public_key()]).block_index == 0


def test_assemble_from_external_rsa_signature(image: bytes, rsa_signers: list[FileSigner]) -> None:
    key = rsa_signers[0]
    digest = sbv2.digest_to_sign(image, KeyType.RSA3072)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    sig = key._key.sign(digest, pss, utils.Prehashed(hashes.SHA256()))  # type: ignore[union-attr,call-arg,arg-type]
    block = sbv2.assemble_block(digest, sig, key.public_key())
    signed = sbv2.assemble_signed_image(image, [block])
    sbv2.verify_image(signed, public_keys=[key.public_key()])
    with pytest.raises(SignatureError):
        sbv2.assemble_block(digest, sig[:-1] + bytes([sig[-1] ^ 1]), key.public_key())
    with pytest.raises(SignatureError):
        sbv2.assemble_block(digest, sig, rsa_signers[1].public_key())
    with pytest.raises(MalformedImageError):
        sbv2.assemble_block(digest, sig[:100], key.public_key())
    with pytest.raises(MalformedImageError):
        sbv2.assemble_block(digest[:20], sig, key.public_key())


def test_assemble_signed_image_checks(image: bytes, p256_signers: list[FileSigner]) -> None:
    with pytest.raises(UsageError):
        sbv2.assemble_signed_image(image, [])
    other = sbv2.sign_image(image + b"x", p256_signers[:1])
    foreign_block = other[-4096 : -4096 + 1216]
    with pytest.raises(SignatureError, match="image digest"):
        sbv2.assemble_signed_image(image, [foreign_block])
    with pytest.raises(MalformedImageError):
        sbv2.assemble_signed_image(image, [foreign_block[:100]])


# ------------------------------------------------------------------------------------------ bad input


def _resign_crc(block: bytearray) -> bytearray:
    struct.pack_into("<I", block, 1196, zlib.crc32(bytes(block[:1196])))
    return block


@pytest.fixture(scope="module")
def p256_signed(image: bytes, p256_signers: list[FileSigner]) -> bytes:
    return sbv2.sign_image(image, p256_signers[:1])


def test_verify_needs_trusted_keys(p256_signed: bytes) -> None:
    with pytest.raises(UsageError):
        sbv2.verify_image(p256_signed)
    with pytest.raises(UsageError):
        sbv2.verify_image(p256_signed, trusted_digests=[])
    with pytest.raises(UsageError):
        sbv2.verify_image(p256_signed, trusted_digests=[b"\x00" * 20])


def test_c2_truncated_digest_is_accepted(p256_signed: bytes, p256_signers: list[FileSigner]) -> None:
    digest = sbv2.public_key_digest(p256_signers[0].public_key())
    assert sbv2.verify_image(p256_signed, trusted_digests=[digest[:16]]).key_slot == 0


@pytest.mark.parametrize("length", [0, 100, 4096, 8191, 8193])
def test_bad_signed_lengths(p256_signed: bytes, length: int) -> None:
    with pytest.raises(MalformedImageError, match="multiple of 4096"):
        sbv2.parse_signed_image((p256_signed * 2)[:length])


def test_wrong_magic_means_no_block(p256_signed: bytes) -> None:
    bad = bytearray(p256_signed)
    bad[-4096] = 0xE6
    with pytest.raises(IntegrityError, match="no signature block") as info:
        sbv2.parse_signed_image(bytes(bad), path="fw.bin")
    assert info.value.offset == len(bad) - 4096 and info.value.path == "fw.bin"


@pytest.mark.parametrize("version", [0x00, 0x01, 0x04, 0xFF])
def test_wrong_block_version(p256_signed: bytes, version: int) -> None:
    bad = bytearray(p256_signed)
    start = len(bad) - 4096
    bad[start + 1] = version
    bad[start : start + 1216] = _resign_crc(bytearray(bad[start : start + 1216]))
    with pytest.raises(IntegrityError, match="version") as info:
        sbv2.parse_signed_image(bytes(bad))
    assert info.value.offset == start + 1 and info.value.field == "block[0].version"


def test_crc_mismatch_names_offset(p256_signed: bytes) -> None:
    bad = bytearray(p256_signed)
    start = len(bad) - 4096
    bad[start + 1196] ^= 1
    with pytest.raises(IntegrityError, match="CRC") as info:
        sbv2.parse_signed_image(bytes(bad))
    assert info.value.offset == start + 1196


def test_mixed_schemes_rejected(image: bytes, rsa_signers: list[FileSigner], p256_signers: list[FileSigner]) -> None:
    rsa_signed = sbv2.sign_image(image, rsa_signers[:1])
    ec_signed = sbv2.sign_image(image, p256_signers[:1])
    mixed = rsa_signed[:-4096] + rsa_signed[-4096 : -4096 + 1216] + ec_signed[-4096 : -4096 + 1216]
    mixed += b"\xff" * (4096 - 2 * 1216)
    with pytest.raises(IntegrityError, match="mixed signature schemes"):
        sbv2.verify_image(mixed, public_keys=[rsa_signers[0].public_key()])


def test_p256_and_p384_are_mixed_too(
    image: bytes, p256_signers: list[FileSigner], p384_signers: list[FileSigner]
) -> None:
    a = sbv2.sign_image(image, p256_signers[:1])
    b = sbv2.sign_image(image, p384_signers[:1])
    mixed = a[:-4096] + a[-4096 : -4096 + 1216] + b[-4096 : -4096 + 1216] + b"\xff" * (4096 - 2 * 1216)
    with pytest.raises(IntegrityError, match="mixed"):
        sbv2.parse_signed_image(mixed)


def test_curve_id_mismatch_and_point_off_curve(p256_signed: bytes) -> None:
    start = len(p256_signed) - 4096
    bad = bytearray(p256_signed)
    block = bytearray(bad[start : start + 1216])
    block[36] = 3  # P-384 curve id in a SHA-256 block
    bad[start : start + 1216] = _resign_crc(block)
    with pytest.raises(IntegrityError, match="curve id"):
        sbv2.parse_signed_image(bytes(bad))
    block = bytearray(p256_signed[start : start + 1216])
    block[40] ^= 1  # X coordinate: no longer on the curve
    bad[start : start + 1216] = _resign_crc(block)
    with pytest.raises(IntegrityError, match="not a point on the curve"):
        sbv2.parse_signed_image(bytes(bad))


def test_rsa_key_fields_are_checked(image: bytes, rsa_signers: list[FileSigner]) -> None:
    signed = sbv2.sign_image(image, rsa_signers[:1])
    start = len(signed) - 4096
    for offset, what in [(424, "R does not equal"), (808, "M'"), (420, "exponent"), (36 + 383, "modulus")]:
        block = bytearray(signed[start : start + 1216])
        if offset == 420:
            struct.pack_into("<I", block, 420, 2)
        elif offset == 36 + 383:
            block[offset] = 0  # top byte of n (LE): no longer 3072 bits
        else:
            block[offset] ^= 1
        bad = signed[:start] + bytes(_resign_crc(block)) + signed[start + 1216 :]
        with pytest.raises(IntegrityError, match=what):
            sbv2.parse_signed_image(bad)


def test_self_signature_and_digest_mismatch(p256_signed: bytes, p256_signers: list[FileSigner]) -> None:
    start = len(p256_signed) - 4096
    block = bytearray(p256_signed[start : start + 1216])
    block[110] ^= 1  # signature r
    bad = p256_signed[:start] + bytes(_resign_crc(block)) + p256_signed[start + 1216 :]
    with pytest.raises(SignatureError, match="signature does not verify") as info:
        sbv2.verify_image(bad, public_keys=[p256_signers[0].public_key()])
    assert info.value.field == "block[0].signature"
    bad2 = bytearray(p256_signed)
    bad2[100] ^= 1
    with pytest.raises(SignatureError, match="image digest") as info:
        sbv2.verify_image(bytes(bad2), public_keys=[p256_signers[0].public_key()])
    assert info.value.offset == start + 4


def test_block_status_reports_without_raising(p256_signed: bytes) -> None:
    sector = sbv2.parse_signed_image(p256_signed)
    assert sbv2.block_status(sector.blocks[0], p256_signed[:-4096]) == (True, True)
    assert sbv2.block_status(sector.blocks[0], p256_signed[:-4097]) == (False, True)


def test_ecdsa_signature_encoding_errors(image: bytes, p256_signers: list[FileSigner]) -> None:
    digest = sbv2.digest_to_sign(image, KeyType.ECDSA_P256)
    public = p256_signers[0].public_key()
    with pytest.raises(MalformedImageError, match="neither DER"):
        sbv2.assemble_block(digest, b"\x30\x01\x02", public)
    with pytest.raises(SignatureError):
        sbv2.assemble_block(digest, b"\x01" * 64, public)  # raw r||s that does not verify
