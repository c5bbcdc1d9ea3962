"""The device update agent's vocabulary: its configuration, the device state and cycle result, the limits it
enforces on a server, provisioning, and the helpers that classify what it refuses."""

from __future__ import annotations

import enum
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import httpx
from tuf.api.metadata import TargetFile

from medfw._io import atomic_write, read_bytes
from medfw.device.clinical import Permission
from medfw.device.verify import CheckReason
from medfw.errors import DeviceError, InputError
from medfw.update.release_info import ReleaseInfo, release_from_target
from medfw.vuln.version import parse_version

__all__ = [
    "DEFAULT_DEADLINE",
    "MAX_IMAGE",
    "MAX_OUTBOX",
    "MAX_POLL_ANSWER",
    "METADATA_REFRESH",
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
    "check_release",
    "clamp_poll_interval",
    "device_refusal",
    "load_config",
    "provision",
]

MAX_IMAGE = 16 * 1024 * 1024
MAX_POLL_ANSWER = 64 * 1024
#: the poll interval a server may ask for is clamped to this range (seconds)
POLL_INTERVAL_RANGE = (1, 86_400)
#: overall seconds one image download, or one metadata file, may take (``--deadline``)
DEFAULT_DEADLINE = 300.0
#: seconds between TUF refreshes while there is no assignment (freeze detection)
METADATA_REFRESH = 3600.0
MAX_OUTBOX = 200
_CONFIG = "ota/agent.json"
_ROOT = "ota/tuf/root.json"


class AgentOutcome(enum.StrEnum):
    """How one agent cycle ended."""

    IDLE = "idle"  # nothing to do
    CONFIRMED = "confirmed"  # the new release runs and is confirmed
    REVERTED = "reverted"  # it was installed but did not boot or confirm: the old slot runs
    REJECTED = "rejected"  # refused (the reason says why): metadata, release checks, download hash, the device
    DEFERRED = "deferred"  # a transient download or metadata failure, or the unit is busy: retried next cycle
    UNREACHABLE = "unreachable"  # the server could not be reached or answered nonsense


class ReportStatus(enum.StrEnum):
    """The ``status`` of a report the agent sends the fleet server."""

    DEFERRED = "deferred"
    DOWNLOADING = "downloading"
    INSTALLED = "installed"
    BOOTED = "booted"
    CONFIRMED = "confirmed"
    REVERTED = "reverted"
    REJECTED = "rejected"
    KEY_ROTATED = "key_rotated"
    KEY_ROTATION_FAILED = "key_rotation_failed"

    @property
    def failed(self) -> bool:
        """True for the statuses the audit trail records as failures."""
        return self in (ReportStatus.REVERTED, ReportStatus.REJECTED)


class RejectReason(enum.StrEnum):
    """Why the agent refused an update by its own checks (the ``reason`` of a ``rejected`` result and report).

    Refused metadata is a :class:`MetadataReason`; an image the device refused at install carries the device's
    :class:`~medfw.device.verify.CheckReason` (:func:`device_refusal`).
    """

    NO_ROOT_OF_TRUST = "no_root_of_trust"  # the device holds no TUF root (not provisioned)
    ASSIGNMENT_MALFORMED = "assignment_malformed"  # the server's assignment lacks rollout or target
    TARGET_UNKNOWN = "target_unknown"  # the assigned target is not in the signed targets metadata
    TARGET_INVALID = "target_invalid"  # the signed target lacks valid release fields or a sha256
    MODEL_MISMATCH = "model_mismatch"  # the release is for another model
    CHIP_MISMATCH = "chip_mismatch"  # the release is for another chip
    ROLLBACK = "rollback"  # the release's secure_version is below the running one
    DOWNGRADE = "downgrade"  # the release's version is older than the running one
    IMAGE_TOO_LARGE = "image_too_large"  # the signed length is over the agent's limit
    HASH_MISMATCH = "hash_mismatch"  # the downloaded bytes do not match the signed length/hashes
    INSTALL_INTERRUPTED = "install_interrupted"  # the device did not activate the written image
    IMAGE_REFUSED = "image_refused"  # the device refused the image for a reason outside its vocabulary


class MetadataReason(enum.StrEnum):
    """Why the agent refused TUF metadata (the ``reason`` of a ``rejected`` result and report)."""

    EXPIRED = "metadata_expired"
    ROLLBACK = "metadata_rollback"
    MIX_AND_MATCH = "metadata_mix_and_match"
    BAD_SIGNATURE = "metadata_bad_signature"
    HASH_MISMATCH = "metadata_hash_mismatch"
    INVALID = "metadata_invalid"


