"""Scan an SBOM against the index: match, enrich with triage data, attach decisions, order by priority.

Matching, per component:

* each CPE (the component's version filled in where the CPE says ``*``) is expanded over the curated alias
  map; all resulting ``vendor:product`` keys fetch their ``vuln_match`` rows in a few set-based queries
  (:mod:`medfw.vuln.match_store`); a criterion row is decided on its pre-normalised bounds
  (:func:`medfw.vuln.match_rows.row_matches`), a record that needs its whole configuration tree (platform
  ``AND``, negation, wildcards) is evaluated by :mod:`medfw.vuln.configuration`;
* a component with a purl and no CPE gets the CPEs of its purl's alias group, if the map has one (no guessing);
* OSV records are looked up by purl base and evaluated with :mod:`medfw.vuln.osv_ranges`;
* per CVE one configuration source is authoritative: an NVD-shaped override replaces NVD's configurations,
  CVE 5 ``affected`` data (CNA and ADP containers together) is used only when neither exists, and a vendor
  table only when none of those does;
* severity follows :data:`medfw.vuln.triage.SEVERITY_PRECEDENCE`; every finding names its source;
* a component whose identities match no record of any imported source is reported as "no feed data"
  (:class:`~medfw.vuln.model.NoData`), so a coverage gap never reads as clean.

Exclusions listed in a component's ``medfw:cve-exclude`` become ``not_affected`` decisions (source
``sbom-exclude``; the supplier's justification in either vocabulary, mapped by :mod:`medfw.vuln.vocabulary`,
``code_not_present`` when none is given) unless a recorded
decision exists; VEX documents given to the scan override both.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from packageurl import PackageURL

from medfw.vuln.aliases import AliasMap, default_aliases
from medfw.vuln.configuration import Target, clear_seeded, evaluate, seed_parsed
from medfw.vuln.cpe import ANY, Cpe, parse_cpe
from medfw.vuln.decisions import current_decisions
from medfw.vuln.feeds.osv import purl_base
from medfw.vuln.freshness import feed_snapshot
from medfw.vuln.gcpause import gc_paused
from medfw.vuln.match_rows import RowKind, TargetKey, row_matches, target_key
from medfw.vuln.match_store import CONFIG_TIERS, MatchRow, fetch_rows
from medfw.vuln.model import (
    Decision,
    Finding,
    MatchReason,
    NoData,
    ScanComponent,
    ScanInput,
    ScanResult,
)
from medfw.vuln.osv_ranges import affected_by
from medfw.vuln.scan_reads import ScanReads, StoredRecord
from medfw.vuln.triage import choose_severity, prioritise
from medfw.vuln.vocabulary import Justification, State, parse_justification

__all__ = ["CONFIG_PRECEDENCE", "build_targets", "scan"]

#: configuration sources, most authoritative first
CONFIG_PRECEDENCE = ("nvd-override", "nvd", "cve5-cna", "cve5-adp", "vendor")
_META_PRECEDENCE = ("nvd", "cve5-cna", "cve5-adp", "nvd-override", "vendor", "osv")


def _purl_version(purl: str) -> str:
    try:
        return str(PackageURL.from_string(purl).version or "")
    except ValueError:
        return ""


def _purl_subpath(purl: str) -> str:
    """The subpath of a purl ('' when it has none or does not parse)."""
    try:
        return str(PackageURL.from_string(purl).subpath or "")
    except ValueError:
        return ""


def build_targets(
    components: Sequence[ScanComponent], aliases: AliasMap
) -> tuple[dict[str, list[Target]], dict[str, list[tuple[ScanComponent, str, str]]], list[str]]:
    """Turn components into CPE targets by ``vendor:product`` key and purl targets by purl base.

    A purl with a subpath (``pkg:github/espressif/esp-idf@v5.3.1#components/log``) names a *part* of a
    package. Feeds describe packages, so when the SBOM also lists the package itself (the same purl base
    without a subpath), the package's vulnerabilities are reported once, on that component, not again on
    every part; a part's own CPEs (e.g. wpa_supplicant inside ESP-IDF) are still matched.

    Returns (cpe targets, purl targets as (component, version, identity), warnings).
    """
    by_key: dict[str, list[Target]] = {}
    by_purl: dict[str, list[tuple[ScanComponent, str, str]]] = {}
    warnings: list[str] = []
    packages = {purl_base(c.purl) for c in components if c.purl and not _purl_subpath(c.purl)}
    for comp in components:
        if not comp.has_identity:
            warnings.append(f"{comp.ref}: no CPE or purl, cannot be matched")
            continue
        version = comp.version or (_purl_version(comp.purl) if comp.purl else "")
        parsed: list[Cpe] = []
        for text in comp.cpes:
            try:
                parsed.append(parse_cpe(text))
            except ValueError as e:
                warnings.append(f"{comp.ref}: CPE {text!r} ignored: {e}")
        base = ""
        if comp.purl:
            try:
                base = purl_base(comp.purl)
            except ValueError as e:
                warnings.append(f"{comp.ref}: purl {comp.purl!r} ignored: {e}")
        if base and base in packages and _purl_subpath(comp.purl or ""):
            base = ""  # a part of a package listed on its own: the package carries the findings
        if not parsed and not base:
            continue
        via_purl = False
        if not parsed and base:
            keys = aliases.keys_for_purl(base)
            parsed = [Cpe("a", ANY, ANY).with_key(*k.split(":", 1)) for k in keys]
            via_purl = bool(keys)
        if not version and parsed:
            warnings.append(f"{comp.ref}: no version, only criteria without a version bound can match")
        seen: set[tuple[str, str]] = set()
        for declared in parsed:
            cpe = declared.with_version(version) if declared.version == ANY and version else declared
            origin = f"{comp.purl} (alias map)" if via_purl else str(cpe)
            for key in aliases.keys_for(cpe.key):
                vendor, product = key.split(":", 1)
                t_cpe = cpe.with_key(vendor, product)
                if (key, str(t_cpe)) in seen:
                    continue
                seen.add((key, str(t_cpe)))
                identity = origin if key == cpe.key or via_purl else f"{origin} as alias {key}"
                by_key.setdefault(key, []).append(Target(comp.ref, t_cpe, identity))
        if base:
            by_purl.setdefault(base, []).append((comp, version, comp.purl or base))
    return by_key, by_purl, warnings


def _meta_rank(r: StoredRecord) -> int:
    return _META_PRECEDENCE.index(r.source) if r.source in _META_PRECEDENCE else 9


def _merge_meta(records: Sequence[StoredRecord]) -> dict[str, Any]:
    ordered = sorted(records, key=_meta_rank) if len(records) > 1 else records
    description = ""
    ssvc: dict[str, str] = {}
    aliases: set[str] = set()
    rejected = False
    for r in ordered:
        data = r.data
        description = description or str(data.get("description", ""))
        ssvc = ssvc or dict(data.get("ssvc") or {})
        if data.get("aliases"):
            aliases.update(data["aliases"])
        if r.record_id != r.vuln_id:
            aliases.add(r.record_id)
        rejected = rejected or (bool(data.get("rejected")) and r.source in ("nvd", "cve5-cna"))
    return {"records": ordered, "description": description, "ssvc": ssvc, "aliases": aliases, "rejected": rejected}


def _vuln_facts(
    vuln_id: str,
    records: Sequence[StoredRecord],
    kev: Mapping[str, Any],
    epss: Mapping[str, tuple[float, float]],
) -> dict[str, Any] | None:
    """What every finding of one vulnerability shares (None when it is rejected): the merged metadata, the chosen
    severity, KEV and EPSS, as :class:`Finding` fields."""
    m = _merge_meta(records)
    if m["rejected"]:
        return None
    choice = choose_severity(m["records"])
    score = epss.get(vuln_id)
    aliases = m["aliases"]
    aliases.discard(vuln_id)
    return {
        "vuln_id": vuln_id,
        "severity": choice.severity,
        "score": choice.score,
        "vector": choice.vector,
        "kev": vuln_id in kev,
        "epss": score[0] if score else None,
        "epss_percentile": score[1] if score else None,
        "ssvc": m["ssvc"],
        "network": choice.network,
        "description": m["description"],
        "aliases": tuple(sorted(aliases)) if aliases else (),
        "severity_source": choice.source,
        "unscored_reason": choice.reason,
    }


def _exclusion(
    comp: ScanComponent, vuln_id: str, aliases: Iterable[str], serial: str, now: dt.datetime
) -> Decision | None:
    for vid in (vuln_id, *aliases):
        if vid in comp.cve_exclude:
            reason, justification = comp.cve_exclude[vid]
            try:  # either vocabulary (the manifest accepts both); none given: the code is not there
                justification = parse_justification(justification or "")
            except (KeyError, ValueError):
                justification = Justification.CODE_NOT_PRESENT
            detail = reason or "listed in the SBOM's cve-exclude list"
            return Decision(
                serial, comp.ref, vuln_id, State.NOT_AFFECTED, justification, (), detail, "sbom", now, "sbom-exclude"
            )
    return None


def scan(
    index: ScanReads,
    sbom: ScanInput,
    *,
    aliases: AliasMap | None = None,
    vex: Sequence[Decision] = (),
    now: dt.datetime | None = None,
) -> ScanResult:
    """Match every component of ``sbom`` against ``index`` and return the triaged findings.

    ``vex`` decisions (from VEX documents) override recorded decisions for the same (component, vulnerability);
    statements bound to another SBOM serial are ignored, with a warning.
    """
    with gc_paused():  # tens of thousands of short-lived, acyclic dicts (decoded records)
        return _scan(index, sbom, aliases or default_aliases(), vex, now or dt.datetime.now(dt.UTC))


def _coverage(
    sbom: ScanInput, by_key: Mapping[str, Sequence[Target]], by_purl: Mapping[str, Sequence[Any]], found: set[str]
) -> tuple[NoData, ...]:
    keys: dict[str, set[str]] = {}
    for k, targets in by_key.items():
        for t in targets:
            keys.setdefault(t.ref, set()).add(f"cpe:{k}")
    for b, entries in by_purl.items():
        for comp, _v, _i in entries:
            keys.setdefault(comp.ref, set()).add(f"purl:{b}")
    out: list[NoData] = []
    for c in sbom.components:
        ids = (*c.cpes, *([c.purl] if c.purl else []))
        if not c.has_identity:
            out.append(NoData(c.ref, c.name, c.version, (), "no CPE or purl: no feed can describe it"))
        elif not keys.get(c.ref):
            out.append(NoData(c.ref, c.name, c.version, ids, "its identifiers could not be used for lookup"))
        elif not keys[c.ref] & found:
            looked = ", ".join(sorted(keys[c.ref]))
            out.append(NoData(c.ref, c.name, c.version, ids, f"no imported record names {looked}"))
    return tuple(out)


Hits = dict[tuple[str, str], list[MatchReason]]


def _row_hits(row: MatchRow, targets: Sequence[tuple[Target, TargetKey]], hits: Hits) -> None:
    record_id = row.rid.split("|", 1)[1]
    for t, tk in targets:
        if row_matches(row.test, tk):
            reason = MatchReason(row.source, record_id, row.criterion or "", row.bound or "", t.identity)
            hits.setdefault((t.ref, row.vuln_id), []).append(reason)


def _tree_hits(rec: StoredRecord, by_key: Mapping[str, list[Target]], hits: Hits) -> None:
    for h in evaluate(rec.data.get("configurations") or [], by_key):
        hits.setdefault((h.ref, rec.vuln_id), []).append(
            MatchReason(rec.source, rec.record_id, h.criterion, h.bound, h.identity)
        )


def _osv_hits(
    records: Iterable[StoredRecord], by_purl: Mapping[str, list[tuple[ScanComponent, str, str]]], hits: Hits
) -> None:
    for rec in records:
        if rec.data.get("rejected"):
            continue
        for entry in rec.data.get("osv", []):
            for comp, version, identity in by_purl.get(entry.get("purl", ""), ()):
                bound = affected_by(entry, version) if version else None
                if bound is not None:
                    hits.setdefault((comp.ref, rec.vuln_id), []).append(
                        MatchReason("osv", rec.record_id, entry["purl"], bound, identity)
                    )


def _config_tiers(best: Mapping[str, int], configured: Mapping[str, set[str]]) -> dict[str, int]:
    """Per vulnerability, the lowest tier among its candidates' (``best``) and all its configuration-bearing
    records' (``configured``: an override or NVD record naming other products still outranks a CVE 5 record
    naming this one)."""
    out = dict(best)
    for vuln_id in best:
        for source in configured.get(vuln_id, ()):
            other = CONFIG_TIERS.get(source)
            if other is not None and other < out[vuln_id]:
                out[vuln_id] = other
    return out


def _match(
    index: ScanReads,
    by_key: Mapping[str, list[Target]],
    by_purl: Mapping[str, list[tuple[ScanComponent, str, str]]],
) -> tuple[Hits, set[str], dict[str, list[StoredRecord]]]:
    """Fetch and decide the rows of the targets' keys: CRITERION rows here, TREE records by evaluating their stored
    data; return the hits, every key any record names (for the coverage check) and the triage data of every
    candidate vulnerability (read with the configuration tiers)."""
    keyed = {k: [(t, target_key(t.cpe)) for t in ts] for k, ts in by_key.items()}
    lookup: dict[str, set[bytes]] = {f"cpe:{k}": {tk.key or b"" for _, tk in ts} for k, ts in keyed.items()}
    lookup.update({f"purl:{b}": {b""} for b in by_purl})
    rows, found = fetch_rows(index, lookup)
    best: dict[str, int] = {}
    for r in rows:
        tier = CONFIG_TIERS.get(r.source)
        if tier is not None and r.kind != RowKind.DEAD:
            best[r.vuln_id] = min(best.get(r.vuln_id, tier), tier)
    triage, configured = index.triage_and_configured({r.vuln_id for r in rows})
    tiers = _config_tiers(best, configured)
    tree_rids = {r.rid for r in rows if r.kind == RowKind.TREE}
    trees = index.tree_records(tree_rids) if tree_rids else {}
    for rec in trees.values():
        seed_parsed(rec.data.get("cpes"))
    hits: Hits = {}
    done: set[str] = set()
    for r in rows:  # ordered by record and position: reasons keep the feed's order
        if CONFIG_TIERS.get(r.source, -1) != tiers.get(r.vuln_id):
            continue
        if r.kind == RowKind.CRITERION:
            _row_hits(r, keyed.get(r.key.removeprefix("cpe:"), ()), hits)
        elif r.kind == RowKind.TREE and r.rid not in done and r.rid in trees:
            done.add(r.rid)
            _tree_hits(trees[r.rid], by_key, hits)
    _osv_hits((trees[rid] for rid in sorted(trees) if trees[rid].source == "osv"), by_purl, hits)
    clear_seeded()
    return hits, found, triage


def _scan(index: ScanReads, sbom: ScanInput, amap: AliasMap, vex: Sequence[Decision], now: dt.datetime) -> ScanResult:
    by_key, by_purl, warnings = build_targets(sbom.components, amap)
    hits, found, triage = _match(index, by_key, by_purl)
    no_data = _coverage(sbom, by_key, by_purl, found)

    vuln_ids = {v for _, v in hits}
    kev = index.kev_for(vuln_ids)
    epss = index.epss_for(vuln_ids)
    per_vuln = {v: _vuln_facts(v, triage.get(v, ()), kev, epss) for v in vuln_ids}
    decided = current_decisions(index, sbom.serial) if sbom.serial else {}
    overlay = {(d.component_ref, d.vuln_id): d for d in vex if d.serial == sbom.serial}
    foreign = sorted({d.serial for d in vex if d.serial != sbom.serial})
    if foreign:
        warnings.append(f"VEX statements for other SBOMs ignored (bound to {', '.join(foreign)})")
    comps = {c.ref: c for c in sbom.components}
    findings: list[Finding] = []
    for (ref, vuln_id), why in sorted(hits.items()):
        facts = per_vuln[vuln_id]
        if facts is None:
            continue  # rejected
        comp = comps[ref]
        decision = overlay.get((ref, vuln_id)) or decided.get((ref, vuln_id))
        if decision is None and comp.cve_exclude:
            decision = _exclusion(comp, vuln_id, facts["aliases"], sbom.serial, now)
        fields = {
            "component_ref": ref,
            "component_name": comp.name,
            "component_version": comp.version,
            "why": tuple(why) if len(why) == 1 else tuple(dict.fromkeys(why)),
            "decision": decision,
        }
        fields.update(facts)
        findings.append(Finding.build(fields))
    return ScanResult(
        sbom, tuple(prioritise(findings, in_place=True)), tuple(warnings), no_data, feed_snapshot(index, now)
    )
