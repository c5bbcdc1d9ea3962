"""An attacker who controls the fleet server and its online (snapshot/timestamp) keys cannot make a device install
a tampered, older or other-model image, nor hide newer metadata: each attempt is rejected with its exact reason, in
the device's report, the server's audit trail and the device's own audit log; the device keeps its image."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tuf.api.metadata import Metadata, MetaFile

from medfw.device.verify import CheckReason
from medfw.errors import VerificationError
from medfw.update.agent import AgentOutcome, MetadataReason, RejectReason

from .evil import EvilTransport, evil_client
from .fleet import Fleet, SimDevice


def _attach_evil(fleet: Fleet, dev: SimDevice) -> EvilTransport:
    client, transport = evil_client(fleet.client)
    dev.agent.client = client
    return transport


def _rewrite_assignment(fleet: Fleet, dev: SimDevice, **changes: str) -> None:
    """The evil server changes fields of the assignment it hands ``dev``."""
    _attach_evil(fleet, dev).rewrite_poll = lambda b: {**b, "assignment": {**b["assignment"], **changes}}


def _assert_rejected(fleet: Fleet, dev: SimDevice, reason: RejectReason | MetadataReason | CheckReason) -> None:
    result = dev.agent.run_once()
    assert result.outcome is AgentOutcome.REJECTED and result.reason is reason, result
    # the device keeps running its current image
    st = dev.state()
    assert (st.version, st.slot) == ("1.0.0", "ota_0")
    assert dev.device.status().counter == 1
    # the report says why, and the server recorded it in its audit trail
    last = fleet.client.get("/api/v1/reports", params={"device": dev.id, "limit": 1}, headers=fleet.h).json()[0]
    assert (last["status"], last["reason"]) == ("rejected", reason.value)  # the wire value is the plain string
    audited = [e for e in fleet.server_sink.of_type("ota.report") if e.objects.get("device") == dev.id]
    assert audited[-1].outcome == "failure" and audited[-1].reason == reason
    # and the device's own audit log has the rejection
    assert any(
        e.type in ("ota.manifest.rejected", "ota.install.rejected") and e.reason == reason for e in dev.sink.events
    )


def _resign(fleet: Fleet, role: str, mutate: Any) -> None:
    """Attacker with the online keys re-signs snapshot or timestamp metadata."""
    md: Metadata[Any] = fleet.repo.load(role)
    mutate(md.signed)
    md.signed.version += 1
    signer = fleet.online.timestamp if role == "timestamp" else fleet.online.snapshot
    md.signatures.clear()
    md.sign(signer)
    data = md.to_bytes()
    if role != "timestamp":
        (fleet.repo.metadata_dir / f"{md.signed.version}.{role}.json").write_bytes(data)
    (fleet.repo.metadata_dir / f"{role}.json").write_bytes(data)


def test_tampered_image(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    stored = fleet.repo.target_file(rel.target_path)
    data = bytearray(stored.read_bytes())
    data[0x100] ^= 0x01
    stored.write_bytes(bytes(data))
    _assert_rejected(fleet, dev, RejectReason.HASH_MISMATCH)


def test_tampered_image_with_matching_lie_in_the_assignment(fleet: Fleet) -> None:
    """The server's own hash/length in the assignment are ignored: only the signed TUF target counts."""
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    evil_image = fleet.base_image[:-1] + bytes([fleet.base_image[-1] ^ 0xFF])
    fleet.repo.target_file(rel.target_path).write_bytes(evil_image + b"\0" * (rel.length - len(evil_image)))
    _rewrite_assignment(fleet, dev, sha256="00" * 32)
    _assert_rejected(fleet, dev, RejectReason.HASH_MISMATCH)


