"""``medfw ota repo init | rotate | refresh``: the TUF update repository (root and targets keys stay offline)."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, out_console
from medfw.cli._ota_client import warn
from medfw.crypto.keys import KeyType, generate_private_key, load_private_key, private_key_pem
from medfw.errors import EXIT_OK, UsageError

if TYPE_CHECKING:
    from medfw.update.repository import TufRepository
    from medfw.update.tuf_signer import MedfwTufSigner

__all__ = ["online_signer", "open_repo", "register", "signers"]


def open_repo(path: str | Path) -> TufRepository:
    """The TUF repository in ``path``."""
    from medfw.update.repository import TufRepository  # noqa: PLC0415 - keep CLI start-up light

    return TufRepository(path)


def signers(uris: list[str] | None) -> list[MedfwTufSigner]:
    """A TUF signer for each key URI."""
    from medfw.update.tuf_signer import MedfwTufSigner  # noqa: PLC0415

    return [MedfwTufSigner.from_medfw_uri(u) for u in uris or []]


def online_signer(repo_dir: Path, role: str, uri: str | None, *, generate: bool) -> MedfwTufSigner:
    """The online key of ``role``: the given URI, else ``online-keys/<role>.pem`` (generated when asked)."""
    from medfw.update.publish import online_signer as signer  # noqa: PLC0415

    return signer(repo_dir, role, uri, generate=generate)


def _new_online_key(role: str, given: str | None) -> tuple[MedfwTufSigner, bytes | None]:
    """The signer for an online role and the key file to keep in ``online-keys/`` (None for a token key).

    ``given`` is a key file or ``pkcs11:`` URI; without it a fresh ECDSA P-256 key is generated. Nothing is
    written here: the repository stores the file in the same all-or-nothing step as the metadata.
    """
    from medfw.crypto.signer import FileSigner  # noqa: PLC0415
    from medfw.update.tuf_signer import MedfwTufSigner  # noqa: PLC0415

    if given and given.startswith("pkcs11:"):
        return MedfwTufSigner.from_medfw_uri(given), None
    key = load_private_key(given.removeprefix("file:")) if given else generate_private_key(KeyType.ECDSA_P256)
    return MedfwTufSigner(FileSigner(key, key_id=given or f"online-keys/{role}.pem")), private_key_pem(key)


def _repo_init(args: argparse.Namespace) -> int:
    from medfw.update.repository import TufRepository, client_support_warnings  # noqa: PLC0415

    repo_dir = Path(args.repo)
    if (repo_dir / "metadata" / "root.json").exists():
        raise UsageError("a TUF repository already exists here", path=str(repo_dir))
    roots = signers(args.root_key)
    targets = signers(args.targets_key)
    snap, snap_pem = _new_online_key("snapshot", args.snapshot_key)
    ts, ts_pem = _new_online_key("timestamp", args.timestamp_key)
    files = {role: pem for role, pem in (("snapshot", snap_pem), ("timestamp", ts_pem)) if pem is not None}
    warnings = [
        *client_support_warnings("root", [s.public_key for s in roots]),
        *client_support_warnings("targets", [s.public_key for s in targets]),
        *client_support_warnings("snapshot", [snap.public_key]),
        *client_support_warnings("timestamp", [ts.public_key]),
    ]
    warn(warnings)
    repo = TufRepository.init(
        repo_dir,
        root_signers=roots,
        targets_signers=targets,
        snapshot_signer=snap,
        timestamp_signer=ts,
        root_threshold=args.root_threshold,
        targets_threshold=args.targets_threshold,
        online_key_files=files,
    )
    root = repo.root().signed
    root_sha256 = hashlib.sha256(repo.root_bytes()).hexdigest()
    data: dict[str, Any] = {
        "repo": str(repo_dir),
        "root_version": root.version,
        "roles": {r: {"keyids": list(root.roles[r].keyids), "threshold": root.roles[r].threshold} for r in root.roles},
        "root_sha256": root_sha256,
        "warnings": warnings,
    }
    sink = audit_sink(args)
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415

    sink.record(
        AuditEvent(
            type="key.generate",
            outcome="success",
            actor="cli",
            objects={"root_sha256": root_sha256},
            data={"action": "tuf.repo.init"},
        )
    )
    emit(args, data, lambda: out_console.print(f"TUF repository created in {repo_dir} (root v{root.version})"))
    return EXIT_OK


def _repo_rotate(args: argparse.Namespace) -> int:
    from medfw.update.repository import ONLINE_ROLES, client_support_warnings  # noqa: PLC0415

    repo = open_repo(args.repo)
    role = args.role
    old_root = signers(args.root_key)
    key_files: dict[str, bytes] = {}
    if role in ONLINE_ROLES:
        if args.new_key and len(args.new_key) > 1:
            raise UsageError(f"the {role} role takes one online key", field="--new-key")
        signer, pem = _new_online_key(role, args.new_key[0] if args.new_key else None)
        new_signers = [signer]
        if pem is not None:
            key_files[role] = pem
    else:
        new_signers = signers(args.new_key)
    if not new_signers:
        raise UsageError(f"give the new {role} key(s) with --new-key", field="--new-key")
    warnings = client_support_warnings(role, [s.public_key for s in new_signers])
    warn(warnings)
    online = None
    if role in ONLINE_ROLES or role == "targets":
        snap = new_signers[0] if role == "snapshot" else online_signer(repo.path, "snapshot", None, generate=False)
        ts = new_signers[0] if role == "timestamp" else online_signer(repo.path, "timestamp", None, generate=False)
        online = (snap, ts)
    new_root = repo.rotate(
        role,
        [s.public_key for s in new_signers],
        old_root_signers=old_root,
        new_root_signers=new_signers if role == "root" else (),
        threshold=args.threshold,
        targets_signers=new_signers if role == "targets" else (),
        online_signers=online,
        online_key_files=key_files,
        remove_online_key=role in ONLINE_ROLES and not key_files,
    )
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415

    audit_sink(args).record(
        AuditEvent(
            type="key.rotate",
            outcome="success",
            actor="cli",
            objects={"root_sha256": hashlib.sha256(repo.root_bytes()).hexdigest()},
            data={"role": role, "root_version": new_root.signed.version, "keyids": [s.key_id for s in new_signers]},
        )
    )
    data = {
        "role": role,
        "root_version": new_root.signed.version,
        "keyids": [s.key_id for s in new_signers],
        "warnings": warnings,
    }
    emit(args, data, lambda: out_console.print(f"{role} keys rotated: root is now v{new_root.signed.version}"))
    return EXIT_OK


def _repo_refresh(args: argparse.Namespace) -> int:
    repo = open_repo(args.repo)
    snap = online_signer(repo.path, "snapshot", args.snapshot_key, generate=False)
    ts = online_signer(repo.path, "timestamp", args.timestamp_key, generate=False)
    changed = repo.sign_online(snap, ts, force=args.force)
    emit(args, {"changed": changed}, lambda: out_console.print("re-signed" if changed else "still fresh"))
    return EXIT_OK


def register(ota: Any) -> None:
    """Add ``ota repo …``."""
    group = add_group(ota, "repo", "TUF update repository (offline root and targets keys)")
    p = group.add_parser("init", help="create a TUF repository")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument("--root-key", action="append", required=True, metavar="KEY", help="root key URI (repeatable)")
    p.add_argument("--root-threshold", type=int, default=1, help="root signatures required")
    p.add_argument("--targets-key", action="append", required=True, metavar="KEY", help="targets key (repeatable)")
    p.add_argument("--targets-threshold", type=int, default=1, help="targets signatures required")
    p.add_argument("--snapshot-key", metavar="KEY", help="online snapshot key (default: generated in DIR/online-keys)")
    p.add_argument("--timestamp-key", metavar="KEY", help="online timestamp key (default: generated)")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_repo_init)

    p = group.add_parser("rotate", help="replace the keys of a role (root N→N+1 signed by old and new keys)")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument(
        "--role",
        required=True,
        choices=["root", "targets", "snapshot", "timestamp"],
        help="TUF role whose keys are replaced",
    )
    p.add_argument("--root-key", action="append", required=True, metavar="KEY", help="current root key(s)")
    p.add_argument("--new-key", action="append", metavar="KEY", help="new key(s) (online roles: default generated)")
    p.add_argument("--threshold", type=int, default=1, help="signatures the role needs after rotation")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_repo_rotate)

    p = group.add_parser("refresh", help="re-sign snapshot/timestamp with the online keys when due")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument("--snapshot-key", metavar="KEY", help="online snapshot key (default: DIR/online-keys/snapshot.pem)")
    p.add_argument(
        "--timestamp-key", metavar="KEY", help="online timestamp key (default: DIR/online-keys/timestamp.pem)"
    )
    p.add_argument("--force", action="store_true", help="re-sign even when the online metadata is still fresh")
    add_json_flag(p)
    p.set_defaults(func=_repo_refresh)
