"""Checks of the documents a release can carry, before they are stored: bytes in, a summary out.

A release's documents are what reviewers and customers ask for next to the image: the signed evidence bundle
(``medfw evidence build``, packed as a ``.tar.gz``), VEX in CycloneDX and OpenVEX, and the CSAF 2.0 advisory with
its detached signature. Everything here treats the upload as hostile: sizes, member names and types, and every
format are checked; an archive is read in memory and never extracted. The evidence bundle's integrity (every
file listed in its manifest, with its size and SHA-256) is checked here; its signature is checked by the
uploader against the pinned key (``medfw ota release attach --evidence-key``), since the server holds no key.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import tarfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from medfw.errors import MedfwError
from medfw.server.errors import Invalid
from medfw.server.views_fleet import DocumentKind

__all__ = ["MAX_SIZE", "check_document", "filename_of", "media_type_of", "pack_evidence"]

#: the largest document accepted, per kind
MAX_SIZE: dict[DocumentKind, int] = {
    DocumentKind.EVIDENCE: 64 << 20,
    DocumentKind.VEX_CYCLONEDX: 16 << 20,
    DocumentKind.VEX_OPENVEX: 16 << 20,
    DocumentKind.CSAF: 16 << 20,
    DocumentKind.CSAF_SIGNATURE: 4096,
}
_MAX_UNPACKED = 512 << 20
_MAX_MEMBERS = 20_000
_MEDIA = {
    DocumentKind.EVIDENCE: "application/gzip",
    DocumentKind.VEX_CYCLONEDX: "application/vnd.cyclonedx+json",
    DocumentKind.VEX_OPENVEX: "application/json",
    DocumentKind.CSAF: "application/json",
    DocumentKind.CSAF_SIGNATURE: "application/octet-stream",
}
_NAMES = {
    DocumentKind.EVIDENCE: "evidence.tar.gz",
    DocumentKind.VEX_CYCLONEDX: "vex.cdx.json",
    DocumentKind.VEX_OPENVEX: "vex.openvex.json",
    DocumentKind.CSAF: "advisory.csaf.json",
    DocumentKind.CSAF_SIGNATURE: "advisory.csaf.json.sig",
}
_VEX_FORMAT = {DocumentKind.VEX_CYCLONEDX: "cyclonedx", DocumentKind.VEX_OPENVEX: "openvex"}


def media_type_of(kind: DocumentKind) -> str:
    """The ``Content-Type`` a document of ``kind`` is served with."""
    return _MEDIA[kind]


def filename_of(kind: DocumentKind, version: str) -> str:
    """The download name of a release's document (``<version>-<name>``; the version is already a safe label)."""
    safe = "".join(ch if ch.isalnum() or ch in "._-+" else "_" for ch in version)[:64]
    return f"{safe}-{_NAMES[kind]}"


def check_document(kind: DocumentKind, data: bytes, *, release_version: str) -> dict[str, Any]:
    """Check an uploaded document of ``kind`` and return what the console shows of it.

    Raises:
        Invalid: too large, empty, or not a valid document of that kind (the message names the member or field).
    """
    if not data:
        raise Invalid(f"the {kind} document is empty", field="content")
    if len(data) > MAX_SIZE[kind]:
        raise Invalid(f"the {kind} document is {len(data)} bytes; at most {MAX_SIZE[kind]}", field="content")
    if kind == DocumentKind.EVIDENCE:
        return _check_evidence(data, release_version)
    if kind == DocumentKind.CSAF_SIGNATURE:
        return {"bytes": len(data)}
    doc = _json(kind, data)
    if kind == DocumentKind.CSAF:
        return _check_csaf(doc)
    return _check_vex(kind, data)


