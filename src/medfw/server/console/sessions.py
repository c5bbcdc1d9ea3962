"""Console sign-in: server-side sessions bound to a management token, with idle and absolute timeouts.

The browser holds only a random session id (an ``HttpOnly``, ``SameSite=Strict`` cookie, ``Secure`` over TLS); the
database holds its SHA-256, the SHA-256 of the token it signed in with, and the session's CSRF token. Every check
re-reads the token's name and role, so a revoked or expired token ends its sessions. A process keeps a verified
session in memory for :attr:`SessionStore.recheck` seconds so a page's live refresh costs no session query;
signing out evicts it at once in that process.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import DateTime, String, delete, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from medfw.server.credentials import Role, hash_token
from medfw.server.models import ApiToken, Base

__all__ = ["ConsoleSession", "LoginThrottle", "SessionStore", "Viewer"]


class ConsoleSession(Base):
    """A signed-in console session (the migration ``0003`` creates the table)."""

    __tablename__ = "console_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


@dataclass(frozen=True)
class Viewer:
    """Who is signed in: the token's name and role, and the session's CSRF token."""

    session: str  # SHA-256 of the session id
    name: str
    role: Role
    csrf: str
    created: datetime

    @property
    def actor(self) -> str:
        """The audit actor, as the JSON API writes it."""
        return f"token:{self.name}"

    def can(self, needed: Role) -> bool:
        """Whether this viewer's role allows an action that needs ``needed``."""
        return self.role.allows(needed)


def _valid(when: datetime) -> tuple[Any, ...]:
    """The conditions of a token that still works: not revoked, not expired."""
    return (ApiToken.revoked.is_(None), or_(ApiToken.expires.is_(None), ApiToken.expires > when))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


class SessionStore:
    """Create, look up and end console sessions.

    Args:
        sessions: the fleet database's session factory.
        idle: a session unused this long ends.
        absolute: a session ends this long after sign-in, used or not.
        recheck: seconds a process trusts a session it verified before asking the database again.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        idle: timedelta = timedelta(minutes=30),
        absolute: timedelta = timedelta(hours=12),
        recheck: float = 10.0,
    ) -> None:
        self.sessions = sessions
        self.idle = idle
        self.absolute = absolute
        self.recheck = recheck
        self._cache: dict[str, tuple[float, Viewer]] = {}
        self._lock = threading.Lock()

    def create(self, token: str) -> tuple[str, Viewer] | None:
        """Sign in with a management token: a new session id (for the cookie) and its viewer, or ``None``."""
        token_hash = hash_token(token)
        now = datetime.now(UTC)
        with self.sessions.begin() as s:
            row = s.execute(
                select(ApiToken.name, ApiToken.role).where(ApiToken.token_hash == token_hash, *_valid(now))
            ).first()
            if row is None:
                return None
            raw = secrets.token_urlsafe(32)
            csrf = secrets.token_urlsafe(32)
            s.execute(delete(ConsoleSession).where(ConsoleSession.created < now - self.absolute))
            s.add(ConsoleSession(id_hash=_digest(raw), token_hash=token_hash, csrf=csrf, created=now, last_seen=now))
        return raw, Viewer(_digest(raw), str(row[0]), Role(row[1]), csrf, now)

    def lookup(self, raw: str | None) -> Viewer | None:
        """The viewer of a session id, or ``None`` (unknown, expired, or its token revoked)."""
        if not raw or len(raw) > 128:
            return None
        key = _digest(raw)
        mono = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and mono - hit[0] < self.recheck:
            return hit[1]
        viewer = self._load(key)
        with self._lock:
            if viewer is None:
                self._cache.pop(key, None)
            else:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = (mono, viewer)
        return viewer

    def _load(self, key: str) -> Viewer | None:
        now = datetime.now(UTC)
        with self.sessions.begin() as s:
            row = s.execute(
                select(ConsoleSession, ApiToken.name, ApiToken.role)
                .join(ApiToken, ApiToken.token_hash == ConsoleSession.token_hash)
                .where(ConsoleSession.id_hash == key, *_valid(now))
            ).first()
            if row is None:
                return None
            sess, name, role = row
            if now - _aware(sess.last_seen) > self.idle or now - _aware(sess.created) > self.absolute:
                s.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == key))
                return None
            s.execute(update(ConsoleSession).where(ConsoleSession.id_hash == key).values(last_seen=now))
            return Viewer(key, str(name), Role(role), sess.csrf, _aware(sess.created))

    def end(self, viewer: Viewer) -> None:
        """Sign out: the session is deleted and forgotten by this process."""
        with self._lock:
            self._cache.pop(viewer.session, None)
        with self.sessions.begin() as s:
            s.execute(delete(ConsoleSession).where(ConsoleSession.id_hash == viewer.session))

    def end_for_token(self, token_name: str) -> None:
        """Forget cached sessions of a revoked token (the database rows no longer join a token)."""
        with self._lock:
            for key in [k for k, (_t, v) in self._cache.items() if v.name == token_name]:
                del self._cache[key]


class LoginThrottle:
    """Slows down repeated failed sign-ins from one client: after ``free`` failures, each answer waits longer."""

    def __init__(self, *, free: int = 3, step: float = 0.5, cap: float = 5.0, window: float = 900.0) -> None:
        self.free = free
        self.step = step
        self.cap = cap
        self.window = window
        self._failures: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def delay(self, client: str) -> float:
        """Seconds to wait before answering ``client``'s next attempt."""
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
        if time.monotonic() - last > self.window or count < self.free:
            return 0.0
        return float(min(self.cap, self.step * 2 ** (count - self.free)))

    def failed(self, client: str) -> int:
        """Record a failure; return the client's failure count."""
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.get(client, (0, 0.0))
            count = 1 if now - last > self.window else count + 1
            if len(self._failures) > 100_000:
                self._failures.clear()
            self._failures[client] = (count, now)
        return count

    def succeeded(self, client: str) -> None:
        """Forget a client's failures."""
        with self._lock:
            self._failures.pop(client, None)
