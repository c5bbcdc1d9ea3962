"""Console pages over a seeded fleet: counts, search and pagination, escaping, forms with per-field errors, live
fragments (one query per refresh), tokens, audit trail, 404 pages."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, select

from medfw.audit.query import list_entries
from medfw.server.models import Rollout
from medfw.server.views_fleet import DocumentKind

from .conftest import Site


def _seed(site: Site, n: int = 0) -> None:
    service = site.service
    service.add_devices([(f"pump-{i:03d}", "pump", "esp32c3") for i in range(n)], group="icu", actor="test")
    service.add_devices([("vent-1", "vent", "esp32c3"), ("vent-2", "vent", "esp32c3")], group="ward", actor="test")
    for i in range(n):
        service.poll(f"pump-{i:03d}", version="1.0.0" if i % 4 else "0.9.0", secure_version=1, slot="ota_0")
    service.poll("vent-1", version="3.0.0", secure_version=1, slot="ota_0")
    service.flush_seen()


def _rollouts_count(site: Site) -> int:
    with site.service.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Rollout)) or 0)


def _cells(html: str, table_id: str) -> list[list[str]]:
    body = html.split(f'id="{table_id}"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows
    ]


def test_fleet_counts(site: Site) -> None:
    _seed(site, 12)
    site.sign_in("read-only")
    page = site.client.get("/").text
    assert re.search(r'id="total-devices">14<', page)
    assert [r for r in _cells(page, "fleet-table") if r][1:] == [
        ["pump", "0.9.0", "3", "0"],
        ["pump", "1.0.0", "9", "0"],
        ["vent", "not reported", "1", "1"],
        ["vent", "3.0.0", "1", "0"],
    ]
    assert '<svg class="chart" role="img"' in page and "<title" in page


def test_devices_search_filter_and_pagination(site: Site) -> None:
    _seed(site, 120)
    site.sign_in("read-only")
    page = site.client.get("/devices").text
    assert "122 device(s)" in page and "Page 1 of 3" in page
    page = site.client.get("/devices", params={"group": "icu", "version": "0.9.0", "page": "2"}).text
    assert "30 device(s)" in page and "pump-000" in page  # a page past the end shows the last page
    page = site.client.get("/devices", params={"q": "pump-11"}).text
    assert "10 device(s)" in page and "pump-110" in page
    page = site.client.get("/devices", params={"state": "never", "model": "vent"}).text
    assert "2 device(s)" in page
    page = site.client.get("/devices", params={"seen": "1"}).text
    assert "1 device(s)" in page and "vent-2" in page  # vent-2 never polled
    r = site.client.get("/devices", params={"seen": "soon", "page": "x"})
    assert r.status_code == 422 and "a whole number" in r.text and 'aria-invalid="true"' in r.text
    page = site.client.get("/devices", params={"q": "%_"}).text
    assert "0 device(s)" in page and "No device matches" in page


def test_device_reported_strings_are_escaped(site: Site) -> None:
    site.service.add_device("evil", model="pump", actor="test")
    site.service.poll("evil", version="<script>alert(1)</script>", secure_version=0, slot="[/x]")
    site.service.report(
        "evil",
        status="rejected",
        reason="untrusted_key",
        detail="<img src=x onerror=alert(2)>",
        rollout_id=None,
        version=None,
        secure_version=None,
        slot=None,
    )
    site.sign_in("read-only")
    for path in ("/devices", "/devices/evil"):
        page = site.client.get(path).text
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "[/x]" in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in site.client.get("/devices/evil").text


def test_device_page_timeline(site: Site) -> None:
    _seed(site, 2)
    ro = site.service.create_rollout(release=site.release_id, phases=["100%"], actor="token:operator")
    for status in ("downloading", "installed", "booted", "confirmed"):
        site.service.report(
            "pump-000",
            status=status,
            reason=None,
            detail=None,
            rollout_id=ro.id,
            version="1.1.0",
            secure_version=2,
            slot="ota_1",
        )
    site.sign_in("read-only")
    page = site.client.get("/devices/pump-001").text
    assert f'href="/rollouts/{ro.id}"' in page and "pending" in page
    page = site.client.get("/devices/pump-000").text
    assert _cells(page, "reports-table")[1][1] == "confirmed"
    assert "1.1.0</span> (secure_version 2)" in page
    assert "ota.report" in page  # the server's audit entries about this device


def _create(site: Site, **fields: Any) -> Any:
    data = {"release": str(site.release_id), "phases": "1 100%", "success_threshold": "90", "error_threshold": "10"}
    data.update({k: str(v) for k, v in fields.items()})
    data["csrf"] = site.csrf("/rollouts/new")
    return site.client.post("/rollouts/new", data=data, follow_redirects=False)


def test_create_rollout_form_validation(site: Site) -> None:
    _seed(site, 4)
    site.sign_in("operator")
    for fields, field, message in [
        ({"phases": "10%% 100%"}, "phases", "neither a count nor a percentage"),
        ({"phases": "0%"}, "phases", "out of range"),
        ({"success_threshold": "abc"}, "success_threshold", "a whole number"),
        ({"error_threshold": "101"}, "error_threshold", "less than or equal to 100"),
        ({"release": ""}, "release", "choose a release"),
        ({"release": "999"}, "release", "no release 999"),
        ({"group": "ward"}, "group", "no registered device of this model"),
    ]:
        r = _create(site, **fields)
        assert r.status_code == 422, fields
        assert re.search(rf'<p class="field-error" id="{field}-error">[^<]*{re.escape(message)}', r.text), (
            fields,
            r.text,
        )
        assert _rollouts_count(site) == 0
    r = _create(site, name="canary <b>", group="icu")
    assert r.status_code == 303 and r.headers["location"] == "/rollouts/1"
    page = site.client.get("/rollouts/1").text
    assert "canary &lt;b&gt;" in page and "action-pause" in page
    created = [e for e in list_entries(site.audit_log) if e.type == "rollout.change"]
    assert created[-1].body["actor"] == "token:operator" and created[-1].body["data"]["action"] == "create"


def test_rollout_detail_reasons_pause_and_resume(site: Site) -> None:
    _seed(site, 4)
    ro = site.service.create_rollout(
        release=site.release_id, phases=["100%"], error_threshold=50, success_threshold=100, actor="test"
    )
    for dev in ("pump-000", "pump-001"):
        site.service.report(
            dev,
            status="rejected",
            reason="untrusted_key",
            detail=None,
            rollout_id=ro.id,
            version=None,
            secure_version=None,
            slot=None,
        )
    site.sign_in("operator")
    page = site.client.get(f"/rollouts/{ro.id}").text
    assert "<code>untrusted_key</code> ×2" in page and "error_threshold: 2/4 devices failed" in page
    assert page.count('<svg class="progress" role="img"') == 1 and "&lt;svg" not in page
    assert "action-resume" in page and "action-pause" not in page
    r = site.client.post(f"/rollouts/{ro.id}/resume", data={"csrf": site.csrf("/")}, follow_redirects=False)
    assert r.status_code == 303
    page = site.client.get(f"/rollouts/{ro.id}").text
    assert "resumed by token:operator" in page or "error_threshold" in page
    r = site.client.post(f"/rollouts/{ro.id}/explode", data={"csrf": site.csrf("/")}, follow_redirects=False)
    assert r.status_code == 404
    actions = [
        e.body["data"]["action"] for e in list_entries(site.audit_log) if e.body.get("actor") == "token:operator"
    ]
    assert "resume" in actions


BACKGROUND_TABLES = ("auth_refusals", "fleet_state")


def test_live_fragments_cost_one_query(site: Site) -> None:
    _seed(site, 6)
    ro = site.service.create_rollout(release=site.release_id, phases=["1", "100%"], actor="test")
    site.sign_in("read-only")
    site.client.get("/")  # the session is verified and cached
    engine = site.service.sessions.kw["bind"]
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # the server's own background threads (refusal counters, fleet generation) are not the page's statements
        if not any(table in statement for table in BACKGROUND_TABLES):
            statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        r = site.client.get(f"/live/rollouts/{ro.id}", params={"phases": 2})
        assert r.status_code == 200 and r.text.startswith('<div id="rollout-live"')
        assert len(statements) == 1, statements
        statements.clear()
        r = site.client.get("/live/fleet")
        assert r.status_code == 200 and 'id="total-devices">8<' in r.text
        assert len(statements) == 1, statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def test_tokens_page_creates_once_and_revokes(site: Site) -> None:
    site.sign_in("admin")
    r = site.client.post("/tokens", data={"csrf": site.csrf("/tokens"), "name": "ci bot", "role": "operator"})
    assert r.status_code == 422 and 'id="name-error"' in r.text
    r = site.client.post("/tokens", data={"csrf": site.csrf("/tokens"), "name": "ci-bot", "role": "operator"})
    assert r.status_code == 201
    token = re.search(r'id="new-token" readonly value="(mft_[^"]+)"', r.text)
    assert token is not None and site.service.authenticate_token(token.group(1)) is not None
    assert token.group(1) not in site.client.get("/tokens").text  # shown once
    r = site.client.post("/tokens", data={"csrf": site.csrf("/tokens"), "name": "ci-bot", "role": "operator"})
    assert r.status_code == 422 and "exists" in r.text
    site.client.post("/tokens/ci-bot/revoke", data={"csrf": site.csrf("/tokens")})
    assert site.service.authenticate_token(token.group(1)) is None
    assert site.client.post("/tokens/nobody/revoke", data={"csrf": site.csrf("/tokens")}).status_code == 404


def test_audit_page_filters_and_chain(site: Site) -> None:
    _seed(site, 2)
    site.sign_in("admin")
    page = site.client.get("/audit").text
    assert "The hash chain links up" in page
    page = site.client.get("/audit", params={"type": "device.register"}).text
    assert "2 entries" in page
    page = site.client.get("/audit", params={"actor": "token:admin"}).text
    assert "console.sign_in" in page
    r = site.client.get("/audit", params={"since": "yesterday"})
    assert r.status_code == 422 and 'id="since-error"' in r.text
    page = site.client.get("/audit", params={"since": "2000-01-01T00:00", "until": "2000-01-02T00:00"}).text
    assert "0 entries" in page and "No entry matches" in page


def test_releases_vulnerabilities_docs_and_404(site: Site) -> None:
    site.sign_in("read-only")
    page = site.client.get("/releases").text
    assert "pump/pump-1.1.0.bin" in page
    page = site.client.get(f"/releases/{site.release_id}").text
    assert "secure_version</dt><dd>2" in page and "--vuln-db URL" in page
    assert "--vuln-db URL" in site.client.get("/vulnerabilities").text
    for path in ("/releases/999", "/rollouts/999", "/devices/nope", "/nowhere"):
        r = site.client.get(path, headers={"accept": "text/html"})
        assert r.status_code == 404 and "<h1>Not found</h1>" in r.text, path
    assert site.client.get(
        "/api/v1/rollouts/999", headers={"authorization": "Bearer " + site.tokens["admin"]}
    ).json() == {"detail": "no rollout 999"}
    docs = site.client.get("/docs").text
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert site.client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js").status_code == 200


def test_release_documents_are_linked_and_downloadable(site: Site) -> None:
    docs = Path(__file__).resolve().parents[2] / "vectors" / "release-documents"
    csaf = (docs / "advisory-1.1.0.csaf.json").read_bytes()
    site.service.attach_document(site.release_id, DocumentKind.CSAF, csaf, actor="token:operator")
    vex = (docs / "vex.openvex.json").read_bytes()
    site.service.attach_document(site.release_id, DocumentKind.VEX_OPENVEX, vex, actor="token:operator")
    site.sign_in("read-only")
    page = site.client.get("/releases").text
    assert f'href="/releases/{site.release_id}/documents/csaf">CSAF advisory</a>' in page
    page = site.client.get(f"/releases/{site.release_id}").text
    assert "VEX (OpenVEX)" in page and "category: csaf_vex" in page and "by token:operator" in page
    assert hashlib.sha256(csaf).hexdigest()[:16] in page
    r = site.client.get(f"/releases/{site.release_id}/documents/csaf")
    assert r.status_code == 200 and r.content == csaf and r.headers["content-disposition"].startswith("attachment")
    assert site.client.get(f"/releases/{site.release_id}/documents/evidence").status_code == 404
    assert site.client.get(f"/releases/{site.release_id}/documents/nothing").status_code == 422
    site.client.cookies.clear()
    r = site.client.get(f"/releases/{site.release_id}/documents/csaf", follow_redirects=False)
    assert r.status_code in (302, 303) and "/login" in r.headers["location"]


def test_empty_states(site: Site) -> None:
    site.sign_in("admin")
    assert "No devices yet" in site.client.get("/").text
    assert "No device matches" in site.client.get("/devices").text
    assert "No rollouts" in site.client.get("/rollouts").text


def test_rollouts_list_is_paginated_newest_first(site: Site) -> None:
    site.service.add_devices([(f"p{i:02d}", "pump", "esp32c3") for i in range(21)], actor="test")
    for i in range(21):
        site.service.create_rollout(release=site.release_id, devices=[f"p{i:02d}"], phases=["100%"], actor="test")
    site.sign_in("read-only")
    page = site.client.get("/rollouts").text
    ids = re.findall(r'<td><a href="/rollouts/(\d+)">', page)
    assert ids == [str(i) for i in range(21, 1, -1)] and "Page 1 of 2" in page
    page = site.client.get("/rollouts", params={"page": 2}).text
    assert re.findall(r'<td><a href="/rollouts/(\d+)">', page) == ["1"]
