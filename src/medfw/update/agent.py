"""The device update agent: poll, verify with TUF, download with resume, install, reboot, confirm, report.

One cycle (:meth:`UpdateAgent.run_once`):

1. send queued reports, then poll the fleet server with the running version / secure_version / slot;
2. on an assignment, refresh TUF metadata with python-tuf's ngclient from the root of trust stored in the device
   directory at provisioning (``ota/tuf/root.json``) and look the assigned target up in the signed targets
   metadata — the server's word on hashes, versions and models is never used;
3. refuse a release for another model or chip, one whose secure_version is below the running one
   (``rollback``) or whose version is older (``downgrade``);
4. download the image with HTTP Range resume into ``ota/download/<sha256>.part`` and check TUF length and hashes;
5. hand it to the device, which checks the boot signature and security version and writes the inactive slot;
6. reboot; if the new app passes its health check it confirms, otherwise the watchdog reset reverts to the old
   slot;
7. report each step (``downloading``, ``installed``, ``booted``, ``confirmed``, ``reverted``, ``rejected`` with its
   reason) and record it in the device's audit sink. Reports that cannot be sent are queued in
   ``ota/outbox.json`` and sent on a later cycle, so the agent keeps working while the server is down.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx
from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import TargetFile
from tuf.ngclient.updater import Updater

from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.device.clinical import Permission
from medfw.errors import DeviceError, MedfwError, TransportError, VerificationError
from medfw.update.agent_download import ImageDownload
from medfw.update.agent_model import (
    DEFAULT_DEADLINE,
    MAX_IMAGE,
    MAX_POLL_ANSWER,
    METADATA_REFRESH,
    POLL_INTERVAL_RANGE,
    AgentConfig,
    AgentOutcome,
    AgentResult,
    DeferReason,
    DevicePort,
    DeviceState,
    MetadataReason,
    RejectReason,
    ReportStatus,
    RevertReason,
    UnreachableReason,
    _Deferred,
    _detail,
    _Rejected,
    check_release,
    clamp_poll_interval,
    device_refusal,
    load_config,
    provision,
)
from medfw.update.agent_outbox import Outbox
from medfw.update.agent_tuf import RecordingFetcher, metadata_reason
from medfw.update.fetcher import RetryPolicy, request_with_retry
from medfw.update.unit_trust import UnitTrust

__all__ = [
    "MAX_IMAGE",
    "POLL_INTERVAL_RANGE",
    "AgentConfig",
    "AgentOutcome",
    "AgentResult",
    "DeferReason",
    "DevicePort",
    "DeviceState",
    "MetadataReason",
    "RejectReason",
    "ReportStatus",
    "RevertReason",
    "UnreachableReason",
    "UpdateAgent",
    "clamp_poll_interval",
    "load_config",
    "provision",
]


class UpdateAgent:
    """Runs update cycles for one device.

    Args:
        device_dir: the device directory (holds ``ota/`` state: config, TUF metadata, partial downloads, outbox).
        device: the device operations.
        client: the HTTP client; its base URL is the fleet server.
        sink: the device's audit sink.
        app_check: the new app's health check after reboot; ``False`` means the app never confirms.
        retry: retry policy for every request.
        sleep: how to wait (injected by tests).
        progress: called with (bytes so far, total) while an image downloads.
        deadline: overall seconds one image download, or one TUF metadata file, may take.
        metadata_refresh: seconds between TUF refreshes while idle: a server that keeps serving expired metadata
            (withholding updates) is detected and reported as ``metadata_expired``.
        clock: monotonic seconds (injected by tests).
    """

    def __init__(
        self,
        device_dir: str | Path,
        device: DevicePort,
        client: httpx.Client,
        *,
        config: AgentConfig | None = None,
        sink: AuditSink | None = None,
        app_check: Callable[[DeviceState], bool] | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        max_image: int = MAX_IMAGE,
        progress: Callable[[int, int], None] | None = None,
        deadline: float = DEFAULT_DEADLINE,
        metadata_refresh: float = METADATA_REFRESH,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dir = Path(device_dir)
        self.device = device
        self.client = client
        self.config = config or load_config(self.dir)
        self.sink = sink or NullSink()
        self.app_check = app_check or (lambda _state: True)
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.max_image = max_image
        self.progress = progress
        self.poll_interval = 60
        self.deadline = deadline
        self.metadata_refresh = metadata_refresh
        self.clock = clock
        self._refreshed = float("-inf")  # when TUF metadata was last refreshed
        self._fetcher: RecordingFetcher | None = None
        self._etag: str | None = None
        self._rotation: dict[str, Any] | None = None
        self._rotation_reported = False
        self.trust = UnitTrust(self.dir, device, self.sink)
        self._base = str(client.base_url).rstrip("/")
        self._metadata_url = self._url("/tuf/metadata/")

    # ---- plumbing ------------------------------------------------------------------------------------------

    @property
    def _auth(self) -> dict[str, str]:
        # a certificate unit authenticates by mutual TLS and has no shared secret
        return {"Authorization": f"Device {self.config.credential}"} if self.config.credential else {}

    def _url(self, path: str) -> str:
        return self._base + path

    def _audit(self, type_: str, outcome: str, reason: str | None = None, **data: Any) -> None:
        objects = {"device": self.config.device_id}
        if data.get("sha256"):
            objects["image_sha256"] = str(data.pop("sha256"))
        self.sink.record(
            AuditEvent(type=type_, outcome=outcome, reason=reason, actor="agent", objects=objects, data=data)
        )

    def _outbox(self) -> Outbox:
        def refused(status_code: int) -> None:
            self._audit("ota.report", "failure", "report_refused", status_code=status_code)

        url = self._url(f"/api/v1/devices/{self.config.device_id}/reports")
        return Outbox(self.dir / "ota" / "outbox.json", self.client, url, self.retry, self.sleep, refused)

    def _report(
        self, status: ReportStatus, reason: str | None = None, detail: str | None = None, *, rollout: int | None = None
    ) -> None:
        """Send a report now, or queue it when the server cannot be reached."""
        st = self.device.state()
        body = {
            "status": status,
            "reason": reason,
            "detail": (detail or "")[:2000] or None,
            "version": st.version,
            "secure_version": st.secure_version,
            "slot": st.slot,
            "rollout": rollout,
        }
        body = self.trust.sign_report(body, st)
        self._audit(
            "ota.report",
            "failure" if status.failed else "success",
            reason,
            **{k: v for k, v in body.items() if k not in ("reason", "claims")},
        )
        outbox = self._outbox()
        outbox.send([*outbox.queued(), body], self._auth)

    # ---- one cycle -----------------------------------------------------------------------------------------

    def run_once(self) -> AgentResult:
        """Run one poll-and-update cycle (never raises for server or update trouble; see the result).

        After the poll (and any update), a key-rotation step handed out by the server runs, and the unit's own
        audit trail is uploaded.
        """
        result = self._cycle()
        if result.outcome is not AgentOutcome.UNREACHABLE:
            self._rotate_keys()
            self.trust.upload_trail(
                self.client, self._url(f"/api/v1/devices/{self.config.device_id}/audit"), dict(self._auth)
            )
        return result

    def _rotate_keys(self) -> None:
        instruction = self._rotation
        if not instruction or not self.trust.signs or self._rotation_reported:
            return
        raw, reason = self.trust.rotate(instruction)  # a power cut here propagates: the unit is off
        status = ReportStatus(raw)
        rollout = instruction.get("rollout")
        self._report(status, reason, rollout=rollout if isinstance(rollout, int) else None)
        self._rotation_reported = status is ReportStatus.KEY_ROTATED

    def _cycle(self) -> AgentResult:
        outbox = self._outbox()
        queued = outbox.queued()
        if queued:
            outbox.send(queued, self._auth)
        st = self.device.state()
        headers = dict(self._auth) | self.trust.poll_headers(st)
        if self._etag:
            headers["If-None-Match"] = self._etag
        try:
            r = request_with_retry(
                self.client,
                "GET",
                self._url(f"/api/v1/devices/{self.config.device_id}/poll"),
                policy=self.retry,
                sleep=self.sleep,
                params={k: v for k, v in asdict(st).items() if v is not None},
                headers=headers,
            )
        except TransportError as e:
            return AgentResult(AgentOutcome.UNREACHABLE, UnreachableReason.SERVER_UNREACHABLE, e.message, **asdict(st))
        if r.status_code == 304:
            return self._idle(st)
        if len(r.content) > MAX_POLL_ANSWER:
            return AgentResult(
                AgentOutcome.UNREACHABLE, UnreachableReason.POLL_MALFORMED, "poll answer is too large", **asdict(st)
            )
        if r.status_code != 200:
            return AgentResult(AgentOutcome.UNREACHABLE, f"poll_http_{r.status_code}", _detail(r), **asdict(st))
        try:
            body = r.json()
            assignment = body.get("assignment")
            self.poll_interval = clamp_poll_interval(body.get("poll_interval"), self.poll_interval)
            rotation = body.get("key_rotation")
            if rotation != self._rotation:
                self._rotation = rotation if isinstance(rotation, dict) else None
                self._rotation_reported = False
        except (ValueError, AttributeError, TypeError):
            return AgentResult(
                AgentOutcome.UNREACHABLE,
                UnreachableReason.POLL_MALFORMED,
                "poll answer is not the expected JSON",
                **asdict(st),
            )
        self._etag = r.headers.get("ETag")
        metadata = body.get("metadata")
        if isinstance(metadata, str) and metadata.startswith(("https://", "http://")) and len(metadata) <= 2048:
            self._metadata_url = metadata  # a static host: untrusted, TUF checks every file
        if not assignment or (assignment.get("version") == st.version and self._rotation):
            return self._idle(st)
        self._etag = None  # an update attempt always re-polls afterwards
        return self._update(assignment, st)

    def _idle(self, st: DeviceState) -> AgentResult:
        """Nothing assigned: refresh the TUF metadata when due, so withheld updates (a server that keeps serving
        expired metadata) are detected, reported and audited even without an assignment."""
        if self.clock() - self._refreshed < self.metadata_refresh:
            return AgentResult(AgentOutcome.IDLE, **asdict(st))
        try:
            self._updater().refresh()
        except tuf_exc.RepositoryError as e:
            reason, detail = self._metadata_reason(e), f"{e.__class__.__name__}: {e}"
            self._audit("ota.manifest.rejected", "denied", reason, detail=detail)
            self._report(ReportStatus.REJECTED, reason, detail)
            return AgentResult(AgentOutcome.REJECTED, reason, detail, **asdict(self.device.state()))
        except (tuf_exc.DownloadError, OSError, ValueError) as e:
            return AgentResult(
                AgentOutcome.DEFERRED, DeferReason.METADATA_UNAVAILABLE, f"{e.__class__.__name__}: {e}", **asdict(st)
            )
        self._refreshed = self.clock()
        return AgentResult(AgentOutcome.IDLE, **asdict(st))

    def _updater(self) -> Updater:
        metadata_dir = self.dir / "ota" / "tuf"
        if not (metadata_dir / "root.json").is_file():
            raise _Rejected(RejectReason.NO_ROOT_OF_TRUST, "device has no TUF root (not provisioned)", stage="manifest")
        self._fetcher = RecordingFetcher(self.client, deadline=self.deadline, clock=self.clock)
        return Updater(str(metadata_dir), self._metadata_url, fetcher=self._fetcher, bootstrap=None)

    def _metadata_reason(self, e: Exception) -> MetadataReason:
        return metadata_reason(e, self._fetcher.last if self._fetcher else None, self.dir / "ota" / "tuf")

    def _update(self, assignment: dict[str, Any], before: DeviceState) -> AgentResult:
        try:
            rollout = int(assignment["rollout"])
            target_path = str(assignment["target_path"])
            download = str(assignment.get("download") or "")
        except (KeyError, TypeError, ValueError):
            return AgentResult(
                AgentOutcome.REJECTED,
                RejectReason.ASSIGNMENT_MALFORMED,
                "assignment lacks rollout/target",
                **asdict(before),
            )
        answer = self.trust.permission(target_path, approval_required=bool(assignment.get("approval_required")))
        if answer is not None:
            why = Permission(answer)  # therapy running, or the user has not approved: try again later, not a failure
            self._audit("ota.install", "info", why, target=target_path)
            self._report(ReportStatus.DEFERRED, why, rollout=rollout)
            return AgentResult(AgentOutcome.DEFERRED, why, None, rollout=rollout, target=target_path, **asdict(before))
        self._report(ReportStatus.DOWNLOADING, rollout=rollout)
        try:
            target = self._tuf_target(target_path)
            release = check_release(target, before, self.config, self.max_image)
            image = self._download(download, target)
            try:
                self.device.install(image)
            except VerificationError as e:
                code = getattr(e, "reason", None)
                reason = device_refusal(code)
                detail = e.message if reason is not RejectReason.IMAGE_REFUSED else f"{code}: {e.message}"
                raise _Rejected(reason, detail, stage="install") from None
        except _Deferred as d:
            self._audit("ota.download", "failure", d.reason, target=target_path, detail=d.detail)
            st = self.device.state()
            return AgentResult(
                AgentOutcome.DEFERRED, d.reason, d.detail, rollout=rollout, target=target_path, **asdict(st)
            )
        except _Rejected as rej:
            type_ = "ota.manifest.rejected" if rej.stage == "manifest" else "ota.install.rejected"
            self._audit(type_, "denied", rej.reason, target=target_path, detail=rej.detail)
            self._report(ReportStatus.REJECTED, rej.reason, rej.detail, rollout=rollout)
            st = self.device.state()
            return AgentResult(
                AgentOutcome.REJECTED, rej.reason, rej.detail, rollout=rollout, target=target_path, **asdict(st)
            )
        self._audit("ota.install", "success", None, target=target_path, sha256=release.sha256)
        self._report(ReportStatus.INSTALLED, rollout=rollout)
        booted = self.device.reboot()
        if booted.version != release.version:
            detail = f"bootloader did not start {release.version} (running {booted.version})"
            self._audit("ota.revert", "failure", RevertReason.BOOT_REFUSED, target=target_path)
            self._report(ReportStatus.REVERTED, RevertReason.BOOT_REFUSED, detail, rollout=rollout)
            return AgentResult(
                AgentOutcome.REVERTED,
                RevertReason.BOOT_REFUSED,
                detail,
                rollout=rollout,
                target=target_path,
                **asdict(booted),
            )
        self._report(ReportStatus.BOOTED, rollout=rollout)
        if self.app_check(booted):
            st = self.device.confirm()
            self._audit("ota.confirm", "success", None, target=target_path, version=st.version)
            self._report(ReportStatus.CONFIRMED, rollout=rollout)
            return AgentResult(AgentOutcome.CONFIRMED, rollout=rollout, target=target_path, **asdict(st))
        st = self.device.watchdog_reset()
        detail = f"new app did not confirm; watchdog reverted to {st.version} in {st.slot}"
        self._audit("ota.revert", "failure", RevertReason.APP_NOT_CONFIRMED, target=target_path, version=st.version)
        self._report(ReportStatus.REVERTED, RevertReason.APP_NOT_CONFIRMED, detail, rollout=rollout)
        return AgentResult(
            AgentOutcome.REVERTED,
            RevertReason.APP_NOT_CONFIRMED,
            detail,
            rollout=rollout,
            target=target_path,
            **asdict(st),
        )

    # ---- TUF and checks ------------------------------------------------------------------------------------

    def _tuf_target(self, target_path: str) -> TargetFile:
        try:
            updater = self._updater()
            updater.refresh()
            self._refreshed = self.clock()
            target = updater.get_targetinfo(target_path)
        except tuf_exc.RepositoryError as e:
            raise _Rejected(self._metadata_reason(e), f"{e.__class__.__name__}: {e}", stage="manifest") from None
        except tuf_exc.DownloadError as e:
            raise _Deferred(DeferReason.METADATA_UNAVAILABLE, f"{e.__class__.__name__}: {e}") from None
        except (OSError, ValueError) as e:
            raise _Rejected(MetadataReason.INVALID, f"{e.__class__.__name__}: {e}", stage="manifest") from None
        if target is None:
            raise _Rejected(
                RejectReason.TARGET_UNKNOWN, f"{target_path} is not in the signed targets metadata", stage="manifest"
            )
        return target

    def _download(self, download: str, target: TargetFile) -> bytes:
        """Fetch the image (resumable, bounded, hash-checked: :class:`ImageDownload`)."""
        digest = target.hashes.get("sha256", "")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _Rejected(RejectReason.TARGET_INVALID, "signed target has no sha256", stage="manifest")
        if download.startswith(("https://", "http://")):
            url, auth = download, {}  # a static host or CDN: TUF checks what it sends; it never sees the credential
        else:
            url = self._url(download if download.startswith("/") else f"/tuf/targets/{target.path}")
            auth = self._auth
        how = ImageDownload(self.client, self.retry, self.sleep, self.clock, self.deadline, self.progress)
        data = how.fetch(url, auth, self.dir / "ota" / "download" / f"{digest}.part", target)
        self._audit("ota.download", "success", None, target=target.path, sha256=digest, length=len(data))
        return data

    # ---- loop ----------------------------------------------------------------------------------------------

    def run(self, *, cycles: int | None = None) -> AgentResult:
        """Run cycles until ``cycles`` have run (forever when ``None``), waiting the poll interval in between."""
        result = AgentResult(AgentOutcome.IDLE)
        n = 0
        while cycles is None or n < cycles:
            try:
                result = self.run_once()
            except (MedfwError, OSError) as e:
                if isinstance(e, DeviceError):
                    raise
                result = AgentResult(AgentOutcome.UNREACHABLE, UnreachableReason.AGENT_ERROR, str(e))
            n += 1
            if cycles is None or n < cycles:
                self.sleep(self.poll_interval)
        return result
