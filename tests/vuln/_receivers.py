"""Real local receivers for notification tests: an HTTP webhook receiver and a minimal SMTP server (127.0.0.1)."""

from __future__ import annotations

import socketserver
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    """What a receiver got (requests or mails) and the statuses it still has to answer with."""

    items: list[dict[str, object]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)


@contextmanager
def webhook_receiver(statuses: list[int] | None = None) -> Iterator[tuple[str, Received]]:
    """Serve POST /hook; answer with ``statuses`` in turn (then 204); yield (url, received)."""
    got = Received(statuses=list(statuses or []))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            got.items.append({"path": self.path, "headers": dict(self.headers.items()), "body": body})
            status = got.statuses.pop(0) if got.statuses else 204
            self.send_response(status)
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def smtp_receiver(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, Received]]:
    """A minimal SMTP server (EHLO, MAIL, RCPT, DATA, QUIT; STARTTLS offered when given a server ``tls`` context);
    yield ("HOST:PORT", received). Each mail records whether it arrived over TLS."""
    got = Received()

    class Handler(socketserver.StreamRequestHandler):
        def _send(self, line: str) -> None:
            self.wfile.write(line.encode() + b"\r\n")

        def handle(self) -> None:
            self._send("220 127.0.0.1 test SMTP")
            mail: dict[str, object] = {"rcpt": []}
            secure = False
            while line := self.rfile.readline():
                cmd = line.decode().strip()
                verb = cmd.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO"):
                    self._send("250-127.0.0.1")
                    if tls is not None and not secure:
                        self._send("250-STARTTLS")
                    self._send("250 8BITMIME")
                elif verb == "STARTTLS" and tls is not None:
                    self._send("220 go ahead")
                    conn = tls.wrap_socket(self.connection, server_side=True)
                    self.rfile, self.wfile = conn.makefile("rb"), conn.makefile("wb", buffering=0)
                    secure = True
                elif verb == "MAIL":
                    mail["from"] = cmd
                    self._send("250 OK")
                elif verb == "RCPT":
                    mail["rcpt"].append(cmd)  # type: ignore[attr-defined]
                    self._send("250 OK")
                elif verb == "DATA":
                    self._send("354 end with .")
                    data = []
                    while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                        data.append(chunk)
                    mail["data"] = b"".join(data)
                    mail["tls"] = secure
                    got.items.append(dict(mail))
                    mail = {"rcpt": []}
                    self._send("250 queued")
                elif verb == "QUIT":
                    self._send("221 bye")
                    return
                else:
                    self._send("250 OK")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()