def test_older_signed_release_same_secure_version(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    old = fleet.publish("0.9.0", 1)
    fleet.rollout(old.target_path, phases=["100%"])  # the server allows it (svn equal); the agent does not
    _assert_rejected(fleet, dev, RejectReason.DOWNGRADE)


def test_older_signed_release_lower_secure_version(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    old = fleet.publish("0.8.0", 0)
    cur = fleet.publish("1.0.1", 1)
    fleet.rollout(cur.target_path, phases=["100%"])
    _rewrite_assignment(fleet, dev, target_path=old.target_path)
    _assert_rejected(fleet, dev, RejectReason.ROLLBACK)


def test_other_model_image(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    other = fleet.publish("2.0.0", 2, model="ventilator")
    cur = fleet.publish("1.0.1", 1)
    fleet.rollout(cur.target_path, phases=["100%"])
    _rewrite_assignment(fleet, dev, target_path=other.target_path)
    _assert_rejected(fleet, dev, RejectReason.MODEL_MISMATCH)


def test_other_model_image_under_this_models_name(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    other = fleet.publish("2.0.0", 2, model="ventilator")
    cur = fleet.publish("1.1.0", 2)
    fleet.rollout(cur.target_path, phases=["100%"])
    fleet.repo.target_file(cur.target_path).write_bytes(fleet.repo.target_file(other.target_path).read_bytes())
    _assert_rejected(fleet, dev, RejectReason.HASH_MISMATCH)


def test_unknown_target(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    cur = fleet.publish("1.1.0", 2)
    fleet.rollout(cur.target_path, phases=["100%"])
    _rewrite_assignment(fleet, dev, target_path="pump/evil-9.9.bin")
    _assert_rejected(fleet, dev, RejectReason.TARGET_UNKNOWN)


def test_replayed_timestamp(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    first = fleet.publish("1.0.1", 1)
    fleet.rollout(first.target_path, phases=["100%"])
    old_ts = (fleet.repo.metadata_dir / "timestamp.json").read_bytes()
    second = fleet.publish("1.0.2", 1)  # the device sees this timestamp on its next refresh
    assert dev.agent.run_once().outcome == "confirmed"  # installs 1.0.1, having seen the newer timestamp
    dev.sink.events.clear()
    fleet.rollout(second.target_path, phases=["100%"])
    (fleet.repo.metadata_dir / "timestamp.json").write_bytes(old_ts)
    result = dev.agent.run_once()
    assert (result.outcome, result.reason) == ("rejected", "metadata_rollback"), result
    assert dev.state().version == "1.0.1"
    last = fleet.client.get("/api/v1/reports", params={"device": dev.id, "limit": 1}, headers=fleet.h).json()[0]
    assert (last["status"], last["reason"]) == ("rejected", "metadata_rollback")
    assert any(e.type == "ota.manifest.rejected" and e.reason == "metadata_rollback" for e in dev.sink.events)


def test_expired_timestamp_freeze(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])

    def expire(signed: Any) -> None:
        signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    _resign(fleet, "timestamp", expire)
    _assert_rejected(fleet, dev, MetadataReason.EXPIRED)


def test_expired_snapshot(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])

    def expire(signed: Any) -> None:
        signed.expires = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)

    _resign(fleet, "snapshot", expire)
    ts: Metadata[Any] = fleet.repo.load("timestamp")
    snap: Metadata[Any] = fleet.repo.load("snapshot")
    _resign(fleet, "timestamp", lambda s: setattr(s.snapshot_meta, "version", snap.signed.version))
    del ts
    _assert_rejected(fleet, dev, MetadataReason.EXPIRED)


def test_mix_and_match_targets(fleet: Fleet) -> None:
    dev = fleet.add_device("pump-1")
    fleet.publish("1.0.1", 1)
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    current = fleet.repo.targets().signed.version
    older = (fleet.repo.metadata_dir / f"{current - 1}.targets.json").read_bytes()
    (fleet.repo.metadata_dir / f"{current}.targets.json").write_bytes(older)
    _assert_rejected(fleet, dev, MetadataReason.MIX_AND_MATCH)


def test_targets_forged_with_online_key(fleet: Fleet) -> None:
    """Online keys cannot sign targets: a release list re-signed with the snapshot key is refused."""
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    md: Metadata[Any] = fleet.repo.targets()
    md.signed.targets[rel.target_path].unrecognized_fields["custom"]["secure_version"] = 0
    md.signed.version += 1
    md.signatures.clear()
    md.sign(fleet.online.snapshot)
    (fleet.repo.metadata_dir / f"{md.signed.version}.targets.json").write_bytes(md.to_bytes())
    (fleet.repo.metadata_dir / "targets.json").write_bytes(md.to_bytes())
    # medfw's own re-signing refuses to cover metadata a client would reject, so the attacker signs by hand
    with pytest.raises(VerificationError, match="UnsignedMetadataError"):
        fleet.repo.sign_online(fleet.online.snapshot, fleet.online.timestamp)
    snapshot: Metadata[Any] = fleet.repo.load("snapshot")
    snapshot.signed.meta["targets.json"] = MetaFile(version=md.signed.version)
    snapshot.signed.version += 1
    snapshot.signatures.clear()
    snapshot.sign(fleet.online.snapshot)
    (fleet.repo.metadata_dir / f"{snapshot.signed.version}.snapshot.json").write_bytes(snapshot.to_bytes())
    timestamp: Metadata[Any] = fleet.repo.load("timestamp")
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    timestamp.signed.version += 1
    timestamp.signatures.clear()
    timestamp.sign(fleet.online.timestamp)
    (fleet.repo.metadata_dir / "timestamp.json").write_bytes(timestamp.to_bytes())
    _assert_rejected(fleet, dev, MetadataReason.BAD_SIGNATURE)


def test_image_signed_by_unknown_boot_key_passes_tuf_but_not_the_device(fleet: Fleet) -> None:
    """Even a correctly TUF-signed target is installed only if its boot signature verifies on the device."""
    from medfw.crypto.keys import KeyType, generate_private_key
    from medfw.crypto.signer import FileSigner

    from .fleet import signed_app

    dev = fleet.add_device("pump-1")
    rogue = signed_app(FileSigner(generate_private_key(KeyType.ECDSA_P256)), "1.1.0", 2)
    rel = fleet.publish("1.1.0", 2, image=rogue)
    fleet.rollout(rel.target_path, phases=["100%"])
    _assert_rejected(fleet, dev, CheckReason.UNTRUSTED_KEY)


def _confirmed_then_assigned(fleet: Fleet) -> SimDevice:
    """A device that trusts the metadata of release 1.0.1 (installed) and is assigned 1.0.2."""
    dev = fleet.add_device("pump-1")
    first = fleet.publish("1.0.1", 1)
    fleet.rollout(first.target_path, phases=["100%"])
    assert dev.agent.run_once().outcome == "confirmed"
    second = fleet.publish("1.0.2", 1)
    fleet.rollout(second.target_path, phases=["100%"])
    dev.sink.events.clear()
    return dev


def _rejected(dev: SimDevice, reason: str) -> None:
    result = dev.agent.run_once()
    assert (result.outcome, result.reason) == ("rejected", reason), result
    assert dev.state().version == "1.0.1"
    assert any(e.type == "ota.manifest.rejected" and e.reason == reason for e in dev.sink.events)


def test_snapshot_rolling_back_targets_is_a_rollback(fleet: Fleet) -> None:
    """Online keys sign a fresh snapshot (and timestamp) that lists an older targets version than the device
    trusts: python-tuf says BadVersionNumberError, and the agent calls it a rollback, not mix-and-match."""
    dev = _confirmed_then_assigned(fleet)
    trusted: Metadata[Any] = Metadata.from_file(str(dev.agent.dir / "ota" / "tuf" / "snapshot.json"))
    held = trusted.signed.meta["targets.json"].version
    _resign(fleet, "snapshot", lambda s: setattr(s.meta["targets.json"], "version", held - 1))
    snap: Metadata[Any] = fleet.repo.load("snapshot")
    _resign(fleet, "timestamp", lambda s: setattr(s.snapshot_meta, "version", snap.signed.version))
    _rejected(dev, "metadata_rollback")


def test_snapshot_other_than_the_timestamp_names_is_mix_and_match(fleet: Fleet) -> None:
    """The server answers ``N.snapshot.json`` with the (validly signed) snapshot N-1 the device already trusts."""
    dev = _confirmed_then_assigned(fleet)
    current = fleet.repo.load("snapshot").signed.version
    older = (fleet.repo.metadata_dir / f"{current - 1}.snapshot.json").read_bytes()
    (fleet.repo.metadata_dir / f"{current}.snapshot.json").write_bytes(older)
    _rejected(dev, "metadata_mix_and_match")


def test_targets_other_than_the_snapshot_names_is_mix_and_match_after_an_update(fleet: Fleet) -> None:
    dev = _confirmed_then_assigned(fleet)
    current = fleet.repo.targets().signed.version
    older = (fleet.repo.metadata_dir / f"{current - 1}.targets.json").read_bytes()
    (fleet.repo.metadata_dir / f"{current}.targets.json").write_bytes(older)
    _rejected(dev, "metadata_mix_and_match")


def test_old_root_served_as_the_next_one_is_a_rollback(fleet: Fleet) -> None:
    """``2.root.json`` answered with root version 1 (validly signed by the trusted keys): a replayed root."""
    dev = fleet.add_device("pump-1")
    rel = fleet.publish("1.1.0", 2)
    fleet.rollout(rel.target_path, phases=["100%"])
    trusted: Metadata[Any] = fleet.repo.load("root")
    following = fleet.repo.metadata_dir / f"{trusted.signed.version + 1}.root.json"
    assert not following.exists()
    following.write_bytes((fleet.repo.metadata_dir / f"{trusted.signed.version}.root.json").read_bytes())
    _assert_rejected(fleet, dev, MetadataReason.ROLLBACK)
