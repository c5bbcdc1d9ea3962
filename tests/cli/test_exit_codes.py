"""Exit codes of every verifying command: 0 valid, 1 tampered (verification failed), 2 not the format at all.

A damaged signature block or TLV area (CRC, digest, key, signature, layout) is tampering and exits 1; only
input that is not the format at all (wrong magic, truncated header, not JSON, not a log) exits 2.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.cli import main
from medfw.crypto.keys import load_private_key, private_key_pem, public_key_pem
from medfw.crypto.signer import FileSigner
from medfw.errors import MedfwError
from medfw.image import mcuboot, sbv2
from medfw.image.esp import build_app_image

from ._json import envelope

VEC = Path(__file__).resolve().parents[1] / "vectors"
MCUBOOT = VEC / "mcuboot"
EFUSE = VEC / "efuse"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "device"


def code_of(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> int:
    """Run medfw with ``--json``; check the envelope carries the same exit code; return it."""
    code = main([*(str(a) for a in argv), "--json"])
    doc = envelope(capsys.readouterr().out)
    assert doc["exit_code"] == code
    return code


def flipped(data: bytes, pos: int, mask: int = 0x01) -> bytes:
    out = bytearray(data)
    out[pos] ^= mask
    return bytes(out)


def library_code(call: Callable[[], object]) -> int:
    try:
        call()
    except MedfwError as e:
        return e.exit_code
    return 0


# --- Secure Boot v2 -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sbv2_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, Path]:
    work = tmp_path_factory.mktemp("sbv2-exit")
    key = ec.generate_private_key(ec.SECP256R1())
    (work / "k.pem").write_bytes(private_key_pem(key))
    (work / "k.pub").write_bytes(public_key_pem(key.public_key()))
    app = build_app_image(version="1.0.0", secure_version=1, payload=b"\x42" * 3000)
    signed = sbv2.sign_image(app, [FileSigner.from_file(str(work / "k.pem"))])
    (work / "signed.bin").write_bytes(signed)
    return work, signed, work / "k.pub"


def test_sbv2_every_byte_of_the_signature_block_is_tampering(sbv2_signed: tuple[Path, bytes, Path]) -> None:
    _work, signed, pub = sbv2_signed
    key = [load_private_key_pub(pub)]
    start = len(signed) - sbv2.SECTOR_SIZE
    # every byte of the one block, plus every 7th byte of the 0xFF tail of the sector
    positions = [*range(start, start + sbv2.BLOCK_SIZE), *range(start + sbv2.BLOCK_SIZE, len(signed), 7)]
    codes = {
        pos: library_code(lambda p=pos: sbv2.verify_image(flipped(signed, p), public_keys=key)) for pos in positions
    }
    assert set(codes.values()) == {1}, {p: c for p, c in codes.items() if c != 1}


@pytest.mark.parametrize(
    ("what", "rel"),
    [("magic", 0), ("version", 1), ("digest", 4), ("key", 40), ("signature", 110), ("crc", 1196), ("padding", 1210)],
)
def test_verify_sbv2_tampered_block_exits_1(
    sbv2_signed: tuple[Path, bytes, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path, what: str, rel: int
) -> None:
    _work, signed, pub = sbv2_signed
    bad = tmp_path / f"{what}.bin"
    bad.write_bytes(flipped(signed, len(signed) - sbv2.SECTOR_SIZE + rel))
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, bad) == 1


def test_verify_sbv2_codes(
    sbv2_signed: tuple[Path, bytes, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    work, signed, pub = sbv2_signed
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, work / "signed.bin") == 0
    (tmp_path / "body.bin").write_bytes(flipped(signed, 100))
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, tmp_path / "body.bin") == 1
    (tmp_path / "unsigned.bin").write_bytes(sbv2.pad_image(signed[: -sbv2.SECTOR_SIZE]) + b"\xff" * 4096)
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, tmp_path / "unsigned.bin") == 1
    # not the format at all
    (tmp_path / "short.bin").write_bytes(signed[:-100])
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, tmp_path / "short.bin") == 2
    (tmp_path / "zeros.bin").write_bytes(bytes(8192))
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, tmp_path / "zeros.bin") == 2
    assert code_of(capsys, "verify", "sbv2", "--pub-key", pub, tmp_path / "missing.bin") == 2
    # the trusted key is bad input
    assert code_of(capsys, "verify", "sbv2", "--pub-key", tmp_path / "zeros.bin", work / "signed.bin") == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pos=st.integers(min_value=0), mask=st.integers(1, 255))
def test_sbv2_random_flips_never_exit_2(sbv2_signed: tuple[Path, bytes, Path], pos: int, mask: int) -> None:
    _work, signed, pub = sbv2_signed
    bad = flipped(signed, pos % len(signed), mask)
    assert library_code(lambda: sbv2.verify_image(bad, public_keys=[load_private_key_pub(pub)])) == 1


def load_private_key_pub(path: Path) -> ec.EllipticCurvePublicKey:
    from medfw.crypto.keys import load_public_key

    key = load_public_key(path)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    return key


# --- MCUboot ------------------------------------------------------------------------------------------------


def _mcuboot_key() -> object:
    return load_private_key(MCUBOOT / "key-ed25519.pem").public_key()


def test_mcuboot_every_byte_flip_exits_1_except_the_magic() -> None:
    data = (MCUBOOT / "ed25519-sc7.bin").read_bytes()
    img = mcuboot.parse_image(data)
    assert img.tlv_end == len(data)  # no trailer: every byte is covered
    key = [_mcuboot_key()]
    codes = {
        pos: library_code(lambda p=pos: mcuboot.verify_image(flipped(data, p), key))  # type: ignore[arg-type]
        for pos in range(len(data))
    }
    assert {p for p, c in codes.items() if c == 2} == {0, 1, 2, 3}  # ih_magic
    assert {c for p, c in codes.items() if p >= 4} == {1}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ed25519-sc7.bin", 0),
        ("ecdsa-p256-confirm.bin", 0),
        ("ecdsa-p256-clear.bin", 0),  # imgtool sign --clear: ENCRYPTED flag, plaintext payload
        ("ecdsa-p256-encrypted.bin", 1),  # ciphertext: the hash is over the plaintext (imgtool: invalid hash)
    ],
)
def test_verify_mcuboot_vectors(capsys: pytest.CaptureFixture[str], name: str, expected: int) -> None:
    kt = "ed25519" if name.startswith("ed25519") else "ecdsa-p256"
    assert code_of(capsys, "verify", "mcuboot", "--key", MCUBOOT / f"key-{kt}.pem", MCUBOOT / name) == expected


def test_verify_mcuboot_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    data = (MCUBOOT / "ed25519-sc7.bin").read_bytes()
    img = mcuboot.parse_image(data)
    key = MCUBOOT / "key-ed25519.pem"
    cases = {
        "hash": (flipped(data, img.tlvs[0].value_offset), 1),
        "keyhash": (flipped(data, img.tlvs[1].value_offset), 1),
        "signature": (flipped(data, img.tlvs[2].value_offset), 1),
        "tlv-magic": (flipped(data, img.hashed_size), 1),
        "tlv-length": (flipped(data, img.tlvs[2].offset + 2), 1),
        "no-tlv-area": (data[: img.hashed_size], 1),
        "body-cut": (data[:600], 1),
        "magic": (flipped(data, 0), 2),
        "header-cut": (data[:20], 2),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert code_of(capsys, "verify", "mcuboot", "--key", key, tmp_path / name) == expected, name
    assert (
        code_of(capsys, "verify", "mcuboot", "--key", MCUBOOT / "key-ecdsa-p256.pem", MCUBOOT / "ed25519-sc7.bin") == 1
    )


# --- image info -----------------------------------------------------------------------------------------------


def test_image_info_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert code_of(capsys, "image", "info", MCUBOOT / "ed25519-sc7.bin") == 0
    assert code_of(capsys, "image", "info", VEC / "esp/images/esp_idf_blink_esp32s2.bin") == 0
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 64)
    assert code_of(capsys, "image", "info", tmp_path / "junk.bin") == 2


# --- audit log --------------------------------------------------------------------------------------------------


def test_audit_verify_and_bundle_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log, key = tmp_path / "a.db", tmp_path / "a.key"
    assert code_of(capsys, "audit", "init", log, "--key-out", key) == 0
    for i in range(3):
        assert (
            code_of(capsys, "audit", "append", log, "--type", "key.revoke", "--outcome", "success", "--reason", f"r{i}")
            == 0
        )
    assert code_of(capsys, "audit", "verify", log, "--key", key) == 0
    bundle = tmp_path / "b.json"
    assert code_of(capsys, "audit", "export", log, "--out", bundle) == 0
    assert code_of(capsys, "audit", "verify-bundle", bundle, "--key", key) == 0
    # tampered
    tampered = tmp_path / "b2.json"
    text = bundle.read_text()
    assert '\\"r1\\"' in text
    tampered.write_text(text.replace('\\"r1\\"', '\\"r7\\"'))
    assert code_of(capsys, "audit", "verify-bundle", tampered, "--key", key) == 1
    db = sqlite3.connect(log)
    pos, rec = next((p, r) for p, r in db.execute("SELECT pos, record FROM entries") if b'"r1"' in r)
    db.execute("UPDATE entries SET record = ? WHERE pos = ?", (rec.replace(b'"r1"', b'"r7"'), pos))
    db.commit()
    db.close()
    assert code_of(capsys, "audit", "verify", log, "--key", key) == 1
    # not the format
    junk = tmp_path / "junk"
    junk.write_bytes(b"garbage")
    assert code_of(capsys, "audit", "verify", junk, "--key", key) == 2
    assert code_of(capsys, "audit", "verify", log, "--key", junk) == 2
    assert code_of(capsys, "audit", "verify-bundle", junk, "--key", key) == 2


# --- SBOM, eFuse ----------------------------------------------------------------------------------------------


def test_sbom_check_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sbom = tmp_path / "s.json"
    assert code_of(capsys, "sbom", "generate", "--idf-build", EXAMPLE / "build", "--out", sbom) == 0
    assert code_of(capsys, "sbom", "check", sbom) == 0
    doc = json.loads(sbom.read_text())
    doc["components"][0]["version"] = 7  # schema violation
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    assert code_of(capsys, "sbom", "check", tmp_path / "bad.json") == 1
    (tmp_path / "junk.json").write_text("not json")
    assert code_of(capsys, "sbom", "check", tmp_path / "junk.json") == 2


def test_efuse_check_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert code_of(capsys, "efuse", "check", EFUSE / "esp32c3_locked.json") == 0
    assert code_of(capsys, "efuse", "check", EFUSE / "esp32c3_open.json") == 1
    (tmp_path / "junk.json").write_text("[1, 2")
    assert code_of(capsys, "efuse", "check", tmp_path / "junk.json") == 2


# --- evidence ---------------------------------------------------------------------------------------------------


def test_evidence_verify_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from .test_evidence import _release_module

    release = _release_module().make_release(tmp_path / "release")
    bundle = tmp_path / "bundle"
    assert code_of(capsys, "evidence", "build", "--release", release.root, "--out", bundle) == 0
    pub = release.evidence_pub
    assert code_of(capsys, "evidence", "verify", bundle, "--key", pub) == 0
    images = bundle / "results" / "images.json"
    images.write_text(images.read_text().replace('"ok": true', '"ok": false', 1))
    assert code_of(capsys, "evidence", "verify", bundle, "--key", pub) == 1
    (tmp_path / "empty").mkdir()
    assert code_of(capsys, "evidence", "verify", tmp_path / "empty") == 2
    assert code_of(capsys, "evidence", "verify", tmp_path / "missing") == 2


# --- build configuration, approvals, advisories, device updates ----------------------------------------------------


def test_build_check_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert code_of(capsys, "build", "check", VEC / "buildcfg" / "hardened.sdkconfig") == 0
    assert code_of(capsys, "build", "check", VEC / "buildcfg" / "default.sdkconfig") == 1  # policy violated
    (tmp_path / "sdkconfig").write_text("SECURE_BOOT=y\n")
    assert code_of(capsys, "build", "check", tmp_path / "sdkconfig") == 2


def test_check_approvals_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from medfw.crypto.keys import KeyType, generate_private_key, write_private_key

    for name, kind in (("release", KeyType.ECDSA_P256), ("alice", KeyType.ED25519)):
        write_private_key(generate_private_key(kind), tmp_path / f"{name}.pem")
    (tmp_path / "alice.pub").write_bytes(public_key_pem(load_private_key(tmp_path / "alice.pem").public_key()))
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "format: medfw-approval-policy/1\nthreshold: 1\napprovers:\n  - name: alice\n    public_key: alice.pub\n"
    )
    subject = tmp_path / "fw.bin"
    subject.write_bytes(b"firmware")
    record = tmp_path / "a.json"
    signing = ["--signing-key", tmp_path / "release.pem", "--subject", subject]
    approve = ["keys", "approve", "--key", tmp_path / "alice.pem", "--approver", "alice", *signing, "--out", record]
    assert code_of(capsys, *approve) == 0
    check = ["--policy", policy, *signing, "--approval"]
    assert code_of(capsys, "keys", "check-approvals", *check, record) == 0
    doc = json.loads(record.read_text())
    sig = doc["signature"]
    forged = {
        "signature": {**doc, "signature": ("0" if sig[0] != "0" else "1") + sig[1:]},  # still hex, does not verify
        "statement": {**doc, "statement": {**doc["statement"], "subject_sha256": "0" * 64}},  # signed field altered
        "not-hex": {**doc, "signature": "zz" + sig[2:]},  # a record edited so that a field no longer parses
        "bad-time": {**doc, "statement": {**doc["statement"], "issued_at": "yesterday"}},
    }
    for name, content in forged.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(content))
        assert code_of(capsys, "keys", "check-approvals", *check, tmp_path / f"{name}.json") == 1, name
    # a malformed record beside a valid one is listed as not counted, and the policy (1 of 1) is still met
    argv = ["keys", "check-approvals", *check, record, "--approval", tmp_path / "not-hex.json", "--json"]
    assert main([str(a) for a in argv]) == 0
    out = envelope(capsys.readouterr().out)
    assert [r["approver"] for r in out["result"]["rejected"]] == [str(tmp_path / "not-hex.json")]
    assert "malformed record" in out["result"]["rejected"][0]["reason"]
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    for junk in ("junk.json", "list.json"):  # not an approval record at all
        assert code_of(capsys, "keys", "check-approvals", *check, tmp_path / junk) == 2, junk


def test_advisory_verify_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A valid signed advisory is 0, a signature that does not verify 1, a document that is not JSON 2."""
    from medfw.vuln.csaf_advisory import sign_advisory

    key = ec.generate_private_key(ec.SECP256R1())
    pub = tmp_path / "k.pub"
    pub.write_bytes(public_key_pem(key.public_key()))
    advisory = VEC / "release-documents" / "advisory-1.1.0.csaf.json"
    good = tmp_path / "good.json"
    good.write_bytes(advisory.read_bytes())
    (tmp_path / "good.json.sig").write_bytes(sign_advisory(json.loads(advisory.read_bytes()), FileSigner(key)))
    assert code_of(capsys, "vuln", "advisory", "verify", good, "--key", pub) == 0
    doc = tmp_path / "adv.json"
    doc.write_text('{"document": {"category": "csaf_security_advisory"}}')
    (tmp_path / "adv.json.sig").write_bytes(FileSigner(key).sign_message(b"something else"))
    assert code_of(capsys, "vuln", "advisory", "verify", doc, "--key", pub) == 1
    junk = tmp_path / "junk.json"
    junk.write_bytes(b"not json")
    (tmp_path / "junk.json.sig").write_bytes(FileSigner(key).sign_message(b"not json"))
    assert code_of(capsys, "vuln", "advisory", "verify", junk, "--key", pub) == 2


