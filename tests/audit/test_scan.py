"""The verifier's scan checks a block of rows at once and falls back to checking entry by entry: whatever is done to
the rows, the result must be exactly that of an independent entry-by-entry verifier that parses every record."""

from __future__ import annotations

import hmac
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit import AuditEvent, init_log, open_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit import scan as scan_module
from medfw.audit.keys import EpochKeys, VerificationKey
from medfw.audit.log import append_session
from medfw.audit.record import GENESIS_PREV, entry_hash, parse_record
from medfw.audit.scan import Scan, scan
from medfw.errors import AuditError

from .helpers import RawLog, reseal, rewrite

Row = tuple[bytes, bytes]
SMALL_BLOCK = 64


@dataclass(frozen=True)
class Mixed:
    rows: list[Row]
    key: VerificationKey


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Mixed:
    """Long epochs written in batches, then one-event sessions (an epoch each), then batches again."""
    path = tmp_path_factory.mktemp("mixed") / "log.db"
    res = init_log(path, log_id="mixed", epoch_length=100, checkpoint_interval=90)
    with open_log(path) as log, log.batch():
        for i in range(250):
            log.append(AuditEvent(type="boot.verify", outcome="success", data={"i": i}))
    for i in range(200):
        append_session(path, [AuditEvent(type="ota.download", outcome="success", data={"s": i})])
    with open_log(path) as log, log.batch():
        for i in range(120):
            log.append(AuditEvent(type="config.change", outcome="info", data={"j": i}))
    raw = RawLog(path)
    rows = [(r, t) for _, r, t in raw.rows()]
    raw.close()
    return Mixed(rows, res.verification_key)


def _keys(m: Mixed) -> EpochKeys:
    return EpochKeys(m.key.initial_key, m.key.log_id, m.key.kdf)


def _reference(rows: list[Row], keys: EpochKeys) -> tuple[list[bytes], int | None, int]:
    """Verify entry by entry from the parsed record: the verified entry hashes, the first bad seq, the last epoch."""
    hashes: list[bytes] = []
    epoch, prev = 0, GENESIS_PREV
    for seq, (rec, tag) in enumerate(rows):
        try:
            r = parse_record(rec)
        except AuditError:
            return hashes, seq, epoch
        step_ok = r.epoch == epoch or (seq > 0 and r.epoch == epoch + 1)
        eh = entry_hash(rec)
        mac = keys.mac(r.epoch) if step_ok else b""
        if (
            r.seq != seq
            or r.prev != prev
            or not step_ok
            or not hmac.compare_digest(hmac.digest(mac, eh, "sha256"), tag)
        ):
            return hashes, seq, epoch
        hashes.append(eh)
        epoch, prev = r.epoch, eh.hex()
    return hashes, None, epoch


def _assert_same(rows: list[Row], keys: EpochKeys) -> Scan:
    got = scan(iter(rows), keys, Scan())
    hashes, bad, epoch = _reference(rows, keys)
    assert got.bad == bad
    assert got.damaged is None
    assert got.hashes == hashes
    assert got.seq == len(hashes)
    assert got.prev == (hashes[-1].hex() if hashes else GENESIS_PREV).encode()
    if hashes:
        assert got.epoch == epoch
        assert got.key == keys.key(epoch)
    return got


