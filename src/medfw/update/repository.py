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
import dataclasses
import fcntl
import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from securesystemslib.signer import Key
from securesystemslib.signer import Signer as SslibSigner
from tuf.api.metadata import Metadata, Root, TargetFile
from tuf.api.serialization.json import JSONSerializer

from medfw.errors import InputError, UsageError
from medfw.update.release_info import ExpiryPolicy, ReleaseInfo, release_from_target
from medfw.update.repo_check import check_client_accepts, client_support_warnings
from medfw.update.repo_files import RepositoryFiles
from medfw.update.repo_meta import (
    ONLINE_ROLES,
    ROLES,
    initial_metadata,
    next_version,
    now_utc,
    online_role,
    online_versions,
    rotated_root,
)
from medfw.update.repo_txn import Transaction, recover

__all__ = [
    "ONLINE_ROLES",
    "ROLES",
    "ExpiryPolicy",
    "ReleaseInfo",
    "TufRepository",
    "client_support_warnings",
    "release_from_target",
]

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


class TufRepository(RepositoryFiles):
    """A TUF repository in a directory (see the module docstring for the layout).

    Every operation is all-or-nothing: it computes the new metadata in memory, asks python-tuf's client whether
    it would accept the result starting from the current root (:mod:`medfw.update.repo_check`), then writes all
    files under a journal, versioned files and targets first and the entry points last
    (:mod:`medfw.update.repo_txn`). A failure or a crash at any write leaves the repository byte-identical to
    before. Writers are serialised across threads and processes (several server workers re-signing online
    metadata) by an advisory ``.lock``.
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
                recover(self.path)  # an operation killed half-way is undone before the next one starts
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ---- writing -------------------------------------------------------------------------------------------

    def _stage(self, txn: Transaction, md: Metadata[Any], *, versioned: bool = True) -> None:
        """Stage ``md`` as its versioned file (``N.role.json``) and as the current entry point (``role.json``)."""
        role = md.signed.type
        data = md.to_bytes(JSONSerializer(compact=False))
        if versioned:
            txn.put(f"metadata/{md.signed.version}.{role}.json", data)
        txn.put(f"metadata/{role}.json", data)

    def _commit(self, txn: Transaction, trusted_root: bytes, *, targets: Sequence[str] = ()) -> None:
        """Check that a client trusting ``trusted_root`` accepts the staged result, then write it all."""
        staged = {rel: data for rel in txn.paths if (data := txn.staged(rel)) is not None}
        check_client_accepts(self.path, staged, trusted_root, targets=targets)
        txn.commit()

    def _stage_online(
        self,
        txn: Transaction,
        root: Root,
        targets_version: int,
        snapshot_signer: SslibSigner,
        timestamp_signer: SslibSigner,
        *,
        expiry: ExpiryPolicy,
        now: datetime,
        force: bool,
    ) -> bool:
        """Stage new snapshot and timestamp versions when needed; return whether anything was staged."""
        snapshot, timestamp = online_versions(
            self.load("snapshot"),
            self.load("timestamp"),
            root,
            targets_version,
            (snapshot_signer, timestamp_signer),
            expiry=expiry,
            now=now,
            force=force,
        )
        if snapshot is not None:
            self._stage(txn, snapshot)
        if timestamp is not None:
            self._stage(txn, timestamp, versioned=False)
        return timestamp is not None

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
        online_key_files: Mapping[str, bytes] | None = None,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> TufRepository:
        """Create a new repository at ``path`` (which must not already hold one).

        ``online_key_files`` maps ``snapshot``/``timestamp`` to a private key PEM stored as
        ``online-keys/<role>.pem`` (mode 0600) in the same all-or-nothing step.

        Raises:
            UsageError: a repository exists there, or a threshold exceeds its number of keys.
        """
        expiry = expiry or ExpiryPolicy()
        now = now or now_utc()
        p = Path(path)
        if (p / "metadata" / "root.json").exists():
            raise UsageError("a TUF repository already exists here", path=str(p))
        root, targets, snapshot, timestamp = initial_metadata(
            root_signers=root_signers,
            targets_signers=targets_signers,
            snapshot_signer=snapshot_signer,
            timestamp_signer=timestamp_signer,
            root_threshold=root_threshold,
            targets_threshold=targets_threshold,
            expiry=expiry,
            now=now,
        )
        p.mkdir(parents=True, exist_ok=True)
        repo = cls.__new__(cls)
        repo._set_paths(p)
        txn = Transaction(p)
        for md in (root, targets, snapshot):
            repo._stage(txn, md)
        repo._stage(txn, timestamp, versioned=False)
        for role, pem in (online_key_files or {}).items():
            txn.put(f"online-keys/{online_role(role)}.pem", pem, mode=0o600)
        with repo._locked():
            root_bytes = txn.staged("metadata/root.json")
            assert root_bytes is not None
            repo._commit(txn, root_bytes)
        (p / "targets").mkdir(exist_ok=True)
        return repo

    def publish(
        self,
        image: bytes,
        release: ReleaseInfo,
        *,
        targets_signers: Sequence[SslibSigner],
        online_signers: tuple[SslibSigner, SslibSigner] | None = None,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> ReleaseInfo:
        """Add a release target and sign a new targets version (the offline step), all or nothing.

        ``release.length`` and ``release.sha256`` are recomputed from ``image``. With ``online_signers``
        (snapshot, timestamp) the snapshot and timestamp are re-signed in the same step and a client is checked
        to find and accept the new target; without them the fleet server re-signs them later.

        Raises:
            UsageError: the target path is not ``<model>/<name>`` with safe names, or it already exists with
                different bytes.
            VerificationError: the signers do not meet the targets threshold of the current root, or a client
                would refuse the result.
        """
        expiry = expiry or ExpiryPolicy()
        now = now or now_utc()
        model, _, name = release.target_path.partition("/")
        if not _NAME_RE.match(model) or not _NAME_RE.match(name):
            raise UsageError("target path must be <model>/<name> with [A-Za-z0-9._+-]", field=release.target_path)
        digest = hashlib.sha256(image).hexdigest()
        release = dataclasses.replace(release, length=len(image), sha256=digest)
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
            next_version(targets, targets_signers, root.signed, expiry.targets, now)
            txn = Transaction(self.path)
            storage = self._target_storage(release.target_path, digest).relative_to(self.path)
            txn.put(storage.as_posix(), image)
            self._stage(txn, targets)
            if online_signers is not None:
                snap, ts = online_signers
                self._stage_online(
                    txn, root.signed, targets.signed.version, snap, ts, expiry=expiry, now=now, force=True
                )
            checked = [release.target_path] if online_signers is not None else []
            self._commit(txn, self.root_bytes(), targets=checked)
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
        now = now or now_utc()
        with self._locked():
            root = self.root()
            txn = Transaction(self.path)
            changed = self._stage_online(
                txn,
                root.signed,
                self.targets().signed.version,
                snapshot_signer,
                timestamp_signer,
                expiry=expiry,
                now=now,
                force=force,
            )
            if changed:
                self._commit(txn, self.root_bytes())
            return changed

    def rotate(
        self,
        role: str,
        new_keys: Sequence[Key],
        *,
        old_root_signers: Sequence[SslibSigner],
        new_root_signers: Sequence[SslibSigner] = (),
        threshold: int = 1,
        targets_signers: Sequence[SslibSigner] = (),
        online_signers: tuple[SslibSigner, SslibSigner] | None = None,
        online_key_files: Mapping[str, bytes] | None = None,
        remove_online_key: bool = False,
        expiry: ExpiryPolicy | None = None,
        now: datetime | None = None,
    ) -> Metadata[Root]:
        """Replace the keys of ``role`` in a new root version N+1, in one all-or-nothing step.

        Root N+1 is signed by the current root keys (``old_root_signers``, meeting root N's threshold) and, when
        the root role itself is rotated, also by the new root keys (``new_root_signers``, meeting the new
        threshold) — the TUF rule clients check when walking N → N+1. In the same step, ``targets_signers``
        re-sign the targets metadata (needed after rotating targets), ``online_signers`` (snapshot, timestamp)
        re-sign the online roles (needed after rotating targets, snapshot or timestamp), and
        ``online_key_files`` replace ``online-keys/<role>.pem`` (``remove_online_key`` deletes the rotated online
        role's file instead, when its new key lives in a token). Nothing is written unless a client trusting the
        current root accepts the result.

        Raises:
            UsageError: unknown role, no keys, threshold larger than the key count.
            VerificationError: the signatures do not meet the old or new root thresholds, or a client would
                refuse the result (for example targets rotated without re-signing targets).
        """
        expiry = expiry or ExpiryPolicy()
        now = now or now_utc()
        with self._locked():
            new = rotated_root(
                self.root(),
                role,
                new_keys,
                threshold=threshold,
                old_root_signers=old_root_signers,
                new_root_signers=new_root_signers,
                expiry=expiry,
                now=now,
            )
            txn = Transaction(self.path)
            self._stage(txn, new)
            targets_version = self.targets().signed.version
            if targets_signers:
                targets = next_version(self.targets(), targets_signers, new.signed, expiry.targets, now)
                self._stage(txn, targets)
                targets_version = targets.signed.version
            if online_signers is not None:
                snap, ts = online_signers
                self._stage_online(txn, new.signed, targets_version, snap, ts, expiry=expiry, now=now, force=True)
            for key_role, pem in (online_key_files or {}).items():
                txn.put(f"online-keys/{online_role(key_role)}.pem", pem, mode=0o600)
            if remove_online_key:
                txn.remove(f"online-keys/{online_role(role)}.pem")
            self._commit(txn, self.root_bytes())
            return new

    def sign_targets(
        self, targets_signers: Sequence[SslibSigner], *, expiry: ExpiryPolicy | None = None, now: datetime | None = None
    ) -> None:
        """Bump and re-sign the targets metadata unchanged (after rotating the targets keys)."""
        expiry = expiry or ExpiryPolicy()
        now = now or now_utc()
        with self._locked():
            targets = next_version(self.targets(), targets_signers, self.root().signed, expiry.targets, now)
            txn = Transaction(self.path)
            self._stage(txn, targets)
            txn.commit()  # snapshot still lists the previous targets version: the online step follows
