"""Release documents through the management API, on SQLite and PostgreSQL: evidence bundle, VEX, CSAF.

Every upload is hostile until checked: the format of each kind, the evidence archive's member names, types and
its manifest's digests, and the size limits; a refused upload stores nothing and writes no audit event.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.evidence.manifest import MANIFEST_FORMAT
from medfw.server.documents import check_document, pack_evidence
from medfw.server.errors import Invalid
from medfw.server.views_fleet import DocumentKind

from .conftest import Api

DOCS = Path(__file__).resolve().parents[1] / "vectors" / "release-documents"


def _release_id(api: Api) -> int:
    return api.service.releases()[0].id


def _bundle(tmp_path: Path, *, version: str = "1.1.0") -> Path:
    """A bundle directory whose manifest lists every file with its size and SHA-256 (integrity only)."""
    root = tmp_path / "bundle"
    (root / "sbom").mkdir(parents=True)
    files = {"sbom/sbom.cdx.json": b'{"bomFormat": "CycloneDX"}', "report.html": b"<html>PASS</html>"}
    for name, body in files.items():
        (root / name).write_bytes(body)
    entries = [{"path": n, "size": len(b), "sha256": hashlib.sha256(b).hexdigest()} for n, b in files.items()]
    manifest = {
        "format": MANIFEST_FORMAT,
        "release": {"name": "pump-fw", "version": version},
        "created": "2026-12-07T00:00:00Z",
        "files": entries,
        "signer": {"key_id": "file", "algorithm": "ed25519", "public_key_sha256": "ab" * 32},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "manifest.sig").write_bytes(b"\x01" * 64)
    return root


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for info, body in members:
            tar.addfile(info, io.BytesIO(body) if info.isreg() else None)
    return buf.getvalue()


def _put(api: Api, kind: str, data: bytes, role: str = "operator", release: int | None = None) -> object:
    rid = _release_id(api) if release is None else release
    return api.client.put(f"/api/v1/releases/{rid}/documents/{kind}", content=data, headers=api.h(role))


def test_attach_list_download_and_audit(api: Api, tmp_path: Path) -> None:
    rid = _release_id(api)
    uploads = {
        "evidence": pack_evidence(_bundle(tmp_path)),
        "vex-cyclonedx": (DOCS / "vex.cdx.json").read_bytes(),
        "vex-openvex": (DOCS / "vex.openvex.json").read_bytes(),
        "csaf": (DOCS / "advisory-1.1.0.csaf.json").read_bytes(),
        "csaf-signature": (DOCS / "advisory-1.1.0.csaf.json.sig").read_bytes(),
    }
    for kind, data in uploads.items():
        r = _put(api, kind, data)
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["kind"], body["size"], body["sha256"]) == (kind, len(data), hashlib.sha256(data).hexdigest())
        assert body["attached_by"] == "token:operator"
    listed = api.client.get(f"/api/v1/releases/{rid}/documents", headers=api.h("read-only")).json()
    assert [d["kind"] for d in listed] == list(uploads)
    evidence = next(d for d in listed if d["kind"] == "evidence")
    assert evidence["summary"]["files"] == 2 and evidence["summary"]["version"] == "1.1.0"
    csaf = next(d for d in listed if d["kind"] == "csaf")
    assert csaf["summary"]["category"] == "csaf_vex" and csaf["summary"]["vulnerabilities"] > 0
    for kind, data in uploads.items():
        r = api.client.get(f"/api/v1/releases/{rid}/documents/{kind}", headers=api.h("read-only"))
        assert r.status_code == 200 and r.content == data
        assert r.headers["repr-digest"] == f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
        assert r.headers["content-disposition"].startswith('attachment; filename="1.1.0-')
        assert r.headers["x-content-type-options"] == "nosniff"
    events = [e for e in api.sink.events if e.type == "release.document"]
    assert [e.data["kind"] for e in events] == list(uploads)
    assert all(e.actor == "token:operator" and e.objects == {"release": "pump/pump-1.1.0.bin"} for e in events)


def test_a_new_advisory_drops_the_old_signature(api: Api) -> None:
    csaf = (DOCS / "advisory-1.1.0.csaf.json").read_bytes()
    assert _put(api, "csaf", csaf).status_code == 201
    assert _put(api, "csaf-signature", (DOCS / "advisory-1.1.0.csaf.json.sig").read_bytes()).status_code == 201
    r = _put(
        api,
        "csaf",
        csaf.replace(
            b'"infusion-pump-fw 1.1.0: vulnerabilities', b'"Revised: infusion-pump-fw 1.1.0: vulnerabilities', 1
        ),
    )
    assert r.status_code == 201 and r.json()["summary"]["title"].startswith("Revised: ")
    kinds = [d.kind for d in api.service.release_documents(_release_id(api))]
    assert kinds == [DocumentKind.CSAF]


@pytest.mark.parametrize(
    ("kind", "data", "message"),
    [
        ("vex-cyclonedx", (DOCS / "vex.openvex.json").read_bytes(), "openvex VEX, not cyclonedx"),
        ("vex-openvex", b"{not json", "not UTF-8 JSON"),
        ("csaf", (DOCS / "vex.cdx.json").read_bytes(), "CSAF 2.0 schema"),
        ("csaf-signature", b"\x00" * 64, "attach the CSAF advisory before its signature"),
        ("csaf-signature", b"\x00" * 4097, "larger than 4096 bytes"),
        ("evidence", b"\x1f\x8b not really gzip", "not a readable .tar.gz"),
        ("evidence", b"", "is empty"),
    ],
)
def test_bad_documents_are_refused_and_nothing_is_stored(api: Api, kind: str, data: bytes, message: str) -> None:
    r = _put(api, kind, data)
    assert r.status_code == 422 and message in r.json()["detail"], r.text
    assert api.service.release_documents(_release_id(api)) == []
    assert not [e for e in api.sink.events if e.type == "release.document"]


def _evil_members(case: str) -> list[tuple[tarfile.TarInfo, bytes]]:
    info = tarfile.TarInfo({"traversal": "../manifest.json", "absolute": "/etc/manifest.json"}.get(case, "x"))
    if case == "symlink":
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(info, b"")]
    if case == "device":
        info.type = tarfile.CHRTYPE
        return [(info, b"")]
    info.size = 2
    return [(info, b"{}")]


@pytest.mark.parametrize("case", ["traversal", "absolute", "symlink", "device"])
def test_evidence_archive_members_are_checked(api: Api, case: str) -> None:
    r = _put(api, "evidence", _tar(_evil_members(case)))
    assert r.status_code == 422 and "evidence archive member" in r.json()["detail"]


def test_evidence_manifest_must_match_the_archive(api: Api, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    (bundle / "report.html").write_bytes(b"<html>FAIL</html>")  # changed after the manifest was made
    r = _put(api, "evidence", pack_evidence(bundle))
    assert r.status_code == 422 and "'report.html' does not match its size or SHA-256" in r.json()["detail"]
    other = _bundle(tmp_path / "other", version="9.9.9")
    r = _put(api, "evidence", pack_evidence(other))
    assert r.status_code == 422 and "for version 9.9.9, not 1.1.0" in r.json()["detail"]


def test_roles_ids_kinds_and_size_limits(api: Api) -> None:
    vex = (DOCS / "vex.cdx.json").read_bytes()
    assert _put(api, "vex-cyclonedx", vex, role="read-only").status_code == 403
    r = api.client.put(f"/api/v1/releases/{_release_id(api)}/documents/csaf", content=vex)
    assert r.status_code == 401
    assert _put(api, "vex-cyclonedx", vex, release=999).status_code == 404
    assert _put(api, "vex-cyclonedx", vex, release=2**40).status_code == 422
    assert _put(api, "sbom", vex).status_code == 422
    r = _put(api, "vex-openvex", b" " * ((16 << 20) + 1))
    assert r.status_code == 422 and "larger than" in r.json()["detail"]
    assert api.client.get("/api/v1/releases/1/documents/csaf", headers=api.h("read-only")).status_code == 404


def test_fleet_views_in_the_api(api: Api) -> None:
    for i in range(3):
        api.device(f"dev-{i}", group="ward-a" if i else "ward-b")
    summary = api.client.get("/api/v1/fleet/summary", headers=api.h("read-only")).json()
    assert summary["total"] == 3 and dict(summary["groups"]) == {"ward-a": 2, "ward-b": 1}
    page = api.client.get("/api/v1/fleet/devices?q=dev-&group=ward-a&size=1", headers=api.h("read-only")).json()
    assert (page["total"], page["pages"], [d["id"] for d in page["rows"]]) == (2, 2, ["dev-1"])
    assert api.client.get("/api/v1/fleet/devices?state=bogus", headers=api.h("read-only")).status_code == 422
    assert api.client.get("/api/v1/rollouts/7/progress", headers=api.h("read-only")).status_code == 404


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_any_bytes_are_a_document_or_invalid(data: bytes) -> None:
    for kind in DocumentKind:
        with contextlib.suppress(Invalid):  # anything else (a crash) fails the test
            check_document(kind, data, release_version="1.0.0")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40), st.binary(max_size=64)), max_size=5))
def test_any_archive_is_checked_without_other_errors(members: list[tuple[str, bytes]]) -> None:
    infos = []
    for name, body in members:
        info = tarfile.TarInfo(name)
        info.size = len(body)
        infos.append((info, body))
    with contextlib.suppress(Invalid):  # anything else (a crash) fails the test
        check_document(DocumentKind.EVIDENCE, _tar(infos), release_version="1.0.0")
