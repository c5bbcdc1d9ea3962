"""Export bundles and offline verification; read-only views (show, prove)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from medfw.audit import AuditEvent, export_bundle, init_log, open_log, verify_bundle
from medfw.audit.keys import generate_checkpoint_key, public_pem
from medfw.audit.merkle import verify_consistency, verify_inclusion
from medfw.audit.query import list_entries, prove
from medfw.errors import AuditError


@pytest.fixture
def log(tmp_path: Path) -> tuple[Path, object]:
    path = tmp_path / "b.db"
    res = init_log(path, log_id="bundle-log")
    t = [datetime(2026, 3, 1, tzinfo=UTC)]

    def clock() -> datetime:
        t[0] += timedelta(hours=1)
        return t[0]

    with open_log(path, clock=clock) as lg:
        for i in range(30):
            lg.append(AuditEvent(type="ota.install" if i % 3 else "boot.verify", outcome="success", data={"i": i}))
    return path, res


def test_export_and_verify_bundle(log: tuple[Path, object], tmp_path: Path) -> None:
    path, res = log
    out = tmp_path / "bundle.json"
    doc = export_bundle(path, out, seqs=[0, 5, 29])
    assert [e["seq"] for e in doc["entries"]] == [0, 5, 29]
    data = out.read_bytes()
    vk = res.verification_key  # type: ignore[attr-defined]
    good = verify_bundle(data, key=vk)
    assert good.ok, good
    assert good.hmac_checked
    assert good.key_pinned
    assert verify_bundle(data, public_key_pem=vk.checkpoint_public_key_pem).ok
    unpinned = verify_bundle(data)
    assert unpinned.ok
    assert not unpinned.key_pinned
    assert len(export_bundle(path)["entries"]) == doc["checkpoint"]["checkpoint"]["size"] + 1


def _mut(doc: dict, fn) -> dict:  # type: ignore[no-untyped-def,type-arg]
    d = json.loads(json.dumps(doc))
    fn(d)
    return d


def test_tampered_bundles_fail(log: tuple[Path, object]) -> None:
    path, res = log
    vk = res.verification_key  # type: ignore[attr-defined]
    doc = export_bundle(path, seqs=[3, 4])
    cases = {
        "record": lambda d: d["entries"][0].__setitem__("record", d["entries"][0]["record"].replace('"i":2', '"i":7')),
        "proof": lambda d: d["entries"][1]["proof"].__setitem__(0, "00" * 32),
        "seq": lambda d: d["entries"][0].__setitem__("seq", 4),
        "tag": lambda d: d["entries"][0].__setitem__("tag", "11" * 32),
        "root": lambda d: d["checkpoint"]["checkpoint"].__setitem__("root", "22" * 32),
        "size": lambda d: d["checkpoint"]["checkpoint"].update(size=10, last_seq=9),
    }
    for name, fn in cases.items():
        report = verify_bundle(_mut(doc, fn), key=vk)
        assert not report.ok, name
    other = public_pem(generate_checkpoint_key().public_key())
    assert not verify_bundle(doc, public_key_pem=other).ok


def test_garbage_bundles_are_bad_input(log: tuple[Path, object]) -> None:
    path, _res = log
    doc = export_bundle(path, seqs=[1])
    for bad in (b"not json", b"{}", json.dumps({**doc, "entries": "x"}).encode()):
        with pytest.raises(AuditError):
            verify_bundle(bad)
    with pytest.raises(AuditError, match="malformed"):
        verify_bundle(_mut(doc, lambda d: d["entries"][0].__setitem__("proof", ["zz"])))
    with pytest.raises(AuditError, match="not in the log"):
        export_bundle(path, seqs=[10_000])
    other = init_log(path.parent / "o.db", log_id="other")
    with pytest.raises(AuditError, match="key is for"):
        verify_bundle(doc, key=other.verification_key)


def test_show_filters(log: tuple[Path, object]) -> None:
    path, _ = log
    entries = list_entries(path)
    assert [e.seq for e in entries] == list(range(len(entries)))
    boots = list_entries(path, type_="boot.verify")
    assert len(boots) == 10
    since = list_entries(path, since=datetime(2026, 3, 2, tzinfo=UTC))
    assert since
    assert all(e.ts >= "2026-03-02" for e in since)
    assert len(since) < len(entries)


def test_prove_inclusion_and_consistency(log: tuple[Path, object]) -> None:
    path, _ = log
    p = prove(path, 7, size=20, from_size=9)
    verify_inclusion(7, 20, p.leaf_hash, p.inclusion, p.root)
    assert p.consistency is not None
    assert p.from_root is not None
    verify_consistency(9, 20, p.consistency, p.from_root, p.root)
    full = prove(path, 0)
    assert full.size == len(list_entries(path))
    with pytest.raises(AuditError):
        prove(path, 20, size=20)
    with pytest.raises(AuditError):
        prove(path, 0, size=10_000)
    with pytest.raises(AuditError):
        prove(path, 0, size=5, from_size=6)
