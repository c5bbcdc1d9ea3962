"""Mutation tests on a log of 10,000+ entries: every kind of tampering is detected and classified."""

from __future__ import annotations

import hashlib
import hmac
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.audit import AuditEvent, SignedCheckpoint, VerificationKey, init_log, open_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit import verify as verify_module
from medfw.audit.keys import next_epoch_key
from medfw.audit.record import GENESIS_PREV, encode_record, entry_hash, parse_record
from medfw.errors import AuditError

from .helpers import RawLog, reseal, rewrite

N_EVENTS = 10_000
TYPES = ["boot.verify", "ota.install", "ota.confirm", "config.change", "vuln.decision", "release.sign"]


@dataclass(frozen=True)
class Big:
    path: Path
    key: VerificationKey
    checkpoint: SignedCheckpoint
    size: int


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Big:
    d = tmp_path_factory.mktemp("biglog")
    path = d / "big.db"
    result = init_log(path, log_id="big-log", epoch_length=100, checkpoint_interval=2500, host_id="dev-1")
    rng = random.Random(1)
    with open_log(path, boot_id="boot-a") as log:
        with log.batch():
            for i in range(N_EVENTS):
                log.append(
                    AuditEvent(
                        type=TYPES[i % len(TYPES)],
                        outcome=rng.choice(["success", "failure", "denied"]),
                        reason=rng.choice([None, "bad_signature", "rollback"]),
                        actor=rng.choice(["bootloader", "agent", "user:alice"]),
                        objects={"image_sha256": hashlib.sha256(i.to_bytes(4, "big")).hexdigest()},
                        data={"i": i, "note": "ünïcode ✓", "nested": {"seq": 3, "epoch": 9}},
                    )
                )
        cp = log.checkpoint("request")
    size = cp.checkpoint.size
    assert size >= N_EVENTS
    return Big(path=path, key=result.verification_key, checkpoint=cp, size=size)


@pytest.fixture
def copy(big: Big, tmp_path: Path) -> tuple[Path, RawLog]:
    p = tmp_path / "copy.db"
    shutil.copyfile(big.path, p)
    raw = RawLog(p)
    yield p, raw
    raw.close()


def _check(report: V.VerifyReport, cls: str, seq: int | None) -> None:
    assert not report.ok, report
    assert report.classification == cls, report
    assert report.first_bad_seq == seq, report


def test_intact_with_checkpoint(big: Big) -> None:
    report = verify_log(big.path, big.key, checkpoint=big.checkpoint)
    assert report.ok, report
    assert report.verified == big.size
    assert report.root == big.checkpoint.checkpoint.root.hex()
    assert report.stored_checkpoints >= 4


FIELDS = ["type", "outcome", "reason", "actor", "objects", "data", "ts", "mono_ns", "boot_id", "boot_n", "host"]
FIELDS += ["v", "seq", "epoch", "prev"]


@pytest.mark.parametrize("field", FIELDS)
def test_edit_any_field(big: Big, copy: tuple[Path, RawLog], field: str) -> None:
    path, raw = copy
    rng = random.Random(field)
    i = rng.randrange(1, big.size - 1)
    _, rec, tag = raw.rows()[i]
    values = {
        "type": "key.revoke",
        "outcome": "info",
        "reason": "edited",
        "actor": "mallory",
        "objects": {"image_sha256": "00" * 32},
        "data": {"i": -1},
        "ts": "2020-01-01T00:00:00.000000Z",
        "mono_ns": "1",
        "boot_id": "other",
        "boot_n": 99,
        "host": "dev-2",
        "v": 2,
        "seq": i + 1,
        "epoch": 0,
        "prev": "ab" * 32,
    }
    raw.set_row(i, rewrite(rec, **{field: values[field]}), tag)
    _check(verify_log(path, big.key), V.EDITED, i)


