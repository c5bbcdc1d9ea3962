"""Collected device audit trails: verify each upload continues the chain the server holds, store it, serve it.

See :mod:`medfw.identity.trail` for the checks. The server derives each unit's initial sealing key from the
device-audit master secret (the same derivation as at provisioning), checks the upload's checkpoint claims with the
unit's certificate key, and keeps the latest signed checkpoint per unit. A refused upload stores nothing of its
entries; the refusal is counted on the unit's trail and audited.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from medfw.audit.keys import EpochKeys
from medfw.audit.record import GENESIS_PREV
from medfw.identity.claims import unverified_claims
from medfw.identity.errors import TrailRejectedError
from medfw.identity.trail import TrailHead, verify_upload
from medfw.identity.unit import audit_log_id, derive_audit_key
from medfw.server.trust import TrustOps
from medfw.server.trust_errors import conflict, forbidden, invalid, not_found
from medfw.server.trust_models import DeviceTrail, TrailEntry

__all__ = ["TrailOps"]

MAX_PAGE = 1000


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class TrailOps(TrustOps):
    """Uploads and queries of the units' own audit trails."""

    def _trail_keys(self, device_id: str) -> EpochKeys:
        master = self.trust.audit_master
        if master is None:
            raise not_found("this server collects no device audit trails (no device-audit master secret)")
        return EpochKeys(derive_audit_key(master, device_id), audit_log_id(device_id))

    def upload_trail(self, device_id: str, entries: Sequence[Any], checkpoint: str) -> dict[str, Any]:
        """Verify and store a batch of a unit's audit trail; return the new size (resumable: resends are skipped).

        Raises:
            403 for a unit without a certificate or with bad checkpoint claims, 409 when the batch does not continue
            the stored chain (gap, fork, rewind, re-seal; nothing stored), 422 when malformed.
        """
        keys = self._trail_keys(device_id)
        if not self.is_certificate_device(device_id):
            raise forbidden("only a unit with a device certificate can upload its audit trail")
        try:
            seq = unverified_claims(checkpoint).get("seq")
        except Exception:
            seq = None
        self.check_claims(device_id, checkpoint, kind="audit")
        claims = unverified_claims(checkpoint)
        refusal: TrailRejectedError | None = None
        with self.work() as w:
            s = w.session
            trail = s.get(DeviceTrail, device_id, with_for_update=True)
            head = TrailHead(trail.size, trail.head, trail.epoch) if trail is not None else TrailHead()

            def stored(n: int) -> str | None:
                return s.scalar(
                    select(TrailEntry.entry_hash).where(TrailEntry.device_id == device_id, TrailEntry.seq == n)
                )

            try:
                update = verify_upload(head, entries, claims, keys=keys, stored_hash=stored)
            except TrailRejectedError as e:
                refusal = e
            else:
                _store(s, device_id, trail, update, checkpoint)
                objects = {"device": device_id, "trail_head": update.head.head}
                data = {"added": len(update.entries), "duplicates": update.duplicates, "size": update.head.size}
                w.audit(
                    "ota.report", "success", f"device:{device_id}", reason="trail_upload", objects=objects, data=data
                )
        if refusal is not None:
            self._trail_refused(device_id, refusal, seq)
            status = invalid if refusal.reason == "malformed" else conflict
            raise status(f"audit trail upload refused ({refusal.reason}): {refusal.message}", field="entries")
        return {"device": device_id, "size": update.head.size, "added": len(update.entries), "head": update.head.head}

    def _trail_refused(self, device_id: str, e: TrailRejectedError, seq: object) -> None:
        with self.work() as w:
            s = w.session
            trail = s.get(DeviceTrail, device_id, with_for_update=True)
            if trail is None:
                trail = DeviceTrail(device_id=device_id, size=0, head=GENESIS_PREV, epoch=0, log_size=0, refused=0)
                s.add(trail)
            trail.refused += 1
            trail.last_refusal = f"{e.reason}: {e.message}"[:256]
            trail.updated = _now()
            data = {"detail": e.message, "offset": e.offset, "claims_seq": seq}
            objects = {"device": device_id}
            w.audit(
                "ota.report", "denied", f"device:{device_id}", reason=f"trail_{e.reason}", objects=objects, data=data
            )

    def device_trail(self, device_id: str, *, start: int = 0, limit: int = 200) -> dict[str, Any]:
        """A unit's collected trail: head, latest signed checkpoint, refusals and a page of entries."""
        if start < 0 or not 1 <= limit <= MAX_PAGE:
            raise invalid(f"start must be >= 0 and limit 1..{MAX_PAGE}", field="limit")
        with self.sessions() as s:
            trail = s.get(DeviceTrail, device_id)
            rows = s.scalars(
                select(TrailEntry)
                .where(TrailEntry.device_id == device_id, TrailEntry.seq >= start)
                .order_by(TrailEntry.seq)
                .limit(limit)
            ).all()
            entries = [
                {
                    "seq": r.seq,
                    "type": r.type,
                    "outcome": r.outcome,
                    "reason": r.reason,
                    "ts": r.ts,
                    "entry_hash": r.entry_hash,
                    "record": r.record,
                    "tag": r.tag,
                }
                for r in rows
            ]
        return {
            "device": device_id,
            "size": trail.size if trail else 0,
            "head": trail.head if trail else GENESIS_PREV,
            "log_size": trail.log_size if trail else 0,
            "checkpoint": trail.checkpoint if trail else None,
            "refused": trail.refused if trail else 0,
            "last_refusal": trail.last_refusal if trail else None,
            "entries": entries,
        }

    def rollout_trails(self, rollout_id: int, *, phase: int = 0, max_entries: int = 100_000) -> list[dict[str, Any]]:
        """The collected trails of a rollout phase's units (phase 0: the canary), with each unit's certificate and
        latest signed checkpoint — what an evidence bundle re-checks with public material only."""
        from medfw.server.trust_models import DeviceIdentityRow  # noqa: PLC0415

        with self.sessions() as s:
            devices = list(s.scalars(_canary_query(rollout_id, phase)))
            if not devices:
                raise not_found(f"rollout {rollout_id} has no units in phase {phase}")
            out = []
            for device_id in devices:
                ident = s.get(DeviceIdentityRow, device_id)
                trail = s.get(DeviceTrail, device_id)
                if ident is None or trail is None:
                    continue
                rows = s.execute(
                    select(TrailEntry.seq, TrailEntry.record, TrailEntry.tag)
                    .where(TrailEntry.device_id == device_id)
                    .order_by(TrailEntry.seq)
                    .limit(max_entries)
                ).all()
                out.append(
                    {
                        "device": device_id,
                        "certificate": ident.certificate,
                        "checkpoint": trail.checkpoint,
                        "entries": [{"seq": n, "record": rec, "tag": tag} for n, rec, tag in rows],
                    }
                )
        return out

    def verify_trail(self, device_id: str) -> dict[str, Any]:
        """Re-verify the whole stored trail of a unit from its first entry (for evidence): chain and seals."""
        keys = self._trail_keys(device_id)
        with self.sessions() as s:
            rows = s.execute(
                select(TrailEntry.seq, TrailEntry.record, TrailEntry.tag)
                .where(TrailEntry.device_id == device_id)
                .order_by(TrailEntry.seq)
            ).all()
            trail = s.get(DeviceTrail, device_id)
        entries: list[dict[str, Any]] = [{"seq": n, "record": rec, "tag": tag} for n, rec, tag in rows]
        head = TrailHead()
        ok, reason = True, None
        for i in range(0, len(entries), 256):
            batch = entries[i : i + 256]
            cp: dict[str, Any] = {"first": i, "count": len(batch), "log_size": len(entries)}
            cp["head"] = _hash_of(str(batch[-1]["record"]))
            try:
                head = verify_upload(head, batch, cp, keys=keys, stored_hash=lambda _n: None).head
            except TrailRejectedError as e:
                ok, reason = False, f"{e.reason}: {e.message}"
                break
        return {
            "device": device_id,
            "entries": len(entries),
            "ok": ok and (trail is None or head.head == trail.head),
            "reason": reason,
            "head": head.head,
            "checkpoint": trail.checkpoint if trail else None,
        }


