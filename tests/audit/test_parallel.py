"""The fast verifier at its edges: parts scanned in other processes, epochs changing at part boundaries, tampering at
either side of a boundary, and the pieces it is built from (tail parsing, shared tree levels, the key-file check)."""

from __future__ import annotations

import itertools
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, SignedCheckpoint, VerificationKey, init_log, open_log, verify_log
from medfw.audit import report as V  # noqa: N812
from medfw.audit import verify as verify_module
from medfw.audit.keys import check_public_pem, public_pem
from medfw.audit.merkle import FlatLevel, MerkleTree
from medfw.audit.parallel import MAX_CHUNKS, MIN_BITS, ParallelScan, chunk_bits, chunks
from medfw.audit.record import encode_record, entry_hash, parse_record
from medfw.audit.scan import Scan, tail_fields
from medfw.errors import AuditError

from .helpers import RawLog, reseal

EDGE = 1 << MIN_BITS  # where the first chunk ends for these sizes (see chunks)
N = EDGE + 900


@dataclass(frozen=True)
class Log:
    path: Path
    key: VerificationKey
    checkpoint: SignedCheckpoint


def _build(d: Path, epoch_length: int) -> Log:
    path = d / "log.db"
    res = init_log(path, log_id=f"edge-{epoch_length}", epoch_length=epoch_length, checkpoint_interval=1500)
    with open_log(path) as log, log.batch():
        for i in range(N):
            log.append(AuditEvent(type="boot.verify", outcome="success", data={"i": i}))
    with open_log(path) as log:
        cp = log.checkpoint()
    return Log(path, res.verification_key, cp)


@pytest.fixture(scope="module")
def per_entry(tmp_path_factory: pytest.TempPathFactory) -> Log:
    """A new epoch at every entry, as a log of one-event sessions has: an epoch starts exactly at the boundary."""
    return _build(tmp_path_factory.mktemp("per-entry"), 1)


@pytest.fixture(scope="module")
def long_epochs(tmp_path_factory: pytest.TempPathFactory) -> Log:
    """One epoch spans the boundary."""
    return _build(tmp_path_factory.mktemp("long"), 10_000)


@pytest.fixture(autouse=True)
def _small_parallel_min(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify_module, "_PARALLEL_MIN", 0)


def _epochs_at_edge(log: Log) -> tuple[int, int]:
    raw = RawLog(log.path)
    rows = raw.rows()
    raw.close()
    return parse_record(rows[EDGE - 1][1]).epoch, parse_record(rows[EDGE][1]).epoch


