"""The TUF update repository: offline root/targets metadata, online snapshot/timestamp, firmware targets.

Layout of a repository directory::

    metadata/1.root.json … N.root.json, root.json     root history (clients walk N → N+1)
    metadata/N.targets.json, targets.json             offline-signed release list
    metadata/N.snapshot.json, snapshot.json           online-signed (short expiry)
    metadata/timestamp.json                           online-signed (shortest expiry)
    targets/<model>/<sha256>.<name>                   firmware images (consistent snapshots, hash-prefixed)
    online-keys/snapshot.pem, timestamp.pem           the online keys the fleet server holds (mode 0600)

Root and targets keys are never stored here: they are passed in as signers (key files kept offline, or PKCS#11
token keys) for the offline steps — initialising, publishing a release, rotating keys. The online snapshot and
timestamp keys are what the server uses to re-sign the short-lived metadata (:meth:`TufRepository.sign_online`).

Each release is a TUF target whose ``custom`` field carries ``model``, ``chip``, ``format``, ``version``,
``secure_version`` and an optional ``sbom`` reference (``{"ref": …, "sha256": …}``); clients check these against
the device before installing.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from securesystemslib.signer._key import Key
from securesystemslib.signer._signer import Signer as SslibSigner
from tuf.api._payload import MetaFile, Root, Snapshot, TargetFile, Targets, Timestamp
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata
from tuf.api.serialization import DeserializationError
from tuf.api.serialization.json import JSONSerializer

from medfw._io import atomic_write, read_bytes
from medfw.errors import InputError, KeyMaterialError, UsageError, VerificationError

__all__ = [
    "ONLINE_ROLES",
    "ROLES",
    "ExpiryPolicy",
    "ReleaseInfo",
    "TufRepository",
    "release_from_target",
]

ROLES: tuple[str, ...] = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES: tuple[str, ...] = ("snapshot", "timestamp")
MAX_METADATA = 8 * 1024 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


@dataclass(frozen=True)
class ExpiryPolicy:
    """How long each role's metadata stays valid after it is signed."""

    root: timedelta = timedelta(days=365)
    targets: timedelta = timedelta(days=90)
    snapshot: timedelta = timedelta(days=7)
    timestamp: timedelta = timedelta(days=1)

    def of(self, role: str) -> timedelta:
        """Return the validity period of ``role``."""
        value: timedelta = getattr(self, role)
        return value


@dataclass(frozen=True)
class ReleaseInfo:
    """One release as listed in the targets metadata."""

    target_path: str
    model: str
    chip: str
    image_format: str
    version: str
    secure_version: int
    length: int
    sha256: str
    sbom: Mapping[str, str] = field(default_factory=dict)

    def custom(self) -> dict[str, Any]:
        """The ``custom`` field of the TUF target for this release."""
        data: dict[str, Any] = {
            "model": self.model,
            "chip": self.chip,
            "format": self.image_format,
            "version": self.version,
            "secure_version": self.secure_version,
        }
        if self.sbom:
            data["sbom"] = dict(self.sbom)
        return data


def release_from_target(target: TargetFile) -> ReleaseInfo:
    """Read the medfw release fields of a TUF target.

    Raises:
        InputError: the target has no (or malformed) medfw custom fields.
    """
    custom = target.custom
    try:
        model = custom["model"]
        secure_version = custom["secure_version"]
        version = custom["version"]
        if not isinstance(model, str) or not isinstance(version, str):
            raise TypeError("model/version")
        if not isinstance(secure_version, int) or isinstance(secure_version, bool) or secure_version < 0:
            raise TypeError("secure_version")
        sbom = custom.get("sbom") or {}
        if not isinstance(sbom, dict):
            raise TypeError("sbom")
    except (KeyError, TypeError) as e:
        raise InputError(f"target has no valid medfw release fields ({e})", field=target.path) from None
    return ReleaseInfo(
        target_path=target.path,
        model=model,
        chip=str(custom.get("chip", "")),
        image_format=str(custom.get("format", "")),
        version=version,
        secure_version=secure_version,
        length=target.length,
        sha256=target.hashes.get("sha256", ""),
        sbom={str(k): str(v) for k, v in sbom.items()},
    )


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _sign(md: Metadata[Any], signers: Sequence[SslibSigner]) -> None:
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


