"""The fleet server's ASGI application: one include per router, one error mapping, its middlewares (request log,
body limit, the fast paths of polls and reports).

Routers (:mod:`medfw.server.routers`): health, the device API (``Authorization: Device <id>:<secret>``), TUF
metadata and targets (public), the management API (``Authorization: Bearer <token>``; roles admin > operator >
read-only). A new router is one more ``include_router`` line in :func:`create_app`; it reaches the service and
the repository through :mod:`medfw.server.deps`.

Every refusal is a 4xx JSON ``{"detail": reason}`` (:mod:`medfw.server.http`); nothing is stored for a refused
request. Request bodies are limited to ``max_body`` bytes (413).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI

from medfw import __version__
from medfw.server import schemas, witness
from medfw.server.credentials import Role
from medfw.server.deps import OnlineKeys, need
from medfw.server.fast_report import FastReport
from medfw.server.http import install_error_handlers
from medfw.server.lease import AuditLease
from medfw.server.logs import RequestLog
from medfw.server.maintenance import Maintenance
from medfw.server.middleware import BodyLimit, FastPoll
from medfw.server.routers import device, health, management, trust, tuf, views
from medfw.server.service import FleetService
from medfw.server.store_state import CounterReader
from medfw.update.repository import TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

__all__ = ["DEFAULT_MAX_BODY", "OnlineKeys", "create_app", "repo_online_keys"]

DEFAULT_MAX_BODY = 64 * 1024


def create_app(
    service: FleetService,
    repo: TufRepository | None = None,
    *,
    online_keys: OnlineKeys | None = None,
    max_body: int = DEFAULT_MAX_BODY,
    maintenance_interval: float = 5.0,
    audit_lease: AuditLease | None = None,
    append_in_background: bool = False,
) -> FastAPI:
    """Build the ASGI application.

    Args:
        service: the fleet service (database + audit sink).
        repo: the TUF repository whose metadata and targets are served (releases are read from it).
        online_keys: snapshot/timestamp signers; with them, short-lived metadata is re-signed before it expires.
        max_body: largest accepted request body.
        maintenance_interval: seconds between background passes: online re-signing, recording newly published
            releases, writing what polling devices reported, the audit outbox.
        audit_lease: the claim on appending the audit log, when several processes serve one database.
        append_in_background: while the app runs, a thread of its own appends the audit outbox to the log (a request
            waits only for its transaction's commit, which holds its audit events; ``ota serve`` does this), instead
            of the request thread after its commit.
    """
    maintenance = Maintenance(service, repo, online_keys, interval=maintenance_interval, lease=audit_lease)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        counters = CounterReader(service.store.engine)
        # the generation counters read in the background; credentials loaded in bulk
        service.cache.watch(counters, service.busy_devices)
        maintenance.start()  # a first pass records the repository's releases
        if append_in_background:
            service.append_in_background()
        try:
            yield
        finally:
            try:
                service.settle_reports()  # posted reports' writers finish (their audit append included)
                service.stop_appending()
                maintenance.stop()
            finally:  # the watching thread stops whatever happened above
                service.cache.unwatch()
                counters.close()

    app = FastAPI(
        title="medfw OTA fleet server",
        version=__version__,
        description="Signed (TUF) firmware delivery with staged rollouts. The server assigns releases; it never "
        "signs them.",
        lifespan=lifespan,
        # every refusal is {"detail": reason} (the 422 body too: one sentence naming the fields, see http.py)
        responses={status: {"model": schemas.Error} for status in (400, 401, 403, 404, 409, 413, 422, 429, 503)},
    )
    app.state.service = service
    app.state.repo = repo
    app.state.online_keys = online_keys
    app.state.maintenance = maintenance
    install_error_handlers(app)
    app.add_middleware(FastPoll, service=service)
    app.add_middleware(FastReport, service=service)
    app.add_middleware(BodyLimit, limit=max_body, exempt=views.DOCUMENT_PATH)  # uploads stream under their limit
    app.add_middleware(RequestLog)

    app.include_router(health.router)
    app.include_router(device.router)
    app.include_router(tuf.router)
    app.include_router(management.router)
    app.include_router(trust.router)
    app.include_router(views.router)  # fleet-wide views and release documents
    app.include_router(witness.make_router(need(Role.READ_ONLY), need(Role.OPERATOR)))  # audit-log witness
    return app


def repo_online_keys(repo: TufRepository) -> OnlineKeys | None:
    """Load ``online-keys/snapshot.pem`` and ``timestamp.pem`` of a repository, if both exist."""
    snap = repo.online_keys_dir / "snapshot.pem"
    ts = repo.online_keys_dir / "timestamp.pem"
    if not (snap.is_file() and ts.is_file()):
        return None
    return OnlineKeys(MedfwTufSigner.from_medfw_uri(str(snap)), MedfwTufSigner.from_medfw_uri(str(ts)))
