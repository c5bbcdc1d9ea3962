"""The read side of a TUF repository directory: its paths, its current metadata, its releases and where their
target files are stored (see :mod:`medfw.update.repository` for the layout and the write side)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuf.api.metadata import Metadata, Root, Targets
from tuf.api.serialization import DeserializationError

from medfw._io import read_bytes
from medfw.errors import InputError
from medfw.update.release_info import ReleaseInfo, release_from_target

__all__ = ["MAX_METADATA", "RepositoryFiles"]

MAX_METADATA = 8 * 1024 * 1024


class RepositoryFiles:
    """Paths and reads of a repository directory."""

    path: Path
    metadata_dir: Path
    targets_dir: Path
    online_keys_dir: Path

    def _set_paths(self, path: Path) -> None:
        self.path = path
        self.metadata_dir = path / "metadata"
        self.targets_dir = path / "targets"
        self.online_keys_dir = path / "online-keys"

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
