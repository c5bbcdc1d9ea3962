"""The unit's clinical state (busy, on-device approval), new key digests, and its own sealed audit trail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from medfw.audit import verify_log
from medfw.audit.query import list_entries
from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.device.clinical import Permission
from medfw.device.errors import EfuseWriteError
from medfw.identity.ca import create_ca
from medfw.identity.unit import AUDIT_LOG, audit_log_id, derive_audit_key, provision_identity

from .conftest import Kit

MASTER = b"m" * 32


def test_busy_unit_defers_and_approval_is_per_release(booted: Callable[..., Device], sink: MemorySink) -> None:
    device = booted()
    assert device.install_permission("pump/pump-2.0.0.bin") is Permission.GRANTED
    device.set_busy(True)
    assert device.install_permission("pump/pump-2.0.0.bin") is Permission.DEVICE_BUSY
    device.set_busy(False)
    assert device.install_permission("pump/pump-2.0.0.bin", approval_required=True) is Permission.AWAITING_APPROVAL
    device.approve("pump/pump-2.0.0.bin")
    assert device.install_permission("pump/pump-2.0.0.bin", approval_required=True) is Permission.GRANTED
    assert device.install_permission("pump/pump-3.0.0.bin", approval_required=True) is Permission.AWAITING_APPROVAL
    reasons = [e.reason for e in sink.of_type("config.change")]
    assert reasons == ["therapy_started", "therapy_ended", "user_approval"]


def test_add_key_digest_burns_a_free_slot_once(booted: Callable[..., Device], kit: Kit) -> None:
    device = booted(revoke_unused=False)
    assert device.add_key_digest(kit.digest2) == 1
    assert device.add_key_digest(kit.digest2) == 1  # already there: nothing burned again
    full = booted()  # unused slots revoked at provisioning: no free slot
    with pytest.raises(EfuseWriteError):
        full.add_key_digest(kit.digest2)


def test_clinical_state_persists_and_events_go_to_the_units_own_log(tmp_path: Path, kit: Kit) -> None:
    d = tmp_path / "unit"
    Device.init(d, chip="esp32c6", key_digests=[kit.digest]).flash(kit.bootloader, kit.app("1.0.0", 1))
    ca = create_ca(FileSigner(generate_private_key(KeyType.ECDSA_P256)), organisation="Acme")
    provision_identity(d, ca, device_id="u1", model="pump", chip="esp32c6", audit_master=MASTER)
    device = Device.open(d)
    device.boot()
    device.set_busy(True)
    device.close()
    reopened = Device.open(d)
    assert reopened.clinical.busy
    reopened.close()
    types = [r.type for r in list_entries(d / AUDIT_LOG)]
    assert "boot.verify" in types
    assert "config.change" in types
    report = verify_log(d / AUDIT_LOG, derive_audit_key(MASTER, "u1"))
    assert report.ok, report
    assert audit_log_id("u1") == report.log_id
