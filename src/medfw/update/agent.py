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

import contextlib
import json
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

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink, NullSink
from medfw.errors import DeviceError, InputError, MedfwError, TransportError, VerificationError
from medfw.update.agent_model import (
    DEFAULT_DEADLINE,
    MAX_IMAGE,
    MAX_OUTBOX,
    MAX_POLL_ANSWER,
    METADATA_REFRESH,
    POLL_INTERVAL_RANGE,
    AgentConfig,
    AgentResult,
    DevicePort,
    DeviceState,
    _Deferred,
    _detail,
    _older,
    _Rejected,
    _tuf_reason,
    clamp_poll_interval,
    load_config,
    provision,
)
from medfw.update.fetcher import HttpxFetcher, RetryPolicy, request_with_retry
from medfw.update.repository import ReleaseInfo, release_from_target
from medfw.update.unit_trust import UnitTrust

__all__ = [
    "MAX_IMAGE",
    "POLL_INTERVAL_RANGE",
    "AgentConfig",
    "AgentResult",
    "DevicePort",
    "DeviceState",
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

    def _outbox_path(self) -> Path:
        return self.dir / "ota" / "outbox.json"

    def _outbox(self) -> list[dict[str, Any]]:
        path = self._outbox_path()
        if not path.exists():
            return []
        try:
            items = json.loads(read_bytes(path, max_length=4 * 1024 * 1024, what="report outbox"))
        except (InputError, ValueError):
            return []
        return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []

    def _report(
        self, status: str, reason: str | None = None, detail: str | None = None, *, rollout: int | None = None
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
            "failure" if status in ("reverted", "rejected") else "success",
            reason,
            **{k: v for k, v in body.items() if k not in ("reason", "claims")},
        )
        queue = [*self._outbox(), body]
        self._send_queue(queue)

    def _send_queue(self, queue: list[dict[str, Any]]) -> None:
        sent = 0
        for body in queue:
            try:
                r = request_with_retry(
                    self.client,
                    "POST",
                    self._url(f"/api/v1/devices/{self.config.device_id}/reports"),
                    policy=self.retry,
                    sleep=self.sleep,
                    json=body,
                    headers=self._auth,
                )
            except TransportError:
                break
            sent += 1
            if r.status_code >= 400:
                self._audit("ota.report", "failure", "report_refused", status_code=r.status_code)
        rest = queue[sent:][-MAX_OUTBOX:]  # bounded: the oldest progress reports go first
        if rest:
            atomic_write(self._outbox_path(), json.dumps(rest).encode())
        elif self._outbox_path().exists():
            self._outbox_path().unlink()

    # ---- one cycle -----------------------------------------------------------------------------------------

    def run_once(self) -> AgentResult:
        """Run one poll-and-update cycle (never raises for server or update trouble; see the result).

        After the poll (and any update), a key-rotation step handed out by the server runs, and the unit's own
        audit trail is uploaded.
        """
        result = self._cycle()
        if result.outcome != "unreachable":
            self._rotate_keys()
            self.trust.upload_trail(
                self.client, self._url(f"/api/v1/devices/{self.config.device_id}/audit"), dict(self._auth)
            )
        return result

    def _rotate_keys(self) -> None:
        instruction = self._rotation
        if not instruction or not self.trust.signs or self._rotation_reported:
            return
        status, reason = self.trust.rotate(instruction)  # a power cut here propagates: the unit is off
        rollout = instruction.get("rollout")
        self._report(status, reason, rollout=rollout if isinstance(rollout, int) else None)
        self._rotation_reported = status == "key_rotated"

    def _cycle(self) -> AgentResult:
        queued = self._outbox()
        if queued:
            self._send_queue(queued)
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
            return AgentResult("unreachable", "server_unreachable", e.message, **asdict(st))
        if r.status_code == 304:
            return self._idle(st)
        if len(r.content) > MAX_POLL_ANSWER:
            return AgentResult("unreachable", "poll_malformed", "poll answer is too large", **asdict(st))
        if r.status_code != 200:
            return AgentResult("unreachable", f"poll_http_{r.status_code}", _detail(r), **asdict(st))
        try:
            body = r.json()
            assignment = body.get("assignment")
            self.poll_interval = clamp_poll_interval(body.get("poll_interval"), self.poll_interval)
            rotation = body.get("key_rotation")
            if rotation != self._rotation:
                self._rotation = rotation if isinstance(rotation, dict) else None
                self._rotation_reported = False
        except (ValueError, AttributeError, TypeError):
            return AgentResult("unreachable", "poll_malformed", "poll answer is not the expected JSON", **asdict(st))
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
            return AgentResult("idle", **asdict(st))
        try:
            self._updater().refresh()
        except tuf_exc.RepositoryError as e:
            reason, detail = _tuf_reason(e), f"{e.__class__.__name__}: {e}"
            self._audit("ota.manifest.rejected", "denied", reason, detail=detail)
            self._report("rejected", reason, detail)
            return AgentResult("rejected", reason, detail, **asdict(self.device.state()))
        except (tuf_exc.DownloadError, OSError, ValueError) as e:
            return AgentResult("deferred", "metadata_unavailable", f"{e.__class__.__name__}: {e}", **asdict(st))
        self._refreshed = self.clock()
        return AgentResult("idle", **asdict(st))

    def _updater(self) -> Updater:
        metadata_dir = self.dir / "ota" / "tuf"
        if not (metadata_dir / "root.json").is_file():
            raise _Rejected("no_root_of_trust", "device has no TUF root (not provisioned)", stage="manifest")
        fetcher = HttpxFetcher(self.client, deadline=self.deadline, clock=self.clock)
        return Updater(str(metadata_dir), self._metadata_url, fetcher=fetcher, bootstrap=None)

    def _update(self, assignment: dict[str, Any], before: DeviceState) -> AgentResult:
        try:
            rollout = int(assignment["rollout"])
            target_path = str(assignment["target_path"])
            download = str(assignment.get("download") or "")
        except (KeyError, TypeError, ValueError):
            return AgentResult("rejected", "assignment_malformed", "assignment lacks rollout/target", **asdict(before))
        why = self.trust.permission(target_path, approval_required=bool(assignment.get("approval_required")))
        if why is not None:  # therapy running, or the user has not approved: try again later, not a failure
            self._audit("ota.install", "info", why, target=target_path)
            self._report("deferred", why, rollout=rollout)
            return AgentResult("deferred", why, None, rollout=rollout, target=target_path, **asdict(before))
        self._report("downloading", rollout=rollout)
        try:
            target = self._tuf_target(target_path)
            release = self._check_release(target, before)
            image = self._download(download, target)
            try:
                self.device.install(image)
            except VerificationError as e:
                reason = str(getattr(e, "reason", "") or "image_refused")
                raise _Rejected(reason, e.message, stage="install") from None
        except _Deferred as d:
            self._audit("ota.download", "failure", d.reason, target=target_path, detail=d.detail)
            st = self.device.state()
            return AgentResult("deferred", d.reason, d.detail, rollout=rollout, target=target_path, **asdict(st))
        except _Rejected as rej:
            type_ = "ota.manifest.rejected" if rej.stage == "manifest" else "ota.install.rejected"
            self._audit(type_, "denied", rej.reason, target=target_path, detail=rej.detail)
            self._report("rejected", rej.reason, rej.detail, rollout=rollout)
            st = self.device.state()
            return AgentResult("rejected", rej.reason, rej.detail, rollout=rollout, target=target_path, **asdict(st))
        self._audit("ota.install", "success", None, target=target_path, sha256=release.sha256)
        self._report("installed", rollout=rollout)
        booted = self.device.reboot()
        if booted.version != release.version:
            detail = f"bootloader did not start {release.version} (running {booted.version})"
            self._audit("ota.revert", "failure", "boot_refused", target=target_path)
            self._report("reverted", "boot_refused", detail, rollout=rollout)
            return AgentResult(
                "reverted", "boot_refused", detail, rollout=rollout, target=target_path, **asdict(booted)
            )
        self._report("booted", rollout=rollout)
        if self.app_check(booted):
            st = self.device.confirm()
            self._audit("ota.confirm", "success", None, target=target_path, version=st.version)
            self._report("confirmed", rollout=rollout)
            return AgentResult("confirmed", rollout=rollout, target=target_path, **asdict(st))
        st = self.device.watchdog_reset()
        detail = f"new app did not confirm; watchdog reverted to {st.version} in {st.slot}"
        self._audit("ota.revert", "failure", "app_not_confirmed", target=target_path, version=st.version)
        self._report("reverted", "app_not_confirmed", detail, rollout=rollout)
        return AgentResult("reverted", "app_not_confirmed", detail, rollout=rollout, target=target_path, **asdict(st))

    # ---- TUF and checks ------------------------------------------------------------------------------------

    def _tuf_target(self, target_path: str) -> TargetFile:
        try:
            updater = self._updater()
            updater.refresh()
            self._refreshed = self.clock()
            target = updater.get_targetinfo(target_path)
        except tuf_exc.RepositoryError as e:
            raise _Rejected(_tuf_reason(e), f"{e.__class__.__name__}: {e}", stage="manifest") from None
        except tuf_exc.DownloadError as e:
            raise _Deferred("metadata_unavailable", f"{e.__class__.__name__}: {e}") from None
        except (OSError, ValueError) as e:
            raise _Rejected("metadata_invalid", f"{e.__class__.__name__}: {e}", stage="manifest") from None
        if target is None:
            raise _Rejected("target_unknown", f"{target_path} is not in the signed targets metadata", stage="manifest")
        return target

    def _check_release(self, target: TargetFile, running: DeviceState) -> ReleaseInfo:
        try:
            release = release_from_target(target)
        except InputError as e:
            raise _Rejected("target_invalid", e.message, stage="manifest") from None
        if release.model != self.config.model:
            msg = f"release is for model {release.model}, this device is {self.config.model}"
            raise _Rejected("model_mismatch", msg, stage="manifest")
        if release.chip and self.config.chip and release.chip != self.config.chip:
            msg = f"release is for chip {release.chip}, this device is {self.config.chip}"
            raise _Rejected("chip_mismatch", msg, stage="manifest")
        if release.secure_version < running.secure_version:
            msg = f"release secure_version {release.secure_version} < running {running.secure_version}"
            raise _Rejected("rollback", msg, stage="manifest")
        if running.version is not None and _older(release.version, running.version):
            msg = f"release version {release.version} is older than running {running.version}"
            raise _Rejected("downgrade", msg, stage="manifest")
        if target.length > self.max_image:
            raise _Rejected("image_too_large", f"{target.length} bytes > limit {self.max_image}", stage="manifest")
        return release

    def _download(self, download: str, target: TargetFile) -> bytes:
        """Fetch the image, resuming a partial download with ``Range``; check TUF length and hashes."""
        digest = target.hashes.get("sha256", "")
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise _Rejected("target_invalid", "signed target has no sha256", stage="manifest")
        part = self.dir / "ota" / "download" / f"{digest}.part"
        part.parent.mkdir(parents=True, exist_ok=True)
        if download.startswith(("https://", "http://")):
            url, auth = download, {}  # a static host or CDN: TUF checks what it sends; it never sees the credential
        else:
            url = self._url(download if download.startswith("/") else f"/tuf/targets/{target.path}")
            auth = self._auth
        started = self.clock()
        for attempt in range(self.retry.attempts):
            have = part.stat().st_size if part.exists() else 0
            if have > target.length:
                part.unlink()
                have = 0
            if have == target.length:
                break
            headers = dict(auth)
            if have:
                headers["Range"] = f"bytes={have}-"
            try:
                with self.client.stream("GET", url, headers=headers) as r:
                    if r.status_code not in (200, 206):
                        raise _Deferred("download_failed", f"HTTP {r.status_code} for the image")
                    mode = "ab" if r.status_code == 206 and have else "wb"
                    with part.open(mode) as fh:
                        written = have if mode == "ab" else 0
                        for chunk in r.iter_bytes():  # unbuffered: every received byte is kept
                            if self.clock() - started > self.deadline:
                                fh.flush()
                                msg = f"download took longer than the {self.deadline:g} s deadline; will resume"
                                raise _Deferred("download_deadline", msg)
                            written += len(chunk)
                            if written > target.length:
                                raise _Rejected("hash_mismatch", "server sent more bytes than signed", stage="download")
                            fh.write(chunk)
                            if self.progress is not None:
                                self.progress(written, target.length)
                        fh.flush()
            except httpx.HTTPError:
                if attempt + 1 < self.retry.attempts:
                    self.sleep(self.retry.delay(attempt))
                continue
        data = part.read_bytes() if part.exists() else b""
        if len(data) != target.length:
            raise _Deferred("download_interrupted", f"got {len(data)} of {target.length} bytes; will resume")
        try:
            target.verify_length_and_hashes(data)
        except tuf_exc.LengthOrHashMismatchError as e:
            with contextlib.suppress(OSError):
                part.unlink()
            raise _Rejected(
                "hash_mismatch", f"image does not match its signed TUF hash: {e}", stage="download"
            ) from None
        with contextlib.suppress(OSError):
            part.unlink()
        self._audit("ota.download", "success", None, target=target.path, sha256=digest, length=len(data))
        return data

    # ---- loop ----------------------------------------------------------------------------------------------

    def run(self, *, cycles: int | None = None) -> AgentResult:
        """Run cycles until ``cycles`` have run (forever when ``None``), waiting the poll interval in between."""
        result = AgentResult("idle")
        n = 0
        while cycles is None or n < cycles:
            try:
                result = self.run_once()
            except (MedfwError, OSError) as e:
                if isinstance(e, DeviceError):
                    raise
                result = AgentResult("unreachable", "agent_error", str(e))
            n += 1
            if cycles is None or n < cycles:
                self.sleep(self.poll_interval)
        return result
