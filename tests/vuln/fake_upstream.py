"""A local fake of every feed upstream, serving real-shaped data over HTTP on 127.0.0.1 (tests, benchmarks, demos).

* ``/nvd/rest/json/cves/2.0`` — the NVD CVE API 2.0: ``resultsPerPage`` (≤ 2,000), ``startIndex``,
  ``lastModStartDate``/``lastModEndDate`` (≤ 120 days apart, else 404 as NVD does), ``totalResults``; records are
  served in a stable order; the ``apiKey`` header of each request is recorded.
* ``/kev/…``, ``/epss/…``, ``/osv/…``, ``/cve5/…`` — files under ``root/<source>/`` (the same relative paths as
  the real upstreams, so the same tree works as a directory mirror).
* ``pages`` — pre-built API 2.0 page files answering unfiltered queries (``startIndex`` a multiple of the page
  size), so a benchmark can serve 250,000 records without holding them in memory.
* ``faults`` — per NVD request number (1-based), a status to answer instead (``429`` and ``503`` carry
  ``Retry-After: 0``), to test retries.

Run it for a demo: ``python tests/vuln/fake_upstream.py ROOT [--port N]`` (NVD records from ``ROOT/nvd/*.json``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

NVD_PATH = "/nvd/rest/json/cves/2.0"


def _ts(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def nvd_records_from(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """The ``cve`` objects of NVD API 2.0 files (``*.json``, ``*.json.gz``), de-duplicated by id."""
    out: dict[str, dict[str, Any]] = {}
    for p in paths:
        raw = p.read_bytes()
        doc = json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)
        for v in doc.get("vulnerabilities", []):
            out[v["cve"]["id"]] = v["cve"]
    return list(out.values())


@dataclass
class FakeUpstream:
    """State of a running fake (requests seen, faults to inject, the NVD records served)."""

    root: Path
    nvd: list[dict[str, Any]]
    faults: dict[int, int] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    nvd_requests: int = 0
    base: str = ""
    pages: list[Path] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, source: str) -> str:
        """The base URL of ``source`` on this fake."""
        return f"{self.base}{NVD_PATH}" if source == "nvd" else f"{self.base}/{source}"

    def mirrors(self) -> dict[str, str]:
        """source → base URL, for ``SyncConfig.mirrors`` / ``--mirror``."""
        return {s: self.url(s) for s in ("nvd", "kev", "epss", "osv", "cve5")}

    def nvd_page(self, query: Mapping[str, list[str]]) -> tuple[int, bytes]:
        size = int(query.get("resultsPerPage", ["2000"])[0])
        start = int(query.get("startIndex", ["0"])[0])
        if self.pages and "lastModStartDate" not in query:  # pre-built API pages (large benchmark feeds)
            if start % size or start // size >= len(self.pages):
                return 404, b""
            return 200, self.pages[start // size].read_bytes()
        records = sorted(self.nvd, key=lambda c: (c.get("lastModified", ""), c["id"]))
        if "lastModStartDate" in query:
            lo, hi = _ts(query["lastModStartDate"][0]), _ts(query["lastModEndDate"][0])
            if hi - lo > dt.timedelta(days=120) or hi < lo:
                return 404, b""
            records = [c for c in records if lo <= _ts(c["lastModified"]) <= hi]
        if size > 2000 or size < 1 or start < 0:
            return 404, b""
        page = records[start : start + size]
        doc = {
            "resultsPerPage": len(page),
            "startIndex": start,
            "totalResults": len(records),
            "format": "NVD_CVE",
            "version": "2.0",
            "timestamp": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3],
            "vulnerabilities": [{"cve": c} for c in page],
        }
        return 200, json.dumps(doc).encode()


def _handler(state: FakeUpstream) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: bytes = b"", ctype: str = "application/json") -> None:
            self.send_response(status)
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            with state.lock:
                state.requests.append({"path": parts.path, "query": query, "api_key": self.headers.get("apiKey")})
                if parts.path == NVD_PATH:
                    state.nvd_requests += 1
                    fault = state.faults.get(state.nvd_requests)
                    if fault:
                        self._reply(fault)
                        return
                    status, body = state.nvd_page(query)
                    self._reply(status, body)
                    return
            rel = Path(parts.path.lstrip("/"))
            target = (state.root / rel).resolve()
            if ".." in rel.parts or not target.is_file() or state.root.resolve() not in target.parents:
                self._reply(404)
                return
            self._reply(200, target.read_bytes(), "application/octet-stream")

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@contextmanager
def serve(
    root: Path, nvd: list[dict[str, Any]], faults: dict[int, int] | None = None, pages: list[Path] | None = None
) -> Iterator[FakeUpstream]:
    """Run the fake on 127.0.0.1 (a free port) for the duration of the block."""
    state = FakeUpstream(root, nvd, dict(faults or {}), pages=list(pages or []))
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def main() -> None:
    """Serve ROOT until interrupted."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    args = ap.parse_args()
    records = nvd_records_from(sorted((args.root / "nvd").glob("*.json*")))
    with serve(args.root, records) as up:
        for source, url in up.mirrors().items():
            print(f"--mirror {source}={url}")
        threading.Event().wait()


if __name__ == "__main__":
    main()