def test_device_update_codes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The simulated unit refuses (1) what it would not boot; a file that cannot be read is bad input (2)."""
    from medfw.image.sbv2 import public_key_digest

    key = ec.generate_private_key(ec.SECP256R1())
    signer = FileSigner(key)
    bl = sbv2.sign_image(build_app_image(chip="esp32c6", version="bl", secure_version=0), [signer])
    images = {
        name: sbv2.sign_image(build_app_image(chip="esp32c6", version=v, secure_version=s), [signer])
        for name, v, s in (("a1", "1.0.0", 1), ("a2", "2.0.0", 2))
    }
    for name, data in {"bl": bl, **images, "tampered": flipped(images["a2"], len(images["a2"]) - 4000)}.items():
        (tmp_path / f"{name}.bin").write_bytes(data)
    (tmp_path / "junk.bin").write_bytes(b"\x00" * 4096)
    unit = tmp_path / "unit"
    digest = public_key_digest(key.public_key()).hex()
    assert code_of(capsys, "device", "init", unit, "--key-digest", digest, "--chip", "esp32c6") == 0
    assert (
        code_of(capsys, "device", "flash", unit, "--bootloader", tmp_path / "bl.bin", "--app", tmp_path / "a1.bin") == 0
    )
    assert code_of(capsys, "device", "boot", unit) == 0
    assert code_of(capsys, "device", "confirm", unit) == 0
    assert code_of(capsys, "device", "update", unit, tmp_path / "tampered.bin") == 1
    # the unit refuses what it cannot boot, an image or not (malformed_image): its refusal is 1, as documented
    assert code_of(capsys, "device", "update", unit, tmp_path / "junk.bin") == 1
    assert code_of(capsys, "device", "update", unit, tmp_path / "missing.bin") == 2
    assert code_of(capsys, "device", "update", unit, tmp_path / "a2.bin") == 0


# --- the walk covers every verifying command -------------------------------------------------------------------------

VERIFYING = {"image info", "device update"}  # besides every `verify…`, `check` and `check-…` command


def _walked() -> set[str]:
    """The commands this module runs through :func:`code_of` (their leading literal words)."""
    import ast

    words: set[str] = set()
    for node in ast.walk(ast.parse(Path(__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "code_of":
            lead = [a.value for a in node.args[1:4] if isinstance(a, ast.Constant) and isinstance(a.value, str)]
            words |= {" ".join(lead[:n]) for n in (2, 3)}
    return words


def test_the_walk_covers_every_verifying_command() -> None:
    from medfw.cli import build_parser
    from medfw.cli._docgen import _subparsers, _walk

    leaves = [" ".join(p) for g, gp in _subparsers(build_parser(load_all=True)) for p, _ in _walk(gp, [g])]
    verifying = {c for c in leaves if any(w == "check" or w.startswith(("verify", "check-")) for w in c.split())}
    verifying |= VERIFYING
    assert len(verifying) >= 12
    assert sorted(verifying - _walked()) == []
