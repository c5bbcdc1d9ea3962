"""OTA fleet server at scale: 100,000 devices on PostgreSQL, N workers with the audit trail, a separate load process.

One run measures, with the same load generator (a separate process, raw HTTP/1.1 keep-alive on loopback):
``--workers`` medfw configurations (default 2 and 1; each on a fresh database) and the bare-Starlette ceiling (no
auth, no database) with the first worker count. Phases per medfw configuration, each bounded in time: idle polls
(every device polls once unmeasured, then ``--seconds`` measured, with the ETag it was given); how long until a
new rollout is seen by every worker (probes on many connections, spread over the workers); mixed loads during
that rollout, one per ``--reporting`` count of report connections (each connection reports for one unit at a time,
``downloading`` … ``confirmed`` in order, each once the previous one is acknowledged, while the other devices
poll), after which every acknowledged report must be in the database and in the audit log, the outbox empty and
the log intact. Server CPU time per request is printed next to the wall-clock rates (it depends less on what else
the machine runs).

Run: ``.venv/bin/python benchmarks/bench_ota_scale.py [--devices N] [--workers 2 1] [--seconds S] [--reporting 64 8]
[--pg URL]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from bench_ota import _BARE_APP, _free_port, _load, _start_server

PG = os.environ.get("MEDFW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
STEPS = ("downloading", "installed", "booted", "confirmed")
IDLE_RPS, IDLE_P99_MS, REPORTS_RPS = 3000, 50.0, 500
CLOCK_TICK = os.sysconf("SC_CLK_TCK")


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


def _request(kind: str, cred: str, rollout: int = 0, status: str = "") -> bytes:
    device = cred.rpartition(":")[0]
    if kind == "poll":
        return (
            f"GET /api/v1/devices/{device}/poll?version=1.0.0&secure_version=1 HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Device {cred}\r\n\r\n"
        ).encode()
    body = json.dumps({"status": status, "rollout": rollout, "version": "1.1.0"}).encode()
    head = (
        f"POST /api/v1/devices/{device}/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Device {cred}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, req: bytes) -> tuple[int, bytes]:
    writer.write(req)
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    length = 0
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return int(head.split(" ", 2)[1]), (await reader.readexactly(length) if length else b"")


async def _first_seen(port: int, creds: list[str], connections: int, limit: float) -> float:
    """Seconds from now until every one of ``connections`` connections (spread over the workers) polling a
    rollout device gets the assignment."""
    start = time.perf_counter()

    async def probe(k: int) -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() - start < limit:
                _, body = await _exchange(reader, writer, _request("poll", creds[k % len(creds)]))
                if json.loads(body).get("assignment"):
                    return time.perf_counter() - start
                await asyncio.sleep(0.01)
            return float("inf")
        finally:
            writer.close()

    return max(await asyncio.gather(*(probe(k) for k in range(connections))))


async def _mixed(
    port: int, pollers: list[str], reporters: list[str], rollout: int, seconds: float, connections: int, reporting: int
) -> dict[str, Any]:
    """Polls from ``pollers`` on ``connections`` connections and the full report sequence of ``reporters`` on
    ``reporting`` more (bounded by ``seconds``)."""
    start = time.perf_counter()
    end = start + seconds
    lat: dict[str, list[float]] = {"poll": [], "report": []}
    acked = {"n": 0, "refused": 0}
    # like an agent, a device sends its reports one after the other, each once the previous one is acknowledged
    queue = [(c, s) for c in reversed(reporters) for s in reversed(STEPS)]
    reports_done = {"at": end}
    polled = {"i": 0}

    async def conn(kind: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        mine: list[tuple[str, str]] = []
        try:
            while time.perf_counter() < end:
                if kind == "report":
                    if not mine:
                        if not queue:
                            reports_done["at"] = min(reports_done["at"], time.perf_counter())
                            return
                        mine = [queue.pop() for _ in STEPS][::-1]  # one device's sequence
                    cred, status = mine.pop()
                    req = _request("report", cred, rollout, status)
                else:
                    req = _request("poll", pollers[polled["i"] % len(pollers)])
                    polled["i"] += 1
                t0 = time.perf_counter()
                code, _ = await _exchange(reader, writer, req)
                lat[kind].append(time.perf_counter() - t0)
                if kind == "report":
                    acked["n" if code == 200 else "refused"] += 1
        finally:
            writer.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(conn("report") for _ in range(reporting)), *(conn("poll") for _ in range(connections)))
    took = time.perf_counter() - start
    return {
        "poll": _stats(lat["poll"], took),
        "report": _stats(lat["report"], reports_done["at"] - start),
        "acked": acked["n"],
        "refused": acked["refused"],
        "seconds": took,
        "generator_cpu_s": time.process_time() - cpu0,
    }


def _stats(xs: list[float], took: float) -> dict[str, float]:
    xs.sort()
    n = len(xs)
    return {
        "n": n,
        "per_s": n / took if took > 0 else 0.0,
        "p50_ms": 1000 * xs[n // 2] if n else 0.0,
        "p99_ms": 1000 * xs[min(n - 1, int(n * 0.99))] if n else 0.0,
    }


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


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children still running (the uvicorn workers)."""
    total = 0.0
    pids = [pid]
    while pids:
        p = pids.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICK
            pids += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, ValueError):
            continue
    return total