class TufRepository:
    """A TUF repository in a directory (see the module docstring for the layout).

    Every change is written with atomic file replacement; versioned files are written before the unversioned
    "current" copy, so a crash never leaves a current file pointing at a missing version. Writers are serialised
    across threads and processes (several server workers re-signing online metadata) by an advisory ``.lock``.
    """

    _lock = threading.RLock()

    def __init__(self, path: str | Path) -> None:
        self._set_paths(Path(path))
        if not (self.metadata_dir / "root.json").is_file():
            raise InputError("not a TUF repository (metadata/root.json missing)", path=str(self.path))

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers: threads of this process, and other processes (an advisory ``.lock`` file)."""
        with self._lock, (self.path / ".lock").open("a") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def _set_paths(self, path: Path) -> None:
        self.path = path
        self.metadata_dir = path / "metadata"
        self.targets_dir = path / "targets"
        self.online_keys_dir = path / "online-keys"

    # ---- reading -------------------------------------------------------------------------------------------

    def load(self, role: str, version: int | None = None) -> Metadata[Any]:
        """Load the current (or a given version of) metadata of a top-level role."""
        name = f"{version}.{role}.json" if version is not None else f"{role}.json"
        path = self.metadata_dir / name
        data = read_bytes(path, max_length=MAX_METADATA, what=f"{role} metadata")
        try:
            md: Metadata[Any] = Metadata.from_bytes(data)
        except DeserializationError as e:
            raise InputError(f"malformed {role} metadata: {e}", path=str(path)) from None
        if md.signed.type != role:
            raise InputError(f"expected {role} metadata, found {md.signed.type}", path=str(path), field="_type")
        return md

    def root(self) -> Metadata[Root]:
        """The current root metadata."""
        return self.load("root")

    def targets(self) -> Metadata[Targets]:
        """The current targets metadata."""
        return self.load("targets")

    def root_bytes(self) -> bytes:
        """The bytes of the current root metadata: what a device is provisioned with as its root of trust."""
        return read_bytes(self.metadata_dir / "root.json", max_length=MAX_METADATA, what="root metadata")

    def releases(self) -> list[ReleaseInfo]:
        """All releases listed in the current targets metadata, skipping non-medfw targets."""
        out: list[ReleaseInfo] = []
        for target in self.targets().signed.targets.values():
            try:
                out.append(release_from_target(target))
            except InputError:
                continue
        return sorted(out, key=lambda r: r.target_path)

    def target_file(self, target_path: str) -> Path:
        """Where the bytes of ``target_path`` are stored (hash-prefixed name, as clients request them)."""
        target = self.targets().signed.targets.get(target_path)
        if target is None:
            raise InputError("no such target", field=target_path)
        return self._target_storage(target_path, target.hashes["sha256"])

    def _target_storage(self, target_path: str, sha256: str) -> Path:
        directory, _, base = target_path.rpartition("/")
        return self.targets_dir / directory / f"{sha256}.{base}"

    # ---- writing -------------------------------------------------------------------------------------------

    def _write(self, md: Metadata[Any], *, versioned: bool = True, current: bool = True) -> None:
        role = md.signed.type
        data = md.to_bytes(JSONSerializer(compact=False))
        if versioned:
            atomic_write(self.metadata_dir / f"{md.signed.version}.{role}.json", data)
        if current:
            atomic_write(self.metadata_dir / f"{role}.json", data)

    @classmethod
    def init(
        cls,
        path: str | Path,
        *,
        root_signers: Sequence[SslibSigner],
        targets_signers: Sequence[SslibSigner],
        snapshot_signer: SslibSigner,
        timestamp_signer: SslibSigner,
        root_threshold: int = 1,
        targets_threshold: int = 1,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> TufRepository:
        """Create a new repository at ``path`` (which must not already hold one).

        Raises:
            UsageError: a repository exists there, or a threshold exceeds its number of keys.
        """
        expiry = expiry or ExpiryPolicy()
        now = now or _now()
        p = Path(path)
        if (p / "metadata" / "root.json").exists():
            raise UsageError("a TUF repository already exists here", path=str(p))
        _check_threshold("root", root_signers, root_threshold)
        _check_threshold("targets", targets_signers, targets_threshold)
        root = Metadata(Root(expires=now + expiry.root, consistent_snapshot=True))
        for s in root_signers:
            root.signed.add_key(s.public_key, "root")
        for s in targets_signers:
            root.signed.add_key(s.public_key, "targets")
        root.signed.add_key(snapshot_signer.public_key, "snapshot")
        root.signed.add_key(timestamp_signer.public_key, "timestamp")
        root.signed.roles["root"].threshold = root_threshold
        root.signed.roles["targets"].threshold = targets_threshold
        _sign(root, root_signers)
        targets = Metadata(Targets(expires=now + expiry.targets))
        _sign(targets, targets_signers)
        (p / "metadata").mkdir(parents=True, exist_ok=True)
        (p / "targets").mkdir(parents=True, exist_ok=True)
        repo = cls.__new__(cls)
        repo._set_paths(p)
        repo._write(targets)
        snapshot = Metadata(Snapshot(expires=now + expiry.snapshot))
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
        _sign(snapshot, [snapshot_signer])
        repo._write(snapshot)
        timestamp = Metadata(Timestamp(expires=now + expiry.timestamp))
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        _sign(timestamp, [timestamp_signer])
        repo._write(timestamp, versioned=False)
        repo._write(root)  # last: its presence marks a complete repository
        return repo

    def publish(
        self,
        image: bytes,
        release: ReleaseInfo,
        *,
        targets_signers: Sequence[SslibSigner],
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> ReleaseInfo:
        """Add a release target and sign a new targets version (the offline step).

        ``release.length`` and ``release.sha256`` are recomputed from ``image``. Snapshot and timestamp are not
        touched: call :meth:`sign_online` with the online keys (the fleet server does this on its own).

        Raises:
            UsageError: the target path is not ``<model>/<name>`` with safe names, or it already exists with
                different bytes.
            VerificationError: the signers do not meet the targets threshold of the current root.
        """
        expiry = expiry or ExpiryPolicy()
        now = now or _now()
        model, _, name = release.target_path.partition("/")
        if not _NAME_RE.match(model) or not _NAME_RE.match(name):
            raise UsageError("target path must be <model>/<name> with [A-Za-z0-9._+-]", field=release.target_path)
        digest = hashlib.sha256(image).hexdigest()
        release = ReleaseInfo(
            target_path=release.target_path,
            model=release.model,
            chip=release.chip,
            image_format=release.image_format,
            version=release.version,
            secure_version=release.secure_version,
            length=len(image),
            sha256=digest,
            sbom=release.sbom,
        )
        with self._locked():
            root = self.root()
            targets = self.targets()
            existing = targets.signed.targets.get(release.target_path)
            if existing is not None and existing.hashes.get("sha256") != digest:
                raise UsageError("a different image is already published under this name", field=release.target_path)
            target = TargetFile(
                length=len(image),
                hashes={"sha256": digest},
                path=release.target_path,
                unrecognized_fields={"custom": release.custom()},
            )
            targets.signed.targets[release.target_path] = target
            targets.signed.version += 1
            targets.signed.expires = now + expiry.targets
            _sign(targets, targets_signers)
            _verify_role(root.signed, "targets", targets)
            atomic_write(self._target_storage(release.target_path, digest), image)
            self._write(targets)
        return release

    def sign_online(
        self,
        snapshot_signer: SslibSigner,
        timestamp_signer: SslibSigner,
        *,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
        force: bool = False,
    ) -> bool:
        """Re-sign snapshot and timestamp when targets changed or they pass half their lifetime.

        Returns whether anything was written.
        """
        expiry = expiry or ExpiryPolicy()
        now = now or _now()
        with self._locked():
            root = self.root()
            targets = self.targets()
            snapshot: Metadata[Snapshot] = self.load("snapshot")
            timestamp: Metadata[Timestamp] = self.load("timestamp")
            changed = False
            stale_snapshot = snapshot.signed.expires - now < expiry.snapshot / 2
            if force or snapshot.signed.meta["targets.json"].version != targets.signed.version or stale_snapshot:
                snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
                snapshot.signed.version += 1
                snapshot.signed.expires = now + expiry.snapshot
                _sign(snapshot, [snapshot_signer])
                _verify_role(root.signed, "snapshot", snapshot)
                self._write(snapshot)
                changed = True
            stale_ts = timestamp.signed.expires - now < expiry.timestamp / 2
            if force or changed or stale_ts or timestamp.signed.snapshot_meta.version != snapshot.signed.version:
                timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
                timestamp.signed.version += 1
                timestamp.signed.expires = now + expiry.timestamp
                _sign(timestamp, [timestamp_signer])
                _verify_role(root.signed, "timestamp", timestamp)
                self._write(timestamp, versioned=False)
                changed = True
            return changed

    def rotate(
        self,
        role: str,
        new_keys: Sequence[Key],
        *,
        old_root_signers: Sequence[SslibSigner],
        new_root_signers: Sequence[SslibSigner] = (),
        threshold: int = 1,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> Metadata[Root]:
        """Replace the keys of ``role`` in a new root version N+1.

        Root N+1 is signed by the current root keys (``old_root_signers``, meeting root N's threshold) and, when
        the root role itself is rotated, also by the new root keys (``new_root_signers``, meeting the new
        threshold) — the TUF rule clients check when walking N → N+1. After rotating targets, publish with the new
        key; after rotating snapshot/timestamp, call :meth:`sign_online` with the new key (``force=True``).

        Raises:
            UsageError: unknown role, no keys, threshold larger than the key count.
            VerificationError: the signatures do not meet the old or new root thresholds.
        """
        if role not in ROLES:
            raise UsageError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
        if not new_keys or threshold < 1 or threshold > len(new_keys):
            raise UsageError(f"{role}: threshold {threshold} needs at least that many keys (got {len(new_keys)})")
        expiry = expiry or ExpiryPolicy()
        now = now or _now()
        with self._locked():
            old = self.root()
            new = Metadata(Root.from_dict(copy.deepcopy(old.signed.to_dict())))  # to_dict shares lists
            for keyid in list(new.signed.roles[role].keyids):
                new.signed.revoke_key(keyid, role)
            for key in new_keys:
                new.signed.add_key(key, role)
            new.signed.roles[role].threshold = threshold
            new.signed.version = old.signed.version + 1
            new.signed.expires = now + expiry.root
            signers = list(old_root_signers)
            if role == "root":
                seen = {s.public_key.keyid for s in signers}
                signers += [s for s in new_root_signers if s.public_key.keyid not in seen]
            _sign(new, signers)
            _verify_role(old.signed, "root", new)
            _verify_role(new.signed, "root", new)
            self._write(new)
            return new

    def sign_targets(
        self, targets_signers: Sequence[SslibSigner], *, expiry: ExpiryPolicy | None = None, now: datetime | None = None
    ) -> None:
        """Bump and re-sign the targets metadata unchanged (after rotating the targets keys)."""
        expiry = expiry or ExpiryPolicy()
        now = now or _now()
        with self._locked():
            root = self.root()
            targets = self.targets()
            targets.signed.version += 1
            targets.signed.expires = now + expiry.targets
            _sign(targets, targets_signers)
            _verify_role(root.signed, "targets", targets)
            self._write(targets)


def _check_threshold(role: str, signers: Sequence[SslibSigner], threshold: int) -> None:
    if threshold < 1 or threshold > len(signers):
        raise UsageError(f"{role}: threshold {threshold} needs at least that many keys (got {len(signers)})")
    if len({s.public_key.keyid for s in signers}) != len(signers):
        raise KeyMaterialError(f"{role}: the same key is given twice")


def _verify_role(root: Root, role: str, md: Metadata[Any]) -> None:
    try:
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as e:
        raise VerificationError(f"{role} metadata does not meet its signature threshold: {e}", field=role) from None
