"""Would a TUF client accept this repository? Ask python-tuf's own client before anything is written.

:func:`check_client_accepts` runs :class:`tuf.ngclient.Updater` — the reference client, the same code the
device agent uses — against the repository as it *would* be after an operation: the current files overlaid with
the staged ones, served from memory. The client starts from the trusted root given (the repository's current
root), so it walks the root chain, and checks thresholds, versions, hashes and expiry exactly as a device would.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from securesystemslib.signer import Key
from tuf.api import exceptions as tuf_exc
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from medfw.errors import VerificationError

__all__ = ["check_client_accepts", "client_support_warnings"]

_BASE = "https://repository.medfw.invalid/"


class _OverlayFetcher(FetcherInterface):
    """Serves ``staged`` files, else reads the repository's current ones (an HTTP 404 when neither exists)."""

    def __init__(self, read: Callable[[str], bytes | None]) -> None:
        self._read = read

    def _fetch(self, url: str) -> Iterator[bytes]:
        rel = url.removeprefix(_BASE)
        data = self._read(rel)
        if data is None:
            raise tuf_exc.DownloadHTTPError(f"{rel} not found", 404)
        return iter([data])


def check_client_accepts(
    repo_dir: Path, staged: Mapping[str, bytes], trusted_root: bytes, *, targets: Sequence[str] = ()
) -> None:
    """Refresh a fresh python-tuf client over ``repo_dir`` with ``staged`` files overlaid, from ``trusted_root``.

    ``targets`` are target paths whose info (and staged or stored bytes) the client must also accept.

    Raises:
        VerificationError: the client refuses the resulting repository (names the TUF error).
    """

    def read(rel: str) -> bytes | None:
        if rel in staged:
            return staged[rel]
        path = repo_dir / rel
        return path.read_bytes() if path.is_file() else None

    with tempfile.TemporaryDirectory(prefix="medfw-tuf-check-") as tmp:
        meta = Path(tmp) / "metadata"
        meta.mkdir()
        updater = Updater(
            metadata_dir=str(meta),
            metadata_base_url=_BASE + "metadata/",
            target_base_url=_BASE + "targets/",
            target_dir=tmp,
            fetcher=_OverlayFetcher(read),
            config=UpdaterConfig(prefix_targets_with_hash=True),
            bootstrap=trusted_root,
        )
        try:
            updater.refresh()
            for path in targets:
                info = updater.get_targetinfo(path)
                if info is None:
                    raise VerificationError(f"a client would not find target {path}", field=path)
                updater.download_target(info, str(Path(tmp) / "target.bin"))
        except tuf_exc.RepositoryError as e:
            raise VerificationError(
                f"a TUF client would refuse the repository after this change ({type(e).__name__}: {e}); "
                "nothing was written",
                path=str(repo_dir),
                field="metadata",
            ) from None
        except tuf_exc.DownloadError as e:
            raise VerificationError(
                f"a TUF client could not fetch the repository after this change ({e}); nothing was written",
                path=str(repo_dir),
                field="metadata",
            ) from None


_SCHEME_WARNINGS = {
    "ecdsa-sha2-nistp384": (
        "ecdsa-sha2-nistp384: tuf-js (the JavaScript TUF client, 5.x) verifies these signatures with SHA-256 "
        "instead of SHA-384 and refuses the metadata; python-tuf and medfw's agent accept it. Prefer "
        "ecdsa-sha2-nistp256 or ed25519 unless every client is known to handle P-384"
    ),
    "rsassa-pss-sha256": (
        "rsassa-pss-sha256 (RSA-3072): every signature is 384 bytes and verification is slow on microcontrollers; "
        "ed25519 and ecdsa-sha2-nistp256 are the schemes TUF clients most widely implement, so check that each "
        "device's TUF client verifies RSA-PSS"
    ),
}


def client_support_warnings(role: str, keys: Sequence[Key]) -> list[str]:
    """Warnings about TUF clients that cannot verify ``role``'s keys (P-384, RSA); empty for P-256 and Ed25519."""
    schemes = sorted({k.scheme for k in keys if k.scheme in _SCHEME_WARNINGS})
    return [f"{role} role: {_SCHEME_WARNINGS[s]}" for s in schemes]
