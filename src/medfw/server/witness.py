"""The audit-log witness: the fleet server keeps the latest signed checkpoint of each audit log.

``GET /api/v1/audit/witness/{log_id}`` (read-only token) returns the checkpoint the server holds (404: none).
``POST /api/v1/audit/witness/{log_id}`` (operator token) hands it a newer one with the RFC 9162 consistency
proof from the size it holds: ``{"checkpoint": {...}, "from_size": N, "consistency": ["<hex>", ...]}``. The
first checkpoint of a log pins its checkpoint public key; a later one is accepted only when that key signed it
and the proof shows it extends the held one (:func:`medfw.audit.witness.check_extension`). A smaller size
(rollback, truncation) or the same size with another root (fork) is refused with 409 and recorded in the audit
log, and the held checkpoint stays. The check, the update and the audit event run in one unit of work of the fleet
service (one transaction under a row lock, the event through the audit outbox), so two concurrent posts cannot both
replace the same checkpoint and no event is lost or written for a change that did not commit, with any number of
server processes.
"""

# no "from __future__ import annotations": FastAPI reads the routes' annotations, which use local dependencies

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import BigInteger, DateTime, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from medfw.audit.checkpoint import SignedCheckpoint
from medfw.audit.keys import key_id, load_checkpoint_public_key
from medfw.audit.witness import WITNESS_API, check_extension
from medfw.errors import AuditError, VerificationError
from medfw.server.base import ServiceBase
from medfw.server.models import Base
from medfw.server.work import Work

__all__ = ["WitnessRecord", "WitnessService", "make_router"]

_LOG_ID = r"^[\x21-\x7e]{1,128}$"
_MAX_PROOF = 128


class WitnessRecord(Base):
    """The latest checkpoint witnessed for one audit log, and the checkpoint key its first checkpoint pinned."""

    __tablename__ = "audit_witness"

    log_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(64))
    public_key: Mapped[str] = mapped_column(Text)
    document: Mapped[str] = mapped_column(Text)
    updated: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class WitnessService:
    """Stores and checks witnessed checkpoints: one unit of work of the fleet service per post, so the audit event
    (accepted or refused) commits with it through the same outbox as every other state change."""

    def __init__(self, fleet: ServiceBase) -> None:
        self._fleet = fleet

    def get(self, log_id: str) -> dict[str, Any] | None:
        """The held checkpoint document of ``log_id`` (None when none is held)."""
        with self._fleet.sessions() as s:
            rec = s.get(WitnessRecord, log_id)
            if rec is None:
                return None
            return {
                "log_id": rec.log_id,
                "size": rec.size,
                "checkpoint": SignedCheckpoint.from_bytes(rec.document.encode("utf-8")).to_dict(),
            }

    def post(self, log_id: str, body: Any, actor: str) -> dict[str, Any]:
        """Accept a checkpoint that extends the held one.

        Raises:
            AuditError: the body is malformed or names another log (422).
            VerificationError: not signed by the pinned key, a rollback, a fork, or a failed proof (409).
        """
        new, proof = _parse(log_id, body)
        cp = new.checkpoint
        refused: VerificationError | None = None
        with self._fleet.work() as w:
            rec = w.session.execute(
                select(WitnessRecord).where(WitnessRecord.log_id == log_id).with_for_update()
            ).scalar()
            held = SignedCheckpoint.from_bytes(rec.document.encode("utf-8")) if rec is not None else None
            pem = rec.public_key.encode("ascii") if rec is not None else new.public_key_pem
            pinned = load_checkpoint_public_key(pem)
            previous = held.checkpoint.size if held is not None else None
            try:
                check_extension(held, new, proof, pinned)
            except VerificationError as e:
                refused = e  # nothing changes; the refusal's audit event still commits
                _record(w, "denied", actor, log_id, cp.size, previous, e.message)
            else:
                _store(w.session, rec, new, pem, key_id(pinned))
                _record(w, "success", actor, log_id, cp.size, previous, None)
        if refused is not None:
            raise VerificationError(refused.message, field=refused.field)
        return {"log_id": log_id, "size": cp.size, "root": cp.root.hex(), "previous_size": previous}


