"""Who may call the fleet server: management tokens (expiry, last use, list, revoke) and device credentials
(checked against cached digests, rotated with a grace period, re-provisioned after decommissioning)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from medfw.server.base import ServiceBase
from medfw.server.cache import AuthEntry
from medfw.server.credentials import (
    Role,
    hash_token,
    new_device_secret,
    new_token,
    parse_device_credential,
    verify_device_secret,
)
from medfw.server.errors import Conflict, Invalid, NotFound
from medfw.server.views import TokenView
from medfw.server.work import now

__all__ = ["LAST_USED_EVERY", "AccessOps"]

#: a token's last-use time is written at most this often (one write per token and minute, not per request)
LAST_USED_EVERY = timedelta(seconds=60)
#: the longest token lifetime and device-credential grace period accepted
MAX_LIFETIME = timedelta(days=3650)


class AccessOps(ServiceBase):
    """Tokens and device credentials."""

    _last_used_lock = threading.Lock()

    # ---- tokens --------------------------------------------------------------------------------------------

    def create_token(self, name: str, role: Role, *, actor: str = "cli", expires_in: timedelta | None = None) -> str:
        """Create a management token (valid for ``expires_in``, else until revoked); it is returned once and
        only its hash is stored.

        Raises:
            Conflict: a token of this name exists (also when two requests race).
            Invalid: ``expires_in`` is not positive or longer than ten years.
        """
        if expires_in is not None and not timedelta(0) < expires_in <= MAX_LIFETIME:
            raise Invalid("expires_in must be between 1 second and 3650 days", field="expires_in")
        token = new_token()
        created = now()
        expires = created + expires_in if expires_in is not None else None
        with self.unique(f"a token named {name!r} exists", "name"), self.work() as w:
            if self.store.token(w.session, name) is not None:
                raise Conflict(f"a token named {name!r} exists", field="name")
            self.store.add_token(
                w.session, name=name, role=role.value, token_hash=hash_token(token), created=created, expires=expires
            )
            data = {"action": "token.create", "role": role.value, "expires": expires.isoformat() if expires else None}
            w.audit("config.change", "success", actor, objects={"token": name}, data=data)
        return token

    def authenticate_token(self, token: str) -> tuple[str, Role] | None:
        """Return (name, role) of a valid management token (not revoked, not expired), or ``None``."""
        found = self.store.token_by_hash(hash_token(token))
        if found is None:
            return None
        name, role, expires, revoked = found
        when = now()
        if revoked is not None or (expires is not None and _aware(expires) <= when):
            return None
        self._touch(name, when)
        return name, Role(role)

    def _touch(self, name: str, when: datetime) -> None:
        with self._last_used_lock:
            seen = self.__dict__.setdefault("_last_used", {})
            if name in seen and when - seen[name] < LAST_USED_EVERY:
                return
            seen[name] = when
        self.store.token_used(name, when)

    def tokens(self) -> list[TokenView]:
        """Every token (never its secret): role, creation, expiry, last use, revocation."""
        return self.store.tokens()

    def revoke_token(self, name: str, *, actor: str) -> TokenView:
        """Revoke a token: it stops working at once, in every server process (tokens are not cached).

        Raises:
            NotFound: no such token.
        """
        with self.work() as w:
            row = self.store.token(w.session, name)
            if row is None:
                raise NotFound(f"no token {name!r}", field="name")
            if row.revoked is None:
                row.revoked = now()
                w.audit("config.change", "success", actor, objects={"token": name}, data={"action": "token.revoke"})
        return next(t for t in self.store.tokens() if t.name == name)

    # ---- device credentials --------------------------------------------------------------------------------

    def authenticate_device_cached(self, credential: str) -> str | bool | None:
        """Check a credential against the in-memory digests: the device id, ``None`` (refused), or ``False`` when
        the digest is not cached yet (call :meth:`authenticate_device`)."""
        parsed = parse_device_credential(credential)
        if parsed is None:
            return None
        device_id, secret = parsed
        self.cache.current()
        entry = self.cache.auth(device_id)
        if entry is None:
            return False
        return device_id if _matches(entry, secret) else None

    def authenticate_device(self, credential: str) -> str | None:
        """Return the device id a credential belongs to, or ``None`` (constant-time digest checks; during a
        rotation's grace period the previous secret is accepted too)."""
        parsed = parse_device_credential(credential)
        if parsed is None:
            return None
        device_id, secret = parsed
        self.cache.current()
        entry = self.cache.auth(device_id)
        if entry is None:
            entry = self.store.credential(device_id)
            if entry is None:
                return None
            self.cache.store_auth(device_id, entry)
        return device_id if _matches(entry, secret) else None

    def rotate_credential(self, device_id: str, *, grace: timedelta = timedelta(0), actor: str) -> str:
        """Give a device a new credential (returned once). The old one keeps working for ``grace`` (0: refused
        at once), so a device can fetch its new secret before the old one stops working.

        Raises:
            NotFound: no such device, or a decommissioned one.
            Invalid: a negative or overlong grace period.
        """
        if not timedelta(0) <= grace <= MAX_LIFETIME:
            raise Invalid("grace must be between 0 and 3650 days", field="grace")
        secret = new_device_secret(device_id)
        with self.work() as w:
            dev = self.store.device(w.session, device_id)
            if dev is None or not dev.credential_hash:
                raise NotFound(f"no active device {device_id}")
            if grace:
                dev.prev_credential_salt, dev.prev_credential_hash = dev.credential_salt, dev.credential_hash
                dev.prev_valid_until = now() + grace
            else:
                dev.prev_credential_salt = dev.prev_credential_hash = dev.prev_valid_until = None
            dev.credential_salt, dev.credential_hash = secret.salt, secret.digest
            w.changed = True  # drops every process's cached digests
            data = {"action": "credential.rotate", "grace_seconds": int(grace.total_seconds())}
            w.audit("device.register", "success", actor, objects={"device": device_id}, data=data)
        self.cache.drop_auth(device_id)
        return secret.credential

    def reprovision_device(
        self, device_id: str, *, model: str, chip: str = "", group: str = "default", actor: str
    ) -> str:
        """Register a decommissioned device id again with a new credential (its history stays).

        Raises:
            NotFound: the id was never registered.
            Conflict: the device is active (decommission it first).
        """
        secret = new_device_secret(device_id)
        with self.work() as w:
            dev = self.store.device(w.session, device_id)
            if dev is None:
                raise NotFound(f"no device {device_id} to re-provision", field="id")
            if dev.credential_hash:
                raise Conflict(f"device {device_id} is active: decommission it before re-provisioning", field="id")
            dev.model, dev.chip, dev.group = model, chip, group
            dev.credential_salt, dev.credential_hash = secret.salt, secret.digest
            dev.prev_credential_salt = dev.prev_credential_hash = dev.prev_valid_until = None
            dev.last_status = "reprovisioned"
            w.changed = True
            data = {"action": "reprovision", "model": model, "group": group}
            w.audit("device.register", "success", actor, objects={"device": device_id}, data=data)
        self.cache.drop_auth(device_id)
        return secret.credential


def _aware(when: datetime) -> datetime:
    """SQLite returns naive datetimes for stored UTC times."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _matches(entry: AuthEntry, secret: str) -> bool:
    current = verify_device_secret(entry.salt, entry.digest, secret)
    previous = False
    if entry.prev_digest and entry.prev_until is not None and now() < _aware(entry.prev_until):
        previous = verify_device_secret(entry.prev_salt or "", entry.prev_digest, secret)
    return current or previous
