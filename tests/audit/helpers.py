"""Helpers for audit tests: raw access to a SQLite log, as an attacker (or a crash) would have it."""

from __future__ import annotations

import hmac
import json
import sqlite3
from pathlib import Path
from typing import Any

from medfw.audit.keys import mac_key
from medfw.audit.merkle import CompactRange
from medfw.audit.record import encode_record, entry_hash, parse_record


class RawLog:
    """Direct SQL access to a log file."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), isolation_level=None)

    def rows(self) -> list[tuple[int, bytes, bytes]]:
        return [
            (p, bytes(r), bytes(t)) for p, r, t in self.db.execute("SELECT pos, record, tag FROM entries ORDER BY pos")
        ]

    def set_row(self, pos: int, record: bytes, tag: bytes) -> None:
        self.db.execute("UPDATE entries SET record = ?, tag = ? WHERE pos = ?", (record, tag, pos))

    def delete_from(self, pos: int) -> None:
        self.db.execute("DELETE FROM entries WHERE pos >= ?", (pos,))

    def delete(self, pos: int) -> None:
        self.db.execute("DELETE FROM entries WHERE pos = ?", (pos,))

    def shift_from(self, pos: int) -> None:
        """Make room at ``pos`` by moving every later row one position up."""
        self.db.execute("UPDATE entries SET pos = -pos - 1 WHERE pos >= ?", (pos,))
        self.db.execute("UPDATE entries SET pos = -pos WHERE pos < 0")

    def insert(self, pos: int, record: bytes, tag: bytes) -> None:
        self.db.execute("INSERT INTO entries (pos, record, tag) VALUES (?, ?, ?)", (pos, record, tag))

    def state(self) -> dict[str, Any]:
        return json.loads(self.db.execute("SELECT value FROM meta WHERE name='state'").fetchone()[0])

    def set_state(self, st: dict[str, Any]) -> None:
        self.db.execute("UPDATE meta SET value = ? WHERE name='state'", (json.dumps(st, sort_keys=True).encode(),))

    def log_id(self) -> str:
        return bytes(self.db.execute("SELECT value FROM meta WHERE name='log_id'").fetchone()[0]).decode()

    def drop_checkpoints(self) -> None:
        self.db.execute("DELETE FROM checkpoints")

    def rewind_state(self, size: int) -> None:
        """Make the writer state consistent with the first ``size`` rows (as a careful attacker would)."""
        rows = self.rows()[:size]
        st = self.state()
        cr = CompactRange()
        for _, rec, _ in rows:
            cr.append(entry_hash(rec))
        st["next_seq"] = size
        st["prev"] = entry_hash(rows[-1][1]).hex()
        st["compact"] = [n.hex() for n in cr.nodes]
        self.set_state(st)

    def close(self) -> None:
        self.db.close()


def reseal(record: bytes, key: bytes, log_id: str, epoch: int) -> bytes:
    """Tag ``record`` with the HMAC key of ``epoch`` derived from epoch key ``key``."""
    return hmac.digest(mac_key(key, log_id, epoch), entry_hash(record), "sha256")


def rewrite(record: bytes, **changes: Any) -> bytes:
    """Re-encode a record with some chain fields or body fields changed (canonical form kept)."""
    r = parse_record(record)
    body = dict(r.body)
    chain = {"seq": r.seq, "epoch": r.epoch, "prev": r.prev}
    for k, v in changes.items():
        if k in chain:
            chain[k] = v
        else:
            body[k] = v
    return encode_record(body, seq=chain["seq"], epoch=chain["epoch"], prev=chain["prev"])