def _store(s: Session, rec: WitnessRecord | None, new: SignedCheckpoint, pem: bytes, pinned_id: str) -> None:
    """Hold ``new`` (the first checkpoint of its log pins ``pem``)."""
    cp = new.checkpoint
    doc = new.to_bytes().decode("utf-8")
    if rec is None:
        s.add(
            WitnessRecord(
                log_id=cp.log_id,
                size=cp.size,
                root=cp.root.hex(),
                key_id=pinned_id,
                public_key=pem.decode("ascii"),
                document=doc,
                updated=datetime.now(UTC),
            )
        )
    elif cp.size > rec.size:
        rec.size, rec.root, rec.document, rec.updated = cp.size, cp.root.hex(), doc, datetime.now(UTC)


def _record(  # noqa: PLR0917 - one audit event's fields
    w: Work, outcome: str, actor: str, log_id: str, size: int, previous: int | None, why: str | None
) -> None:
    w.audit(
        "audit.checkpoint",
        outcome,
        actor,
        reason="witness" if why is None else "witness_refused",
        objects={"log_id": log_id},
        data={"size": size, "previous_size": previous, **({"why": why} if why else {})},
    )


def _parse(log_id: str, body: Any) -> tuple[SignedCheckpoint, list[bytes]]:
    if not isinstance(body, dict):
        raise AuditError("body must be a JSON object", field="body")
    new = SignedCheckpoint.from_dict(body.get("checkpoint"), path="checkpoint")
    if new.checkpoint.log_id != log_id:
        raise AuditError(f"checkpoint is for log {new.checkpoint.log_id!r}, not {log_id!r}", field="log_id")
    raw = body.get("consistency", [])
    if not isinstance(raw, list) or len(raw) > _MAX_PROOF:
        raise AuditError(f"consistency must be a list of at most {_MAX_PROOF} hashes", field="consistency")
    try:
        proof = [bytes.fromhex(h) for h in raw if isinstance(h, str) and len(h) == 64]
    except ValueError:
        raise AuditError("consistency hashes must be 64 hex digits", field="consistency") from None
    if len(proof) != len(raw):
        raise AuditError("consistency hashes must be 64 hex digits", field="consistency")
    return new, proof


def _service(request: Request) -> WitnessService:
    return WitnessService(request.app.state.service)


def make_router(reader: Callable[..., str], operator: Callable[..., str]) -> APIRouter:
    """The witness routes, authenticated by the app's read-only and operator token dependencies."""
    router = APIRouter(tags=["audit witness"])
    log_path = Annotated[str, Path(pattern=_LOG_ID)]

    @router.get(WITNESS_API + "{log_id}", responses={404: {"description": "no checkpoint held for this log"}})
    async def get_witness(request: Request, log_id: log_path, _who: Annotated[str, Depends(reader)]) -> JSONResponse:
        """The latest checkpoint the server holds for ``log_id``."""
        doc = await run_in_threadpool(_service(request).get, log_id)
        if doc is None:
            return JSONResponse({"detail": f"no checkpoint held for log {log_id}"}, status_code=404)
        return JSONResponse(doc)

    @router.post(WITNESS_API + "{log_id}", responses={409: {"description": "not an extension of the held checkpoint"}})
    async def post_witness(
        request: Request,
        log_id: log_path,
        who: Annotated[str, Depends(operator)],
        body: Annotated[Any, Body()],
    ) -> JSONResponse:
        """Hand the server a newer checkpoint with its consistency proof from the held one."""
        try:
            answer = await run_in_threadpool(_service(request).post, log_id, body, who)
        except VerificationError as e:
            return JSONResponse({"detail": e.message}, status_code=409)
        return JSONResponse(answer)

    return router