class RevertReason(enum.StrEnum):
    """Why an installed release did not stay (the ``reason`` of a ``reverted`` result and report)."""

    BOOT_REFUSED = "boot_refused"  # the bootloader did not start the installed image
    APP_NOT_CONFIRMED = "app_not_confirmed"  # the new app failed its health check; the watchdog reverted


class DeferReason(enum.StrEnum):
    """Why a cycle was put off to a later one (with the device's :class:`~medfw.device.clinical.Permission`
    answers ``device_busy`` and ``awaiting_approval``)."""

    METADATA_UNAVAILABLE = "metadata_unavailable"
    DOWNLOAD_INTERRUPTED = "download_interrupted"
    DOWNLOAD_FAILED = "download_failed"
    DOWNLOAD_DEADLINE = "download_deadline"


class UnreachableReason(enum.StrEnum):
    """Why the server could not be used this cycle (an HTTP error answer to the poll is ``poll_http_<status>``)."""

    SERVER_UNREACHABLE = "server_unreachable"
    POLL_MALFORMED = "poll_malformed"
    AGENT_ERROR = "agent_error"


_POLL_HTTP = re.compile(r"poll_http_[1-5][0-9]{2}")


def device_refusal(value: object) -> RejectReason | CheckReason:
    """The reason of an image the device refused: its :class:`~medfw.device.verify.CheckReason`, or
    ``install_interrupted``; anything else is ``image_refused`` (the device's message keeps the detail)."""
    text = str(value or "")
    if text in set(CheckReason) - {CheckReason.OK}:
        return CheckReason(text)
    return RejectReason.INSTALL_INTERRUPTED if text == RejectReason.INSTALL_INTERRUPTED else RejectReason.IMAGE_REFUSED


def _result_reason(outcome: AgentOutcome, reason: str | None) -> str | None:
    """``reason`` as the member of the vocabulary of ``outcome``.

    Raises:
        ValueError: a reason outside that vocabulary (or any reason for ``idle`` / ``confirmed``).
    """
    if reason is None:
        return None
    vocabularies: dict[AgentOutcome, tuple[type[enum.StrEnum], ...]] = {
        AgentOutcome.REJECTED: (RejectReason, MetadataReason, CheckReason),
        AgentOutcome.REVERTED: (RevertReason,),
        AgentOutcome.DEFERRED: (DeferReason, Permission),
        AgentOutcome.UNREACHABLE: (UnreachableReason,),
    }
    for vocabulary in vocabularies.get(outcome, ()):
        if reason in set(vocabulary) - {CheckReason.OK, Permission.GRANTED}:
            return vocabulary(reason)
    if outcome is AgentOutcome.UNREACHABLE and _POLL_HTTP.fullmatch(reason):
        return reason
    raise ValueError(f"{reason!r} is not a reason of a {outcome} result")


@dataclass(frozen=True)
class AgentConfig:
    """What the agent knows about itself (``ota/agent.json``, mode 0600: it holds the credential)."""

    device_id: str
    model: str
    chip: str
    credential: str
    server: str | None = None


@dataclass(frozen=True)
class DeviceState:
    """What the device runs."""

    version: str | None
    secure_version: int
    slot: str | None


@dataclass(frozen=True)
class AgentResult:
    """The outcome of one agent cycle (see :class:`AgentOutcome`; ``rejected`` carries the reason).

    Raises:
        ValueError: ``outcome`` is not an :class:`AgentOutcome` value, or ``reason`` is not one of its reasons.
    """

    outcome: AgentOutcome
    reason: str | None = None
    detail: str | None = None
    version: str | None = None
    secure_version: int | None = None
    slot: str | None = None
    rollout: int | None = None
    target: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outcome", AgentOutcome(self.outcome))
        object.__setattr__(self, "reason", _result_reason(self.outcome, self.reason))


class DevicePort(Protocol):
    """The device operations the agent needs (implemented over the device model)."""

    def state(self) -> DeviceState:
        """What runs now."""

    def install(self, image: bytes) -> None:
        """Verify the image (boot signature, security version) and write it to the inactive slot.

        Raises a :class:`~medfw.errors.VerificationError` with a ``reason`` attribute when refused.
        """

    def reboot(self) -> DeviceState:
        """Reboot into whatever the bootloader selects."""

    def confirm(self) -> DeviceState:
        """Mark the running image valid (advances the anti-rollback counter)."""

    def watchdog_reset(self) -> DeviceState:
        """Reset without confirming (the app failed): the bootloader reverts to the previous slot."""


