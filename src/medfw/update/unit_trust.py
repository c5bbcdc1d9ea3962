"""The agent's side of a trusted unit: signed claims on polls and reports, audit-trail uploads, install permission,
and the key-rotation step of a campaign.

All of it is optional: a unit without an identity (a shared-secret simulator unit) polls and reports unsigned and
uploads no trail; a port without the hooks of :class:`medfw.update.device_port.TrustedModelDevice` is never
deferred and never rotates keys.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.errors import InputError, MedfwError
from medfw.identity.unit import DeviceCredentials
from medfw.keys.campaign import CampaignRefusedError, unit_step

__all__ = ["CLAIMS_HEADER", "TRAIL_BATCH", "UnitTrust"]

CLAIMS_HEADER = "X-Medfw-Claims"
TRAIL_BATCH = 48  # about 40 KiB: under the server's 64 KiB body limit
TRAIL_ROUNDS = 8
_STATE = "ota/trail.json"


class UnitTrust:
    """Signs what the unit says, uploads its trail, and runs rotation steps (see the module docstring)."""

    def __init__(self, device_dir: str | Path, port: Any, sink: AuditSink) -> None:
        self.dir = Path(device_dir)
        self.port = port
        self.sink = sink
        identity = self.dir / "identity" / "device.crt"
        self.credentials = DeviceCredentials.load(self.dir) if identity.is_file() else None

    @property
    def signs(self) -> bool:
        """True when the unit has an identity and signs its claims."""
        return self.credentials is not None

    def _state_claims(self, state: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"version": state.version, "secure_version": state.secure_version, "slot": state.slot}
        if hasattr(self.port, "key_slots"):
            out["key_slots"] = self.port.key_slots()
            out["efuse_counter"] = self.port.efuse_counter()
        return out

    def poll_headers(self, state: Any) -> dict[str, str]:
        """The signed poll claims header (empty without an identity)."""
        if self.credentials is None:
            return {}
        return {CLAIMS_HEADER: self.credentials.claims("poll", **self._state_claims(state))}

    def sign_report(self, body: dict[str, Any], state: Any) -> dict[str, Any]:
        """``body`` with its signed claims (the report fields and the unit's state) in ``claims``."""
        if self.credentials is None:
            return body
        fields = {k: body.get(k) for k in ("status", "reason", "rollout")}
        claims = self.credentials.claims("report", **fields, **self._state_claims(state))
        return {**body, "claims": claims}

    # ---- install permission ----------------------------------------------------------------------------------

    def permission(self, target: str, *, approval_required: bool) -> str | None:
        """``None`` when the unit may install now, else why not (``device_busy``, ``awaiting_approval``)."""
        check: Callable[..., str | None] | None = getattr(self.port, "install_permission", None)
        if check is None:
            return None
        return check(target, approval_required=approval_required)

    # ---- audit trail -----------------------------------------------------------------------------------------

    def _acked(self) -> int:
        path = self.dir / _STATE
        if not path.exists():
            return 0
        try:
            return max(0, int(json.loads(read_bytes(path, max_length=4096, what="trail state"))["acked"]))
        except (InputError, ValueError, KeyError, TypeError):
            return 0

    def upload_trail(self, client: httpx.Client, url: str, headers: dict[str, str]) -> str | None:
        """Upload new entries of the unit's own log in bounded batches; resume where the server stands.

        Each batch re-sends the last entry the server acknowledged, so a truncated or rewritten log cannot pass as
        a continuation. Returns ``None`` when everything was uploaded (or there is nothing to upload), else why not.
        """
        log_path: Path | None = getattr(self.port, "own_log_path", lambda: None)()
        if self.credentials is None or log_path is None:
            return None
        from medfw.audit import count_rows, read_rows  # noqa: PLC0415 - the log machinery loads on first use
        from medfw.audit.record import parse_record  # noqa: PLC0415
        from medfw.identity.trail import build_upload  # noqa: PLC0415

        for _ in range(TRAIL_ROUNDS):
            acked = self._acked()
            first = max(0, acked - 1)
            rows = read_rows(log_path, first, TRAIL_BATCH + 1)
            complete = len(rows) <= TRAIL_BATCH
            rows = rows[:TRAIL_BATCH]
            if complete and len(rows) == acked - first:
                return None  # in step with the server (a shorter log is uploaded: the server detects the rewind)
            start = parse_record(rows[0][0]).seq if rows else first
            # the entries the log really holds: a log truncated in the field is shorter than what the server verified
            entries, checkpoint = build_upload(rows, start, count_rows(log_path))
            token = self.credentials.claims("audit", **checkpoint)
            try:
                r = client.post(url, json={"entries": entries, "checkpoint": token}, headers=headers)
            except httpx.HTTPError as e:
                return f"trail_upload_unreachable: {e.__class__.__name__}"
            if r.status_code != 200:
                reason = f"trail_upload_refused: HTTP {r.status_code} {r.text[:200]}"
                self.sink.record(
                    AuditEvent("ota.report", "failure", "trail_upload_refused", "agent", {}, {"detail": reason})
                )
                return reason
            size = int(r.json().get("size", acked))
            atomic_write(self.dir / _STATE, json.dumps({"acked": size}).encode())
            if complete:
                return None
        return None

    # ---- key rotation ----------------------------------------------------------------------------------------

    def rotate(self, instruction: dict[str, Any]) -> tuple[str, str | None]:
        """Run the unit's rotation steps (burn the new digest, then revoke the old slot); return (status, reason):
        ``key_rotated`` / ``None``, or ``key_rotation_failed`` with the reason. Nothing is done without the hooks."""
        if not hasattr(self.port, "key_slots"):
            return "key_rotation_failed", "not_supported"
        try:
            new = str(instruction["new_key_digest"])
            old_slot = int(instruction["old_slot"])
            old_digest = instruction.get("old_key_digest")
        except (KeyError, TypeError, ValueError):
            return "key_rotation_failed", "instruction_malformed"
        for _ in range(3):
            try:
                step = unit_step(
                    key_slots=self.port.key_slots(), old_slot=old_slot, old_digest=old_digest, new_digest=new
                )
                if step == "done":
                    return "key_rotated", None
                if step == "burn":
                    self.port.add_key_digest(bytes.fromhex(new))
                else:
                    self.port.revoke_key(old_slot)
            except CampaignRefusedError as e:
                return "key_rotation_failed", e.reason
            except MedfwError as e:
                if getattr(e, "reason", None) == "power_cut":
                    raise
                return "key_rotation_failed", str(getattr(e, "reason", None) or "refused_by_unit")
        return "key_rotation_failed", "no_progress"