def _record_joins(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Whether each parallel scan joined cleanly (True) or fell back to the sequential scan (False)."""
    joined: list[bool] = []
    real = ParallelScan.join

    def join(self: ParallelScan) -> Scan | None:
        result = real(self)
        joined.append(result is not None)
        return result

    monkeypatch.setattr(ParallelScan, "join", join)
    return joined


def test_epoch_boundary_on_the_part_boundary(per_entry: Log, long_epochs: Log, monkeypatch: pytest.MonkeyPatch) -> None:
    joined = _record_joins(monkeypatch)
    before, after = _epochs_at_edge(per_entry)
    assert after == before + 1
    before, after = _epochs_at_edge(long_epochs)
    assert after == before
    for log in (per_entry, long_epochs):
        seq = verify_log(log.path, log.key, checkpoint=log.checkpoint)
        assert seq.ok, seq
        for workers in (2, 3):
            assert verify_log(log.path, log.key, checkpoint=log.checkpoint, workers=workers) == seq
    assert joined == [True] * 4  # the parts really were scanned apart and joined, not rescanned


@pytest.mark.parametrize("pos", [EDGE - 1, EDGE, EDGE + 1])
@pytest.mark.parametrize("change", ["edit", "delete", "reseal-next-epoch"])
def test_tampering_at_the_boundary_is_found_as_sequentially(
    per_entry: Log, long_epochs: Log, tmp_path: Path, pos: int, change: str
) -> None:
    for log in (per_entry, long_epochs):
        path = tmp_path / f"{log.key.log_id}.db"
        shutil.copyfile(log.path, path)
        raw = RawLog(path)
        _, rec, tag = raw.rows()[pos]
        if change == "edit":
            raw.set_row(pos, rec.replace(b'"i":', b'"j":'), tag)
        elif change == "delete":
            raw.delete(pos)
        else:  # a well-formed record claiming a later epoch, sealed with that epoch's key
            r = parse_record(rec)
            forged = encode_record(r.body, seq=r.seq, epoch=r.epoch + 2, prev=r.prev)
            k = log.key.initial_key
            raw.set_row(
                pos, forged, reseal(forged, _key_of(k, log.key.log_id, r.epoch + 2), log.key.log_id, r.epoch + 2)
            )
        raw.close()
        seq = verify_log(path, log.key)
        assert not seq.ok and seq.first_bad_seq == pos, seq
        assert verify_log(path, log.key, workers=2) == seq


def _key_of(initial: bytes, log_id: str, epoch: int) -> bytes:
    from medfw.audit.keys import EpochKeys

    return EpochKeys(initial, log_id).key(epoch)


def test_a_part_that_does_not_join_its_predecessor_falls_back(per_entry: Log, tmp_path: Path) -> None:
    """One entry removed and the rest moved down: the second part is consistent on its own, but does not join."""
    path = tmp_path / "swap.db"
    shutil.copyfile(per_entry.path, path)
    raw = RawLog(path)
    rows = raw.rows()
    raw.delete_from(EDGE)
    for pos, rec, tag in rows[EDGE + 1 :]:  # the second part now starts with seq EDGE + 1, at position EDGE
        raw.insert(pos - 1, rec, tag)
    raw.close()
    seq = verify_log(path, per_entry.key)
    assert not seq.ok and seq.first_bad_seq == EDGE and seq.classification == V.DELETED, seq
    assert verify_log(path, per_entry.key, workers=2) == seq


def test_chunks_are_aligned_and_cover_everything() -> None:
    for top in (1, EDGE - 1, EDGE, EDGE + 1, 3 * EDGE + 5, 100_225, MAX_CHUNKS * EDGE + 1, 10**9 + 7):
        parts = chunks(top)
        unit = 1 << chunk_bits(top)
        assert parts[0][0] == 0 and parts[-1][1] == top
        assert all(a[1] == b[0] for a, b in itertools.pairwise(parts))
        assert all(lo % unit == 0 and hi - lo <= unit for lo, hi in parts)
        assert len(parts) <= MAX_CHUNKS
    assert chunk_bits(100_225) == MIN_BITS


def _record_work(monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    """Every process (the children too: they are forked after this) appends the chunks it scans and the ratchet
    steps it walks to ``out``, one line each (small appends: atomic)."""
    from medfw.audit.keys import EpochKeys

    real_walk, real_scan = EpochKeys.walk, ParallelScan._scan_chunk

    def note(line: str) -> None:
        with out.open("a") as f:
            f.write(f"{line}\n")

    def walk(self: EpochKeys, epoch: int, key: bytes, target: int) -> bytes:
        note(f"walk {target - epoch}")
        return real_walk(self, epoch, key, target)

    def scan_chunk(self: ParallelScan, store: object, i: int, pos: object) -> bool:
        note(f"chunk {i}")
        return real_scan(self, store, i, pos)  # type: ignore[arg-type]

    monkeypatch.setattr(EpochKeys, "walk", walk)
    monkeypatch.setattr(ParallelScan, "_scan_chunk", scan_chunk)


def _recorded(out: Path) -> tuple[list[int], int]:
    lines = [line.split() for line in out.read_text().splitlines()]
    out.unlink()
    return sorted(int(n) for kind, n in lines if kind == "chunk"), sum(int(n) for kind, n in lines if kind == "walk")


@pytest.mark.parametrize("workers", [2, 3])
def test_workers_share_the_chunks_and_walk_the_chain_about_once(
    per_entry: Log, long_epochs: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workers: int
) -> None:
    """Every chunk is scanned exactly once, by whichever process is free; the ratchet is walked by each child to
    where its segment starts (publishing the keys it passes) and by a worker taking chunks from the back of a
    segment nobody walked, never by every worker across all the others' chunks."""
    from medfw.audit import parallel as P  # noqa: N812

    monkeypatch.setattr(P, "MIN_BITS", 8)  # 12 chunks of 256 entries
    out = tmp_path / "work.txt"
    _record_work(monkeypatch, out)
    for log in (per_entry, long_epochs):
        seq = verify_log(log.path, log.key, checkpoint=log.checkpoint)
        out.unlink(missing_ok=True)
        assert verify_log(log.path, log.key, checkpoint=log.checkpoint, workers=workers) == seq
        scanned, walked = _recorded(out)
        assert scanned == list(range(len(P.chunks(N))))
        if log is per_entry:  # an epoch per entry: each child walks to its segment, a thief at most over one more
            assert walked < (workers - 1) * N  # what walking across every other worker's chunks would take
        else:  # three long epochs in all
            assert walked <= 2 * workers


def test_a_segment_whose_worker_never_started_is_scanned_by_the_others(
    per_entry: Log, long_epochs: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fork that fails (a process limit) leaves a segment without its own worker: the others take its chunks."""
    import os

    from medfw.audit import parallel as P  # noqa: N812

    monkeypatch.setattr(P, "MIN_BITS", 8)
    forks: list[int] = []
    real_fork = os.fork

    def fork_once() -> int:
        forks.append(1)
        if len(forks) > 1:
            raise OSError(11, "Resource temporarily unavailable")
        return real_fork()

    joined = _record_joins(monkeypatch)
    monkeypatch.setattr(os, "fork", fork_once)
    for log in (per_entry, long_epochs):
        seq = verify_log(log.path, log.key, checkpoint=log.checkpoint)
        forks.clear()
        assert verify_log(log.path, log.key, checkpoint=log.checkpoint, workers=3) == seq
        assert len(forks) == 2  # one child started, the second fork failed
    assert joined == [True, True]


def test_a_failed_chunk_stops_the_other_workers(
    per_entry: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medfw.audit import parallel as P  # noqa: N812

    monkeypatch.setattr(P, "MIN_BITS", 8)
    path = tmp_path / "edited.db"
    shutil.copyfile(per_entry.path, path)
    raw = RawLog(path)
    _, rec, tag = raw.rows()[300]
    raw.set_row(300, rec.replace(b'"i":', b'"j":'), tag)
    raw.close()
    scanned: list[int] = []
    real = ParallelScan._scan_chunk

    def scan_chunk(self: ParallelScan, store: object, i: int, pos: object) -> bool:
        scanned.append(i)
        return real(self, store, i, pos)  # type: ignore[arg-type]

    monkeypatch.setattr(ParallelScan, "_scan_chunk", scan_chunk)
    report = verify_log(path, per_entry.key, workers=2)
    assert not report.ok and report.first_bad_seq == 300
    # the child failed chunk 1 (entries 256..511) first or the parent did: either way the parent stopped early
    assert len(scanned) < len(P.chunks(N))


def test_tail_fields() -> None:
    rec = encode_record({"type": "x", "nested": {"epoch": 9, "seq": 3}}, seq=12, epoch=7, prev="ab" * 32)
    assert tail_fields(rec) == (7, b"ab" * 32, 12)
    assert tail_fields(rec[:-1]) is None
    assert tail_fields(rec.replace(b'"seq":12}', b'"seq":012}')) is None
    assert tail_fields(b'{"body":{},"epoch":-1,"prev":"' + b"0" * 64 + b'","seq":0}') is None


def test_flat_levels_give_the_same_tree() -> None:
    leaves = [entry_hash(i.to_bytes(4, "big")) for i in range(1000)]
    tree = MerkleTree(leaves)
    view = memoryview(b"".join(leaves))
    level = FlatLevel(view, 0, len(leaves))
    assert len(level) == 1000 and level[-1] == leaves[-1] and level[3:6] == leaves[3:6]
    with pytest.raises(IndexError):
        level[1000]
    flat = MerkleTree.from_levels([level])
    assert [flat.root(n) for n in (1, 7, 512, 999, 1000)] == [tree.root(n) for n in (1, 7, 512, 999, 1000)]


def test_key_file_public_key_check() -> None:
    from medfw.audit.ckeys import generate_checkpoint_key

    for kind in ("ed25519", "ecdsa-p256"):
        pem = public_pem(generate_checkpoint_key(kind).public_key())
        assert check_public_pem(pem, path="k") == pem
        assert check_public_pem(pem.replace(b"\n", b"\r\n")) is not None
    rsa_like = b"-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n-----END PUBLIC KEY-----\n"
    for bad in (b"nope", rsa_like, pem[:-30], b"-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----\n"):
        with pytest.raises(AuditError) as e:
            check_public_pem(bad, path="k")
        assert e.value.field == "checkpoint_public_key"


@pytest.mark.parametrize("kdf", ["sha256-ratchet", "hkdf-sha256"])
def test_epoch_keys_jump_ahead_like_the_writer(kdf: str) -> None:
    """A part starting at a late epoch derives its key in one walk; it must be the writer's key of that epoch."""
    from medfw.audit.keys import EpochKeys, mac_key, next_epoch_key

    initial = bytes(range(32))
    k = initial
    for e in range(300):
        k = next_epoch_key(k, "L", e, kdf)
    keys = EpochKeys(initial, "L", kdf)
    assert keys.mac(300) == mac_key(k, "L", 300, kdf)
    assert keys.key(300) == k
    assert EpochKeys(initial, "L", kdf).key(300) == k
    with pytest.raises(ValueError, match="no epoch"):
        keys.key(-1)


def test_a_chunk_claiming_a_far_epoch_is_not_walked_to(
    per_entry: Log, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged record at a chunk's start claiming epoch 10**17 must not make a worker walk the ratchet that far."""
    path = tmp_path / "far.db"
    shutil.copyfile(per_entry.path, path)
    raw = RawLog(path)
    _, rec, tag = raw.rows()[EDGE]
    epoch = parse_record(rec).epoch
    far = rec.replace(b',"epoch":%d,' % epoch, b',"epoch":%d,' % 10**17)  # beyond what a record can encode
    assert tail_fields(far) is not None and tail_fields(far)[0] == 10**17  # type: ignore[index]
    raw.set_row(EDGE, far, tag)
    raw.close()
    from medfw.audit.keys import EpochKeys
    from medfw.audit.parallel import _Position
    from medfw.audit.store_sqlite import SqliteStore

    def refuse(*args: object) -> bytes:
        raise AssertionError(f"walked the ratchet for a forged epoch: {args}")

    keys = EpochKeys(per_entry.key.initial_key, per_entry.key.log_id)
    monkeypatch.setattr(keys, "key", refuse)
    monkeypatch.setattr(keys, "walk", refuse)
    store = SqliteStore(str(path))
    try:  # the chunk that starts with the forged record, scanned here (in a worker it would hang, not fail)
        run = ParallelScan(store, keys, store.max_pos() + 1)
        assert run._scan_chunk(store, 1, _Position()) is False
    finally:
        store.close()
    seq = verify_log(path, per_entry.key)
    assert not seq.ok and seq.first_bad_seq == EDGE, seq
    assert verify_log(path, per_entry.key, workers=2) == seq