def _json(kind: DocumentKind, data: bytes) -> Any:
    try:
        return json.loads(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Invalid(f"the {kind} document is not UTF-8 JSON: {e}", field="content") from None


def _check_vex(kind: DocumentKind, data: bytes) -> dict[str, Any]:
    from medfw.vuln.vex import read_vex_document  # noqa: PLC0415 - the vulnerability package loads on use

    try:
        doc = read_vex_document(data, path=str(kind))
    except MedfwError as e:
        raise Invalid(f"the {kind} document is not valid VEX: {e.message}", field="content") from None
    if doc.format != _VEX_FORMAT[kind]:
        raise Invalid(f"the document is {doc.format} VEX, not {_VEX_FORMAT[kind]}", field="kind")
    return {
        "document": doc.doc_id,
        "publisher": doc.publisher,
        "date": doc.date.isoformat(),
        "statements": len(doc.statements),
    }


def _check_csaf(doc: Any) -> dict[str, Any]:
    from medfw.vuln.csaf_validate import check_csaf  # noqa: PLC0415 - loads the bundled schemas on use

    if not isinstance(doc, Mapping):
        raise Invalid("the CSAF document is not a JSON object", field="content")
    try:
        check_csaf(doc, "csaf")
    except MedfwError as e:
        raise Invalid(e.message, field="content") from None
    meta = doc["document"]
    return {
        "tracking_id": meta["tracking"]["id"],
        "title": meta.get("title", ""),
        "category": meta["category"],
        "revision": meta["tracking"].get("version", ""),
        "vulnerabilities": len(doc.get("vulnerabilities", [])),
    }


def _members(data: bytes) -> dict[str, bytes]:
    """The regular files of a gzip'd tar, read in memory with limits (names checked, nothing extracted)."""
    files: dict[str, bytes] = {}
    unpacked = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for i, m in enumerate(tar):
                if i >= _MAX_MEMBERS:
                    raise Invalid(f"the evidence archive has more than {_MAX_MEMBERS} members", field="content")
                name = _member_name(m)
                if m.isdir():
                    continue
                if not m.isreg():
                    raise Invalid(f"evidence archive member {name!r} is not a regular file", field="content")
                unpacked += m.size
                if unpacked > _MAX_UNPACKED:
                    raise Invalid(f"the evidence archive unpacks to more than {_MAX_UNPACKED} bytes", field="content")
                f = tar.extractfile(m)
                if f is None or name in files:
                    raise Invalid(f"evidence archive member {name!r} is unreadable or repeated", field="content")
                files[name] = f.read()
    except (tarfile.TarError, gzip.BadGzipFile, EOFError, OSError, ValueError) as e:
        raise Invalid(f"the evidence bundle is not a readable .tar.gz: {e}", field="content") from None
    return files


def _member_name(m: tarfile.TarInfo) -> str:
    p = PurePosixPath(m.name)
    if p.is_absolute() or ".." in p.parts or "\x00" in m.name or len(m.name) > 512:
        raise Invalid(f"evidence archive member name {m.name[:80]!r} is not a relative path", field="content")
    return str(p)


def _check_evidence(data: bytes, release_version: str) -> dict[str, Any]:
    from medfw.evidence.manifest import MANIFEST_FORMAT  # noqa: PLC0415

    files = _members(data)
    for needed in ("manifest.json", "manifest.sig"):
        if needed not in files:
            raise Invalid(f"the evidence bundle has no {needed}", field="content")
    manifest = _json(DocumentKind.EVIDENCE, files["manifest.json"])
    if not isinstance(manifest, Mapping) or manifest.get("format") != MANIFEST_FORMAT:
        raise Invalid(f"manifest.json: format is not {MANIFEST_FORMAT}", field="content")
    listed = manifest.get("files")
    if not isinstance(listed, list):
        raise Invalid("manifest.json: files: not a list", field="content")
    for i, entry in enumerate(listed):
        _check_entry(files, entry, i)
    release = _mapping(manifest.get("release"))
    version = str(release.get("version", ""))
    if version and version != release_version:
        raise Invalid(f"the evidence bundle is for version {version}, not {release_version}", field="content")
    signer = _mapping(manifest.get("signer"))
    return {
        "version": version,
        "created": str(manifest.get("created", "")),
        "files": len(listed),
        "signer": str(signer.get("public_key_sha256", "")),
        "algorithm": str(signer.get("algorithm", "")),
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _check_entry(files: Mapping[str, bytes], entry: Any, i: int) -> None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("path"), str):
        raise Invalid(f"manifest.json: files[{i}]: no path", field="content")
    body = files.get(entry["path"])
    if body is None:
        raise Invalid(f"manifest.json: files[{i}]: {entry['path']!r} is not in the archive", field="content")
    digest = hashlib.sha256(body).hexdigest()
    if len(body) != entry.get("size") or not hmac.compare_digest(digest, str(entry.get("sha256", ""))):
        problem = f"manifest.json: files[{i}]: {entry['path']!r} does not match its size or SHA-256"
        raise Invalid(problem, field="content")


def pack_evidence(bundle: Path) -> bytes:
    """A bundle directory as a reproducible ``.tar.gz`` (sorted names, no owners or times, files only)."""
    buf = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path in sorted(p for p in bundle.rglob("*") if p.is_file() and not p.is_symlink()):
            info = tarfile.TarInfo(path.relative_to(bundle).as_posix())
            body = path.read_bytes()
            info.size, info.mode, info.mtime = len(body), 0o644, 0
            tar.addfile(info, io.BytesIO(body))
    return buf.getvalue()
