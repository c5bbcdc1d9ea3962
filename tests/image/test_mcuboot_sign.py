"""MCUboot signing: byte-compatibility with imgtool 2.x, option handling, key hashes, the Signer interface."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from imgtool.main import imgtool

from medfw.crypto.keys import PublicKey, load_private_key
from medfw.crypto.signer import FileSigner, HashName, Signer
from medfw.errors import InputError, KeyMaterialError, SignatureError, UsageError
from medfw.image.mcuboot import key_hash, parse_image, sign_image, trailer_size, verify_image

KEY_TYPES = ["rsa-3072", "ecdsa-p256", "ecdsa-p384", "ed25519"]


def _key(vectors: Path, kt: str) -> Path:
    return vectors / "mcuboot" / f"key-{kt}.pem"


def _imgtool(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(imgtool, list(args))
    return result.exit_code, result.output


def _imgtool_sign(tmp_path: Path, key: Path, payload: bytes, opts: list[str], name: str = "theirs.bin") -> bytes:
    src = tmp_path / "in.bin"
    src.write_bytes(payload)
    out = tmp_path / name
    rc, output = _imgtool("sign", "-k", str(key), *opts, str(src), str(out))
    assert rc == 0, output
    return out.read_bytes()


# (imgtool options, sign_image keyword arguments); every combination also passes -H 0x200 and -v 1.2.3+4
COMBOS: list[tuple[list[str], dict[str, object]]] = [
    (["--pad-header", "-S", "0x10000"], {"pad_header": True, "slot_size": 0x10000}),
    (["--pad-header", "-S", "0x10000", "-s", "7"], {"pad_header": True, "slot_size": 0x10000, "security_counter": 7}),
    (
        ["--pad-header", "-S", "0x10000", "-s", "auto"],
        {"pad_header": True, "slot_size": 0x10000, "security_counter": "auto"},
    ),
    (
        ["--pad-header", "-S", "0x8000", "--pad", "--confirm", "-s", "3"],
        {"pad_header": True, "slot_size": 0x8000, "pad": True, "confirm": True, "security_counter": 3},
    ),
    (["--pad-header", "-S", "0x8000", "--pad"], {"pad_header": True, "slot_size": 0x8000, "pad": True}),
    (
        ["--pad-header", "-S", "0x8000", "--confirm", "--align", "4", "-R", "0"],
        {"pad_header": True, "slot_size": 0x8000, "confirm": True, "align": 4, "erased_val": 0},
    ),
    (
        ["--pad-header", "-S", "0x8000", "--pad", "--align", "16", "--max-align", "16"],
        {"pad_header": True, "slot_size": 0x8000, "pad": True, "align": 16, "max_align": 16},
    ),
    (
        ["--pad-header", "-S", "0x8000", "--pad", "--overwrite-only", "--confirm"],
        {"pad_header": True, "slot_size": 0x8000, "pad": True, "overwrite_only": True, "confirm": True},
    ),
    (
        ["--pad-header", "-S", "0x8000", "--pad", "-M", "32", "--align", "8"],
        {"pad_header": True, "slot_size": 0x8000, "pad": True, "max_sectors": 32, "align": 8},
    ),
    (
        ["--pad-header", "-S", "0x10000", "-L", "0x20000000"],
        {"pad_header": True, "slot_size": 0x10000, "load_addr": 0x20000000},
    ),
    (
        ["--pad-header", "-S", "0x10000", "-F", "0x8000", "--non-bootable"],
        {"pad_header": True, "slot_size": 0x10000, "rom_fixed": 0x8000, "non_bootable": True},
    ),
    (["-S", "0x10000", "-s", "auto"], {"slot_size": 0x10000, "security_counter": "auto", "zero_prefix": True}),
]


def _sign_both(
    tmp_path: Path, vectors: Path, kt: str, opts: list[str], kwargs: dict[str, object], payload: bytes
) -> tuple[bytes, bytes]:
    kw = dict(kwargs)
    if kw.pop("zero_prefix", False):
        payload = bytes(0x200) + payload
    theirs = _imgtool_sign(tmp_path, _key(vectors, kt), payload, ["-H", "0x200", "-v", "1.2.3+4", *opts])
    ours = sign_image(
        payload,
        FileSigner.from_file(str(_key(vectors, kt))),
        version="1.2.3+4",
        header_size=0x200,
        **kw,  # type: ignore[arg-type]
    )
    return ours, theirs


@pytest.mark.parametrize(("opts", "kwargs"), COMBOS, ids=[" ".join(c[0]) for c in COMBOS])
def test_ed25519_byte_identical_to_imgtool(
    tmp_path: Path, vectors: Path, opts: list[str], kwargs: dict[str, object]
) -> None:
    payload = bytes(range(256)) * 5 + b"tail"
    ours, theirs = _sign_both(tmp_path, vectors, "ed25519", opts, kwargs, payload)
    assert ours == theirs


def test_ed25519_reproduces_golden_vector(vectors: Path) -> None:
    d = vectors / "mcuboot"
    ours = sign_image(
        (d / "app.bin").read_bytes(),
        FileSigner.from_file(str(d / "key-ed25519.pem")),
        version="1.2.3+4",
        header_size=0x200,
        pad_header=True,
        security_counter=7,
        slot_size=0x2000,
    )
    assert ours == (d / "ed25519-sc7.bin").read_bytes()


@pytest.mark.parametrize("kt", ["rsa-3072", "ecdsa-p256", "ecdsa-p384"])
@pytest.mark.parametrize("combo", [0, 3, 5], ids=["plain", "pad-confirm", "align4-erased0"])
def test_randomised_signatures_match_imgtool_outside_the_signature(
    tmp_path: Path, vectors: Path, kt: str, combo: int
) -> None:
    opts, kwargs = COMBOS[combo]
    ours, theirs = _sign_both(tmp_path, vectors, kt, opts, kwargs, b"\x5a" * 999)
    a, b = parse_image(ours), parse_image(theirs)
    assert ours[: a.hashed_size] == theirs[: b.hashed_size]
    assert [(t.type, t.value) for t in a.tlvs[:-1]] == [(t.type, t.value) for t in b.tlvs[:-1]]
    assert a.tlvs[-1].type == b.tlvs[-1].type
    if kwargs.get("pad") or kwargs.get("confirm") or kt == "rsa-3072":  # DER ECDSA signatures vary in length
        assert len(ours) == len(theirs)
    tsize = trailer_size(**{k: v for k, v in kwargs.items() if k in ("align", "max_align")})  # type: ignore[arg-type]
    if kwargs.get("pad") or kwargs.get("confirm"):
        assert ours[-tsize:] == theirs[-tsize:]
    if kt == "rsa-3072":  # fixed-length signature: the files differ only inside the signature bytes
        sig = a.tlvs[-1]
        end = sig.value_offset + 384
        assert ours[: sig.value_offset] == theirs[: sig.value_offset]
        assert ours[end:] == theirs[end:]


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_imgtool_verifies_medfw_images(tmp_path: Path, vectors: Path, kt: str) -> None:
    for i, (_opts, kwargs) in enumerate(COMBOS[:4]):
        image = sign_image(
            b"\x00\x11" * 700,
            FileSigner.from_file(str(_key(vectors, kt))),
            version="4.5.6+7",
            header_size=0x200,
            **kwargs,  # type: ignore[arg-type]
        )
        path = tmp_path / f"ours{i}.bin"
        path.write_bytes(image)
        rc, output = _imgtool("verify", "-k", str(_key(vectors, kt)), str(path))
        assert rc == 0, output
        assert "Image was correctly validated" in output
        assert "4.5.6+7" in output


def test_imgtool_cli_subprocess_verifies_medfw_image(tmp_path: Path, vectors: Path) -> None:
    """The real imgtool console script, not just its Python entry point."""
    exe = Path(sys.executable).parent / "imgtool"
    assert exe.exists(), "imgtool is a test dependency"
    for kt in ("ecdsa-p384", "rsa-3072"):
        image = sign_image(
            b"fw" * 300,
            FileSigner.from_file(str(_key(vectors, kt))),
            version="1.0.0",
            header_size=0x200,
            pad_header=True,
            slot_size=0x4000,
            confirm=True,
            security_counter="auto",
        )
        path = tmp_path / f"{kt}.bin"
        path.write_bytes(image)
        proc = subprocess.run(
            [str(exe), "verify", "-k", str(_key(vectors, kt)), str(path)], check=False, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        tampered = bytearray(image)
        tampered[0x300] ^= 1
        path.write_bytes(bytes(tampered))
        proc = subprocess.run(
            [str(exe), "verify", "-k", str(_key(vectors, kt)), str(path)], check=False, capture_output=True, text=True
        )
        assert proc.returncode == 1
        assert "invalid hash" in proc.stdout


def test_trailer_matches_imgtool_dumpinfo(tmp_path: Path, vectors: Path) -> None:
    image = sign_image(
        b"x" * 100,
        FileSigner.from_file(str(_key(vectors, "ecdsa-p256"))),
        version="1.0.0",
        header_size=0x100,
        pad_header=True,
        slot_size=0x4000,
        confirm=True,
        align=4,
    )
    path = tmp_path / "c.bin"
    path.write_bytes(image)
    info = tmp_path / "info.json"
    rc, output = _imgtool("dumpinfo", "-f", "json", "-s", "-o", str(info), str(path))
    assert rc == 0, output
    import json

    dump = json.loads(info.read_text())
    assert dump["trailer"]["image_ok"] == 1
    assert dump["trailer"]["magic"] == "77c295f360d2ef7f3552500f2cb67980"
    assert dump["header"]["img_size"] == 100


class TestKeyHash:
    @pytest.mark.parametrize("kt", KEY_TYPES)
    def test_equals_imgtool_getpubhash(self, vectors: Path, kt: str) -> None:
        pub = load_private_key(_key(vectors, kt)).public_key()
        assert key_hash(pub) == (vectors / "mcuboot" / f"key-{kt}.getpubhash.bin").read_bytes()

    @pytest.mark.parametrize("kt", KEY_TYPES)
    def test_equals_imgtool_getpubhash_live(self, vectors: Path, kt: str, tmp_path: Path) -> None:
        out = tmp_path / "h.bin"
        rc, output = _imgtool("getpubhash", "-k", str(_key(vectors, kt)), "-e", "raw", "-o", str(out))
        assert rc == 0, output
        assert key_hash(load_private_key(_key(vectors, kt)).public_key(), "sha256") == out.read_bytes()

    def test_p384_image_uses_sha384_keyhash(self, vectors: Path) -> None:
        """The pitfall: getpubhash prints SHA-256, a P-384 image's KEYHASH TLV is SHA-384."""
        pub = load_private_key(_key(vectors, "ecdsa-p384")).public_key()
        img = parse_image((vectors / "mcuboot" / "ecdsa-p384.bin").read_bytes())
        keyhash_tlv = next(t for t in img.tlvs if t.name == "KEYHASH")
        assert keyhash_tlv.value == key_hash(pub, "sha384")
        assert key_hash(pub) != keyhash_tlv.value[:32]
        assert len(key_hash(pub)) == 32

    def test_rsa_hashes_pkcs1_not_spki(self, vectors: Path) -> None:
        import hashlib

        pub = load_private_key(_key(vectors, "rsa-3072")).public_key()
        pkcs1 = pub.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
        assert key_hash(pub) == hashlib.sha256(pkcs1).digest()


