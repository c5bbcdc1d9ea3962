"""NVD configuration logic: AND/OR, negate, vulnerable:false platforms, version bounds."""

from __future__ import annotations

from typing import Any

from medfw.vuln.configuration import Target, bounds_text, criterion_keys, evaluate, version_in_bounds
from medfw.vuln.cpe import parse_cpe


def _targets(*cpes: str) -> dict[str, list[Target]]:
    out: dict[str, list[Target]] = {}
    for i, c in enumerate(cpes):
        cpe = parse_cpe(c)
        out.setdefault(cpe.key, []).append(Target(f"ref{i}", cpe, c))
    return out


def _m(criteria: str, vulnerable: bool = True, **bounds: str) -> dict[str, Any]:
    return {"criteria": criteria, "vulnerable": vulnerable, **bounds}


CURL = "cpe:2.3:a:haxx:curl:*:*:*:*:*:*:*:*"
WINDOWS = "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"


def test_or_node_with_bounds() -> None:
    conf = [
        {
            "nodes": [
                {"operator": "OR", "cpeMatch": [_m(CURL, versionStartIncluding="7.32.0", versionEndExcluding="8.9.1")]}
            ]
        }
    ]
    hits = evaluate(conf, _targets("cpe:2.3:a:haxx:curl:8.4.0:*:*:*:*:*:*:*"))
    assert [(h.ref, h.bound) for h in hits] == [("ref0", "7.32.0 <= v < 8.9.1")]
    assert evaluate(conf, _targets("cpe:2.3:a:haxx:curl:8.9.1:*:*:*:*:*:*:*")) == []
    assert evaluate(conf, _targets("cpe:2.3:a:haxx:curl:7.31.0:*:*:*:*:*:*:*")) == []


def test_and_configuration_requires_platform() -> None:
    conf = [
        {
            "operator": "AND",
            "nodes": [
                {"operator": "OR", "cpeMatch": [_m(CURL, versionEndExcluding="7.36.0")]},
                {"operator": "OR", "cpeMatch": [_m(WINDOWS, vulnerable=False)]},
            ],
        }
    ]
    curl = "cpe:2.3:a:haxx:curl:7.35.0:*:*:*:*:*:*:*"
    assert evaluate(conf, _targets(curl)) == []  # not running on Windows: no finding
    hits = evaluate(conf, _targets(curl, "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*"))
    assert [h.ref for h in hits] == ["ref0"]  # the platform itself is never reported


def test_vulnerable_false_alone_is_never_a_finding() -> None:
    # CVE-2025-11563 shape: wcurl vulnerable, curl only as vulnerable:false context
    conf = [
        {
            "nodes": [
                {
                    "operator": "OR",
                    "cpeMatch": [_m("cpe:2.3:a:curl:wcurl:*:*:*:*:*:*:*:*", versionEndExcluding="8.18.0")],
                }
            ]
        },
        {"nodes": [{"operator": "OR", "cpeMatch": [_m("cpe:2.3:a:haxx:curl:0:*:*:*:*:*:*:*", vulnerable=False)]}]},
    ]
    assert evaluate(conf, _targets("cpe:2.3:a:haxx:curl:0:*:*:*:*:*:*:*")) == []
    assert criterion_keys(conf) == {"curl:wcurl"}
    assert criterion_keys(conf, vulnerable_only=False) == {"curl:wcurl", "haxx:curl"}


def test_negated_node() -> None:
    conf = [
        {
            "operator": "AND",
            "nodes": [
                {"operator": "OR", "cpeMatch": [_m(CURL)]},
                {"operator": "OR", "negate": True, "cpeMatch": [_m(WINDOWS, vulnerable=False)]},
            ],
        }
    ]
    curl = "cpe:2.3:a:haxx:curl:8.0.0:*:*:*:*:*:*:*"
    assert [h.ref for h in evaluate(conf, _targets(curl))] == ["ref0"]  # not on Windows: applies
    assert evaluate(conf, _targets(curl, "cpe:2.3:o:microsoft:windows:-:*:*:*:*:*:*:*")) == []


