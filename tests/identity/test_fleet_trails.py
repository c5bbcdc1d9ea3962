"""Proof: the device audit trails of a 20-unit rollout (one unit reverting, one refusing the image) all verify on the
server; a truncated, a forked and a re-sealed unit log are each detected at the next upload."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from medfw.audit.keys import mac_key, seal_tag
from medfw.audit.record import encode_record, entry_hash, parse_record
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.identity.unit import AUDIT_LOG, audit_log_id

from .trusted import TrustedFleet, Unit, trusted_fleet


def _trail(fleet: TrustedFleet, unit: Unit, **params: object) -> dict[str, object]:
    r = fleet.admin.get(f"/api/v1/devices/{unit.id}/audit", params={"limit": 1000, **params})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _db(unit: Unit) -> sqlite3.Connection:
    return sqlite3.connect(unit.dir / AUDIT_LOG)


def _truncate(unit: Unit, keep: int) -> None:
    with _db(unit) as db:
        db.execute("DELETE FROM entries WHERE pos >= ?", (keep,))


def _fork(unit: Unit, seq: int) -> None:
    """Rewrite an entry the server already holds (and re-chain everything after it) with a valid-looking seal."""
    with _db(unit) as db:
        rec, _tag = db.execute("SELECT record, tag FROM entries WHERE pos = ?", (seq,)).fetchone()
        r = parse_record(bytes(rec))
        body = dict(r.body)
        body["outcome"] = "failure"
        new = encode_record(body, seq=r.seq, epoch=r.epoch, prev=r.prev)
        db.execute("UPDATE entries SET record = ? WHERE pos = ?", (new, seq))


def _reseal_tail(unit: Unit, start: int) -> None:
    """Whoever holds the unit's current epoch key rewrites entries the server has not seen yet."""
    with _db(unit) as db:
        state = json.loads(db.execute("SELECT value FROM meta WHERE name='state'").fetchone()[0])
        mac = mac_key(bytes.fromhex(state["key"]), audit_log_id(unit.id), int(state["epoch"]))
        rows = db.execute("SELECT pos, record FROM entries WHERE pos >= ? ORDER BY pos", (start - 1,)).fetchall()
        prev = entry_hash(bytes(rows[0][1])).hex()
        for pos, rec in rows[1:]:
            r = parse_record(bytes(rec))
            body = dict(r.body)
            body["reason"] = "nothing_happened"
            new = encode_record(body, seq=r.seq, epoch=r.epoch, prev=prev)
            db.execute(
                "UPDATE entries SET record = ?, tag = ? WHERE pos = ?", (new, seal_tag(mac, entry_hash(new)), pos)
            )
            prev = entry_hash(new).hex()


def test_twenty_unit_rollout_trails_verify_and_tampering_is_detected(tmp_path: Path) -> None:
    with trusted_fleet(tmp_path) as fleet:
        stranger = FileSigner(generate_private_key(KeyType.ECDSA_P256))
        units = []
        for i in range(20):  # unit 7 was made with another signing key: it refuses the release
            units.append(fleet.unit(f"pump-{i:04d}", factory_key=stranger if i == 7 else None))
        for u in units:
            assert u.cycle() == "idle", u.id
        units[13].healthy = False  # its new app never confirms: the watchdog reverts
        target = fleet.publish("2.0.0", 3)
        ro = fleet.rollout(target, phases=["5", "100%"], success_threshold=80, error_threshold=20)
        outcomes: dict[str, str] = {}
        for _round in range(3):
            for u in units:
                if outcomes.get(u.id, "idle") == "idle":
                    outcomes[u.id] = u.cycle()
        assert outcomes["pump-0013"] == "reverted"
        assert outcomes["pump-0007"] == "rejected"
        assert sorted(k for k, v in outcomes.items() if v == "confirmed") == sorted(
            u.id for u in units if u.id not in ("pump-0007", "pump-0013")
        )
        assert fleet.status(ro["id"])["state"] == "finished"
        for u in units:
            u.cycle()  # a last upload of what happened since
            trail = _trail(fleet, u, verify="true")
            assert trail["verification"]["ok"], (u.id, trail["verification"])  # type: ignore[index]
            assert trail["refused"] == 0
            types = {e["type"] for e in trail["entries"]}  # type: ignore[union-attr]
            assert "boot.verify" in types
        reasons_13 = {e["reason"] for e in _trail(fleet, units[13])["entries"]}  # type: ignore[union-attr]
        assert "not_confirmed" in reasons_13
        rejected_7 = [e for e in _trail(fleet, units[7])["entries"] if e["type"] == "ota.install.rejected"]  # type: ignore[union-attr]
        assert rejected_7 and rejected_7[0]["reason"] == "untrusted_key"
        confirmed = [e for e in _trail(fleet, units[0])["entries"] if e["type"] == "ota.confirm"]  # type: ignore[union-attr]
        assert confirmed

        # tampering in the field, each detected at the next upload
        truncated, forked, resealed = units[1], units[2], units[3]
        held = {u.id: int(_trail(fleet, u)["size"]) for u in (truncated, forked, resealed)}  # type: ignore[call-overload]
        _truncate(truncated, held[truncated.id] - 10)
        _fork(forked, held[forked.id] - 1)
        for u in (truncated, forked, resealed):
            u.device.set_busy(True)  # new events to upload
            u.device.set_busy(False)
        resealed.device.audit.own.checkpoint("request")  # type: ignore[attr-defined]  # the sealing key moves on
        _reseal_tail(resealed, held[resealed.id])
        for u in (truncated, forked, resealed):
            u.cycle()
        expected = {truncated.id: "rewind", forked.id: "fork", resealed.id: "bad_seal"}
        for u in (truncated, forked, resealed):
            trail = _trail(fleet, u)
            assert trail["refused"] == 1, (u.id, trail["last_refusal"])
            assert str(trail["last_refusal"]).startswith(expected[u.id]), (u.id, trail["last_refusal"])
            assert trail["size"] == held[u.id]  # nothing of a refused upload was stored
        denied = {e.reason for e in fleet.sink.of_type("ota.report") if e.outcome == "denied"}
        assert {"trail_rewind", "trail_fork", "trail_bad_seal"} <= denied
