"""Hostile feed input: the KEV, EPSS (gzip CSV) and OSV zip parsers either parse or raise a MedfwError that names the
source and the file (and the field where one is at fault); never another exception."""

from __future__ import annotations

import gzip
import io
import json
import zipfile
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from medfw.errors import MedfwError
from medfw.vuln.feeds.epss import parse_epss
from medfw.vuln.feeds.kev import parse_kev
from medfw.vuln.feeds.osv import parse_osv_zip

_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=12,
)


def _outcome(parse: Callable[[bytes, str], Any], raw: bytes, path: str, source: str) -> Any:
    """The parse result, or None after checking the error names the source and the file (a zip member: inside it)."""
    error: MedfwError | None = None
    try:
        return parse(raw, path)
    except MedfwError as e:
        error = e
    assert error.path is not None and error.path.startswith(path)
    assert source.lower() in error.message.lower() or error.field, error.message
    return None


# ---- KEV ------------------------------------------------------------------------------------------------------

_KEV_KEYS = ["cveID", "vendorProject", "product", "vulnerabilityName", "dateAdded", "shortDescription", "dueDate"]
_kev_entry = st.one_of(
    _json,
    st.fixed_dictionaries(
        {},
        optional={
            "cveID": st.one_of(st.just("CVE-2024-12345"), st.text(max_size=16), _json),
            "dateAdded": st.one_of(st.just("2024-01-02"), st.text(max_size=12), _json),
            "dueDate": st.one_of(st.just("2024-02-02"), st.text(max_size=12)),
            **{k: st.one_of(st.text(max_size=10), _json) for k in _KEV_KEYS[1:4] + _KEV_KEYS[5:6]},
            "knownRansomwareCampaignUse": _json,
        },
    ),
)
_kev_doc = st.fixed_dictionaries(
    {},
    optional={
        "catalogVersion": st.one_of(st.just("2024.01.02"), _json),
        "dateReleased": _json,
        "vulnerabilities": st.one_of(st.lists(_kev_entry, max_size=5), _json),
    },
)


@_FUZZ
@given(st.one_of(_kev_doc.map(lambda d: json.dumps(d).encode()), st.binary(max_size=300)), st.integers(0, 400))
def test_kev_parser_on_hostile_input(raw: bytes, cut: int) -> None:
    for data in (raw, raw[:cut]):  # whole and truncated
        cat = _outcome(parse_kev, data, "kev.json", "KEV")
        if cat is not None:
            assert all(k.startswith("CVE-") for k in cat.entries)
            assert isinstance(cat.version, str)


# ---- EPSS (gzip CSV) ------------------------------------------------------------------------------------------

_epss_row = st.one_of(
    st.tuples(st.just("CVE-2024-0001"), st.floats(), st.floats()).map(lambda t: f"{t[0]},{t[1]},{t[2]}"),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=30),
)
_epss_text = st.tuples(
    st.sampled_from(["", "#model_version:v2023.03.01,score_date:2024-01-02T00:00:00+0000\n", "#junk\n"]),
    st.sampled_from(["cve,epss,percentile\n", "cve,epss\n", ""]),
    st.lists(_epss_row, max_size=6),
).map(lambda t: (t[0] + t[1] + "\n".join(t[2])).encode())


@_FUZZ
@given(st.one_of(_epss_text, st.binary(max_size=200)), st.integers(0, 300), st.integers(0, 255), st.booleans())
def test_epss_parser_on_hostile_gzip_csv(text: bytes, cut: int, flip: int, compress: bool) -> None:
    raw = gzip.compress(text) if compress else text
    corrupt = bytearray(raw)
    if len(corrupt) > 12:
        corrupt[10 + flip % (len(corrupt) - 10)] ^= 0xFF
    for data in (raw, raw[:cut], bytes(corrupt), b"\x1f\x8b" + raw[2:]):
        scores = _outcome(parse_epss, data, "epss.csv.gz", "EPSS")
        if scores is not None:
            assert all(0.0 <= e <= 1.0 and 0.0 <= p <= 1.0 for e, p in scores.scores.values())


# ---- OSV all.zip ----------------------------------------------------------------------------------------------

_osv_record = st.one_of(
    _json,
    st.fixed_dictionaries(
        {"id": st.one_of(st.just("OSV-2024-1"), _json), "modified": st.one_of(st.just("2024-01-01T00:00:00Z"), _json)},
        optional={
            "aliases": st.one_of(st.lists(st.text(max_size=14), max_size=3), _json),
            "affected": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "package": st.one_of(
                                st.just({"ecosystem": "OSS-Fuzz", "name": "zlib"}), st.just({"purl": "pkg:x"}), _json
                            ),
                            "ranges": st.one_of(
                                st.just([{"type": "SEMVER", "events": [{"introduced": "0"}, {"fixed": "1.2"}]}]),
                                _json,
                            ),
                            "versions": _json,
                        },
                    ),
                    max_size=2,
                ),
                _json,
            ),
            "severity": _json,
            "references": _json,
            "withdrawn": _json,
        },
    ),
)


def _zip(members: list[tuple[str, bytes]], method: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for i, (name, data) in enumerate(members):
            zf.writestr(f"{i}/{name}", data)
    return buf.getvalue()


@_FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a.json", "b.json", "dir/c.json", "notes.txt"]),
            st.one_of(_osv_record.map(lambda d: json.dumps(d).encode()), st.binary(max_size=60)),
        ),
        max_size=4,
    ),
    st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
    st.integers(0, 2000),
    st.integers(0, 10_000),
)
def test_osv_zip_parser_on_hostile_archives(members: list[tuple[str, bytes]], method: int, cut: int, flip: int) -> None:
    raw = _zip(members, method)
    corrupt = bytearray(raw)
    if corrupt:
        corrupt[flip % len(corrupt)] ^= 0x55
    for data in (raw, raw[:cut], bytes(corrupt)):
        result = _outcome(parse_osv_zip, data, "all.zip", "OSV")
        if result is not None:
            assert all(r.source == "osv" for r in result.records)
            assert all(s.path.startswith("all.zip!") for s in result.skips)