class _Deferred(Exception):  # noqa: N818 - control flow inside the agent, never escapes it
    """A transient failure (server or network): try again on a later cycle, keep partial downloads."""

    def __init__(self, reason: DeferReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = DeferReason(reason)
        self.detail = detail


class _Rejected(Exception):  # noqa: N818 - control flow inside the agent, never escapes it
    """A refusal: by the agent's checks, of the metadata, or of the image by the device."""

    def __init__(self, reason: RejectReason | MetadataReason | CheckReason, detail: str, *, stage: str) -> None:
        super().__init__(detail)
        if not isinstance(reason, RejectReason | MetadataReason | CheckReason) or reason is CheckReason.OK:
            raise ValueError(f"{reason!r} is not a refusal reason")
        self.reason = reason
        self.detail = detail
        self.stage = stage


def provision(
    device_dir: str | Path,
    *,
    device_id: str,
    model: str,
    chip: str,
    credential: str,
    root: bytes,
    server: str | None = None,
) -> AgentConfig:
    """Store the agent's identity, credential and TUF root of trust in a device directory."""
    d = Path(device_dir)
    config = AgentConfig(device_id=device_id, model=model, chip=chip, credential=credential, server=server)
    atomic_write(d / _ROOT, root)
    atomic_write(d / _CONFIG, json.dumps(asdict(config), indent=2).encode(), mode=0o600)
    return config


def load_config(device_dir: str | Path) -> AgentConfig:
    """Read ``ota/agent.json``.

    Raises:
        DeviceError: missing or malformed (the device was not provisioned for OTA).
    """
    path = Path(device_dir) / _CONFIG
    try:
        data = json.loads(read_bytes(path, max_length=64 * 1024, what="agent config"))
        return AgentConfig(
            device_id=str(data["device_id"]),
            model=str(data["model"]),
            chip=str(data["chip"]),
            credential=str(data["credential"]),
            server=data.get("server"),
        )
    except InputError as e:
        raise DeviceError(f"device is not provisioned for OTA ({e.message})", path=str(path)) from None
    except (ValueError, KeyError, TypeError) as e:
        raise DeviceError(f"malformed agent config: {e}", path=str(path)) from None


def _older(release: str, running: str) -> bool:
    """Whether ``release`` sorts before ``running`` (:mod:`medfw.vuln.version` order: ``1.0.0-rc1 < 1.0.0``,
    ``v1.2 < 1.3``).

    A release whose version is not a version is refused as ``target_invalid``; a running version that is not one
    cannot be ordered, so only the secure_version check (the security boundary) applies.
    """
    try:
        new = parse_version(release)
    except ValueError:
        raise _Rejected(
            RejectReason.TARGET_INVALID, f"release version {release!r} is not a version", stage="manifest"
        ) from None
    try:
        return new < parse_version(running)
    except ValueError:
        return False


def check_release(target: TargetFile, running: DeviceState, config: AgentConfig, max_image: int) -> ReleaseInfo:
    """The release a signed target describes, if this device may install it.

    Raises:
        _Rejected: another model or chip, a lower secure_version (``rollback``), an older version (``downgrade``),
            an image over ``max_image`` bytes, or a target without valid release fields.
    """
    try:
        release = release_from_target(target)
    except InputError as e:
        raise _Rejected(RejectReason.TARGET_INVALID, e.message, stage="manifest") from None
    if release.model != config.model:
        msg = f"release is for model {release.model}, this device is {config.model}"
        raise _Rejected(RejectReason.MODEL_MISMATCH, msg, stage="manifest")
    if release.chip and config.chip and release.chip != config.chip:
        msg = f"release is for chip {release.chip}, this device is {config.chip}"
        raise _Rejected(RejectReason.CHIP_MISMATCH, msg, stage="manifest")
    if release.secure_version < running.secure_version:
        msg = f"release secure_version {release.secure_version} < running {running.secure_version}"
        raise _Rejected(RejectReason.ROLLBACK, msg, stage="manifest")
    if running.version is not None and _older(release.version, running.version):
        msg = f"release version {release.version} is older than running {running.version}"
        raise _Rejected(RejectReason.DOWNGRADE, msg, stage="manifest")
    if target.length > max_image:
        raise _Rejected(RejectReason.IMAGE_TOO_LARGE, f"{target.length} bytes > limit {max_image}", stage="manifest")
    return release


def clamp_poll_interval(value: object, current: int) -> int:
    """The poll interval a server asked for, clamped to :data:`POLL_INTERVAL_RANGE` (``current`` when the value is
    not a finite number): a server can neither make the agent busy-loop nor go silent for years."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return current
    low, high = POLL_INTERVAL_RANGE
    return int(min(high, max(low, value)))


def _detail(r: httpx.Response) -> str:
    try:
        return str(r.json().get("detail", ""))[:300]
    except (ValueError, AttributeError):
        return r.text[:300]
