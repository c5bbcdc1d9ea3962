"""OTA fleet server benchmark: 10,000 simulated devices polling a real uvicorn server on loopback.

The server runs in its own process (``uvicorn medfw.server.asgi:create_from_env``, SQLite), the load generator in
another (raw HTTP/1.1 keep-alive over asyncio, one device credential per poll, ``If-None-Match`` with the ETag the
device saw last, as the agent does). 10% of the devices are in a running rollout. Reports polls/s and p50/p99
latency, next to a bare Starlette endpoint (no auth, no database) driven by the same generator as the reference
ceiling of the web stack. Bounded in time: every phase stops by itself.

Run: ``.venv/bin/python benchmarks/bench_ota.py [--devices N] [--seconds S] [--connections C] [--workers W]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

TARGET_RPS = 2000
TARGET_P99_MS = 50.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _setup(tmp: Path, devices: int) -> tuple[dict[str, str], list[str]]:
    """Create a repository with one release, a database with ``devices`` devices and a 10% rollout."""
    from medfw.audit.sink import NullSink
    from medfw.crypto.keys import KeyType, generate_private_key
    from medfw.crypto.signer import FileSigner
    from medfw.server.db import make_engine, make_sessionmaker, migrate
    from medfw.server.service import FleetService
    from medfw.update.repository import ReleaseInfo, TufRepository
    from medfw.update.tuf_signer import MedfwTufSigner

    def signer() -> MedfwTufSigner:
        return MedfwTufSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))

    targets = signer()
    repo = TufRepository.init(
        tmp / "repo",
        root_signers=[signer()],
        targets_signers=[targets],
        snapshot_signer=signer(),
        timestamp_signer=signer(),
    )
    repo.publish(
        os.urandom(64 * 1024),
        ReleaseInfo("pump/pump-1.1.0.bin", "pump", "esp32c3", "esp-app", "1.1.0", 2, 0, ""),
        targets_signers=[targets],
    )
    db = f"sqlite:///{tmp / 'fleet.sqlite'}"
    engine = make_engine(db)
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), NullSink())
    ids = [f"dev-{i:05d}" for i in range(devices)]
    canary = devices // 10
    creds = service.add_devices([(i, "pump", "esp32c3") for i in ids[:canary]], group="canary", actor="bench")
    creds += service.add_devices([(i, "pump", "esp32c3") for i in ids[canary:]], actor="bench")
    service.sync_releases(repo.releases(), actor="bench")
    service.create_rollout(release="pump/pump-1.1.0.bin", group="canary", phases=["100%"], actor="bench")
    engine.dispose()
    env = {"MEDFW_OTA_DB": db, "MEDFW_OTA_REPO": str(tmp / "repo"), "MEDFW_OTA_MIGRATED": "1"}
    return env, creds


_BARE_APP = textwrap.dedent(
    """
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    async def poll(request):
        etag = '"bare"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        return JSONResponse({"device": request.path_params["d"], "assignment": None, "poll_interval": 60}, headers={"ETag": etag})

    app = Starlette(routes=[Route("/api/v1/devices/{d}/poll", poll)])
    """
)


def _start_server(argv: list[str], env: dict[str, str], port: int, cwd: Path) -> subprocess.Popen[bytes]:
    # the server logs one line per request: to a file (a pipe nobody reads would fill up and stall the server)
    log = (cwd / f"server-{port}.log").open("wb")
    proc = subprocess.Popen(argv, env={**os.environ, **env}, cwd=cwd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {(cwd / f'server-{port}.log').read_text()[-2000:]}") from None
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not start within 30 s")


async def _load(port: int, creds: list[str], seconds: float, warmup: float, connections: int) -> dict[str, Any]:
    etags: dict[int, str] = {}
    latencies: list[float] = []
    status: dict[int, int] = {}
    next_device = 0
    # warm-up: every device polls once (its first poll computes and caches its answer), bounded by ``warmup`` s
    t_start = time.perf_counter()
    t_measure = t_start + warmup
    t_end = t_measure + seconds
    warm_done = asyncio.Event()

    async def worker() -> None:
        nonlocal next_device
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while True:
                nonlocal t_measure, t_end
                now = time.perf_counter()
                if now >= t_end:
                    return
                i = next_device % len(creds)
                next_device += 1
                if next_device == len(creds) and not warm_done.is_set():
                    warm_done.set()
                    t_measure = min(t_measure, now)
                    t_end = t_measure + seconds
                cred = creds[i]
                device_id = cred.rpartition(":")[0]
                head = (
                    f"GET /api/v1/devices/{device_id}/poll?version=1.0.0&secure_version=1&slot=ota_0 HTTP/1.1\r\n"
                    f"Host: 127.0.0.1\r\nAuthorization: Device {cred}\r\n"
                )
                if i in etags:
                    head += f"If-None-Match: {etags[i]}\r\n"
                t0 = time.perf_counter()
                writer.write((head + "\r\n").encode())
                raw = await reader.readuntil(b"\r\n\r\n")
                lines = raw.decode("latin-1").split("\r\n")
                code = int(lines[0].split(" ", 2)[1])
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    lname = name.lower()
                    if lname == "content-length":
                        length = int(value)
                    elif lname == "etag":
                        etags[i] = value.strip()
                if length:
                    await reader.readexactly(length)
                t1 = time.perf_counter()
                if t0 >= t_measure:
                    latencies.append(t1 - t0)
                    status[code] = status.get(code, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    latencies.sort()
    n = len(latencies)
    return {
        "polls": n,
        "rps": n / seconds,
        "p50_ms": 1000 * latencies[n // 2] if n else float("nan"),
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))] if n else float("nan"),
        "mean_ms": 1000 * statistics.fmean(latencies) if n else float("nan"),
        "status": {str(k): v for k, v in sorted(status.items())},
        "t_measure": t_measure,  # time.perf_counter() (system-wide monotonic): when the measured window began
        "t_end": t_end,
    }


def _generator(port: int, creds: list[str], seconds: float, warmup: float, connections: int, out: Any) -> None:
    out.put(asyncio.run(_load(port, creds, seconds, warmup, connections)))


def _run_load(port: int, creds: list[str], seconds: float, warmup: float, connections: int) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_generator, args=(port, creds, seconds, warmup, connections, q))
    p.start()
    try:
        result: dict[str, Any] = q.get(timeout=seconds + warmup + 60)
    finally:
        p.join(timeout=10)
        if p.is_alive():
            p.kill()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=60.0, help="at most this long for every device's first poll")
    ap.add_argument("--connections", type=int, default=32, help="devices polling at the same time")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args(sys.argv[1:] if __name__ == "__main__" else [])
    with tempfile.TemporaryDirectory(prefix="medfw-bench-ota-") as d:
        tmp = Path(d)
        t0 = time.perf_counter()
        env, creds = _setup(tmp, args.devices)
        setup_s = time.perf_counter() - t0
        rows: list[tuple[str, dict[str, Any]]] = []
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
        ]
        server = _start_server(
            [*uv, "--factory", "--workers", str(args.workers), "medfw.server.asgi:create_from_env"], env, port, tmp
        )
        try:
            rows.append(
                (
                    f"medfw ota serve ({args.workers} worker, SQLite)",
                    _run_load(port, creds, args.seconds, args.warmup, args.connections),
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=15)
        (tmp / "bare_app.py").write_text(_BARE_APP)
        port = _free_port()
        uv[uv.index("--port") + 1] = str(port)
        server = _start_server(
            [*uv, "--workers", str(args.workers), "bare_app:app"], {"PYTHONPATH": str(tmp)}, port, tmp
        )
        try:
            rows.append(
                (
                    "reference: bare Starlette, no auth/DB",
                    _run_load(port, creds, args.seconds, args.warmup, args.connections),
                )
            )
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(
        f"OTA server: {args.devices} devices, {args.connections} connections, {args.seconds:.0f} s measured, {os.cpu_count()} cores (setup {setup_s:.1f} s)"
    )
    print(f"{'server':44} {'polls/s':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    for name, r in rows:
        print(f"{name:44} {r['rps']:9.0f} {r['p50_ms']:8.2f} {r['p99_ms']:8.2f}  {json.dumps(r['status'])}")
    medfw, bare = rows[0][1], rows[1][1]
    print(f"ratio medfw / bare Starlette: {medfw['rps'] / bare['rps']:.2f}x throughput")
    ok = medfw["rps"] >= TARGET_RPS and medfw["p99_ms"] < TARGET_P99_MS
    print(f"target >= {TARGET_RPS} polls/s and p99 < {TARGET_P99_MS:.0f} ms: {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
