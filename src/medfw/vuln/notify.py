"""Notifications of rescan alerts: a signed JSON webhook and e-mail.

The alert document (``medfw.vuln.alerts/1``) lists, per release with open alerts, the alerts opened and closed by
this run and every alert still open, plus the feed snapshot used. It is sent when a run opened or closed an alert.

* ``webhook=URL`` — ``POST`` of the document (``application/json``). The body is signed with HMAC-SHA256 under a
  key read from a file; the header ``X-Medfw-Signature: sha256=<hex>`` carries it (receivers compare in constant
  time). Connection errors, 429 and 5xx are retried with exponential backoff and jitter (``Retry-After``
  honoured, capped), 3 attempts in all.
* ``smtp=HOST:PORT`` — the same document as an e-mail (a text summary, the JSON attached) through stdlib
  ``smtplib``; STARTTLS is used whenever the server offers it (certificate verified).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import smtplib
import ssl
import time
from collections.abc import Sequence
from email.message import EmailMessage
from typing import Any
from urllib.parse import urlsplit

import httpx

from medfw._io import read_bytes
from medfw.errors import InputError, TransportError, UsageError
from medfw.vuln.postmarket import RescanReport

__all__ = ["SIGNATURE_HEADER", "alert_document", "notify_all", "send_mail", "send_webhook", "sign_body"]

SIGNATURE_HEADER = "X-Medfw-Signature"
_ATTEMPTS = 3
_MAX_WAIT = 30.0


def alert_document(report: RescanReport) -> dict[str, Any]:
    """The JSON alert document of a rescan."""
    releases: list[dict[str, Any]] = [
        {
            "release_id": d.release_id,
            "name": d.name,
            "serial": d.serial,
            "opened": [a.as_dict() for a in d.opened],
            "closed": [a.as_dict() for a in d.closed],
            "open": [a.as_dict() for a in d.open],
        }
        for d in report.releases
        if d.opened or d.closed or d.open
    ]
    return {
        "type": "medfw.vuln.alerts/1",
        "at": report.at,
        "open_alerts": sum(len(r["open"]) for r in releases),
        "opened": sum(len(r["opened"]) for r in releases),
        "closed": sum(len(r["closed"]) for r in releases),
        "releases": releases,
        "feed": report.feed,
    }


def sign_body(key: bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def _wait(attempt: int, retry_after: str | None) -> float:
    if retry_after and retry_after.strip().isdigit():
        return float(min(float(retry_after.strip()), _MAX_WAIT))
    backoff: float = 0.2 * 2.0**attempt + random.uniform(0, 0.1)  # noqa: S311 - jitter, not crypto
    return min(backoff, _MAX_WAIT)


def send_webhook(url: str, body: bytes, key: bytes, *, timeout: float = 10.0) -> int:
    """POST a signed body; return the HTTP status.

    Raises:
        UsageError: not an http(s) URL.
        TransportError: every attempt failed (the URL is named; the key never is).
    """
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
        raise UsageError(f"webhook URL must be http(s)://host/…, got {url!r}", field="--notify")
    headers = {"Content-Type": "application/json", SIGNATURE_HEADER: sign_body(key, body)}
    last = ""
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for attempt in range(_ATTEMPTS):
            try:
                resp = client.post(url, content=body, headers=headers)
            except httpx.HTTPError as e:
                last = f"{e.__class__.__name__}: {e}"
                retry_after = None
            else:
                if resp.status_code < 300:
                    return resp.status_code
                last = f"HTTP {resp.status_code}"
                if resp.status_code != 429 and resp.status_code < 500:
                    break
                retry_after = resp.headers.get("Retry-After")
            if attempt + 1 < _ATTEMPTS:
                time.sleep(_wait(attempt, retry_after))
    raise TransportError(f"webhook delivery failed after retries: {last}", path=url)


def send_mail(
    host: str,
    port: int,
    doc: dict[str, Any],
    *,
    to: Sequence[str],
    sender: str,
    timeout: float = 10.0,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Send the alert document by e-mail (STARTTLS when offered, verified with ``tls`` or the system CAs).

    Raises:
        TransportError: the server refused or could not be reached.
    """
    msg = EmailMessage()
    msg["Subject"] = f"medfw: {doc['open_alerts']} open vulnerability alert(s), {doc['opened']} new"
    msg["From"] = sender
    msg["To"] = ", ".join(to)
    lines = [f"medfw rescan at {doc['at']}: {doc['open_alerts']} open alert(s)."]
    for r in doc["releases"]:
        lines.append(f"\nrelease {r['release_id']} {r['name']} ({r['serial']})")
        lines.extend(f"  [{a['kind']}] {a['vuln_id']} on {a['component_ref']}" for a in r["open"])
    msg.set_content("\n".join(lines) + "\n")
    msg.add_attachment(
        json.dumps(doc, indent=2, sort_keys=True).encode(), maintype="application", subtype="json",
        filename="medfw-alerts.json",
    )  # fmt: skip
    try:
        with smtplib.SMTP(host, port, timeout=timeout) as smtp:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls(context=tls or ssl.create_default_context())
                smtp.ehlo()
            smtp.send_message(msg)
    except (OSError, smtplib.SMTPException) as e:
        raise TransportError(f"mail delivery failed: {e.__class__.__name__}: {e}", path=f"smtp://{host}:{port}") from e


def notify_all(
    targets: Sequence[str],
    report: RescanReport,
    *,
    key_file: str | None,
    mail_to: Sequence[str] = (),
    mail_from: str = "medfw@localhost",
    mail_tls: ssl.SSLContext | None = None,
) -> int:
    """Send the alert document to every target (``webhook=URL``, ``smtp=HOST:PORT``); return how many were sent.

    Nothing is sent when the run opened and closed no alert.

    Raises:
        UsageError: a malformed target, a webhook without a key file, or e-mail without recipients.
        InputError: the key file is unreadable or empty.
        TransportError: a delivery failed.
    """
    doc = alert_document(report)
    if not doc["opened"] and not doc["closed"]:
        return 0
    body = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    sent = 0
    for t in targets:
        kind, _, value = t.partition("=")
        if kind == "webhook":
            if not key_file:
                raise UsageError("webhook notifications are signed: give --notify-key-file", field="--notify-key-file")
            key = read_bytes(key_file, max_length=4096, what="webhook key").strip()
            if not key:
                raise InputError("webhook key file is empty", path=key_file)
            send_webhook(value, body, key)
        elif kind == "smtp":
            host, _, port = value.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise UsageError(f"smtp target must be smtp=HOST:PORT, got {t!r}", field="--notify")
            if not mail_to:
                raise UsageError("e-mail notifications need --mail-to ADDRESS", field="--mail-to")
            send_mail(host, int(port), doc, to=mail_to, sender=mail_from, tls=mail_tls)
        else:
            raise UsageError(f"unknown notification target {t!r} (webhook=URL or smtp=HOST:PORT)", field="--notify")
        sent += 1
    return sent
