"""TUF metadata and targets (public, read-only): TUF itself protects them, so no authentication."""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import FileResponse

from medfw.server.deps import Repo
from medfw.server.errors import NotFound

__all__ = ["router"]

router = APIRouter(prefix="/tuf", tags=["tuf"])

_META_RE = re.compile(r"^(?:[1-9][0-9]{0,9}\.(?:root|targets|snapshot)|timestamp|root)\.json$")


@router.get("/metadata/{name}", response_class=FileResponse)
def tuf_metadata(name: str, repo: Repo) -> FileResponse:
    """TUF metadata (``N.root.json``, ``timestamp.json``, ``N.snapshot.json``, ``N.targets.json``)."""
    if not _META_RE.match(name):
        raise NotFound("no such metadata")
    path = repo.metadata_dir / name
    if not path.is_file():
        raise NotFound("no such metadata")
    return FileResponse(path, media_type="application/json")


@router.get("/targets/{target:path}", response_class=FileResponse)
def tuf_target(target: str, repo: Repo) -> FileResponse:
    """A target file by its hash-prefixed name (Range supported)."""
    if len(target) > 512 or not target.isprintable():
        raise NotFound("no such target")
    base = repo.targets_dir.resolve()
    path = (base / target).resolve()
    if not path.is_relative_to(base) or not path.is_file():
        raise NotFound("no such target")
    return FileResponse(path, media_type="application/octet-stream")
