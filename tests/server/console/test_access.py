"""Console sign-in, sessions, CSRF, roles and security headers (HTTP level; the browser tests drive the same)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from medfw.server.console.security import CSP, safe_next
from medfw.server.console.sessions import ConsoleSession
from medfw.server.models import Rollout

from .conftest import CSRF_RE, Site

PAGES = ["/", "/devices", "/rollouts", "/rollouts/new", "/releases", "/vulnerabilities", "/audit", "/tokens"]


def _rollout(site: Site) -> int:
    site.service.add_device("pump-1", model="pump", actor="test")
    return int(site.service.create_rollout(release=site.release_id, phases=["100%"], actor="test").id)


def _state(site: Site, rollout_id: int) -> str:
    with site.service.sessions() as s:
        return str(s.scalar(select(Rollout.state).where(Rollout.id == rollout_id)))


def test_pages_need_sign_in_and_remember_where_to_go(site: Site) -> None:
    for path in [*PAGES, "/devices/x", "/live/fleet"]:
        r = site.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
    r = site.client.get("/devices?model=pump", follow_redirects=False)
    assert r.headers["location"] == "/login?next=%2Fdevices%3Fmodel%3Dpump"
    site.sign_in("read-only", next_path="/devices?model=pump")
    # the sign-in redirect goes back to the remembered page
    token = site.csrf("/login")
    r = site.client.post(
        "/login",
        data={"token": site.tokens["admin"], "csrf": token, "next": "/devices?model=pump"},
        follow_redirects=False,
    )
    assert r.headers["location"] == "/devices?model=pump"


def test_security_headers_on_every_page(site: Site) -> None:
    site.sign_in("admin")
    for path in [*PAGES, "/login", "/docs", "/devices/nope", "/static/console.css", "/api/v1/fleet"]:
        r = site.client.get(path, headers={"accept": "text/html"})
        assert r.headers["content-security-policy"] == CSP, path
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["x-content-type-options"] == "nosniff"
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "script-src 'self'" in CSP
    for path in PAGES:
        assert "<script>" not in site.client.get(path).text  # every script is a file of this origin


def test_wrong_token_shows_the_form_again_and_is_audited(site: Site) -> None:
    token = site.csrf("/login")
    r = site.client.post("/login", data={"token": "mft_wrong", "csrf": token, "next": "/"}, follow_redirects=False)
    assert r.status_code == 401 and "That token is not valid." in r.text and 'name="token"' in r.text
    assert "medfw_session" not in r.cookies
    with site.service.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ConsoleSession)) == 0
    for _ in range(3):
        site.client.post("/login", data={"token": "mft_wrong", "csrf": site.csrf("/login")}, follow_redirects=False)
    assert site.console.throttle.delay("testclient") > 0  # repeated failures slow the next attempt down
    r = site.client.get("/login")
    assert "Wait a moment" not in r.text


def test_login_needs_its_csrf_nonce_and_same_site(site: Site) -> None:
    r = site.client.post("/login", data={"token": site.tokens["admin"], "csrf": "x"}, follow_redirects=False)
    assert r.status_code == 403
    token = site.csrf("/login")
    r = site.client.post(
        "/login",
        data={"token": site.tokens["admin"], "csrf": token},
        headers={"origin": "https://evil.example"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and "medfw_session" not in r.cookies


def test_session_cookie_flags_and_secure_over_tls(site: Site) -> None:
    token = site.csrf("/login")
    r = site.client.post("/login", data={"token": site.tokens["admin"], "csrf": token}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
    r = site.client.get("https://testserver/login")
    m = CSRF_RE.search(r.text)
    assert m is not None
    r = site.client.post(
        "https://testserver/login", data={"token": site.tokens["admin"], "csrf": m.group(1)}, follow_redirects=False
    )
    assert "Secure" in r.headers["set-cookie"]


def test_csrf_and_cross_site_posts_are_refused(site: Site) -> None:
    rid = _rollout(site)
    site.sign_in("operator")
    r = site.client.post(f"/rollouts/{rid}/pause", data={}, follow_redirects=False)
    assert r.status_code == 403 and _state(site, rid) == "running"
    r = site.client.post(f"/rollouts/{rid}/pause", data={"csrf": "forged"}, follow_redirects=False)
    assert r.status_code == 403 and _state(site, rid) == "running"
    token = site.csrf(f"/rollouts/{rid}")
    r = site.client.post(
        f"/rollouts/{rid}/pause",
        data={"csrf": token},
        headers={"origin": "https://evil.example", "sec-fetch-site": "cross-site"},
        follow_redirects=False,
    )
    assert r.status_code == 403 and _state(site, rid) == "running"
    r = site.client.post(f"/rollouts/{rid}/pause", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 303 and _state(site, rid) == "paused"


def test_read_only_sees_no_actions_and_its_forged_post_is_refused(site: Site) -> None:
    rid = _rollout(site)
    site.sign_in("read-only")
    page = site.client.get(f"/rollouts/{rid}").text
    assert "action-pause" not in page and "New rollout" not in site.client.get("/rollouts").text
    assert 'href="/tokens"' not in page
    assert site.client.get("/tokens", follow_redirects=False).status_code == 403
    assert site.client.get("/rollouts/new", follow_redirects=False).status_code == 403
    token = site.csrf(f"/rollouts/{rid}")  # the sign-out form carries the session's CSRF token
    r = site.client.post(f"/rollouts/{rid}/cancel", data={"csrf": token}, follow_redirects=False)
    assert r.status_code == 403 and _state(site, rid) == "running"
    r = site.client.post("/tokens", data={"csrf": token, "name": "x", "role": "admin"}, follow_redirects=False)
    assert r.status_code == 403 and [t.name for t in site.service.tokens()] == ["admin", "operator", "read-only"]


def test_sign_out_and_expired_sessions(site: Site) -> None:
    site.sign_in("admin")
    session = site.client.cookies["medfw_session"]
    r = site.client.post("/logout", data={"csrf": site.csrf("/")}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    site.client.cookies.set("medfw_session", session)
    r = site.client.get("/devices", follow_redirects=False)
    assert r.status_code == 303 and "expired=1" in r.headers["location"] and "next=%2Fdevices" in r.headers["location"]
    assert "Your session has ended" in site.client.get(r.headers["location"]).text
    # idle timeout: a session unused for longer than the idle limit ends
    site.sign_in("admin")
    site.console.store.recheck = 0
    with site.service.sessions.begin() as s:
        s.execute(update(ConsoleSession).values(last_seen=datetime.now(UTC) - timedelta(hours=1)))
    assert site.client.get("/", follow_redirects=False).status_code == 303
    # absolute timeout: used all the time, but signed in too long ago
    site.sign_in("admin")
    with site.service.sessions.begin() as s:
        s.execute(update(ConsoleSession).values(created=datetime.now(UTC) - timedelta(hours=13)))
    assert site.client.get("/", follow_redirects=False).status_code == 303


def test_revoking_a_token_ends_its_sessions(site: Site) -> None:
    site.sign_in("operator")
    operator_cookie = site.client.cookies["medfw_session"]
    site.sign_in("admin")
    r = site.client.post("/tokens/operator/revoke", data={"csrf": site.csrf("/tokens")}, follow_redirects=False)
    assert r.status_code == 303
    site.client.cookies.set("medfw_session", operator_cookie)
    assert site.client.get("/", follow_redirects=False).status_code == 303


def test_next_is_always_a_local_path() -> None:
    for bad in ["//evil.example/x", "https://evil.example", "/\\evil", "", "javascript:alert(1)"]:
        assert safe_next(bad) == "/"
    assert safe_next("/rollouts/3?x=1") == "/rollouts/3?x=1"
