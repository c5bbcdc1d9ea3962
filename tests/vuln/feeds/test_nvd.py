"""NVD feed parsing: API 2.0 pages and single responses, override records, the 1.1 feed, bad files."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medfw.errors import FeedError
from medfw.vuln.feeds.nvd import parse_nvd


def _parse(path: Path) -> object:
    return parse_nvd(path.read_bytes(), str(path))


def test_api_page(vuln_vectors: Path) -> None:
    r = parse_nvd((vuln_vectors / "nvd/official-shapes/api-2.0-page/test.json").read_bytes(), "p")
    ids = {x.record_id for x in r.records}
    assert {"CVE-2018-14618", "CVE-2024-7264"} <= ids and len(ids) == 13
    rec = next(x for x in r.records if x.record_id == "CVE-2024-7264")
    assert rec.source == "nvd" and rec.data["cvss"] and rec.data["configurations"]
    assert not r.skips


def test_single_response_with_and_platform(vuln_vectors: Path) -> None:
    r = parse_nvd((vuln_vectors / "nvd/official-shapes/api-2.0-single/CVE-2020-13595.json").read_bytes(), "s")
    (rec,) = r.records
    conf = rec.data["configurations"][0]
    assert conf["operator"] == "AND" and len(conf["nodes"]) == 2
    assert rec.data["cwes"] == ["CWE-617"]


def test_override_record(vuln_vectors: Path) -> None:
    r = parse_nvd((vuln_vectors / "nvd/anchore-overrides/2025/CVE-2025-11563.json").read_bytes(), "o")
    (rec,) = r.records
    assert rec.source == "nvd-override" and rec.record_id == "CVE-2025-11563"
    assert rec.data["cvss"] == [] and rec.modified.startswith("2026-02-25")


def test_legacy_feed(vuln_vectors: Path) -> None:
    r = parse_nvd((vuln_vectors / "nvd/official-shapes/feed-1.1/nvdcve-1.1-test-data.json.gz").read_bytes(), "g")
    assert len(r.records) == 669 and not r.skips


def test_truncated_file_names_offset(vuln_vectors: Path) -> None:
    with pytest.raises(FeedError) as e:
        parse_nvd((vuln_vectors / "custom/truncated-nvd-page.json").read_bytes(), "t.json")
    assert e.value.offset == 4000 and "truncated" in e.value.message


def test_truncated_gzip(vuln_vectors: Path) -> None:
    data = (vuln_vectors / "nvd/official-shapes/feed-1.1/nvdcve-1.1-test-data.json.gz").read_bytes()
    with pytest.raises(FeedError, match="gzip"):
        parse_nvd(data[: len(data) // 2], "g.gz")


def test_wrong_format(vuln_vectors: Path) -> None:
    with pytest.raises(FeedError, match="not an NVD feed"):
        parse_nvd((vuln_vectors / "kev/known_exploited_vulnerabilities.json").read_bytes(), "kev.json")


def test_schema_violations_are_skips(vuln_vectors: Path) -> None:
    r = parse_nvd((vuln_vectors / "custom/schema-violations-nvd-page.json").read_bytes(), "v")
    assert len(r.records) == 11
    reasons = sorted(s.reason for s in r.skips)
    assert len(reasons) == 2
    assert any("criteria is missing" in x for x in reasons) and any("not a CVE id" in x for x in reasons)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_is_a_feed_error(data: bytes) -> None:
    with contextlib.suppress(FeedError):
        parse_nvd(data, "x")
