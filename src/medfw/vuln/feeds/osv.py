"""OSV records (JSON or YAML, as in google/oss-fuzz-vulns), schema 1.x.

Kept per ``affected[]`` entry: the package identity as a purl base (``package.purl`` without version, or
``pkg:generic/<name>`` for the ``OSS-Fuzz`` ecosystem whose names are project names), the ``SEMVER`` and
``ECOSYSTEM`` ranges, and the ``versions`` list. ``GIT`` ranges need the component's commit and a repository to
walk; they are stored but not evaluated. A record with one CVE alias is reported under that CVE.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from packageurl import PackageURL

from medfw.errors import FeedError
from medfw.vuln.feeds import CVE_ID, FeedRecord, ParseResult, RecordError, Skip, load_json, record_error

__all__ = ["parse_osv", "parse_osv_zip", "purl_base"]

_MAX_ZIP_MEMBER = 64 * 1024 * 1024
_MAX_ZIP_TOTAL = 4 * 1024 * 1024 * 1024

_EVENT_KEYS = {"introduced", "fixed", "last_affected", "limit"}


def purl_base(purl: str) -> str:
    """Return ``pkg:type/namespace/name`` (lower case, no version, qualifiers or subpath).

    Raises:
        ValueError: not a purl.
    """
    p = PackageURL.from_string(purl)
    ns = f"{p.namespace}/" if p.namespace else ""
    return f"pkg:{p.type}/{ns}{p.name}".lower()


def _affected(entry: Any, i: int) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise record_error(f"affected[{i}] is not an object")
    pkg = entry.get("package") or {}
    if not isinstance(pkg, Mapping):
        raise record_error(f"affected[{i}].package is not an object")
    base = ""
    if pkg.get("purl"):
        try:
            base = purl_base(str(pkg["purl"]))
        except ValueError as e:
            raise record_error(f"affected[{i}].package.purl: {e}") from e
    elif pkg.get("ecosystem") == "OSS-Fuzz" and pkg.get("name"):
        base = f"pkg:generic/{str(pkg['name']).lower()}"
    ranges: list[dict[str, Any]] = []
    for j, r in enumerate(_list(entry, "ranges")):
        if not isinstance(r, Mapping) or r.get("type") not in {"SEMVER", "ECOSYSTEM", "GIT"}:
            raise record_error(f"affected[{i}].ranges[{j}].type must be SEMVER, ECOSYSTEM or GIT")
        events = r.get("events")
        if not isinstance(events, list) or not events:
            raise record_error(f"affected[{i}].ranges[{j}].events is missing")
        norm: list[dict[str, str]] = []
        for k, ev in enumerate(events):
            if not isinstance(ev, Mapping) or len(ev) != 1 or next(iter(ev)) not in _EVENT_KEYS:
                raise record_error(f"affected[{i}].ranges[{j}].events[{k}] needs exactly one known event")
            key, value = next(iter(ev.items()))
            norm.append({str(key): str(value)})
        if not any("introduced" in e for e in norm):
            raise record_error(f"affected[{i}].ranges[{j}] has no introduced event")
        ranges.append({"type": r["type"], "events": norm})
    versions = entry.get("versions", []) or []
    if not isinstance(versions, list):
        raise record_error(f"affected[{i}].versions is not a list")
    return {
        "purl": base,
        "name": str(pkg.get("name", "")),
        "ecosystem": str(pkg.get("ecosystem", "")),
        "ranges": ranges,
        "versions": [str(v) for v in versions],
    }


def _severity(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for s in _list(doc, "severity"):
        if isinstance(s, Mapping) and str(s.get("type", "")).startswith("CVSS_V"):
            version = {"CVSS_V3": "3.1", "CVSS_V4": "4.0", "CVSS_V2": "2.0"}.get(str(s["type"]), "")
            out.append({"version": version, "vector": str(s.get("score", "")), "source": "osv", "primary": False})
    return out


def _record(doc: Any) -> FeedRecord:
    if not isinstance(doc, Mapping):
        raise record_error("OSV record is not an object")
    osv_id = doc.get("id")
    if not isinstance(osv_id, str) or not osv_id:
        raise record_error("id is missing")
    if not isinstance(doc.get("modified"), str | None) or "modified" not in doc:
        raise record_error("modified is missing")
    affected = doc.get("affected", []) or []
    if not isinstance(affected, list):
        raise record_error("affected is not a list")
    aliases = [str(a) for a in _list(doc, "aliases")]
    cves = [a for a in aliases if CVE_ID.match(a)]
    vuln_id = osv_id if CVE_ID.match(osv_id) else cves[0] if len(cves) == 1 else osv_id
    modified = str(doc["modified"])
    data = {
        "id": osv_id,
        "description": str(doc.get("summary") or doc.get("details") or "")[:2000],
        "published": str(doc.get("published", "")),
        "modified": modified,
        "rejected": bool(doc.get("withdrawn")),
        "cvss": _severity(doc),
        "cwes": [],
        "osv": [_affected(a, i) for i, a in enumerate(affected)],
        "aliases": aliases,
        "references": [str(r.get("url")) for r in _list(doc, "references") if isinstance(r, Mapping)],
    }
    return FeedRecord("osv", osv_id, vuln_id, modified, data)


def _list(doc: Mapping[str, Any], key: str) -> list[Any]:
    value = doc.get(key) or []
    if not isinstance(value, list):
        raise record_error(f"{key} is not a list")
    return value


def parse_osv(raw: bytes, path: str) -> ParseResult:
    """Parse one OSV record file (``.json``, ``.yaml`` or ``.yml``).

    Raises:
        FeedError: the file is not JSON/YAML or is truncated.
    """
    if path.endswith((".yaml", ".yml")):
        import yaml  # noqa: PLC0415 - only for YAML records

        try:
            doc = yaml.safe_load(raw.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            mark = getattr(e, "problem_mark", None)
            offset = getattr(mark, "index", None)
            raise FeedError(f"OSV file is not valid YAML (truncated?): {e}", path=path, offset=offset) from e
    else:
        doc = load_json(raw, path, "OSV record")
    result = ParseResult()
    try:
        result.records.append(_record(doc))
    except RecordError as e:
        rid = str(doc.get("id", path)) if isinstance(doc, Mapping) else path
        result.skips.append(Skip(rid, str(e), path))
    return result


_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error, OSError, NotImplementedError, ValueError)


def _zip_members(raw: bytes, path: str) -> Iterator[tuple[str, bytes]]:
    """The ``.json`` members of an archive, one at a time, bounded in size.

    Raises:
        FeedError: the archive is truncated, corrupt, encrypted or too large.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [m for m in zf.infolist() if not m.is_dir() and m.filename.endswith(".json")]
            if sum(m.file_size for m in members) > _MAX_ZIP_TOTAL:
                raise FeedError("OSV archive expands beyond 4 GiB", path=path)
            for m in members:
                if m.file_size > _MAX_ZIP_MEMBER:
                    raise FeedError(f"OSV archive member {m.filename} is larger than 64 MiB", path=path)
                yield m.filename, zf.read(m)
    except _ZIP_ERRORS as e:
        raise FeedError(f"OSV archive is corrupt or truncated: {e}", path=path) from e
    except RuntimeError as e:  # an encrypted member
        raise FeedError(f"OSV archive cannot be read: {e}", path=path) from e


def parse_osv_zip(raw: bytes, path: str) -> ParseResult:
    """Parse an OSV ``all.zip`` (one JSON record per member, as osv.dev's per-ecosystem bucket serves it).

    Raises:
        FeedError: the archive is truncated or corrupt, a member is too large, or a member is not JSON.
    """
    result = ParseResult()
    for name, data in _zip_members(raw, path):
        part = parse_osv(data, f"{path}!{name}")
        result.records.extend(part.records)
        result.skips.extend(part.skips)
    return result
