"""Build the fleet server application from settings (used by ``medfw ota serve`` and multi-worker uvicorn)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from medfw._io import read_bytes
from medfw.audit.sink import AuditSink, NullSink
from medfw.identity.ca import load_certificate
from medfw.identity.unit import load_audit_master
from medfw.server.app import create_app, repo_online_keys
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.lease import AuditLease
from medfw.server.logs import configure_logging
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig
from medfw.update.repository import TufRepository

__all__ = ["ServerSettings", "build_app", "create_from_env", "default_db_url"]

ENV_DB = "MEDFW_OTA_DB"
ENV_REPO = "MEDFW_OTA_REPO"
ENV_AUDIT = "MEDFW_AUDIT_LOG"
ENV_MIGRATED = "MEDFW_OTA_MIGRATED"
ENV_DEVICE_CA = "MEDFW_OTA_DEVICE_CA"
ENV_AUDIT_MASTER = "MEDFW_OTA_DEVICE_AUDIT_MASTER"
ENV_ALLOW_SIMULATORS = "MEDFW_OTA_ALLOW_SHARED_SECRET_DEVICES"
ENV_APPROVAL_POLICY = "MEDFW_OTA_APPROVAL_POLICY"
ENV_VULN_DB = "MEDFW_OTA_VULN_DB"
ENV_LOG_FORMAT = "MEDFW_OTA_LOG_FORMAT"
ENV_ARTIFACT_BASE = "MEDFW_OTA_ARTIFACT_BASE_URL"


@dataclass(frozen=True)
class ServerSettings:
    """Where the server keeps its state."""

    db: str
    repo: str | None = None
    audit_log: str | None = None
    poll_interval: int = 60
    device_ca: str | None = None
    device_audit_master: str | None = None
    allow_shared_secret_devices: bool = False
    approval_policy: str | None = None

    def trust(self) -> TrustConfig:
        """Load the device CA, the device-audit master secret and the approval policy (files; fail early)."""
        ca = None
        if self.device_ca:
            ca = load_certificate(
                read_bytes(self.device_ca, max_length=64 * 1024, what="device CA"), path=self.device_ca
            )
        master = load_audit_master(self.device_audit_master) if self.device_audit_master else None
        policy = None
        if self.approval_policy:
            from medfw.keys.approval_policy import load_policy  # noqa: PLC0415

            policy = load_policy(self.approval_policy)
        return TrustConfig(
            device_ca=ca,
            audit_master=master,
            allow_shared_secret=self.allow_shared_secret_devices,
            approval_policy=policy,
        )

    artifact_base_url: str | None = None
    vuln_db: str | None = None


def default_db_url(repo: str | None) -> str:
    """``sqlite:///`` next to the repository (or in the working directory)."""
    base = Path(repo) if repo else Path.cwd()
    return f"sqlite:///{(base / 'fleet.sqlite').resolve()}"


def _open_log(path: str) -> Callable[[], AuditSink]:
    def opener() -> AuditSink:
        from medfw.audit import open_log  # noqa: PLC0415 - only when a log is configured

        sink: AuditSink = open_log(path)
        return sink

    return opener


def build_app(settings: ServerSettings, *, run_migrations: bool = True, sink: AuditSink | None = None) -> FastAPI:
    """Open the database (migrating it), the repository and its online keys; return the app with its console.

    With an audit log, the process that holds its lease appends it; other workers leave their events in the
    outbox for it (and take over when it stops).
    """
    engine = make_engine(settings.db)
    if run_migrations:
        migrate(engine)
    repo = TufRepository(settings.repo) if settings.repo else None
    keys = repo_online_keys(repo) if repo is not None else None
    lease: AuditLease | None = None
    drainer = True
    if sink is None and settings.audit_log:
        lease = AuditLease(settings.audit_log, _open_log(settings.audit_log))
        sink = lease.try_claim()
        drainer = sink is not None
    service = FleetService(
        make_sessionmaker(engine),
        sink or NullSink(),
        poll_interval=settings.poll_interval,
        drainer=drainer,
        trust=settings.trust(),
        artifact_base_url=settings.artifact_base_url,
    )
    app = create_app(service, repo, online_keys=keys, audit_lease=lease, append_in_background=True)
    from medfw.server.console import attach_console  # noqa: PLC0415 - the web console at /

    attach_console(app, service, audit_log=settings.audit_log, vuln_db=settings.vuln_db)
    return app


def create_from_env() -> FastAPI:
    """App factory for uvicorn workers: settings from ``MEDFW_OTA_DB`` / ``MEDFW_OTA_REPO`` / ``MEDFW_AUDIT_LOG`` /
    ``MEDFW_OTA_VULN_DB``."""
    configure_logging(os.environ.get(ENV_LOG_FORMAT) or "text")
    repo = os.environ.get(ENV_REPO) or None
    settings = ServerSettings(
        db=os.environ.get(ENV_DB) or default_db_url(repo),
        repo=repo,
        audit_log=os.environ.get(ENV_AUDIT) or None,
        device_ca=os.environ.get(ENV_DEVICE_CA) or None,
        device_audit_master=os.environ.get(ENV_AUDIT_MASTER) or None,
        allow_shared_secret_devices=os.environ.get(ENV_ALLOW_SIMULATORS) == "1",
        approval_policy=os.environ.get(ENV_APPROVAL_POLICY) or None,
        artifact_base_url=os.environ.get(ENV_ARTIFACT_BASE) or None,
        vuln_db=os.environ.get(ENV_VULN_DB) or None,
    )
    return build_app(settings, run_migrations=os.environ.get(ENV_MIGRATED) != "1")