def test_and_node_needs_every_criterion() -> None:
    node = {
        "operator": "AND",
        "cpeMatch": [_m(CURL), _m("cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", vulnerable=False)],
    }
    curl = "cpe:2.3:a:haxx:curl:8.0.0:*:*:*:*:*:*:*"
    assert evaluate([{"nodes": [node]}], _targets(curl)) == []
    both = evaluate([{"nodes": [node]}], _targets(curl, "cpe:2.3:a:openssl:openssl:3.0.0:*:*:*:*:*:*:*"))
    assert [h.ref for h in both] == ["ref0"]


def test_negated_configuration_reports_nothing() -> None:
    conf = [{"negate": True, "nodes": [{"operator": "OR", "cpeMatch": [_m(WINDOWS, vulnerable=False)]}]}]
    assert evaluate(conf, _targets("cpe:2.3:a:haxx:curl:8.0.0:*:*:*:*:*:*:*")) == []


def test_legacy_children() -> None:
    conf = [
        {
            "nodes": [
                {
                    "operator": "AND",
                    "children": [
                        {
                            "operator": "OR",
                            "cpeMatch": [_m("cpe:2.3:o:h3c:fw:*:*:*:*:*:*:*:*", versionEndIncluding="2.0")],
                        },
                        {"operator": "OR", "cpeMatch": [_m("cpe:2.3:h:h3c:box:-:*:*:*:*:*:*:*", vulnerable=False)]},
                    ],
                }
            ]
        }
    ]
    fw = "cpe:2.3:o:h3c:fw:1.5:*:*:*:*:*:*:*"
    assert evaluate(conf, _targets(fw)) == []
    assert [h.ref for h in evaluate(conf, _targets(fw, "cpe:2.3:h:h3c:box:-:*:*:*:*:*:*:*"))] == ["ref0"]


def test_exact_version_criterion() -> None:
    conf = [{"nodes": [{"cpeMatch": [_m("cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*")]}]}]
    assert len(evaluate(conf, _targets("cpe:2.3:a:openssl:openssl:1.0.1f:*:*:*:*:*:*:*"))) == 1
    assert evaluate(conf, _targets("cpe:2.3:a:openssl:openssl:1.0.1g:*:*:*:*:*:*:*")) == []


def test_star_without_bounds_is_all_versions_and_na_version_needs_na() -> None:
    conf = [{"nodes": [{"cpeMatch": [_m("cpe:2.3:a:arm:mbed_crypto:*:*:*:*:*:*:*:*")]}]}]
    hits = evaluate(conf, _targets("cpe:2.3:a:arm:mbed_crypto:3.0.0:*:*:*:*:*:*:*"))
    assert [h.bound for h in hits] == ["all versions"]
    na = [{"nodes": [{"cpeMatch": [_m("cpe:2.3:a:x:y:-:*:*:*:*:*:*:*")]}]}]
    assert evaluate(na, _targets("cpe:2.3:a:x:y:1.0:*:*:*:*:*:*:*")) == []


def test_bounds_with_letter_releases_and_unversioned_targets() -> None:
    m = {"versionStartIncluding": "1.1.1", "versionEndExcluding": "1.1.1w"}
    assert version_in_bounds("1.1.1k", m)
    assert not version_in_bounds("1.1.1w", m)
    assert not version_in_bounds("1.2.11", m)  # the univers pitfall: 1.2.11 is not inside 1.1.1..1.1.1w
    assert not version_in_bounds("3.x", m)
    conf = [{"nodes": [{"cpeMatch": [_m("cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*", **m)]}]}]
    assert evaluate(conf, _targets("cpe:2.3:a:openssl:openssl:*:*:*:*:*:*:*:*")) == []
    assert bounds_text({"criteria": CURL, "versionEndIncluding": "5"}) == "v <= 5"
    assert bounds_text({"criteria": CURL, "versionStartExcluding": "1"}) == "1 < v"