def _uvicorn(port: int, workers: int, app: str, *, factory: bool) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    return [*argv, "--no-access-log", *(["--factory"] if factory else []), "--workers", str(workers), app]


class _CpuSampler:
    """Samples the server's CPU seconds every 0.2 s, so the CPU of a window (the measured phase without its
    warm-up) can be read afterwards (``time.perf_counter`` is the system-wide monotonic clock)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), _cpu_seconds(self.pid)))
            self._stop.wait(0.2)

    def __enter__(self) -> _CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.perf_counter(), _cpu_seconds(self.pid)))

    def between(self, start: float, end: float) -> float:
        """CPU seconds between two ``perf_counter`` times (from the nearest samples)."""

        def at(t: float) -> float:
            return min(self.samples, key=lambda s: abs(s[0] - t))[1]

        return at(end) - at(start)


class _DatabasePriority:
    """While the server runs, gives the PostgreSQL backends serving the benchmark's database the CPU priority the
    benchmark itself runs at (its autogroup's nice value), when that is raised and may be given to them.

    Run at raised priority so that other work on a shared machine yields, the server and the load generator would
    otherwise starve the database they measure: every PostgreSQL backend is a session (an autogroup) of its own at
    the default priority. The database is part of the measured system, as on a machine of its own."""

    def __init__(self, admin: str, name: str) -> None:
        self.admin, self.name = admin, name
        self.nice = int(Path("/proc/self/autogroup").read_text().split()[-1])
        self.raised: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True) as c:
            while not self._stop.is_set():
                query = "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                for (pid,) in c.execute(query, (self.name,)).fetchall():
                    if pid not in self.raised:
                        try:
                            Path(f"/proc/{pid}/autogroup").write_text(str(self.nice))
                            self.raised.add(pid)
                        except OSError:
                            continue
                self._stop.wait(0.5)

    def __enter__(self) -> _DatabasePriority:
        if self.nice < 0:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def describe(self) -> str:
        """What was done, for the report."""
        if self.nice >= 0:
            return f"the benchmark runs at autogroup nice {self.nice}: the database's priority left as it is"
        return f"{len(self.raised)} database backends given the benchmark's autogroup nice {self.nice}"


def _idle(server_pid: int, port: int, creds: list[str], args: argparse.Namespace) -> dict[str, Any]:
    with _CpuSampler(server_pid) as cpu:
        idle: dict[str, Any] = _in_process(_load, port, creds, args.seconds, args.warmup, args.connections)
    idle["server_cpu_s"] = cpu.between(idle["t_measure"], idle["t_end"])
    return idle


def run_bare(args: argparse.Namespace, workers: int, creds: list[str]) -> dict[str, Any]:
    """The ceiling: a bare Starlette endpoint (no auth, no database) driven the same way."""
    with tempfile.TemporaryDirectory(prefix="medfw-bench-bare-") as d:
        tmp = Path(d)
        (tmp / "bare_app.py").write_text(_BARE_APP)
        port = _free_port()
        server = _start_server(_uvicorn(port, workers, "bare_app:app", factory=False), {"PYTHONPATH": d}, port, tmp)
        try:
            time.sleep(1)
            return _idle(server.pid, port, creds, args)
        finally:
            server.terminate()
            server.wait(timeout=30)


def run(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    import psycopg

    name = f"medfw_bench_{uuid.uuid4().hex[:8]}"
    admin = args.pg.rpartition("/")[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    db = args.pg.rpartition("/")[0] + "/" + name
    canary = max(1, args.devices * args.rollout_percent // 100)
    try:
        with tempfile.TemporaryDirectory(prefix="medfw-bench-scale-") as d:
            tmp = Path(d)
            t0 = time.perf_counter()
            env, creds, log, key = _setup(tmp, db, args.devices, canary)
            out: dict[str, Any] = {"workers": workers, "setup_s": time.perf_counter() - t0, "creds": creds}
            port = _free_port()
            argv = _uvicorn(port, workers, "medfw.server.asgi:create_from_env", factory=True)
            server = _start_server(argv, {**env, "MEDFW_OTA_LOG_FORMAT": "json"}, port, tmp)
            try:
                with _DatabasePriority(admin, name) as priority:
                    time.sleep(3)  # every worker up (each loads the credentials once)
                    out["idle"] = _idle(server.pid, port, creds, args)
                    out.update(_rollout_phases(server.pid, port, db, creds, canary, args))
                    time.sleep(6)  # one maintenance pass: the outbox drained into the audit log
                out["db_priority"] = priority.describe()
            finally:
                server.terminate()
                server.wait(timeout=30)
            out.update(_check(db, log, key))
    finally:
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return out


def _rollout_phases(
    server_pid: int, port: int, db: str, creds: list[str], canary: int, args: argparse.Namespace
) -> dict[str, Any]:
    from medfw.server.db import make_engine, make_sessionmaker
    from medfw.server.service import FleetService

    engine = make_engine(db)
    svc = FleetService(make_sessionmaker(engine))
    t_create = time.perf_counter()
    rollout = svc.create_rollout(release=1, group="canary", phases=["100%"], success_threshold=100, actor="bench").id
    created_s = time.perf_counter() - t_create
    engine.dispose()
    seen = _in_process(_first_seen, port, creds[:canary], 32, 30.0)
    pollers = args.connections - args.connections // 4
    mixed = []
    share = canary // len(args.reporting)  # each mixed phase reports for units of its own
    for k, reporting in enumerate(args.reporting):
        units = creds[k * share : (k + 1) * share]
        cpu0 = _cpu_seconds(server_pid)
        m = _in_process(_mixed, port, creds[canary:], units, rollout, args.seconds, pollers, reporting)
        mixed.append({**m, "reporting": reporting, "server_cpu_s": _cpu_seconds(server_pid) - cpu0})
    return {"rollout_create_s": created_s, "seen_by_all_s": seen, "mixed": mixed}


def _check(db: str, log: Path, key: Path) -> dict[str, Any]:
    from sqlalchemy import func, select

    from medfw.audit import verify_log
    from medfw.audit.query import list_entries
    from medfw.server.db import make_engine, make_sessionmaker
    from medfw.server.models import Report
    from medfw.server.store import Store

    engine = make_engine(db)
    with make_sessionmaker(engine)() as s:
        stored = int(s.scalar(select(func.count()).select_from(Report)) or 0)
    outbox = Store(make_sessionmaker(engine)).outbox_size()
    engine.dispose()
    audited = sum(1 for e in list_entries(log, type_="ota.report") if e.body.get("outcome") != "denied")
    return {
        "reports_stored": stored,
        "reports_audited": audited,
        "outbox_left": outbox,
        "audit_verifies": verify_log(log, key.read_bytes()).ok,
    }


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def report(r: dict[str, Any], bare: dict[str, Any] | None) -> None:
    i, w = r["idle"], r["workers"]
    print(f"--- medfw, {w} worker(s) (setup {r['setup_s']:.0f} s, load average {os.getloadavg()[0]:.1f})")
    print(f"CPU priority: {r['db_priority']}")
    print(
        f"idle polls: {i['rps']:.0f}/s p50 {i['p50_ms']:.1f} ms p99 {i['p99_ms']:.1f} ms {json.dumps(i['status'])}; "
        f"server CPU {1e6 * i['server_cpu_s'] / max(1, i['polls']):.0f} µs/poll"
    )
    if bare is not None:
        print(f"  = {i['rps'] / bare['rps']:.2f}x the bare-Starlette ceiling ({bare['rps']:.0f} polls/s)")
    print(
        f"rollout created in {r['rollout_create_s']:.2f} s; seen by every probed connection after "
        f"{r['seen_by_all_s']:.2f} s"
    )
    for m in r["mixed"]:
        print(
            f"mixed, {m['reporting']} report connections: polls {m['poll']['per_s']:.0f}/s p50 "
            f"{m['poll']['p50_ms']:.1f} p99 {m['poll']['p99_ms']:.1f} ms; reports {m['report']['per_s']:.0f}/s p50 "
            f"{m['report']['p50_ms']:.1f} p99 {m['report']['p99_ms']:.1f} ms ({m['report']['n']} in the phase, "
            f"{m['refused']} refused); server CPU {m['server_cpu_s'] / m['seconds']:.2f} cores "
            f"({1e3 * m['server_cpu_s'] / max(1, m['report']['n'] + m['poll']['n']):.2f} ms per request), "
            f"generator {m['generator_cpu_s'] / m['seconds']:.2f} cores"
        )
    acked = sum(m["acked"] for m in r["mixed"])
    lost = not (acked == r["reports_stored"] == r["reports_audited"] and r["outbox_left"] == 0)
    print(
        f"reports acknowledged {acked}, stored {r['reports_stored']}, audited {r['reports_audited']}, "
        f"outbox left {r['outbox_left']}, audit log verifies: {r['audit_verifies']}"
    )
    idle_ok = i["rps"] >= IDLE_RPS and i["p99_ms"] < IDLE_P99_MS
    first = r["mixed"][0]
    reports_ok = first["report"]["per_s"] >= REPORTS_RPS and not lost and r["audit_verifies"]
    print(f"target >= {IDLE_RPS} idle polls/s with p99 < {IDLE_P99_MS:.0f} ms: {_met(idle_ok)}")
    print(
        f"target >= {REPORTS_RPS} reports/s with nothing lost ({first['reporting']} report connections): "
        f"{_met(reports_ok)}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[2, 1])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=90.0, help="at most this long for every device's first poll")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument(
        "--reporting",
        type=int,
        nargs="+",
        default=[64, 8],
        help="report connections of each mixed phase (each one unit at a time: its four reports in order; a fleet "
        "reports from many units at once); each phase polls on three quarters of --connections next to them, and "
        "the report target is judged on the first",
    )
    ap.add_argument("--rollout-percent", type=int, default=2, help="share of the devices the rollout targets")
    ap.add_argument("--pg", default=PG)
    args = ap.parse_args()
    print(
        f"OTA server at scale: {args.devices} devices on PostgreSQL, audit log on, {args.connections} connections, "
        f"{args.seconds:.0f} s per phase, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} "
        f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
    )
    results = [run(args, w) for w in args.workers]
    bare = run_bare(args, args.workers[0], results[0]["creds"])
    print(
        f"--- bare Starlette ceiling, {args.workers[0]} worker(s), same generator: {bare['rps']:.0f} polls/s "
        f"p50 {bare['p50_ms']:.1f} ms p99 {bare['p99_ms']:.1f} ms; server CPU "
        f"{1e6 * bare['server_cpu_s'] / max(1, bare['polls']):.0f} µs/poll"
    )
    for r in results:
        report(r, bare if r["workers"] == args.workers[0] else None)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