def test_edit_raw_byte_and_tag(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    _, rec, tag = rows[5000]
    raw.set_row(5000, rec[:40] + bytes([rec[40] ^ 1]) + rec[41:], tag)
    _check(verify_log(path, big.key), V.EDITED, 5000)
    raw.set_row(5000, rec, tag)
    _, rec, tag = rows[7001]
    raw.set_row(7001, rec, bytes([tag[0] ^ 0x80]) + tag[1:])
    _check(verify_log(path, big.key), V.EDITED, 7001)


def test_delete_one(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    raw.delete(4321)
    _check(verify_log(path, big.key), V.DELETED, 4321)


def test_swap_two(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    a, b = 1234, 8765
    raw.set_row(a, rows[b][1], rows[b][2])
    raw.set_row(b, rows[a][1], rows[a][2])
    _check(verify_log(path, big.key), V.REORDERED, a)


def test_swap_adjacent(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    raw.set_row(600, rows[601][1], rows[601][2])
    raw.set_row(601, rows[600][1], rows[600][2])
    _check(verify_log(path, big.key), V.REORDERED, 600)


def test_insert_forged(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    i = 3333
    prev = entry_hash(rows[i - 1][1]).hex()
    forged = rewrite(rows[i][1], type="ota.confirm", prev=prev, seq=i)
    raw.shift_from(i)
    raw.insert(i, forged, hashlib.sha256(b"guess").digest())
    _check(verify_log(path, big.key), V.INSERTED, i)


def test_insert_forged_with_stolen_current_key(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    st = raw.state()
    i = 2000
    prev = entry_hash(rows[i - 1][1]).hex()
    forged = rewrite(rows[i][1], type="ota.confirm", prev=prev, seq=i, epoch=st["epoch"])
    raw.shift_from(i)
    raw.insert(i, forged, reseal(forged, bytes.fromhex(st["key"]), raw.log_id(), st["epoch"]))
    _check(verify_log(path, big.key), V.INSERTED, i)


def test_duplicate_one(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    i = 9000
    raw.shift_from(i + 1)
    raw.insert(i + 1, rows[i][1], rows[i][2])
    _check(verify_log(path, big.key), V.DUPLICATE, i + 1)


def test_truncate_tail_with_earlier_checkpoint(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    k = big.size - 700
    raw.delete_from(k)
    raw.drop_checkpoints()
    raw.rewind_state(k)
    _check(verify_log(path, big.key, checkpoint=big.checkpoint), V.TRUNCATED, k)
    # Without an anchor, a careful truncation is invisible: that is why checkpoints leave the device.
    assert verify_log(path, big.key).ok


def test_truncate_tail_carelessly(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    raw.delete_from(big.size - 3)
    _check(verify_log(path, big.key), V.TRUNCATED, big.size - 3)


def test_truncate_then_reappend(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    k = 5000
    raw.delete_from(k)
    raw.drop_checkpoints()
    raw.rewind_state(k)
    with open_log(path) as log:
        for _ in range(3):
            log.append(AuditEvent(type="ota.install", outcome="success"))
    _check(verify_log(path, big.key, checkpoint=big.checkpoint), V.TRUNCATED, k)
    _check(verify_log(path, big.key), V.WRONG_EPOCH_KEY, k)


@pytest.mark.parametrize("relabel", [False, True], ids=["keep-epochs", "relabel-epochs"])
def test_reseal_history_with_later_epoch_key(big: Big, copy: tuple[Path, RawLog], relabel: bool) -> None:
    path, raw = copy
    rows = raw.rows()
    st = raw.state()
    key, epoch, log_id = bytes.fromhex(st["key"]), st["epoch"], raw.log_id()
    i = big.size - 500
    prev = entry_hash(rows[i - 1][1]).hex()
    for j in range(i, len(rows)):
        changes: dict[str, object] = {"prev": prev}
        if j == i:
            changes["outcome"] = "success"
            changes["reason"] = "history rewritten"
        if relabel:
            changes["epoch"] = epoch
        rec = rewrite(rows[j][1], **changes)
        raw.set_row(j, rec, reseal(rec, key, log_id, epoch))
        prev = entry_hash(rec).hex()
    _check(verify_log(path, big.key), V.WRONG_EPOCH_KEY, i)


def test_reset_counter(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    st = raw.state()
    n = st["next_seq"]
    st["next_seq"] = 0
    st["compact"] = []
    raw.set_state(st)
    # Our writer refuses to reuse a position...
    with open_log(path) as log, pytest.raises(AuditError, match="counter reset"):
        log.append(AuditEvent(type="boot.verify", outcome="success"))
    # ... so the attacker (holding the current key) writes the reset-counter entry by hand.
    rows = raw.rows()
    st = raw.state()
    rec = rewrite(rows[-1][1], seq=0, epoch=st["epoch"], prev=entry_hash(rows[-1][1]).hex())
    raw.insert(n, rec, reseal(rec, bytes.fromhex(st["key"]), raw.log_id(), st["epoch"]))
    _check(verify_log(path, big.key), V.COUNTER_RESET, n)


def test_bad_checkpoint_signature(big: Big) -> None:
    doc = big.checkpoint.to_dict()
    sig = bytearray(big.checkpoint.signature)
    sig[3] ^= 1
    bad = big.checkpoint._replace(signature=bytes(sig))
    report = verify_log(big.path, big.key, checkpoint=bad)
    _check(report, V.BAD_CHECKPOINT_SIGNATURE, None)
    moved = big.checkpoint._replace(checkpoint=big.checkpoint.checkpoint._replace(root=b"\x00" * 32))
    _check(verify_log(big.path, big.key, checkpoint=moved), V.BAD_CHECKPOINT_SIGNATURE, None)
    assert doc["checkpoint"]["size"] == big.size


def test_checkpoint_of_another_log_is_bad_input(big: Big, tmp_path: Path) -> None:
    other = init_log(tmp_path / "o.db", log_id="other")
    with open_log(tmp_path / "o.db") as log:
        cp = log.checkpoint()
    with pytest.raises(AuditError, match=r"another|belongs"):
        verify_log(big.path, big.key, checkpoint=cp)
    with pytest.raises(AuditError, match="belongs"):
        verify_log(big.path, other.verification_key)


def test_wrong_key(big: Big) -> None:
    wrong = big.key._replace(initial_key=next_epoch_key(big.key.initial_key, "big-log", 0))
    _check(verify_log(big.path, wrong), V.WRONG_KEY, None)


def test_raw_initial_key_accepted(big: Big) -> None:
    report = verify_log(big.path, big.key.initial_key)
    assert report.ok
    assert any("not pinned" in w for w in report.warnings)


def test_fork_after_checkpoint_detected(tmp_path: Path) -> None:
    path = tmp_path / "f.db"
    res = init_log(path, log_id="fork", epoch_length=1000)
    with open_log(path) as log:
        for _ in range(5):
            log.append(AuditEvent(type="boot.verify", outcome="success"))
        log._appended_since_checkpoint = False
    stolen = tmp_path / "stolen.db"
    shutil.copyfile(path, stolen)  # an attacker snapshots the log (and its current key) here
    with open_log(path) as log:
        cp = log.checkpoint("pre-update")
    shutil.copyfile(stolen, path)  # ... and later rolls the device back to the snapshot and rewrites
    with open_log(path) as log:
        for _ in range(3):
            log.append(AuditEvent(type="ota.install", outcome="failure"))
    assert verify_log(path, res.verification_key).ok
    report = verify_log(path, res.verification_key, checkpoint=cp)
    assert not report.ok
    assert report.classification == V.FORKED


def test_entries_counts_every_stored_row(big: Big, copy: tuple[Path, RawLog]) -> None:
    """``entries`` is the number of stored rows, also when the scan counted them instead of ``count(*)``."""
    path, raw = copy
    rows = raw.rows()
    assert verify_log(path, big.key).entries == len(rows)
    _, rec, tag = rows[5]
    raw.insert(-1, rec, tag)  # a row outside the positions the scan reads
    report = verify_log(path, big.key)
    assert report.entries == len(rows) + 1
    assert report.verified == len(rows)


def test_torn_last_write_is_not_tampering(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    rows = raw.rows()
    _, rec, tag = rows[-1]
    raw.insert(rows[-1][0] + 1, rec[: len(rec) // 2], tag[:7])
    report = verify_log(path, big.key, checkpoint=big.checkpoint)
    assert report.ok, report
    assert report.torn_tail
    assert report.verified == big.size
    assert report.entries == big.size + 1


def test_torn_looking_entry_in_the_middle_is_tampering(big: Big, copy: tuple[Path, RawLog]) -> None:
    path, raw = copy
    _, rec, tag = raw.rows()[100]
    raw.set_row(100, rec[:50], tag[:3])
    _check(verify_log(path, big.key), V.EDITED, 100)


def test_damaged_file(big: Big, tmp_path: Path) -> None:
    p = tmp_path / "damaged.db"
    data = big.path.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    try:
        report = verify_log(p, big.key)
    except AuditError:
        return
    assert not report.ok
    assert report.classification == V.STORAGE_DAMAGED


def test_not_a_log(tmp_path: Path, big: Big) -> None:
    p = tmp_path / "x.db"
    p.write_bytes(b"hello, not a database" * 100)
    with pytest.raises(AuditError, match="not a medfw audit log"):
        verify_log(p, big.key)
    with pytest.raises(AuditError, match="not found"):
        verify_log(tmp_path / "missing.db", big.key)


def test_parallel_scan_matches_sequential(big: Big, copy: tuple[Path, RawLog], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "_PARALLEL_MIN", 0)
    seq = verify_log(big.path, big.key, checkpoint=big.checkpoint)
    par = verify_log(big.path, big.key, checkpoint=big.checkpoint, workers=3)
    assert par == seq
    assert par.ok
    path, raw = copy
    raw.delete(6000)
    _check(verify_log(path, big.key, workers=2), V.DELETED, 6000)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Big:
    path = tmp_path_factory.mktemp("small") / "small.db"
    res = init_log(path, log_id="small", epoch_length=4, checkpoint_interval=16)
    with open_log(path) as log:
        for i in range(40):
            log.append(AuditEvent(type="config.change", outcome="info", data={"i": i}))
        cp = log.checkpoint()
    return Big(path=path, key=res.verification_key, checkpoint=cp, size=cp.checkpoint.size)


@pytest.mark.parametrize("workers", [1, 2])
def test_log_forged_in_epoch_minus_one_is_rejected(
    small: Big, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """No key exists for epoch -1: a whole log rewritten to claim it, tagged under an empty key, must not verify."""
    monkeypatch.setattr(verify_module, "_PARALLEL_MIN", 0)
    path = tmp_path / "forged.db"
    shutil.copyfile(small.path, path)
    raw = RawLog(path)
    prev = GENESIS_PREV
    for pos, rec, _ in raw.rows():
        r = parse_record(rec)
        forged = encode_record(r.body, seq=r.seq, epoch=-1, prev=prev)
        raw.set_row(pos, forged, hmac.digest(b"", entry_hash(forged), "sha256"))
        prev = entry_hash(forged).hex()
    raw.drop_checkpoints()
    raw.close()
    _check(verify_log(path, small.key, workers=workers), V.EDITED, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_single_byte_change_is_detected(small: Big, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.db"
        shutil.copyfile(small.path, p)
        raw = RawLog(p)
        rows = raw.rows()
        pos, rec, tag = rows[data.draw(st.integers(0, len(rows) - 1), label="row")]
        target = data.draw(st.sampled_from(["record", "tag"]), label="column")
        blob = bytearray(rec if target == "record" else tag)
        i = data.draw(st.integers(0, len(blob) - 1), label="byte")
        blob[i] ^= data.draw(st.integers(1, 255), label="xor")
        if target == "record":
            raw.set_row(pos, bytes(blob), tag)
        else:
            raw.set_row(pos, rec, bytes(blob))
        raw.close()
        report = verify_log(p, small.key, checkpoint=small.checkpoint)
    assert not report.ok
    assert report.first_bad_seq == pos
    assert report.classification in {V.EDITED, V.WRONG_EPOCH_KEY}
