"""The device-trust service on both backends (SQLite and PostgreSQL): enrollment, claims, trail upload, windows,
revocation — through the service, as the routers call it."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfw.audit import AuditEvent, open_log, read_rows
from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import create_ca
from medfw.identity.trail import build_upload
from medfw.identity.unit import AUDIT_LOG, DeviceCredentials, provision_identity
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.errors import Conflict, Forbidden, Invalid, Unauthorized
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig

MASTER = bytes(range(32))


def test_trust_service(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    ca = create_ca(FileSigner(generate_private_key(KeyType.ECDSA_P256)), organisation="Acme")
    sink = MemorySink()
    svc = FleetService(
        make_sessionmaker(engine), sink, trust=TrustConfig(device_ca=ca.certificate, audit_master=MASTER)
    )
    unit = tmp_path / "u1"
    provision_identity(unit, ca, device_id="u1", model="pump", chip="esp32c6", audit_master=MASTER)
    creds = DeviceCredentials.load(unit)
    cert = creds.certificate()
    with pytest.raises(Forbidden):
        svc.authenticate_certificate(cert)  # held
    assert [r["device"] for r in svc.enrollments("held")] == ["u1"]
    assert svc.preauthorize([("u2", "pump")], actor="t") == 1
    assert svc.decide_enrollment("u1", approve=True, actor="t", group="icu") == "approved"
    assert svc.authenticate_certificate(cert) == "u1"
    assert svc.device_rows()[0].group == "icu"
    assert svc.check_claims("u1", creds.claims("poll", version="1.0.0"), kind="poll", expect={"version": "1.0.0"})
    token = creds.claims("poll", version="1.0.0")
    svc.check_claims("u1", token, kind="poll")
    with pytest.raises(Conflict):
        svc.check_claims("u1", token, kind="poll")  # replay
    with open_log(unit / AUDIT_LOG) as log:
        log.record(AuditEvent("boot.verify", "success", "image_valid", "bootloader"))
    rows = read_rows(unit / AUDIT_LOG)
    entries, cp = build_upload(rows, 0, len(rows))
    assert svc.upload_trail("u1", entries, creds.claims("audit", **cp))["size"] == len(rows)
    assert svc.verify_trail("u1")["ok"]
    entries2, cp2 = build_upload(rows[:1], 0, 1)
    with pytest.raises(Conflict):
        svc.upload_trail("u1", entries2, creds.claims("audit", **cp2))  # the log went back: rewind
    assert svc.device_trail("u1")["refused"] == 1
    assert svc.set_window("icu", timezone="UTC", days=["mon"], start="22:00", end="04:00", actor="t")["days"] == ["mon"]
    with pytest.raises(Invalid):
        svc.set_window("icu", timezone="UTC", days=["mon"], start="04:00", end="04:00", actor="t")
    assert len(svc.windows()) == 1
    svc.delete_device("u1", actor="t")
    assert [r["device"] for r in svc.revocations()] == ["u1"]
    with pytest.raises(Unauthorized):
        svc.authenticate_certificate(cert)
    types = {e.type for e in sink.events}
    assert {"device.register", "key.revoke", "config.change", "ota.report"} <= types
