"""OTA fleet server at scale: 100,000 devices on PostgreSQL, N workers with the audit trail, a separate load process.

Phases (each bounded in time): idle polls (every device polls once unmeasured, then ``--seconds`` measured);
how long until a new rollout is seen by every worker (probes on many connections, spread over the workers);
a mixed load during that rollout (its devices report ``downloading`` … ``confirmed`` while the others poll), after
which every acknowledged report must be in the database and in the audit log. Run with ``--workers 2`` and
``--workers 1``; ``bench_ota.py`` gives the bare-Starlette ceiling with the same generator.

Run: ``.venv/bin/python benchmarks/bench_ota_scale.py [--devices N] [--workers W] [--seconds S] [--pg URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_ota import _free_port, _load, _start_server

PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
STEPS = ("downloading", "installed", "booted", "confirmed")


def _setup(tmp: Path, db: str, devices: int, canary: int) -> tuple[dict[str, str], list[str], Path, Path]:
    from medfw.audit import init_log
    from medfw.server.db import make_engine, make_sessionmaker, migrate
    from medfw.server.service import FleetService
    from medfw.update.repository import ReleaseInfo

    engine = make_engine(db)
    migrate(engine)
    service = FleetService(make_sessionmaker(engine))
    ids = [f"dev-{i:06d}" for i in range(devices)]
    creds = service.add_devices([(i, "pump", "esp32c3") for i in ids[:canary]], group="canary", actor="bench")
    for start in range(canary, devices, 20_000):
        creds += service.add_devices([(i, "pump", "esp32c3") for i in ids[start : start + 20_000]], actor="bench")
    service.sync_releases(
        [ReleaseInfo("pump/p-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 10, "ab" * 32)], actor="bench"
    )
    engine.dispose()
    log, key = tmp / "audit.db", tmp / "audit.key"
    init_log(log, key_out=key)
    env = {"MEDFW_OTA_DB": db, "MEDFW_OTA_MIGRATED": "1", "MEDFW_AUDIT_LOG": str(log)}
    return env, creds, log, key


async def _first_seen(port: int, creds: list[str], connections: int, limit: float) -> float:
    """Seconds from now until every one of ``connections`` connections (spread over the workers) polling a
    canary device gets the assignment."""
    start = time.perf_counter()

    async def probe(k: int) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        cred = creds[k % len(creds)]
        device = cred.rpartition(":")[0]
        try:
            while time.perf_counter() - start < limit:
                writer.write(
                    f"GET /api/v1/devices/{device}/poll?version=1.0.0&secure_version=1 HTTP/1.1\r\nHost: x\r\n"
                    f"Authorization: Device {cred}\r\n\r\n".encode()
                )
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = int(
                    next(
                        v
                        for k2, _, v in (h.partition(":") for h in head.split("\r\n"))
                        if k2.lower() == "content-length"
                    )
                )
                body = json.loads(await reader.readexactly(length))
                if body.get("assignment"):
                    return time.perf_counter() - start
                await asyncio.sleep(0.01)
            return float("inf")
        finally:
            writer.close()

    return max(await asyncio.gather(*(probe(k) for k in range(connections))))


async def _mixed(
    port: int, pollers: list[str], reporters: list[str], rollout: int, seconds: float, connections: int
) -> dict[str, Any]:
    """Polls from ``pollers`` and the full report sequence from ``reporters``, for ``seconds``."""
    end = time.perf_counter() + seconds
    lat: dict[str, list[float]] = {"poll": [], "report": []}
    acked = {"n": 0}
    queue = [(c, s) for s in STEPS for c in reporters]
    next_poll = {"i": 0}

    async def conn(kind: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < end:
                if kind == "report":
                    if not queue:
                        return
                    cred, status = queue.pop(0)
                    device = cred.rpartition(":")[0]
                    body = json.dumps({"status": status, "rollout": rollout, "version": "1.1.0"}).encode()
                    req = (
                        f"POST /api/v1/devices/{device}/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Device "
                        f"{cred}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                    ).encode() + body
                else:
                    cred = pollers[next_poll["i"] % len(pollers)]
                    next_poll["i"] += 1
                    device = cred.rpartition(":")[0]
                    req = (
                        f"GET /api/v1/devices/{device}/poll?version=1.0.0&secure_version=1 HTTP/1.1\r\nHost: x\r\n"
                        f"Authorization: Device {cred}\r\n\r\n"
                    ).encode()
                t0 = time.perf_counter()
                writer.write(req)
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                code = int(head.split(" ", 2)[1])
                length = 0
                for h in head.split("\r\n")[1:]:
                    k, _, v = h.partition(":")
                    if k.lower() == "content-length":
                        length = int(v)
                if length:
                    await reader.readexactly(length)
                lat[kind].append(time.perf_counter() - t0)
                if kind == "report" and code == 200:
                    acked["n"] += 1
        finally:
            writer.close()

    started = time.perf_counter()
    n_report = max(1, connections // 4)
    await asyncio.gather(
        *(conn("report") for _ in range(n_report)), *(conn("poll") for _ in range(connections - n_report))
    )
    took = time.perf_counter() - started

    def stats(xs: list[float]) -> dict[str, float]:
        xs.sort()
        n = len(xs)
        return {
            "n": n,
            "per_s": n / took,
            "p50_ms": 1000 * xs[n // 2] if n else 0.0,
            "p99_ms": 1000 * xs[min(n - 1, int(n * 0.99))] if n else 0.0,
        }

    return {"poll": stats(lat["poll"]), "report": stats(lat["report"]), "acked": acked["n"], "seconds": took}


def _in_process(fn: Any, *args: Any) -> Any:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_child, args=(fn, args, q))
    p.start()
    try:
        return q.get(timeout=900)
    finally:
        p.join(timeout=10)


def _child(fn: Any, args: Any, q: Any) -> None:
    q.put(asyncio.run(fn(*args)))


def run(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    import psycopg
    from sqlalchemy import func, select

    from medfw.audit import verify_log
    from medfw.audit.query import list_entries
    from medfw.server.db import make_engine, make_sessionmaker
    from medfw.server.models import Report
    from medfw.server.service import FleetService

    name = f"medfw_bench_{uuid.uuid4().hex[:8]}"
    admin = args.pg.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db = args.pg.rpartition("/")[0] + "/" + name
    canary = max(1, args.devices // 100)
    try:
        with tempfile.TemporaryDirectory(prefix="medfw-bench-scale-") as d:
            tmp = Path(d)
            t0 = time.perf_counter()
            env, creds, log, key = _setup(tmp, db, args.devices, canary)
            setup_s = time.perf_counter() - t0
            port = _free_port()
            uv = [
                sys.executable,
                "-m",
                "uvicorn",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--factory",
                "--workers",
                str(workers),
                "medfw.server.asgi:create_from_env",
            ]
            server = _start_server(uv, {**env, "MEDFW_OTA_LOG_FORMAT": "json"}, port, tmp)
            try:
                time.sleep(2)  # every worker up
                idle = _in_process(_load, port, creds, args.seconds, args.warmup, args.connections)
                engine = make_engine(db)
                svc = FleetService(make_sessionmaker(engine))
                t_create = time.perf_counter()
                rollout = svc.create_rollout(
                    release=1, group="canary", phases=["100%"], success_threshold=100, actor="bench"
                ).id
                created_s = time.perf_counter() - t_create
                seen = _in_process(_first_seen, port, creds[:canary], 32, 30.0)
                mixed = _in_process(
                    _mixed, port, creds[canary:], creds[:canary], rollout, args.seconds, args.connections
                )
                time.sleep(6)  # one maintenance pass: the outbox drained into the audit log
            finally:
                server.terminate()
                server.wait(timeout=30)
            with make_sessionmaker(engine)() as s:
                stored = int(s.scalar(select(func.count()).select_from(Report)) or 0)
            outbox = svc.store.outbox_size()
            engine.dispose()
            audited = sum(1 for e in list_entries(log, type_="ota.report") if e.body.get("outcome") != "denied")
            verified = verify_log(log, key.read_bytes()).ok
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "workers": workers,
        "setup_s": setup_s,
        "idle": idle,
        "rollout_create_s": created_s,
        "seen_by_all_s": seen,
        "mixed": mixed,
        "reports_stored": stored,
        "reports_audited": audited,
        "outbox_left": outbox,
        "audit_verifies": verified,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=60.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--pg", default=PG)
    args = ap.parse_args()
    print(
        f"OTA server at scale: {args.devices} devices on PostgreSQL, audit log on, {args.connections} connections, "
        f"{args.seconds:.0f} s per phase, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    for w in args.workers:
        r = run(args, w)
        i, m = r["idle"], r["mixed"]
        print(f"--- {w} worker(s) (setup {r['setup_s']:.0f} s)")
        print(
            f"idle polls: {i['rps']:.0f}/s p50 {i['p50_ms']:.1f} ms p99 {i['p99_ms']:.1f} ms {json.dumps(i['status'])}"
        )
        print(
            f"rollout created in {r['rollout_create_s']:.2f} s; seen by every probed connection after "
            f"{r['seen_by_all_s']:.2f} s"
        )
        print(
            f"mixed: polls {m['poll']['per_s']:.0f}/s p50 {m['poll']['p50_ms']:.1f} p99 {m['poll']['p99_ms']:.1f} ms; "
            f"reports {m['report']['per_s']:.0f}/s p50 {m['report']['p50_ms']:.1f} p99 {m['report']['p99_ms']:.1f} ms"
        )
        print(
            f"reports acknowledged {m['acked']}, stored {r['reports_stored']}, audited {r['reports_audited']}, "
            f"outbox left {r['outbox_left']}, audit log verifies: {r['audit_verifies']}"
        )


if __name__ == "__main__":
    main()
