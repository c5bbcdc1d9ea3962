"""Postmarket: releases, rescans after a feed update, and the alarm on new critical/KEV findings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medfw.vuln import add_release, import_feeds, open_index, rescan


def test_rescan_reports_new_findings_per_release(
    tmp_path: Path, vuln_vectors: Path, sbom_factory: Callable[..., bytes]
) -> None:
    index = open_index(str(tmp_path / "pm.db"))
    import_feeds(index, nvd=[str(vuln_vectors / "nvd/anchore-overrides")])
    a = sbom_factory(
        [{"bom-ref": "o", "name": "openssl", "version": "1.0.1f", "purl": "pkg:generic/openssl@1.0.1f"}], name="pump-a"
    )
    b = sbom_factory(
        [{"bom-ref": "c", "name": "curl", "version": "8.4.0", "purl": "pkg:generic/curl@8.4.0"}], name="pump-b"
    )
    rid_a, _, created = add_release(index, a)
    rid_b, _, _ = add_release(index, b)
    assert created and add_release(index, a)[2] is False  # registering twice is idempotent

    deltas = rescan(index)
    assert [len(d.new) for d in deltas] == [0, 0] and not any(d.alarming for d in deltas)

    # feed update: Heartbleed (NVD record) and the KEV catalog arrive
    import_feeds(
        index,
        nvd=[str(vuln_vectors / "custom/heartbleed-nvd-api-2.0.json")],
        kev=[str(vuln_vectors / "kev/known_exploited_vulnerabilities.json")],
    )
    deltas = rescan(index)
    by_id = {d.release_id: d for d in deltas}
    assert [f.vuln_id for f in by_id[rid_a].new] == ["CVE-2014-0160"]
    assert [f.vuln_id for f in by_id[rid_a].alarming] == ["CVE-2014-0160"]
    assert by_id[rid_b].new == ()
    assert rescan(index)[0].new == ()  # reported once, not again
    index.close()
