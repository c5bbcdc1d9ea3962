"""How the agent reads TUF metadata: python-tuf's ngclient over the agent's transport, and why a refresh failed.

python-tuf raises :class:`~tuf.api.exceptions.BadVersionNumberError` both for a rollback (metadata older than
what the device already trusts) and for mix-and-match (a file whose version is not the one its parent —
timestamp for snapshot, snapshot for targets — names). The agent tells them apart by the structure of the
failure, never by the message: :class:`RecordingFetcher` remembers the last metadata file downloaded (the one
ngclient refused, as it checks each file right after downloading it), and :func:`metadata_reason` compares that
file's versions with the metadata the device trusts in its metadata directory, using only the public
``tuf.api.metadata`` API.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from tuf.api import exceptions as tuf_exc
from tuf.api.metadata import Metadata, Root, Snapshot, Timestamp

from medfw.update.agent_model import MetadataReason
from medfw.update.fetcher import HttpxFetcher

__all__ = ["MetadataReason", "RecordingFetcher", "metadata_reason"]


class RecordingFetcher(HttpxFetcher):
    """An :class:`HttpxFetcher` that remembers the last metadata file it downloaded (URL and bytes)."""

    last: tuple[str, bytes] | None = None

    def download_bytes(self, url: str, max_length: int) -> bytes:
        """Download as python-tuf asks, and remember what came back."""
        data = super().download_bytes(url, max_length)
        self.last = (url, data)
        return data


def _role(url: str) -> str:
    """``timestamp`` for ``…/timestamp.json``, ``targets`` for ``…/7.targets.json``."""
    name = unquote(urlparse(url).path.rsplit("/", 1)[-1]).removesuffix(".json")
    head, _, rest = name.partition(".")
    return rest if head.isdigit() and rest else name


def _trusted(metadata_dir: Path, role: str) -> Metadata[Any] | None:
    path = metadata_dir / f"{role}.json"
    try:
        return Metadata.from_file(str(path)) if path.is_file() else None
    except (OSError, ValueError, tuf_exc.RepositoryError):
        return None


def _version_reason(refused: tuple[str, bytes] | None, metadata_dir: Path) -> MetadataReason:
    """Rollback or mix-and-match, from the refused file and the trusted metadata.

    * timestamp: both of python-tuf's checks are against the trusted timestamp (its version, its snapshot
      version): a rollback;
    * root: a root older than the trusted one is a rollback; any other wrong version a mix-and-match;
    * snapshot: a rollback when it lists a role at a lower version than the trusted snapshot does, otherwise its
      version is not the one the timestamp names: mix-and-match;
    * targets and delegated roles: the version is not the one the snapshot names: mix-and-match.
    """
    if refused is None:
        return MetadataReason.INVALID
    url, data = refused
    role = _role(url)
    try:
        new: Metadata[Any] = Metadata.from_bytes(data)
    except (ValueError, tuf_exc.RepositoryError):
        return MetadataReason.INVALID
    trusted = _trusted(metadata_dir, role)
    if isinstance(new.signed, Timestamp):
        return MetadataReason.ROLLBACK
    if isinstance(new.signed, Root):
        older = trusted is not None and new.signed.version <= trusted.signed.version
        return MetadataReason.ROLLBACK if older else MetadataReason.MIX_AND_MATCH
    if isinstance(new.signed, Snapshot) and trusted is not None and isinstance(trusted.signed, Snapshot):
        held = trusted.signed.meta
        if any(name in held and meta.version < held[name].version for name, meta in new.signed.meta.items()):
            return MetadataReason.ROLLBACK
    return MetadataReason.MIX_AND_MATCH


def metadata_reason(e: Exception, refused: tuple[str, bytes] | None, metadata_dir: Path) -> MetadataReason:
    """Classify a python-tuf refresh failure by exception type (and, for version errors, by which file failed)."""
    if isinstance(e, tuf_exc.ExpiredMetadataError):
        return MetadataReason.EXPIRED
    if isinstance(e, tuf_exc.BadVersionNumberError):
        return _version_reason(refused, metadata_dir)
    if isinstance(e, tuf_exc.UnsignedMetadataError):
        return MetadataReason.BAD_SIGNATURE
    if isinstance(e, tuf_exc.LengthOrHashMismatchError):
        return MetadataReason.HASH_MISMATCH
    return MetadataReason.INVALID
