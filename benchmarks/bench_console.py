"""Web console benchmark: every page with 100,000 devices and 50 rollouts in PostgreSQL.

The fleet is written in bulk into a fresh PostgreSQL database (``$MEDFW_BENCH_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``): 100,000 devices over 4 models, 10 groups and 6 versions, with
last-seen times over three days; 50 releases; 50 rollouts created through the fleet service (2,000 devices each),
their assignments then spread over the final states with refusal reasons, and the rollouts over running, paused
and finished. Each page is loaded 20 times (after 2 unmeasured loads) through the ASGI app in process, signed in
as an admin; the time is from request to the last byte of the answer (server time: no network, no browser).

The server's audit log holds ``--audit-events`` events about the devices (written in sessions of 1,000), so the
Audit page and each device's timeline read a real trail; the vulnerability index holds every feed extract of
``tests/vectors/vuln`` and six released SBOMs (the realistic ESP-IDF SBOM, one per device version), tied to six
releases, so the Releases and Vulnerabilities pages show real findings and exposure over the 100,000 devices.

Run: ``.venv/bin/python benchmarks/bench_console.py [--devices N] [--rollouts R] [--loads L] [--audit-events E]``
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import re
import shutil
import statistics
import tempfile
import time
import uuid
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

PG = os.environ.get("MEDFW_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
TARGET_P95_MS = 200.0
MODELS = ("pump", "vent", "monitor", "infuser")
VERSIONS = ("1.0.0", "1.1.0", "1.2.0", "1.2.1", "2.0.0", "2.1.0")
REASONS = ("untrusted_key", "hash_mismatch", "rollback", "app_not_confirmed", "metadata_expired")
VULN = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "vuln"


def _sboms() -> list[bytes]:
    """The realistic ESP-IDF SBOM once per device version (its own serial and firmware version each)."""
    base = json.loads((VULN / "custom" / "esp-idf-5.2.1-realistic.cdx.json").read_text(encoding="utf-8"))
    out = []
    for i, version in enumerate(VERSIONS):
        doc = dict(base, serialNumber=f"urn:uuid:00000000-0000-4000-8000-{i:012d}")
        doc["metadata"] = {**base["metadata"], "component": {**base["metadata"]["component"], "version": version}}
        out.append(json.dumps(doc).encode())
    return out


def _vuln_index(path: Path, sboms: list[bytes]) -> None:
    from medfw.vuln import add_release, import_feeds, open_index

    index = open_index(str(path))
    import_feeds(
        index,
        cve5=[str(VULN / "cve5"), str(VULN / "vendor/openssl/secjson")],
        nvd=[str(VULN / "nvd"), str(VULN / "custom/heartbleed-nvd-api-2.0.json")],
        osv=[str(VULN / "osv")],
        vendor=[str(VULN / "vendor/curl/curl_vulnerabilities.json")],
        kev=[str(VULN / "kev/known_exploited_vulnerabilities.json")],
        epss=[str(VULN / "custom/epss_scores-2026-11-20.csv")],
    )
    for sbom in sboms:
        add_release(index, sbom)
    index.close()


def _audit_log(path: Path, events: int, devices: int) -> None:
    from medfw.audit import init_log
    from medfw.audit.log import append_session
    from medfw.audit.sink import AuditEvent

    init_log(path, key_out=path.with_suffix(".vkey"))
    for start in range(0, events, 1000):
        batch = [
            AuditEvent(
                type="ota.report",
                outcome="success" if i % 7 else "failure",
                actor=f"device:dev-{i % devices:06d}",
                objects={"device": f"dev-{i % devices:06d}"},
                data={"status": "confirmed" if i % 7 else "rejected"},
            )
            for i in range(start, min(events, start + 1000))
        ]
        append_session(path, batch)


def _fleet(url: str, devices: int, rollouts: int, sboms: list[bytes]) -> dict[str, Any]:
    from sqlalchemy import insert, update

    from medfw.audit.sink import NullSink
    from medfw.server.credentials import Role
    from medfw.server.db import make_engine, make_sessionmaker, migrate
    from medfw.server.models import Assignment, Device, Release, Rollout
    from medfw.server.service import FleetService

    rng = random.Random(7)
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    rows = [
        {
            "id": f"dev-{i:06d}",
            "model": MODELS[i % len(MODELS)],
            "chip": "esp32c3",
            "group": f"site-{i % 10:02d}",
            "credential_salt": "00" * 16,
            "credential_hash": "11" * 32,
            "version": rng.choice(VERSIONS),
            "secure_version": 1,
            "slot": "ota_0",
            "last_status": rng.choice((None, "confirmed", "confirmed", "rejected")),
            "last_seen": now - timedelta(minutes=rng.randrange(0, 72 * 60)),
            "created": now,
        }
        for i in range(devices)
    ]
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(Device), rows[start : start + 10_000])
        conn.execute(
            insert(Release),
            [
                {
                    "target_path": f"{MODELS[r % 4]}/{MODELS[r % 4]}-{r}.bin",
                    "model": MODELS[r % 4],
                    "chip": "esp32c3",
                    "image_format": "esp-app",
                    "version": VERSIONS[r] if r < len(sboms) else f"3.{r}.0",
                    "secure_version": 2,
                    "length": 1_048_576,
                    "sha256": f"{r:064x}",
                    "sbom": {"ref": "sbom.cdx.json", "sha256": hashlib.sha256(sboms[r]).hexdigest()}
                    if r < len(sboms)
                    else {},
                    "created": now,
                }
                for r in range(rollouts)
            ],
        )
    service = FleetService(make_sessionmaker(engine), NullSink())
    token = service.create_token("bench-admin", Role.ADMIN)
    per = devices // rollouts
    for r in range(rollouts):
        ids = [f"dev-{i:06d}" for i in range(devices) if i % 4 == r % 4][(r // 4) * per : (r // 4 + 1) * per]
        service.create_rollout(release=r + 1, devices=ids, phases=["5%", "50%", "100%"], actor="bench")
    with engine.begin() as conn:
        conn.execute(update(Assignment).values(state="confirmed"))
        conn.execute(update(Assignment).where(Assignment.id % 17 == 0).values(state="rejected", reason=REASONS[0]))
        for k, reason in enumerate(REASONS[1:], start=1):
            conn.execute(update(Assignment).where(Assignment.id % 53 == k).values(state="rejected", reason=reason))
        conn.execute(update(Assignment).where(Assignment.id % 29 == 0).values(state="pending", reason=None))
        conn.execute(update(Rollout).where(Rollout.id % 3 == 0).values(state="finished", current_phase=2))
        conn.execute(
            update(Rollout)
            .where(Rollout.id % 3 == 1)
            .values(state="paused", state_reason="error_threshold: 120/2000 devices failed")
        )
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")  # what autovacuum does after a bulk load
    return {"engine": engine, "service": service, "token": token}


def _reuse(url: str) -> dict[str, Any]:
    from medfw.audit.sink import NullSink
    from medfw.server.credentials import Role
    from medfw.server.db import make_engine, make_sessionmaker, migrate
    from medfw.server.service import FleetService

    engine = make_engine(url)
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), NullSink())
    return {
        "engine": engine,
        "service": service,
        "token": service.create_token(f"b-{uuid.uuid4().hex[:6]}", Role.ADMIN),
    }


def _measure(client: Any, path: str, loads: int) -> tuple[float, list[float], list[float]]:
    """The first load's milliseconds (cold caches), then wall-clock and CPU milliseconds (this process: ASGI app +
    test client) of ``loads`` page loads after two unmeasured ones."""
    first = 0.0
    for i in range(2):
        start = time.perf_counter()
        r = client.get(path)
        first = first if i else (time.perf_counter() - start) * 1000
        assert r.status_code == 200, (path, r.status_code, r.text[:300])
    wall, cpu = [], []
    for _ in range(loads):
        start, start_cpu = time.perf_counter(), time.process_time()
        r = client.get(path)
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
        assert r.status_code == 200
    return first, sorted(wall), sorted(cpu)


def _p95(values: list[float]) -> float:
    return values[max(0, round(0.95 * len(values)) - 1)]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--rollouts", type=int, default=50)
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--audit-events", type=int, default=100_000, help="events in the server's audit log")
    ap.add_argument("--keep", metavar="DB", help="keep the fleet in this database (reused when it exists)")
    args = ap.parse_args(argv)

    from medfw.server.app import create_app
    from medfw.server.console import attach_console

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    name = args.keep or f"medfw_bench_console_{uuid.uuid4().hex[:8]}"
    base = PG.rsplit("/", 1)[0]
    with psycopg.connect(PG, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="medfw-bench-console-"))
    try:
        start = time.perf_counter()
        sboms = _sboms()
        fleet = _reuse(f"{base}/{name}") if exists else _fleet(f"{base}/{name}", args.devices, args.rollouts, sboms)
        print(f"fleet ready in {time.perf_counter() - start:.1f} s", flush=True)
        start = time.perf_counter()
        _vuln_index(tmp / "vuln.db", sboms)
        _audit_log(tmp / "audit.db", args.audit_events, args.devices)
        print(f"vulnerability index and {args.audit_events} audit events in {time.perf_counter() - start:.1f} s")
        app = create_app(fleet["service"], None, maintenance_interval=3600)
        attach_console(app, fleet["service"], audit_log=str(tmp / "audit.db"), vuln_db=str(tmp / "vuln.db"))
        with TestClient(app) as client:
            page = client.get("/login").text
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)
            assert csrf is not None
            r = client.post("/login", data={"token": fleet["token"], "csrf": csrf.group(1)}, follow_redirects=False)
            assert r.status_code == 303
            mid = args.devices // 2
            paths = [
                "/",
                "/live/fleet",
                "/devices",
                f"/devices?page={args.devices // 50 // 2}",
                "/devices?model=pump&version=1.2.0&group=site-04",
                "/devices?q=dev-0123",
                "/devices?seen=48&state=rejected",
                f"/devices/dev-{mid:06d}",
                "/rollouts",
                "/rollouts?state=paused",
                "/rollouts?page=2",
                f"/rollouts/{args.rollouts // 2}",
                f"/live/rollouts/{args.rollouts // 2}?phases=3",
                "/rollouts/new",
                "/releases",
                f"/releases/{args.rollouts // 2}",
                "/releases/3",
                "/vulnerabilities",
                "/audit",
                f"/audit?device=dev-{mid:06d}",
                "/audit?type=ota.report&actor=dev-0001",
                "/tokens",
            ]
            print("| page | first load ms | p50 ms | p95 ms | max ms | CPU p95 ms |\n|---|---:|---:|---:|---:|---:|")
            worst = 0.0
            for path in paths:
                first, times, cpu = _measure(client, path, args.loads)
                worst = max(worst, _p95(times))
                print(
                    f"| `{path}` | {first:.1f} | {statistics.median(times):.1f} | {_p95(times):.1f} | {times[-1]:.1f} "
                    f"| {_p95(cpu):.1f} |",
                    flush=True,
                )
            verdict = "met" if worst <= TARGET_P95_MS else "NOT met"
            print(f"worst p95 {worst:.1f} ms: target (p95 <= {TARGET_P95_MS:.0f} ms on every page) {verdict}")
            print(f"load average during the run: {os.getloadavg()}")
        fleet["engine"].dispose()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
