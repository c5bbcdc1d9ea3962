"""Key rotation end to end: HSM keys, transition images, TUF root rotation, conservative revocation on the device."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from tuf.api.metadata import Metadata

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key, public_key_fingerprint
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import FileSigner
from medfw.device.device import Device
from medfw.device.efuse import KeySlot
from medfw.device.errors import RevocationRefusedError, UpdateRejectedError
from medfw.errors import ConfigError, KeyMaterialError, PolicyViolationError, UsageError
from medfw.image import sbv2
from medfw.image.esp import build_app_image
from medfw.keys.hsm import generate_key
from medfw.keys.rotation import RotationPlan, plan_rotation, revoke_on_device, rotate_tuf_root, sign_transition
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner
from softhsm import SoftHsm, softhsm_token


@pytest.fixture
def softhsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SoftHsm]:
    yield from softhsm_token(tmp_path, monkeypatch)


def _app(version: str, secure_version: int = 1) -> bytes:
    return build_app_image(
        chip="esp32c3", version=version, secure_version=secure_version, payload=version.encode() * 64
    )


@pytest.mark.softhsm
def test_rotation_and_revocation_end_to_end(softhsm: SoftHsm, tmp_path: Path) -> None:
    sink = MemorySink()
    # Boot keys in the HSM: A is the current key, B the factory-burned spare.
    uri_a, uri_b = softhsm.uri("boot-a"), softhsm.uri("boot-b")
    pub_a = generate_key(uri_a, KeyType.RSA3072, audit=sink)
    pub_b = generate_key(uri_b, KeyType.RSA3072, audit=sink)
    signer_a, signer_b = load_signer(uri_a), load_signer(uri_b)
    device = Device.in_memory(
        chip="esp32c3", key_digests=[sbv2.public_key_digest(pub_a), sbv2.public_key_digest(pub_b)], audit=sink
    )
    bootloader = sbv2.sign_image(_app("bootloader"), [signer_a, signer_b])  # the bootloader carries both keys
    device.flash(bootloader, sbv2.sign_image(_app("1.0.0"), [signer_a]))
    device.boot(confirm=True)

    plan = plan_rotation(device.efuse.key_slots(), (uri_b, pub_b), [(uri_a, pub_a)])
    assert plan.new.slot == 1
    assert [r.efuse_field for r in plan.revocations] == ["SECURE_BOOT_KEY_REVOKE0"]
    assert RotationPlan.from_dict(json.loads(json.dumps(plan.to_dict()))) == plan

    # Too early: the running app verifies only with key A, so the device refuses to revoke it.
    with pytest.raises(RevocationRefusedError, match="does not verify without key slot 0"):
        revoke_on_device(device, device.efuse.key_slots(), plan)

    # Transition release: blocks [B, A].
    transition = sign_transition(_app("2.0.0"), plan, [signer_a, signer_b], sink)
    sector = sbv2.parse_signed_image(transition)
    assert [public_key_fingerprint(b.public_key) for b in sector.blocks] == [
        public_key_fingerprint(pub_b),
        public_key_fingerprint(pub_a),
    ]
    device.install_update(transition)
    device.boot()  # trial boot, not yet confirmed
    with pytest.raises(RevocationRefusedError, match="confirmed"):
        revoke_on_device(device, device.efuse.key_slots(), plan)
    device.confirm()
    assert revoke_on_device(device, device.efuse.key_slots(), plan) == [0]
    assert device.efuse.key_slots()[0].revoked
    assert revoke_on_device(device, device.efuse.key_slots(), plan) == []  # idempotent

    # After revocation: an image signed only by A is refused; one signed by B is accepted.
    with pytest.raises(UpdateRejectedError) as ei:
        device.install_update(sbv2.sign_image(_app("3.0.0"), [signer_a]))
    assert "revoked" in ei.value.message
    device.install_update(sbv2.sign_image(_app("3.0.1"), [signer_b]))
    assert device.boot(confirm=True).state == "VALID"

    # Audit trail: key ids and digests, outcomes in order, never key material or the PIN.
    revokes = sink.of_type("key.revoke")
    assert [(e.outcome, e.reason) for e in revokes] == [
        ("denied", "no_other_key"),
        ("denied", "running_image_not_valid"),
        ("success", "conservative"),
    ]
    assert revokes[-1].objects["key_digest"] == sbv2.public_key_digest(pub_a).hex()
    [rotate] = sink.of_type("key.rotate")
    assert rotate.objects["new_key_fingerprint"] == public_key_fingerprint(pub_b)
    assert len(sink.of_type("key.generate")) == 2
    dumped = json.dumps([asdict(e) for e in sink.events], default=str)
    assert softhsm.pin not in dumped
    assert "PRIVATE KEY" not in dumped


@pytest.mark.softhsm
def test_tuf_root_rotation_with_hsm_keys(softhsm: SoftHsm, tmp_path: Path) -> None:
    sink = MemorySink()
    old_uri, new_uri = softhsm.uri("root-1"), softhsm.uri("root-2")
    generate_key(old_uri, KeyType.ECDSA_P384)
    generate_key(new_uri, KeyType.ECDSA_P384)
    old_root, new_root = load_signer(old_uri), load_signer(new_uri)
    targets_uri = softhsm.uri("targets")
    generate_key(targets_uri, KeyType.ED25519)
    targets = MedfwTufSigner(load_signer(targets_uri))  # the targets role on the token too
    online = [FileSigner(generate_private_key(KeyType.ED25519)) for _ in range(2)]
    repo = TufRepository.init(
        tmp_path / "repo",
        root_signers=[MedfwTufSigner(old_root)],
        targets_signers=[targets],
        snapshot_signer=MedfwTufSigner(online[0]),
        timestamp_signer=MedfwTufSigner(online[1]),
    )
    image = b"\x5a" * 1000
    release = ReleaseInfo("unit/app-1.0.bin", "unit", "esp32c3", "sbv2", "1.0", 1, 0, "")
    repo.publish(image, release, targets_signers=[targets])
    published = repo.targets()
    repo.root().signed.verify_delegate("targets", published.signed_bytes, published.signatures)
    assert "unit/app-1.0.bin" in published.signed.targets
    v1 = repo.load("root", 1)
    assert rotate_tuf_root(repo, [old_root], [new_root], sink) == 2
    v2 = repo.load("root", 2)
    # what a TUF client checks when walking 1 -> 2: signed by a threshold of the old AND of the new root keys
    v1.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    v2.signed.verify_delegate("root", v2.signed_bytes, v2.signatures)
    assert v2.signed.roles["root"].keyids == [MedfwTufSigner(new_root).key_id]
    assert isinstance(Metadata.from_bytes(repo.root_bytes()).signed.version, int)
    [event] = sink.of_type("key.rotate")
    assert event.data["root_version"] == 2
    assert event.data["new_keyids"] == [MedfwTufSigner(new_root).key_id]


def _slots(*digests: bytes | None, revoked: tuple[int, ...] = ()) -> list[KeySlot]:
    return [KeySlot(i, d, i in revoked, None) for i, d in enumerate(digests)]


def test_plan_refusals() -> None:
    a, b, c = (FileSigner(generate_private_key(KeyType.ECDSA_P256)).public_key() for _ in range(3))
    da, db = sbv2.public_key_digest(a), sbv2.public_key_digest(b)
    with pytest.raises(PolicyViolationError, match=r"new key's Secure Boot v2 digest .* is not burned"):
        plan_rotation(_slots(da, None), ("c", c), [("a", a)])
    with pytest.raises(PolicyViolationError, match="does not trust it"):
        plan_rotation(_slots(db, None), ("b", b), [("c", c)])
    with pytest.raises(PolicyViolationError, match="already revoked"):
        plan_rotation(_slots(da, db, revoked=(0,)), ("b", b), [("a", a)])
    with pytest.raises(UsageError, match="also listed as an old key"):
        plan_rotation(_slots(da, db), ("b", b), [("b", b)])
    with pytest.raises(UsageError, match="at least one old key"):
        plan_rotation(_slots(da, db), ("b", b), [])
    with pytest.raises(UsageError, match="at most 3"):
        plan_rotation(_slots(da, db), ("b", b), [("a", a), ("a2", a), ("a3", a)])
    rsa = FileSigner(generate_private_key(KeyType.RSA3072)).public_key()
    with pytest.raises(KeyMaterialError, match="one Secure Boot v2 scheme"):
        plan_rotation(_slots(da, sbv2.public_key_digest(rsa)), ("rsa", rsa), [("a", a)])
    plan = plan_rotation(_slots(da, db), ("b", b), [("a", a)])
    # a plan applied to a device with another key layout is refused before anything is burned
    other = _slots(db, da)

    class NeverRevoke:
        def revoke_key(self, slot: int) -> None:
            raise AssertionError("must not be called")

    with pytest.raises(PolicyViolationError, match="another key layout"):
        revoke_on_device(NeverRevoke(), other, plan)


def test_sign_transition_needs_exactly_the_plan_keys() -> None:
    signers = [FileSigner(generate_private_key(KeyType.ECDSA_P256)) for _ in range(3)]
    a, b, c = (s.public_key() for s in signers)
    plan = plan_rotation(_slots(sbv2.public_key_digest(a), sbv2.public_key_digest(b)), ("b", b), [("a", a)])
    with pytest.raises(UsageError, match="exactly the plan's"):
        sign_transition(b"\x00" * 100, plan, [signers[1]], MemorySink())
    with pytest.raises(UsageError, match="exactly the plan's"):
        sign_transition(b"\x00" * 100, plan, signers, MemorySink())
    assert c is not None


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda d: d.update(format="x"), "format"),
        (lambda d: d.update(old_keys=[]), "old_keys"),
        (lambda d: d["new_key"].update(efuse_slot=7), "new_key"),
        (lambda d: d["new_key"].update(sbv2_digest="00"), "32 bytes"),
        (lambda d: d["old_keys"][0].update(efuse_slot=d["new_key"]["efuse_slot"]), "share an eFuse slot"),
    ],
)
def test_plan_file_parsing(mutate: object, needle: str) -> None:
    a, b = (FileSigner(generate_private_key(KeyType.ECDSA_P256)).public_key() for _ in range(2))
    plan = plan_rotation(_slots(sbv2.public_key_digest(a), sbv2.public_key_digest(b)), ("b", b), [("a", a)])
    data = json.loads(json.dumps(plan.to_dict()))
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=needle):
        RotationPlan.from_dict(data, path="plan.json")
