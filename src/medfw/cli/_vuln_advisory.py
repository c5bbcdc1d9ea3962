"""``medfw vuln releases`` and ``medfw vuln advisory export|verify`` (CSAF 2.0 customer advisories)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.cli import _common
from medfw.cli._common import add_group, add_json_flag, emit
from medfw.cli._vuln_feed import add_db
from medfw.cli._vuln_fleet import add_fleet_flags, fleet_view
from medfw.errors import EXIT_OK
from medfw.vuln import formats
from medfw.vuln.formats import Kind

__all__ = ["register_advisory", "register_releases"]


def _releases(args: argparse.Namespace) -> int:
    from medfw.vuln import open_index, read_sbom  # noqa: PLC0415
    from medfw.vuln.formats.csaf import sbom_version  # noqa: PLC0415

    index = open_index(args.db)
    try:
        rows = []
        for r in index.releases():
            sbom = read_sbom(bytes(r["sbom"]), f"release {r['id']}")
            rows.append(
                {
                    "id": int(r["id"]),
                    "name": sbom.name,
                    "version": sbom_version(sbom),
                    "serial": sbom.serial,
                    "sha256": r["sha256"],
                    "added_at": r["added_at"],
                }
            )
    finally:
        index.close()

    def human() -> None:
        for r in rows:
            _common.out_console.print(
                f"{r['id']}  {r['name']} {r['version']}  {r['serial']}  {r['added_at']}", markup=False
            )

    emit(args, {"releases": rows}, human)
    return EXIT_OK


def register_releases(group: Any) -> None:
    """Register ``vuln releases``."""
    p = group.add_parser("releases", help="list the releases under surveillance (ids for advisory export)")
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_releases)


def _models(args: argparse.Namespace, sha256: str) -> list[str]:
    models = set(args.model or ())
    view = fleet_view(args)
    if view is not None:
        models |= {r.model for r in view.releases if r.sbom_sha256 == sha256}
    return sorted(models)


def _export(args: argparse.Namespace) -> int:
    from medfw.crypto.registry import load_signer  # noqa: PLC0415
    from medfw.vuln import open_index  # noqa: PLC0415
    from medfw.vuln.csaf_advisory import build_advisory, find_release, sign_advisory  # noqa: PLC0415

    formats.get(args.format, Kind.ADVISORY)
    signer = load_signer(args.key) if args.key else None
    index = open_index(args.db)
    try:
        _, sbom = find_release(index, args.release)
        doc = build_advisory(
            index, args.release, publisher=args.publisher, namespace=args.namespace, models=_models(args, sbom.sha256)
        )
    finally:
        index.close()
    data = (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    signature = None if signer is None else sign_advisory(doc, signer)
    out = Path(args.out)
    atomic_write(out, data)
    atomic_write(f"{out}.sha256", f"{hashlib.sha256(data).hexdigest()}  {out.name}\n".encode())
    if signature is not None:
        atomic_write(f"{out}.sig", signature)
    result = {
        "out": str(out),
        "category": doc["document"]["category"],
        "tracking_id": doc["document"]["tracking"]["id"],
        "vulnerabilities": len(doc.get("vulnerabilities", [])),
        "signature": None if signature is None else f"{out}.sig",
    }
    emit(
        args,
        result,
        lambda: _common.out_console.print(
            f"wrote {result['category']} {result['tracking_id']} with {result['vulnerabilities']} "
            f"vulnerabilities to {out}" + (f" (signed: {out}.sig)" if signature is not None else " (unsigned)"),
            markup=False,
        ),
    )
    return EXIT_OK


def _verify(args: argparse.Namespace) -> int:
    from medfw.crypto.keys import load_public_key  # noqa: PLC0415
    from medfw.vuln.csaf_advisory import verify_advisory  # noqa: PLC0415
    from medfw.vuln.csaf_validate import check_csaf  # noqa: PLC0415

    data = read_bytes(args.file, what="advisory")
    sig_path = args.signature or f"{args.file}.sig"
    verify_advisory(data, read_bytes(sig_path, max_length=4096, what="signature"), load_public_key(args.key), args.file)
    check_csaf(json.loads(data), args.file)
    emit(args, {"path": args.file, "signature": sig_path, "ok": True}, lambda: _common.out_console.print("OK"))
    return EXIT_OK


def register_advisory(group: Any) -> None:
    """Register ``vuln advisory export|verify``."""
    adv = add_group(group, "advisory", "customer advisories (CSAF 2.0)")
    p = adv.add_parser("export", help="write the CSAF 2.0 advisory of a registered release (signed with --key)")
    p.add_argument("release", metavar="RELEASE", help="release id (vuln releases) or its SBOM file")
    p.add_argument("--format", default="csaf", choices=formats.names(Kind.ADVISORY), help="advisory format")
    p.add_argument("--out", required=True, metavar="F", help="where to write the advisory")
    p.add_argument("--key", metavar="KEY_URI", help="signing key (file or pkcs11: URI): detached F.sig")
    p.add_argument("--publisher", default="medfw user", metavar="NAME", help="CSAF publisher name (the vendor)")
    p.add_argument("--namespace", default="https://example.invalid", metavar="URL", help="CSAF publisher namespace URL")
    p.add_argument("--model", action="append", metavar="M", help="device model the firmware ships in (repeatable)")
    add_fleet_flags(p, required=False)
    add_db(p)
    add_json_flag(p)
    p.set_defaults(func=_export)
    p = adv.add_parser("verify", help="check an advisory's detached signature and its CSAF validity")
    p.add_argument("file", metavar="F", help="advisory document to check")
    p.add_argument("--key", required=True, metavar="PUB", help="publisher's public key (PEM)")
    p.add_argument("--signature", metavar="SIG", help="signature file (default: F.sig)")
    add_json_flag(p)
    p.set_defaults(func=_verify)
