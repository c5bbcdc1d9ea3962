"""``medfw ota release attach`` and ``ota release documents``: the evidence bundle, VEX and CSAF of a release.

The evidence bundle is verified here against the pinned evidence key before it is packed and sent (the server
holds no key; it checks the bundle's integrity, VEX and CSAF formats again on its side). Every file is read and
checked before the first upload, so a bad file attaches nothing.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.cli._common import emit, out_console
from medfw.errors import EXIT_OK, InputError, VerificationError
from medfw.server.views_fleet import DocumentKind

__all__ = ["register"]

_LIMIT = 64 << 20


def _vex_kind(data: bytes, path: str) -> DocumentKind:
    from medfw.vuln.vex import read_vex_document  # noqa: PLC0415

    fmt = read_vex_document(data, path).format
    kinds = {"cyclonedx": DocumentKind.VEX_CYCLONEDX, "openvex": DocumentKind.VEX_OPENVEX}
    if fmt not in kinds:
        raise InputError(f"{fmt} VEX: attach a CSAF document with --csaf", path=path)
    return kinds[fmt]


def _evidence(args: argparse.Namespace) -> bytes:
    from medfw.crypto.keys import load_public_key  # noqa: PLC0415
    from medfw.evidence.verify import verify_evidence  # noqa: PLC0415
    from medfw.server.documents import pack_evidence  # noqa: PLC0415

    if not args.evidence_key:
        raise InputError(
            "--evidence needs --evidence-key: the bundle is verified before it is attached", field="--evidence-key"
        )
    result = verify_evidence(args.evidence, key=load_public_key(args.evidence_key))
    if not result.ok:
        first = result.problems[0]
        raise VerificationError(
            f"the evidence bundle does not verify: {first.problem}", path=f"{args.evidence}/{first.file}"
        )
    return pack_evidence(Path(args.evidence))


def _collect(args: argparse.Namespace) -> list[tuple[DocumentKind, bytes, str]]:
    """Every document to attach, read and checked locally, in upload order."""
    docs: list[tuple[DocumentKind, bytes, str]] = []
    if args.evidence:
        docs.append((DocumentKind.EVIDENCE, _evidence(args), args.evidence))
    for path in args.vex or []:
        data = read_bytes(path, max_length=_LIMIT, what="VEX document")
        docs.append((_vex_kind(data, path), data, path))
    if args.csaf:
        from medfw.vuln.csaf_validate import check_csaf  # noqa: PLC0415

        data = read_bytes(args.csaf, max_length=_LIMIT, what="CSAF advisory")
        try:
            check_csaf(json.loads(data), args.csaf)
        except (ValueError, UnicodeDecodeError) as e:
            raise InputError(f"not JSON: {e}", path=args.csaf) from None
        docs.append((DocumentKind.CSAF, data, args.csaf))
        sig = args.csaf_signature or (f"{args.csaf}.sig" if Path(f"{args.csaf}.sig").is_file() else None)
        if sig:
            docs.append((DocumentKind.CSAF_SIGNATURE, read_bytes(sig, max_length=4096, what="signature"), sig))
    elif args.csaf_signature:
        raise InputError("--csaf-signature needs --csaf", field="--csaf-signature")
    kinds = [k for k, _d, _p in docs]
    if not docs:
        raise InputError("nothing to attach: give --evidence, --vex or --csaf", field="--evidence")
    if len(set(kinds)) != len(kinds):
        raise InputError("two documents of one kind (one CycloneDX and one OpenVEX VEX at most)", field="--vex")
    return docs


def _attach(args: argparse.Namespace) -> int:
    from medfw.cli.ota import _client  # noqa: PLC0415

    docs = _collect(args)
    client = _client(args)
    attached = [
        client.request("PUT", f"/api/v1/releases/{args.release}/documents/{kind.value}", content=data)
        for kind, data, _path in docs
    ]
    result = {"release": args.release, "attached": attached}

    def human() -> None:
        for d, (_k, _data, path) in zip(attached, docs, strict=True):
            out_console.print(
                f"attached {d['kind']} ({d['size']} bytes, sha256 {d['sha256']}) from {path}", markup=False
            )

    emit(args, result, human)
    return EXIT_OK


def _documents(args: argparse.Namespace) -> int:
    from medfw.cli.ota import _client, _table  # noqa: PLC0415

    rows: list[dict[str, Any]] = _client(args).request("GET", f"/api/v1/releases/{args.release}/documents")
    cols = ["kind", "filename", "size", "sha256", "attached", "attached_by"]
    emit(args, rows, lambda: _table(f"documents of release {args.release}", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def register(release: Any, add_server_flags: Any) -> None:
    """Add ``attach`` and ``documents`` to the ``ota release`` group."""
    p = release.add_parser("attach", help="attach the evidence bundle, VEX and CSAF advisory to a release (operator)")
    p.add_argument("release", type=int, help="release id (ota release list)")
    p.add_argument("--evidence", metavar="DIR", help="evidence bundle directory (medfw evidence build)")
    p.add_argument("--evidence-key", metavar="PUB", help="public key the evidence bundle must verify with")
    p.add_argument("--vex", action="append", metavar="FILE", help="CycloneDX or OpenVEX document (repeatable)")
    p.add_argument("--csaf", metavar="FILE", help="CSAF 2.0 advisory (medfw vuln advisory export)")
    p.add_argument("--csaf-signature", metavar="FILE", help="its detached signature (default: FILE.sig when present)")
    add_server_flags(p)
    p.set_defaults(func=_attach)
    p = release.add_parser("documents", help="list the documents attached to a release")
    p.add_argument("release", type=int, help="release id (ota release list)")
    add_server_flags(p)
    p.set_defaults(func=_documents)
