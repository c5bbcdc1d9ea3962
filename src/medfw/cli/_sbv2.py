"""CLI commands for ESP32 Secure Boot v2: ``medfw sign sbv2`` and ``medfw verify sbv2``.

Registered by :mod:`medfw.cli.sign` and :mod:`medfw.cli.verify`.
"""

from __future__ import annotations

import argparse
import hashlib
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.cli import _common
from medfw.cli._common import add_audit_flag, add_json_flag, emit, err_console, out_console
from medfw.cli.image import read_image
from medfw.cli.keys import load_any_public_key
from medfw.crypto.keys import KeyType
from medfw.crypto.registry import load_signer
from medfw.crypto.signer import Signer
from medfw.errors import MalformedImageError, MedfwError, UsageError, VerificationError
from medfw.image import sbv2
from medfw.image.esp import IMAGE_MAGIC, EspImage

__all__ = ["register_sign", "register_verify"]

MAX_SIGNATURE = 4096


def _signed_body(data: bytes, append: bool, path: str) -> bytes:
    """The bytes a signature covers: the padded image, or the signed region of an already signed image."""
    if append:
        sbv2.parse_signed_image(data, path=path)
        return data[: len(data) - sbv2.SECTOR_SIZE]
    return sbv2.pad_image(data)


def _check_layout(data: bytes, append: bool, path: str) -> None:
    """Refuse inputs whose signature sector would not sit where the bootloader looks for it.

    The bootloader expects the sector right after the image proper padded to 4 KiB. An ESP image (magic 0xE9)
    must parse (a corrupt image is never signed) and carry no more than that padding (or, with ``--append``,
    exactly the padding and one sector). Other data is signed as it is, like espsecure does, with a warning.
    """
    if not data:
        raise UsageError("the image is empty: nothing to sign", path=path)
    if data[0] != IMAGE_MAGIC:
        err_console.print(
            f"medfw: warning: {path} is not an ESP image (byte 0 is 0x{data[0]:02x}, not 0xE9); signing the bytes as "
            "they are",
            markup=False,
        )
        return
    image = EspImage.from_bytes(data, path=path)
    sector_at = -(-image.image_length // sbv2.SECTOR_SIZE) * sbv2.SECTOR_SIZE
    if append and len(data) != sector_at + sbv2.SECTOR_SIZE:
        raise MalformedImageError(
            f"signed image is {len(data)} bytes, but its image proper ends at {image.image_length}: the signature "
            f"sector must be at 0x{sector_at:x} and the file {sector_at + sbv2.SECTOR_SIZE} bytes long",
            path=path,
            field="length",
            offset=image.image_length,
        )
    if not append and len(data) > sector_at:
        raise MalformedImageError(
            f"{len(data) - image.image_length} bytes follow the image proper (which ends at {image.image_length}); "
            f"the bootloader looks for the signature sector at 0x{sector_at:x}, so the signed file would not boot; "
            "strip the trailing bytes (or sign the signed image with --append)",
            path=path,
            field="length",
            offset=image.image_length,
        )


def _record(sink: AuditSink, event: AuditEvent) -> None:
    sink.record(event)


def _sign(args: argparse.Namespace) -> int:
    keys: list[str] = args.key or []
    sigs: list[str] = args.signature or []
    pubs: list[str] = args.pub_key or []
    modes = sum(bool(x) for x in (keys, sigs, args.digest_only))
    if modes != 1:
        raise UsageError("give exactly one of: --key KEY..., --signature SIG --pub-key PUB..., or --digest-only")
    if sigs and len(sigs) != len(pubs):
        raise UsageError(f"{len(sigs)} --signature but {len(pubs)} --pub-key: give one public key per signature")
    if pubs and not sigs and not args.digest_only:
        raise UsageError("--pub-key goes with --signature (remote signing) or --digest-only")
    data = read_image(args.input)
    _check_layout(data, args.append, args.input)
    if args.digest_only:
        return _digest_only(args, data, pubs)
    if not args.out:
        raise UsageError("--out OUT is required", field="--out")
    sink = _common.audit_sink(args)
    try:
        if keys:
            signers: list[Signer] = [load_signer(k) for k in keys]
            signed = sbv2.sign_image(data, signers, append=args.append)
            key_ids = [s.key_id for s in signers]
        else:
            blocks: list[bytes] = []
            body = _signed_body(data, args.append, args.input)
            for sig_path, pub_ref in zip(sigs, pubs, strict=True):
                public = load_any_public_key(pub_ref)
                digest = sbv2.image_digest(body, sbv2.scheme_of_key(public, path=pub_ref).hash_name)
                signature = read_bytes(sig_path, max_length=MAX_SIGNATURE, what="signature file")
                try:
                    blocks.append(sbv2.assemble_block(digest, signature, public))
                except MedfwError as e:
                    raise e.with_path(sig_path) from None
            signed = sbv2.assemble_signed_image(data, blocks, append=args.append)
            key_ids = list(pubs)
        sector = sbv2.parse_signed_image(signed, path=args.out)
    except MedfwError as e:
        _record(
            sink,
            AuditEvent(
                type="release.sign",
                outcome="failure",
                reason=type(e).__name__,
                actor=",".join(keys or pubs),
                objects={"input_sha256": hashlib.sha256(data).hexdigest()},
                data={"format": "sbv2", "error": e.message},
            ),
        )
        raise
    atomic_write(args.out, signed)
    new_blocks = sector.blocks[len(sector.blocks) - len(key_ids) :]
    result: dict[str, Any] = {
        "input": args.input,
        "output": args.out,
        "scheme": str(sector.scheme),
        "signed_length": len(signed) - sbv2.SECTOR_SIZE,
        "output_length": len(signed),
        "image_digest": sector.blocks[0].image_digest.hex(),
        "blocks": [{"index": b.index, "key_digest": b.key_digest.hex()} for b in sector.blocks],
    }
    _record(
        sink,
        AuditEvent(
            type="release.sign",
            outcome="success",
            actor=",".join(key_ids),
            objects={
                "input_sha256": hashlib.sha256(data).hexdigest(),
                "image_sha256": hashlib.sha256(signed).hexdigest(),
                "image_digest": result["image_digest"],
            },
            data={
                "format": "sbv2",
                "scheme": result["scheme"],
                "append": bool(args.append),
                "keys": [
                    {"key_id": kid, "key_digest": b.key_digest.hex(), "block": b.index}
                    for kid, b in zip(key_ids, new_blocks, strict=True)
                ],
            },
        ),
    )

    def human() -> None:
        out_console.print(
            f"signed {args.input} -> {args.out} ({sector.scheme}, {len(sector.blocks)} block(s), "
            f"{result['signed_length']} bytes signed)",
            markup=False,
        )
        for b in sector.blocks:
            out_console.print(f"  block {b.index}: key digest {b.key_digest.hex()}", markup=False)

    emit(args, result, human)
    return 0


def _digest_only(args: argparse.Namespace, data: bytes, pubs: list[str]) -> int:
    if len(pubs) > 1:
        raise UsageError("--digest-only takes at most one --pub-key (it sets the hash)")
    scheme = sbv2.scheme_of_key(load_any_public_key(pubs[0]), path=pubs[0]) if pubs else sbv2.Sbv2Scheme(args.scheme)
    body = _signed_body(data, args.append, args.input)
    digest = sbv2.digest_to_sign(body, KeyType(str(scheme)))
    if args.out:
        atomic_write(args.out, digest)
    result = {
        "input": args.input,
        "scheme": str(scheme),
        "hash": scheme.hash_name,
        "signed_length": len(body),
        "digest": digest.hex(),
    }
    emit(args, result, lambda: out_console.print(digest.hex(), markup=False))
    return 0


def register_sign(sub: Any) -> None:
    """Register ``medfw sign sbv2``."""
    p = sub.add_parser(
        "sbv2",
        help="sign an ESP32 image for Secure Boot v2 (RSA-3072, ECDSA P-256/P-384)",
        description="Pad the image with 0xFF to 4 KiB and append a Secure Boot v2 signature sector with one block "
        "per key, exactly as espsecure sign-data --version 2. Remote signing: --digest-only prints the digest to "
        "sign; --signature SIG --pub-key PUB assembles the block from an external signature (RSA: raw big-endian "
        "PSS; ECDSA: DER or raw r||s).",
    )
    p.add_argument("input", metavar="IN", help="image to sign (with --append: an already signed image)")
    p.add_argument("--out", metavar="OUT", help="signed image (with --digest-only: raw digest file, optional)")
    p.add_argument("--key", action="append", metavar="KEY", help="signing key: file path or pkcs11: URI (up to 3)")
    p.add_argument("--append", action="store_true", help="add block(s) to an already signed image")
    p.add_argument("--digest-only", action="store_true", help="print the digest an external signer must sign")
    p.add_argument(
        "--scheme",
        choices=[s.value for s in sbv2.Sbv2Scheme if s is not sbv2.Sbv2Scheme.ECDSA_P192],
        default="rsa3072",
        help="with --digest-only and no --pub-key: the scheme (selects SHA-256 or SHA-384); default rsa3072",
    )
    p.add_argument("--signature", action="append", metavar="SIG", help="externally made signature file")
    p.add_argument("--pub-key", action="append", metavar="PUB", help="public key of the external signature")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_sign)


