"""Publishing a release: add a signed image as a TUF target, re-sign the online roles, record the audit event.

:func:`publish_release` is the whole workflow with its side effects; ``medfw ota release publish`` only reads the
release's fields from the image and its flags, calls it and prints the result, so a library caller leaves the
same audit record as the CLI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from medfw._io import read_bytes
from medfw.audit.sink import AuditEvent, AuditSink, NullSink, release_point
from medfw.crypto.keys import KeyType, PrivateKey, generate_private_key, private_key_pem, write_private_key
from medfw.errors import InputError, MedfwError, UsageError
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

__all__ = ["MAX_SBOM", "PublishResult", "online_signer", "publish_release"]

MAX_SBOM = 64 * 1024 * 1024


@dataclass(frozen=True)
class PublishResult:
    """The published release (with its length and SHA-256) and the repository state after it."""

    release: ReleaseInfo
    targets_version: int
    online_signed: bool
    warnings: tuple[str, ...] = ()


def online_signer(repo_dir: Path, role: str, uri: str | None = None, *, generate: bool = False) -> MedfwTufSigner:
    """The online key of ``role``: the given URI, else ``REPO/online-keys/<role>.pem`` (generated when asked).

    Raises:
        UsageError: no key given and none in the repository.
    """
    if uri:
        return MedfwTufSigner.from_medfw_uri(uri)
    path = repo_dir / "online-keys" / f"{role}.pem"
    if generate:
        write_private_key(generate_private_key(KeyType.ECDSA_P256), path, force=True)
    if not path.is_file():
        raise UsageError(f"no {role} key: give --{role}-key or keep it at {path}", field=f"--{role}-key")
    return MedfwTufSigner.from_medfw_uri(str(path))


def _file_signer(key: PrivateKey, role: str) -> MedfwTufSigner:
    from medfw.crypto.signer import FileSigner  # noqa: PLC0415

    return MedfwTufSigner(FileSigner(key, key_id=f"online-keys/{role}.pem"))


def publish_release(
    repo_dir: str | Path,
    image: bytes,
    release: ReleaseInfo,
    *,
    targets_signers: Sequence[MedfwTufSigner],
    root_signers: Sequence[MedfwTufSigner] = (),
    sbom: str | Path | None = None,
    sink: AuditSink | None = None,
    actor: str = "cli",
) -> PublishResult:
    """Publish ``image`` as ``release`` in ``repo_dir`` (created first when ``root_signers`` are given).

    The targets metadata is signed with ``targets_signers`` (offline keys); snapshot and timestamp are re-signed
    with the repository's online keys when it keeps them; ``sbom`` is referenced by name and SHA-256. A
    ``release.publish`` audit event goes to ``sink`` once the repository is written.

    Raises:
        InputError: no repository and no root keys, or an unreadable SBOM.
    """
    repo_path = Path(repo_dir)
    if sbom:
        sbom_bytes = read_bytes(sbom, max_length=MAX_SBOM, what="SBOM")
        release = replace(release, sbom={"ref": Path(sbom).name, "sha256": hashlib.sha256(sbom_bytes).hexdigest()})
    if not (repo_path / "metadata" / "root.json").exists():
        if not root_signers:
            msg = "no TUF repository here (run `medfw ota repo init`, or give --root-key)"
            raise InputError(msg, path=str(repo_dir))
        keys = {role: generate_private_key(KeyType.ECDSA_P256) for role in ("snapshot", "timestamp")}
        TufRepository.init(  # the online keys are stored in the same all-or-nothing step as the metadata
            repo_path,
            root_signers=root_signers,
            targets_signers=targets_signers,
            snapshot_signer=_file_signer(keys["snapshot"], "snapshot"),
            timestamp_signer=_file_signer(keys["timestamp"], "timestamp"),
            online_key_files={role: private_key_pem(key) for role, key in keys.items()},
        )
    repo = TufRepository(repo_path)
    key_dir = repo_path / "online-keys"
    online = (key_dir / "snapshot.pem").is_file() and (key_dir / "timestamp.pem").is_file()
    signers = (online_signer(repo_path, "snapshot"), online_signer(repo_path, "timestamp")) if online else None
    # one all-or-nothing step: the target, the targets metadata and (with the online keys) snapshot and timestamp
    release = repo.publish(image, release, targets_signers=targets_signers, online_signers=signers)
    audit = sink or NullSink()
    audit.record(
        AuditEvent(
            type="release.publish",
            outcome="success",
            actor=actor,
            objects={"image_sha256": release.sha256, "target": release.target_path},
            data={"version": release.version, "secure_version": release.secure_version, "model": release.model},
        )
    )
    warnings: list[str] = []
    try:
        release_point(audit, "release")  # a release point: the audit log signs a checkpoint covering the publish
    except MedfwError as e:
        warnings.append(f"no audit checkpoint at this release: {e.message}")
    return PublishResult(release, repo.targets().signed.version, online, tuple(warnings))
