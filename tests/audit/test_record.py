"""Canonical records: JCS encoding, the strict parser and the chain-tail equivalence the verifier relies on."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.audit.record import GENESIS_PREV, RECORD_PREFIX, chain_suffix, encode_record, parse_record
from medfw.errors import AuditError

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
bodies = st.dictionaries(st.text(max_size=10), json_values, max_size=6)


@settings(max_examples=150, deadline=None)
@given(body=bodies, seq=st.integers(0, 2**40), epoch=st.integers(0, 2**20), prev=st.binary(min_size=32, max_size=32))
def test_tail_equivalence(body: dict[str, Any], seq: int, epoch: int, prev: bytes) -> None:
    """Every encoded record starts with the prefix and ends with exactly its own chain tail, and parses back."""
    raw = encode_record(body, seq=seq, epoch=epoch, prev=prev.hex())
    assert raw.startswith(RECORD_PREFIX)
    assert raw.endswith(chain_suffix(epoch, prev.hex().encode(), seq))
    assert not raw.endswith(chain_suffix(epoch + 1, prev.hex().encode(), seq))
    assert not raw.endswith(chain_suffix(epoch, prev.hex().encode(), seq + 1))
    r = parse_record(raw)
    assert (r.seq, r.epoch, r.prev, dict(r.body)) == (seq, epoch, prev.hex(), body)


def test_nested_chain_names_do_not_confuse_the_tail() -> None:
    body = {"data": {"epoch": 5, "prev": "ff" * 32, "seq": 9}, "z": '","seq":9}'}
    raw = encode_record(body, seq=1, epoch=0, prev=GENESIS_PREV)
    assert raw.endswith(chain_suffix(0, GENESIS_PREV.encode(), 1))
    assert not raw.endswith(chain_suffix(5, b"ff" * 32, 9))


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_parser_rejects_garbage_cleanly(data: bytes) -> None:
    with contextlib.suppress(AuditError):
        parse_record(data)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"body":{},"epoch":0,"prev":"' + b"0" * 64 + b'","seq":0,"x":1}',
        b'{"body":{},"epoch":0,"prev":"' + b"0" * 64 + b'","seq":-1}',
        b'{"body":{},"epoch":true,"prev":"' + b"0" * 64 + b'","seq":0}',
        b'{"body":[],"epoch":0,"prev":"' + b"0" * 64 + b'","seq":0}',
        b'{"body":{},"epoch":0,"prev":"' + b"A" * 64 + b'","seq":0}',
        b'{"epoch":0,"body":{},"prev":"' + b"0" * 64 + b'","seq":0}',
        b'{"body":{"a":1,"a":2},"epoch":0,"prev":"' + b"0" * 64 + b'","seq":0}',
        b'{"body":{}, "epoch":0,"prev":"' + b"0" * 64 + b'","seq":0}',
        b"[]",
        b"\xff\xfe",
    ],
)
def test_parser_rejects_non_canonical_or_malformed(raw: bytes) -> None:
    with pytest.raises(AuditError):
        parse_record(raw)


def test_encode_rejects_what_json_cannot_carry() -> None:
    for bad in ({"x": float("nan")}, {"x": 2**60}, {"x": b"bytes"}, {1: "k"}):
        with pytest.raises(AuditError):
            encode_record(bad, seq=0, epoch=0, prev=GENESIS_PREV)


def test_jcs_matches_rfc8785_package() -> None:
    body = {"b": "é", "a": [1, 2.5, None], "c": {"y": 1, "x": 2}}
    raw = encode_record(body, seq=3, epoch=1, prev=GENESIS_PREV)
    assert raw == rfc8785.dumps(json.loads(raw))


def test_event_type_and_outcome_are_validated_where_the_event_is_created() -> None:
    import pytest

    from medfw.audit.sink import AuditEvent
    from medfw.audit.vocabulary import OUTCOMES, Outcome
    from medfw.errors import AuditError

    assert AuditEvent(type="boot.verify", outcome=Outcome.SUCCESS).outcome == "success"
    assert set(OUTCOMES) == {"success", "failure", "denied", "info"}
    with pytest.raises(AuditError, match="event type"):
        AuditEvent(type="boot.hacked", outcome="success")
    with pytest.raises(AuditError, match="outcome"):
        AuditEvent(type="boot.verify", outcome="maybe")
