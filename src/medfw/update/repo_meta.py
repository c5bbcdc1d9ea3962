"""Pure TUF metadata steps of the repository: the first versions of every role, a rotated root, a re-signed
version of a role, and the checks that signatures meet the thresholds of a root. Nothing here touches disk;
:class:`medfw.update.repository.TufRepository` stages and commits what these return."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from securesystemslib.signer import Key
from securesystemslib.signer import Signer as SslibSigner
from tuf.api.exceptions import UnsignedMetadataError
from tuf.api.metadata import Metadata, MetaFile, Root, Snapshot, Targets, Timestamp

from medfw.errors import KeyMaterialError, UsageError, VerificationError
from medfw.update.release_info import ExpiryPolicy

__all__ = [
    "ONLINE_ROLES",
    "ROLES",
    "check_threshold",
    "initial_metadata",
    "next_version",
    "now_utc",
    "online_role",
    "online_versions",
    "rotated_root",
    "sign",
    "verify_role",
]

ROLES: tuple[str, ...] = ("root", "targets", "snapshot", "timestamp")
ONLINE_ROLES: tuple[str, ...] = ("snapshot", "timestamp")


def now_utc() -> datetime:
    """Now, to the second (TUF expiry timestamps carry no fractions)."""
    return datetime.now(UTC).replace(microsecond=0)


def sign(md: Metadata[Any], signers: Sequence[SslibSigner]) -> None:
    """Replace the signatures of ``md`` with those of ``signers``."""
    md.signatures.clear()
    for s in signers:
        md.sign(s, append=True)


def verify_role(root: Root, role: str, md: Metadata[Any]) -> None:
    """Raise unless ``md`` meets the signature threshold ``root`` sets for ``role``.

    Raises:
        VerificationError: too few valid signatures.
    """
    try:
        root.verify_delegate(role, md.signed_bytes, md.signatures)
    except UnsignedMetadataError as e:
        raise VerificationError(f"{role} metadata does not meet its signature threshold: {e}", field=role) from None


def check_threshold(role: str, signers: Sequence[SslibSigner], threshold: int) -> None:
    """Raise unless ``threshold`` distinct ``signers`` exist.

    Raises:
        UsageError: the threshold is below 1 or above the number of signers.
        KeyMaterialError: the same key is given twice.
    """
    if threshold < 1 or threshold > len(signers):
        raise UsageError(f"{role}: threshold {threshold} needs at least that many keys (got {len(signers)})")
    if len({s.public_key.keyid for s in signers}) != len(signers):
        raise KeyMaterialError(f"{role}: the same key is given twice")


def online_role(role: str) -> str:
    """``role`` when it is an online role (one that keeps a key file).

    Raises:
        UsageError: not snapshot or timestamp.
    """
    if role not in ONLINE_ROLES:
        raise UsageError(f"only the online roles ({', '.join(ONLINE_ROLES)}) keep a key file", field=role)
    return role


def next_version(
    md: Metadata[Any], signers: Sequence[SslibSigner], root: Root, lifetime: timedelta, now: datetime
) -> Metadata[Any]:
    """Bump ``md``'s version, set its expiry to ``now + lifetime``, sign it and check it against ``root``."""
    md.signed.version += 1
    md.signed.expires = now + lifetime
    sign(md, signers)
    verify_role(root, md.signed.type, md)
    return md


def initial_metadata(
    *,
    root_signers: Sequence[SslibSigner],
    targets_signers: Sequence[SslibSigner],
    snapshot_signer: SslibSigner,
    timestamp_signer: SslibSigner,
    root_threshold: int,
    targets_threshold: int,
    expiry: ExpiryPolicy,
    now: datetime,
) -> tuple[Metadata[Root], Metadata[Targets], Metadata[Snapshot], Metadata[Timestamp]]:
    """Version 1 of every role for a new repository (consistent snapshots, no targets yet)."""
    check_threshold("root", root_signers, root_threshold)
    check_threshold("targets", targets_signers, targets_threshold)
    root = Metadata(Root(expires=now + expiry.root, consistent_snapshot=True))
    for s in root_signers:
        root.signed.add_key(s.public_key, "root")
    for s in targets_signers:
        root.signed.add_key(s.public_key, "targets")
    root.signed.add_key(snapshot_signer.public_key, "snapshot")
    root.signed.add_key(timestamp_signer.public_key, "timestamp")
    root.signed.roles["root"].threshold = root_threshold
    root.signed.roles["targets"].threshold = targets_threshold
    sign(root, root_signers)
    targets = Metadata(Targets(expires=now + expiry.targets))
    sign(targets, targets_signers)
    snapshot = Metadata(Snapshot(expires=now + expiry.snapshot))
    snapshot.signed.meta["targets.json"] = MetaFile(version=targets.signed.version)
    sign(snapshot, [snapshot_signer])
    timestamp = Metadata(Timestamp(expires=now + expiry.timestamp))
    timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
    sign(timestamp, [timestamp_signer])
    return root, targets, snapshot, timestamp


def rotated_root(
    old: Metadata[Root],
    role: str,
    new_keys: Sequence[Key],
    *,
    threshold: int,
    old_root_signers: Sequence[SslibSigner],
    new_root_signers: Sequence[SslibSigner],
    expiry: ExpiryPolicy,
    now: datetime,
) -> Metadata[Root]:
    """Root N+1 with ``role``'s keys replaced, signed by root N's keys (and the new root keys for a root
    rotation), checked against both thresholds — the rule clients apply when walking N → N+1.

    Raises:
        UsageError: unknown role, no keys, threshold larger than the key count.
        VerificationError: the signatures do not meet the old or new root thresholds.
    """
    if role not in ROLES:
        raise UsageError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})")
    if not new_keys or threshold < 1 or threshold > len(new_keys):
        raise UsageError(f"{role}: threshold {threshold} needs at least that many keys (got {len(new_keys)})")
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
    sign(new, signers)
    verify_role(old.signed, "root", new)
    verify_role(new.signed, "root", new)
    return new


def online_versions(
    snapshot: Metadata[Snapshot],
    timestamp: Metadata[Timestamp],
    root: Root,
    targets_version: int,
    signers: tuple[SslibSigner, SslibSigner],
    *,
    expiry: ExpiryPolicy,
    now: datetime,
    force: bool,
) -> tuple[Metadata[Snapshot] | None, Metadata[Timestamp] | None]:
    """The new snapshot and timestamp versions, each None when the current one can stay.

    A snapshot is re-signed when forced, when it does not list ``targets_version`` or past half its lifetime; the
    timestamp whenever the snapshot changed, when forced, past half its lifetime or when it names another snapshot.
    """
    snapshot_signer, timestamp_signer = signers
    new_snapshot: Metadata[Snapshot] | None = None
    stale_snapshot = snapshot.signed.expires - now < expiry.snapshot / 2
    if force or snapshot.signed.meta["targets.json"].version != targets_version or stale_snapshot:
        snapshot.signed.meta["targets.json"] = MetaFile(version=targets_version)
        new_snapshot = next_version(snapshot, [snapshot_signer], root, expiry.snapshot, now)
    stale_ts = timestamp.signed.expires - now < expiry.timestamp / 2
    if force or new_snapshot or stale_ts or timestamp.signed.snapshot_meta.version != snapshot.signed.version:
        timestamp.signed.snapshot_meta = MetaFile(version=snapshot.signed.version)
        return new_snapshot, next_version(timestamp, [timestamp_signer], root, expiry.timestamp, now)
    return new_snapshot, None
