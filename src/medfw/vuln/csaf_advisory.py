"""Customer advisories: a CSAF 2.0 document for one registered release, validated and signed.

:func:`build_advisory` scans the release (its current decisions included) and states every finding in CSAF:

* profile ``csaf_security_advisory`` when a later registered release of the same firmware fixes at least one
  finding (it is then named in the product tree, listed as ``fixed`` and in a ``vendor_fix`` remediation),
  ``csaf_vex`` otherwise;
* product tree: the firmware (one ``product_name`` per device model when the fleet's models are given, else the
  SBOM subject's name) with the release's version and the fixing versions, and each affected component with its
  purl / CPE / BOM-Link as a ``default_component_of`` relationship;
* per vulnerability: status from the decision (no decision: ``under_investigation``), CVSS v3 / v2 scores
  recomputed from the vector (CSAF 6.1.9), flags, impact threats, remediations.

The document must pass :func:`medfw.vuln.csaf_validate.check_csaf` (bundled official schema + mandatory tests)
before it is returned. :func:`sign_advisory` signs it like the evidence bundle: the RFC 8785 canonical bytes of
the document, a detached raw signature ``<file>.sig``; ``<file>.sha256`` is the CSAF provider-style digest line.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.crypto.keys import PublicKey
from medfw.crypto.signer import Signer
from medfw.errors import InputError
from medfw.vuln.csaf_validate import check_csaf
from medfw.vuln.formats._common import analysis_of, bom_link
from medfw.vuln.formats.csaf import CsafEntry, CsafProduct, build_csaf, publisher_of, sbom_version
from medfw.vuln.index import VulnIndex
from medfw.vuln.model import Finding, ScanInput
from medfw.vuln.sbom_input import read_sbom
from medfw.vuln.scanner import scan
from medfw.vuln.version import compare_versions, is_version

__all__ = ["build_advisory", "find_release", "sign_advisory", "verify_advisory"]


def find_release(index: VulnIndex, ref: str) -> tuple[int, ScanInput]:
    """The registered release ``ref`` names: its id (as listed by ``vuln releases``) or the path of its SBOM.

    Raises:
        InputError: no registered release matches.
    """
    rows = index.releases()
    if ref.isdigit():
        row = next((r for r in rows if int(r["id"]) == int(ref)), None)
    else:
        if not Path(ref).is_file():
            raise InputError(f"no registered release {ref!r} (give a release id or an SBOM file)", field="release")
        digest = hashlib.sha256(read_bytes(ref, what="SBOM")).hexdigest()
        row = next((r for r in rows if hmac.compare_digest(str(r["sha256"]), digest)), None)
    if row is None:
        raise InputError(
            f"{ref} is not a registered release: register it first (medfw vuln release add SBOM)", field="release"
        )
    return int(row["id"]), read_sbom(bytes(row["sbom"]), f"release {row['id']}")


def _fixing_release(index: VulnIndex, sbom: ScanInput, vuln_ids: set[str]) -> dict[str, str]:
    """vuln id → the lowest later version of the same firmware whose scan has it closed or absent."""
    mine = sbom_version(sbom)
    later: list[tuple[str, set[str]]] = []
    for row in index.releases():
        other = read_sbom(bytes(row["sbom"]), f"release {row['id']}")
        version = sbom_version(other)
        if other.name != sbom.name or not (is_version(version) and is_version(mine)):
            continue
        if compare_versions(version, mine) <= 0:
            continue
        open_ids = {f.vuln_id for f in scan(index, other).findings if not f.handled}
        later.append((version, open_ids))
    later.sort(key=lambda v: _Key(v[0]))
    out: dict[str, str] = {}
    for vid in vuln_ids:
        for version, open_ids in later:
            if vid not in open_ids:
                out[vid] = version
                break
    return out


_Key = functools.cmp_to_key(compare_versions)


def _products(sbom: ScanInput, findings: Sequence[Finding]) -> list[CsafProduct]:
    comps = {c.ref: c for c in sbom.components}
    out = []
    for ref in sorted({f.component_ref for f in findings}):
        c = comps[ref]
        out.append(
            CsafProduct(
                key=ref,
                name=c.name,
                version=c.version,
                purl=c.purl,
                cpe=c.cpes[0] if c.cpes else None,
                bom_link=bom_link(sbom.serial, sbom.version, ref) if sbom.serial.startswith("urn:uuid:") else None,
            )
        )
    return out


def build_advisory(
    index: VulnIndex,
    ref: str,
    *,
    publisher: str,
    namespace: str,
    models: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Build (and check) the CSAF 2.0 advisory of a registered release (rules in the module docstring).

    Raises:
        InputError: the release is not registered, or (a guard against bugs) the document fails validation.
    """
    now = now or dt.datetime.now(dt.UTC)
    release_id, sbom = find_release(index, ref)
    findings = scan(index, sbom).findings
    fixes = _fixing_release(index, sbom, {f.vuln_id for f in findings})
    versions = [sbom_version(sbom), *sorted(set(fixes.values()), key=_Key)]
    entries = [
        CsafEntry(
            f.vuln_id,
            f.component_ref,
            None if f.decision is None else analysis_of(f.decision),
            vector=f.vector,
            description=f.description,
            fixed_in=fixes.get(f.vuln_id),
        )
        for f in findings
    ]
    firmware = sbom.name or "firmware"
    category = "csaf_security_advisory" if fixes else "csaf_vex"
    doc = build_csaf(
        category=category,
        title=f"{firmware} {versions[0]}: vulnerabilities of the components",
        tracking_id=f"{firmware}-{versions[0]}-{now.strftime('%Y%m%d%H%M%S')}",
        publisher=publisher_of(publisher, namespace),
        firmware=sorted(models) or [firmware],
        firmware_versions=versions,
        products=_products(sbom, findings),
        entries=entries,
        now=now,
        summary=(
            f"{len(findings)} known vulnerabilities in the components of {firmware} {versions[0]} "
            f"(registered release {release_id}, SBOM {sbom.serial}), with their exploitability"
            + (f"; fixed in {', '.join(versions[1:])}." if fixes else ".")
        ),
    )
    check_csaf(doc, "<generated CSAF advisory>")
    return doc


def _canonical(doc: Mapping[str, Any]) -> bytes:
    import rfc8785  # noqa: PLC0415

    return rfc8785.dumps(doc)


def sign_advisory(doc: Mapping[str, Any], signer: Signer) -> bytes:
    """Sign the RFC 8785 canonical bytes of the document (raw signature, as the evidence manifest)."""
    return signer.sign_message(_canonical(doc), "sha256")


def verify_advisory(data: bytes, signature: bytes, key: PublicKey, path: str = "<advisory>") -> None:
    """Verify a detached advisory signature over the canonical form of the document in ``data``.

    Raises:
        InputError: not JSON.
        VerificationError: the signature does not verify with ``key``.
    """
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as e:
        raise InputError("advisory is not JSON", path=path, offset=e.pos) from e
    _verify_raw(_canonical(doc), signature, key, path)


def _verify_raw(message: bytes, signature: bytes, key: PublicKey, path: str) -> None:
    from cryptography.exceptions import InvalidSignature  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa  # noqa: PLC0415

    from medfw.errors import VerificationError  # noqa: PLC0415

    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, message, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256())
        else:
            raise VerificationError("unsupported key type", path=path)
    except InvalidSignature:
        raise VerificationError("advisory signature does not verify", path=path) from None