def _store(s: Any, device_id: str, trail: DeviceTrail | None, update: Any, checkpoint: str) -> None:
    """Append a verified batch and move the unit's trail head (inside the upload's transaction)."""
    if trail is None:
        trail = DeviceTrail(device_id=device_id, size=0, head=GENESIS_PREV, epoch=0, log_size=0, refused=0)
        s.add(trail)
    for n in update.entries:
        s.add(
            TrailEntry(
                device_id=device_id,
                seq=n.seq,
                record=n.record.decode("utf-8"),
                tag=n.tag.hex(),
                entry_hash=n.entry_hash,
                type=n.type,
                outcome=n.outcome,
                reason=n.reason,
                ts=n.ts,
            )
        )
    trail.size, trail.head, trail.epoch = update.head.size, update.head.head, update.head.epoch
    trail.log_size, trail.checkpoint, trail.updated = update.log_size, checkpoint, _now()


def _canary_query(rollout_id: int, phase: int) -> Any:
    from medfw.server.models import Assignment  # noqa: PLC0415

    return (
        select(Assignment.device_id)
        .where(Assignment.rollout_id == rollout_id, Assignment.phase == phase)
        .order_by(Assignment.device_id)
    )


def _hash_of(record: str) -> str:
    from medfw.audit.record import entry_hash  # noqa: PLC0415

    return entry_hash(record.encode("utf-8")).hex()