class _RecordingSigner(Signer):
    """A signer that is not a key file (as an HSM is), recording which interface is used."""

    def __init__(self, inner: FileSigner, *, corrupt: bool = False) -> None:
        self._inner = inner
        self.key_id = "test:recording"
        self.calls: list[tuple[str, int, str | None]] = []
        self._corrupt = corrupt

    def public_key(self) -> PublicKey:
        return self._inner.public_key()

    def _sign_digest(self, digest: bytes, hash_name: HashName) -> bytes:
        self.calls.append(("digest", len(digest), hash_name))
        sig = self._inner._sign_digest(digest, hash_name)
        return sig[:-1] + bytes([sig[-1] ^ 1]) if self._corrupt else sig

    def _sign_message(self, message: bytes) -> bytes:
        self.calls.append(("message", len(message), None))
        sig = self._inner._sign_message(message)
        return sig[:-1] + bytes([sig[-1] ^ 1]) if self._corrupt else sig


class TestSignerInterface:
    @pytest.mark.parametrize(
        ("kt", "call"),
        [
            ("rsa-3072", ("digest", 32, "sha256")),
            ("ecdsa-p256", ("digest", 32, "sha256")),
            ("ecdsa-p384", ("digest", 48, "sha384")),
            ("ed25519", ("message", 32, None)),
        ],
    )
    def test_signs_through_the_abstract_interface(self, vectors: Path, kt: str, call: tuple[str, int, str]) -> None:
        signer = _RecordingSigner(FileSigner.from_file(str(_key(vectors, kt))))
        image = sign_image(b"abc" * 50, signer, version="1.0.0", header_size=32, pad_header=True)
        assert signer.calls == [call]
        verify_image(image, [signer.public_key()])

    @pytest.mark.parametrize("kt", KEY_TYPES)
    def test_faulty_signer_is_caught(self, vectors: Path, kt: str) -> None:
        signer = _RecordingSigner(FileSigner.from_file(str(_key(vectors, kt))), corrupt=True)
        with pytest.raises(SignatureError):
            sign_image(b"abc" * 50, signer, version="1.0.0", header_size=32, pad_header=True)


