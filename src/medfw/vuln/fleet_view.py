"""What the OTA server knows, reduced to what exposure needs: releases (with their SBOM reference), devices and
rollouts. Read over the management API (a reader token) or straight from the server's database.

Everything the server answers is validated before use (types, lengths, the SBOM digest is 64 hex digits), so
a wrong or hostile server cannot make exposure report garbage.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from medfw.errors import InputError

__all__ = ["FleetDevice", "FleetRelease", "FleetRollout", "FleetView", "fleet_from_api", "fleet_from_db"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FleetRelease:
    """A release the server publishes; ``sbom_sha256`` is the SHA-256 of its SBOM ('' when it names none)."""

    id: int
    target_path: str
    model: str
    version: str
    sbom_sha256: str
    sbom_ref: str = ""


@dataclass(frozen=True)
class FleetDevice:
    """A device and the version it last reported."""

    id: str
    model: str
    version: str | None
    active: bool = True


@dataclass(frozen=True)
class FleetRollout:
    """A rollout of a release: its state, current phase (0-based) and number of phases."""

    id: int
    name: str
    target_path: str
    state: str
    current_phase: int
    phases: int


@dataclass(frozen=True)
class FleetView:
    """The fleet as one server sees it."""

    source: str
    releases: tuple[FleetRelease, ...]
    devices: tuple[FleetDevice, ...]
    rollouts: tuple[FleetRollout, ...]


def _s(row: Mapping[str, Any], key: str, source: str, *, limit: int = 256, optional: bool = False) -> str:
    value = row.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > limit or "\x00" in value:
        raise InputError(f"fleet server answered a bad {key!r}", path=source, field=key)
    return value


def _i(row: Mapping[str, Any], key: str, source: str) -> int:
    value = row.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**31:
        raise InputError(f"fleet server answered a bad {key!r}", path=source, field=key)
    return value


def _release(row: Mapping[str, Any], source: str) -> FleetRelease:
    sbom = row.get("sbom") or {}
    if not isinstance(sbom, Mapping):
        raise InputError("fleet server answered a bad 'sbom'", path=source, field="sbom")
    digest = str(sbom.get("sha256", "")).lower()
    if digest and not _HEX64.match(digest):
        raise InputError("fleet server answered a bad SBOM sha256", path=source, field="sbom.sha256")
    return FleetRelease(
        _i(row, "id", source),
        _s(row, "target_path", source),
        _s(row, "model", source, limit=64),
        _s(row, "version", source, limit=64),
        digest,
        str(sbom.get("ref", ""))[:256],
    )


def _device(row: Mapping[str, Any], source: str) -> FleetDevice:
    version = _s(row, "version", source, limit=64, optional=True) or None
    return FleetDevice(
        _s(row, "id", source, limit=64), _s(row, "model", source, limit=64), version, row.get("active") is not False
    )


def _rollout(row: Mapping[str, Any], source: str) -> FleetRollout:
    phases = row.get("phases")
    if not isinstance(phases, list):
        raise InputError("fleet server answered a bad 'phases'", path=source, field="phases")
    return FleetRollout(
        _i(row, "id", source),
        _s(row, "name", source, limit=128),
        _s(row, "release", source),
        _s(row, "state", source, limit=16),
        max(0, _i(row, "current_phase", source) - 1),  # the API numbers phases from 1; FleetRollout from 0
        len(phases),
    )


def _view(source: str, releases: Any, devices: Any, rollouts: Any) -> FleetView:
    for name, rows in (("releases", releases), ("devices", devices), ("rollouts", rollouts)):
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise InputError(f"fleet server answered a bad {name} list", path=source)
    return FleetView(
        source,
        tuple(_release(r, source) for r in releases),
        tuple(_device(r, source) for r in devices),
        tuple(_rollout(r, source) for r in rollouts),
    )


def fleet_from_api(server: str, token: str, *, client: Any = None) -> FleetView:
    """Read the fleet over the management API (``GET /api/v1/releases``, ``/devices``, ``/rollouts``).

    Raises:
        TransportError: the server cannot be reached.
        PolicyViolationError: the token is refused.
        InputError: an answer is malformed.
    """
    from medfw.server.client import FleetClient  # noqa: PLC0415

    api = FleetClient(server, token, client=client)
    try:
        return _view(
            server,
            api.request("GET", "/api/v1/releases"),
            api.request("GET", "/api/v1/devices"),
            api.request("GET", "/api/v1/rollouts"),
        )
    finally:
        api.close()


def fleet_from_service(service: Any, *, source: str) -> FleetView:
    """Read the fleet through a running server's :class:`~medfw.server.service.FleetService` (its console)."""
    return _view(source, _rows(service.releases()), _rows(service.device_rows()), _rows(service.rollouts()))


def _rows(items: Any) -> list[Any]:
    """Service answers (the service's frozen dataclasses, or dicts) as the JSON rows the API would send."""
    import json  # noqa: PLC0415
    from dataclasses import asdict, is_dataclass  # noqa: PLC0415

    rows = [asdict(x) if is_dataclass(x) and not isinstance(x, type) else x for x in items]
    return list(json.loads(json.dumps(rows, default=str)))


def fleet_from_db(url: str) -> FleetView:
    """Read the fleet from the server's database (SQLite path or URL, PostgreSQL URL), read-only.

    Raises:
        StorageError: the database cannot be read.
    """
    from medfw.server.db import make_engine, make_sessionmaker  # noqa: PLC0415
    from medfw.server.service import FleetService  # noqa: PLC0415

    engine = make_engine(url)
    try:
        service = FleetService(make_sessionmaker(engine))

        # the service returns frozen views; as dicts they read like the management API's JSON
        def plain(views: Sequence[Any]) -> list[Any]:
            return [json.loads(json.dumps(asdict(v))) for v in views]

        return _view(url, plain(service.releases()), plain(service.device_rows()), plain(service.rollouts()))
    finally:
        engine.dispose()


def devices_running(view: FleetView, release: FleetRelease) -> list[str]:
    """Ids of the active devices of the release's model that report its version."""
    from medfw.vuln.version import compare_versions, is_version  # noqa: PLC0415

    def same(v: str | None) -> bool:
        if v is None:
            return False
        if v == release.version:
            return True
        return is_version(v) and is_version(release.version) and compare_versions(v, release.version) == 0

    return sorted(d.id for d in view.devices if d.active and d.model == release.model and same(d.version))


def latest_rollout(view: FleetView, release: FleetRelease) -> FleetRollout | None:
    """The most recent rollout of a release, if any."""
    mine: Sequence[FleetRollout] = [r for r in view.rollouts if r.target_path == release.target_path]
    return max(mine, key=lambda r: r.id) if mine else None