def test_an_intact_log_is_verified_by_the_block_path_alone(mixed: Mixed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not one entry of an intact log goes through the entry-by-entry loop, whatever the block size."""

    def no_fallback(*_: object) -> None:
        raise AssertionError("the entry-by-entry loop ran on an intact log")

    monkeypatch.setattr(scan_module, "_check", no_fallback)
    for block in (SMALL_BLOCK, 7, scan_module.BLOCK):
        monkeypatch.setattr(scan_module, "BLOCK", block)
        got = _assert_same(mixed.rows, _keys(mixed))
        assert got.bad is None
        assert got.seq == len(mixed.rows)


def test_both_epoch_shapes_are_in_the_log(mixed: Mixed) -> None:
    epochs = [parse_record(r).epoch for r, _ in mixed.rows]
    runs = [epochs.count(e) for e in sorted(set(epochs))]
    assert max(runs) >= SMALL_BLOCK  # long epochs: keyed once, copied
    assert runs.count(1) >= 150  # one-event sessions: an epoch per entry


def _flip(data: bytes, at: int) -> bytes:
    if not data:
        return b"\x01"
    i = at % len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :]


def _mutate(rows: list[Row], kind: str, pos: int, at: int) -> list[Row]:
    out = list(rows)
    pos %= len(out)
    rec, tag = out[pos]
    nxt = (pos + 1) % len(out)
    if kind == "record":
        out[pos] = (_flip(rec, at), tag)
    elif kind == "tag":
        out[pos] = (rec, _flip(tag, at))
    elif kind == "tag-shift" and nxt > pos:  # the joined tags stay the same: each tag's length must be checked
        out[pos], out[nxt] = (rec, tag[:-1]), (out[nxt][0], tag[-1:] + out[nxt][1])
    elif kind == "delete":
        del out[pos]
    elif kind == "swap" and nxt > pos:
        out[pos], out[nxt] = out[nxt], out[pos]
    elif kind == "duplicate":
        out.insert(pos, out[pos])
    elif kind == "truncate":
        out[pos] = (rec[: at % max(len(rec), 1)], tag)
    elif kind == "tail":  # keep the tail bytes, change the body: only the tag can tell
        out[pos] = (rec[:20] + b"X" + rec[21:], tag)
    return out


KINDS = ("record", "tag", "tag-shift", "delete", "swap", "duplicate", "truncate", "tail")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(KINDS), st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=3
    ),
    block=st.sampled_from([SMALL_BLOCK, 5, 2048]),
)
def test_tampering_is_found_exactly_where_an_entry_by_entry_check_finds_it(
    mixed: Mixed, mutations: list[tuple[str, int, int]], block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scan_module, "BLOCK", block)
    rows = mixed.rows
    for kind, pos, at in mutations:
        rows = _mutate(rows, kind, pos, at)
    _assert_same(rows, _keys(mixed))


def test_a_tag_split_across_two_entries_is_found(mixed: Mixed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "BLOCK", SMALL_BLOCK)
    rows = _mutate(mixed.rows, "tag-shift", 300, 0)
    assert b"".join(t for _, t in rows) == b"".join(t for _, t in mixed.rows)
    got = _assert_same(rows, _keys(mixed))
    assert got.bad == 300


@pytest.mark.parametrize("block", [SMALL_BLOCK, 1])
def test_the_first_entry_cannot_open_epoch_one(mixed: Mixed, block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sealed with the right key of epoch 1 and chained correctly, a first entry claiming epoch 1 is still bad."""
    monkeypatch.setattr(scan_module, "BLOCK", block)
    k = mixed.key
    rec = rewrite(mixed.rows[0][0], epoch=1)
    rows = [(rec, reseal(rec, EpochKeys(k.initial_key, k.log_id, k.kdf).key(1), k.log_id, 1)), *mixed.rows[1:]]
    assert _assert_same(rows, _keys(mixed)).bad == 0


def _until_damage(rows: list[Row], n: int) -> Iterator[Row]:
    yield from rows[:n]
    raise sqlite3.DatabaseError("database disk image is malformed")


def test_damaged_storage_keeps_what_was_read_before_it(mixed: Mixed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "BLOCK", SMALL_BLOCK)
    keys = _keys(mixed)
    got = scan(_until_damage(mixed.rows, 300), keys, Scan())
    assert got.damaged == "database disk image is malformed"
    assert got.bad is None
    assert got.seq == 300
    assert got.hashes == _reference(mixed.rows[:300], keys)[0]


def test_a_bad_entry_before_the_damage_is_reported_as_bad(mixed: Mixed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scan_module, "BLOCK", SMALL_BLOCK)
    rows = _mutate(mixed.rows, "tag", 290, 3)
    got = scan(_until_damage(rows, 300), _keys(mixed), Scan())
    assert got.bad == 290
    assert got.damaged is None
    assert got.seq == 290


def test_rows_stored_as_text_or_integer_are_read_as_bytes(tmp_path: Path) -> None:
    """SQLite columns take any type: a hostile log's TEXT or INTEGER value is an edited entry, not a crash."""
    path = tmp_path / "typed.db"
    res = init_log(path)
    with open_log(path) as log:
        for i in range(5):
            log.append(AuditEvent(type="config.change", outcome="info", data={"i": i}))
    raw = RawLog(path)
    _, rec, _ = raw.rows()[3]
    raw.db.execute("UPDATE entries SET record = ? WHERE pos = 3", (rec.decode(),))
    assert verify_log(path, res.verification_key).ok  # the same bytes, stored as TEXT
    raw.db.execute("UPDATE entries SET record = ?, tag = 7 WHERE pos = 3", (rec,))
    report = verify_log(path, res.verification_key)
    raw.close()
    assert not report.ok
    assert report.classification == V.EDITED
    assert report.first_bad_seq == 3
