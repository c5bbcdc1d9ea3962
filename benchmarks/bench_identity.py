"""Device-trust costs on the fleet server: JWS claims verification, certificate authentication, trail verification.

Prints the numbers recorded in ``docs/BENCHMARKS.md`` (section "Device trust"). Bounded: a few seconds.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from medfw.audit import AuditEvent, open_log, read_rows
from medfw.audit.keys import EpochKeys
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.identity.ca import create_ca
from medfw.identity.certs import verify_device_certificate
from medfw.identity.claims import verify_claims
from medfw.identity.trail import TrailHead, build_upload, verify_upload
from medfw.identity.unit import AUDIT_LOG, DeviceCredentials, audit_log_id, derive_audit_key, provision_identity

MASTER = bytes(range(32))


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s ({seconds / n * 1e6:,.0f} µs each)"


def main() -> None:
    """Run the measurements."""
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp) / "unit"
        ca = create_ca(FileSigner(generate_private_key(KeyType.ECDSA_P256)), organisation="Bench")
        provision_identity(d, ca, device_id="u1", model="pump", chip="esp32c6", audit_master=MASTER)
        creds = DeviceCredentials.load(d)
        cert = creds.certificate()
        token = creds.claims("report", status="confirmed", rollout=1, version="1.0.0", secure_version=1, slot="ota_0")
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            verify_claims(token, creds.identity.public_key, device_id="u1", kind="report")
        print("JWS (ES256) claims verification:", _rate(n, time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(n):
            verify_device_certificate(cert, ca.certificate)
        print("device certificate check (CA signature, validity, usage, SAN):", _rate(n, time.perf_counter() - t))
        t = time.perf_counter()
        for _ in range(200):
            creds.claims("poll", version="1.0.0")
        print("signing claims on the unit (incl. the fsynced counter):", _rate(200, time.perf_counter() - t))
        with open_log(d / AUDIT_LOG) as log, log.batch():
            for i in range(5000):
                log.record(AuditEvent("boot.verify", "success", "image_valid", "bootloader", {}, {"n": i}))
        rows = read_rows(d / AUDIT_LOG)
        keys = EpochKeys(derive_audit_key(MASTER, "u1"), audit_log_id("u1"))
        head, total = TrailHead(), 0
        t = time.perf_counter()
        for start in range(0, len(rows), 48):
            batch = rows[start : start + 48]
            entries, cp = build_upload(batch, start, len(rows))
            head = verify_upload(head, entries, cp, keys=keys, stored_hash=lambda _s: None).head
            total += len(batch)
        print(f"trail upload verification ({total} entries, batches of 48):", _rate(total, time.perf_counter() - t))


if __name__ == "__main__":
    main()