def _trust_action(kind: str) -> type[argparse.Action]:
    class _Append(argparse.Action):
        def __call__(
            self, parser: argparse.ArgumentParser, ns: argparse.Namespace, values: Any, option: str | None = None
        ) -> None:
            items = list(getattr(ns, "trust", None) or [])
            items.append((kind, str(values)))
            ns.trust = items

    return _Append


def _trusted_digests(trust: list[tuple[str, str]]) -> list[bytes]:
    out: list[bytes] = []
    for kind, value in trust:
        if kind == "digest":
            try:
                raw = bytes.fromhex(value)
            except ValueError:
                raise UsageError(f"--key-digest {value!r} is not hex", field="--key-digest") from None
            if len(raw) not in (16, 32):
                raise UsageError(
                    f"--key-digest is {len(raw)} bytes, expected 32 (or 16 for ESP32-C2)", field="--key-digest"
                )
            out.append(raw)
        else:
            key = load_any_public_key(value)
            try:
                out.append(sbv2.public_key_digest(key))
            except MedfwError as e:
                raise e.with_path(value) from None
    return out


def _check_signed_layout(data: bytes, path: str) -> dict[str, Any] | None:
    """For an ESP image, check the sector sits right after the padded image proper (where the bootloader looks).

    Returns a short description of the image (``None`` for data that is not an ESP image).

    Raises:
        MalformedImageError: the image proper does not parse.
        VerificationError: the signature sector is not where the bootloader would look for it.
    """
    if data[0] != IMAGE_MAGIC:
        return None
    image = EspImage.from_bytes(data, path=path)
    sector_at = -(-image.image_length // sbv2.SECTOR_SIZE) * sbv2.SECTOR_SIZE
    if sector_at != len(data) - sbv2.SECTOR_SIZE:
        raise VerificationError(
            f"the image proper ends at {image.image_length}, so the bootloader looks for the signature sector at "
            f"0x{sector_at:x}, but it is at 0x{len(data) - sbv2.SECTOR_SIZE:x}: this image would not boot",
            path=path,
            field="length",
            offset=image.image_length,
        )
    desc = image.app_desc
    return {
        "chip": image.chip,
        "version": desc.version if desc else None,
        "project_name": desc.project_name if desc else None,
        "secure_version": image.secure_version,
    }


def _verify(args: argparse.Namespace) -> int:
    trust: list[tuple[str, str]] = getattr(args, "trust", None) or []
    if not trust:
        raise UsageError("give at least one trusted key: --key KEY, --pub-key PUB or --key-digest HEX")
    digests = _trusted_digests(trust)
    revoked = set(args.revoked or [])
    for slot in revoked:
        if not 0 <= slot < len(digests):
            raise UsageError(f"--revoked {slot} is not a key slot (0..{len(digests) - 1})", field="--revoked")
    data = read_image(args.signed, what="signed image")
    result = sbv2.verify_image(data, trusted_digests=digests, revoked=revoked, path=args.signed)
    app = _check_signed_layout(data, args.signed)
    summary: dict[str, Any] = {
        "ok": True,
        "image": app,
        "path": args.signed,
        "scheme": str(result.scheme),
        "block": result.block_index,
        "key_slot": result.key_slot,
        "key_digest": result.key_digest.hex(),
        "image_digest": result.image_digest.hex(),
        "signed_length": result.signed_length,
        "blocks": [{"index": b.index, "key_digest": b.key_digest.hex()} for b in result.blocks],
    }

    def human() -> None:
        out_console.print(
            f"OK: {args.signed} verified by signature block {result.block_index} "
            f"(key slot {result.key_slot}, {result.scheme}, key digest {result.key_digest.hex()})",
            markup=False,
        )

    emit(args, summary, human)
    return 0


def register_verify(sub: Any) -> None:
    """Register ``medfw verify sbv2``."""
    p = sub.add_parser(
        "sbv2",
        help="verify a Secure Boot v2 signed image as the bootloader does",
        description="Check the signature sector (magic, version, CRC, layout, one scheme), the image digest and "
        "every block's signature, then accept the first block whose key digest matches a trusted, non-revoked "
        "key slot. Trusted keys are given in eFuse slot order.",
    )
    p.add_argument("signed", metavar="SIGNED", help="signed image")
    p.add_argument("--key", action=_trust_action("key"), metavar="KEY", help="trusted key (file or pkcs11: URI)")
    p.add_argument("--pub-key", action=_trust_action("key"), metavar="PUB", help="trusted public key file")
    p.add_argument("--key-digest", action=_trust_action("digest"), metavar="HEX", help="trusted eFuse key digest (hex)")
    p.add_argument("--revoked", action="append", type=int, metavar="N", help="revoked key slot (repeatable)")
    add_json_flag(p)
    p.set_defaults(func=_verify, trust=None)