class TestSignErrors:
    @pytest.fixture
    def signer(self, vectors: Path) -> FileSigner:
        return FileSigner.from_file(str(_key(vectors, "ed25519")))

    def test_image_larger_than_slot(self, signer: FileSigner) -> None:
        with pytest.raises(InputError) as info:
            sign_image(b"\x01" * 5000, signer, version="1.0.0", header_size=0x200, pad_header=True, slot_size=0x1000)
        assert not isinstance(info.value, UsageError)
        assert info.value.field == "slot_size"
        assert "4096" in info.value.message
        assert "exceeds" in info.value.message

    def test_slot_just_fits(self, signer: FileSigner) -> None:
        unpadded = sign_image(b"\x01" * 100, signer, version="1.0.0", header_size=32, pad_header=True)
        slot = len(unpadded) + trailer_size()
        padded = sign_image(
            b"\x01" * 100, signer, version="1.0.0", header_size=32, pad_header=True, slot_size=slot, pad=True
        )
        assert len(padded) == slot
        with pytest.raises(InputError):
            sign_image(b"\x01" * 100, signer, version="1.0.0", header_size=32, pad_header=True, slot_size=slot - 1)

    def test_header_room_must_be_zero(self, signer: FileSigner) -> None:
        payload = bytes(0x100) + b"\x01" + bytes(0xFF) + b"code"
        with pytest.raises(InputError) as info:
            sign_image(payload, signer, version="1.0.0", header_size=0x200)
        assert (info.value.field, info.value.offset) == ("header", 0x100)

    def test_input_shorter_than_header(self, signer: FileSigner) -> None:
        with pytest.raises(InputError):
            sign_image(bytes(16), signer, version="1.0.0", header_size=0x200)

    def test_empty_body_is_allowed(self, signer: FileSigner) -> None:
        image = sign_image(bytes(0x200), signer, version="1.0.0", header_size=0x200)
        assert parse_image(image).header.img_size == 0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"version": "1.x"},
            {"header_size": 16},
            {"header_size": 0x10000},
            {"pad": True},
            {"confirm": True},
            {"security_counter": 1 << 32},
            {"security_counter": -1},
            {"security_counter": "often"},
            {"align": 3},
            {"max_align": 4},
            {"erased_val": 0x55},
            {"load_addr": 0x1000, "rom_fixed": 0x2000},
            {"load_addr": 1 << 32},
            {"slot_size": 0},
        ],
    )
    def test_bad_options(self, signer: FileSigner, kwargs: dict[str, object]) -> None:
        args: dict[str, object] = {"version": "1.0.0", "header_size": 32, "pad_header": True}
        args.update(kwargs)
        with pytest.raises(UsageError):
            sign_image(b"x", signer, **args)  # type: ignore[arg-type]

    def test_rsa2048_refused(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        with pytest.raises(KeyMaterialError):
            sign_image(b"x", FileSigner(key), version="1.0.0", header_size=32, pad_header=True)

    def test_p521_refused(self) -> None:
        key = ec.generate_private_key(ec.SECP521R1())
        with pytest.raises(KeyMaterialError):
            sign_image(b"x", FileSigner(key), version="1.0.0", header_size=32, pad_header=True)

    def test_header_fields(self, signer: FileSigner) -> None:
        image = sign_image(
            b"\x01" * 10, signer, version="9.8.7+6", header_size=64, pad_header=True, load_addr=0x20001000
        )
        magic, load, hdr, prot, size, flags = struct.unpack_from("<IIHHII", image)
        assert (magic, load, hdr, prot, size, flags) == (0x96F3B83D, 0x20001000, 64, 0, 10, 0x20)
        assert image[20:28] == struct.pack("<BBHI", 9, 8, 7, 6)
        assert image[32:64] == b"\xff" * 32


@pytest.mark.parametrize("kt", KEY_TYPES)
def test_key_hash_accepts_private_key(vectors: Path, kt: str) -> None:
    private = load_private_key(_key(vectors, kt))
    assert key_hash(private) == key_hash(private.public_key())
    assert key_hash(private, "sha384") == key_hash(private.public_key(), "sha384")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.binary(min_size=0, max_size=700),
    version=st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 65535), st.integers(0, 2**32 - 1)),
    counter=st.one_of(st.none(), st.just("auto"), st.integers(0, 2**32 - 1)),
    header_size=st.sampled_from([32, 0x80, 0x200]),
    pad_header=st.booleans(),
    trailer=st.sampled_from(["none", "pad", "confirm"]),
    align=st.sampled_from([1, 4, 8, 32]),
    erased=st.sampled_from([0x00, 0xFF]),
)
def test_property_ed25519_matches_imgtool(
    tmp_path: Path,
    vectors: Path,
    body: bytes,
    version: tuple[int, int, int, int],
    counter: int | str | None,
    header_size: int,
    pad_header: bool,
    trailer: str,
    align: int,
    erased: int,
) -> None:
    """For random inputs and options, medfw's Ed25519 image is imgtool's, byte for byte, and verifies."""
    payload = body if pad_header else bytes(header_size) + body
    vtext = "{}.{}.{}+{}".format(*version)
    opts = [
        "-H",
        str(header_size),
        "-v",
        vtext,
        "-S",
        "0x10000",
        "--align",
        str(align),
        "-R",
        "0" if erased == 0 else "0xff",
    ]
    opts += ["--pad-header"] if pad_header else []
    opts += ["-s", str(counter)] if counter is not None else []
    opts += {"none": [], "pad": ["--pad"], "confirm": ["--confirm"]}[trailer]
    theirs = _imgtool_sign(tmp_path, _key(vectors, "ed25519"), payload, opts)
    signer = FileSigner.from_file(str(_key(vectors, "ed25519")))
    ours = sign_image(
        payload,
        signer,
        version=vtext,
        header_size=header_size,
        pad_header=pad_header,
        security_counter=counter,  # type: ignore[arg-type]
        slot_size=0x10000,
        pad=trailer == "pad",
        confirm=trailer == "confirm",
        align=align,
        erased_val=erased,
    )
    assert ours == theirs
    result = verify_image(ours, [signer.public_key()])
    assert str(result.image.version) == vtext
    assert result.image.header.img_size == len(body)


def test_the_auto_counter_rule_is_an_enum_and_the_cli_parses_it() -> None:
    from medfw.cli._mcuboot import _counter
    from medfw.image.mcuboot import CounterRule

    assert _counter("AUTO") is CounterRule.AUTO
    assert _counter("0x10") == 16
