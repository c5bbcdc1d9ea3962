"""``medfw keys``: generate keys and print the digests that go into eFuses and bootloaders."""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from medfw._io import atomic_write
from medfw.cli import _keys_campaign, _keys_lifecycle
from medfw.cli._common import add_group, add_json_flag, emit, out_console
from medfw.crypto.keys import (
    KeyType,
    PublicKey,
    generate_private_key,
    key_type_of,
    load_public_key,
    public_key_pem,
    write_private_key,
)
from medfw.crypto.registry import load_signer
from medfw.errors import KeyMaterialError, MedfwError, UsageError

__all__ = ["load_any_public_key", "register"]


def load_any_public_key(ref: str) -> PublicKey:
    """Load a public key from a public or private key file (PEM/DER, ``file:`` prefix allowed) or a pkcs11 URI."""
    if ref.startswith("pkcs11:"):
        return load_signer(ref).public_key()
    return load_public_key(ref.removeprefix("file:"))


def _sbv2_digest(key: PublicKey) -> str | None:
    from medfw.image.sbv2 import public_key_digest  # noqa: PLC0415 - keep CLI start-up light

    try:
        return public_key_digest(key).hex()
    except KeyMaterialError:
        return None  # Ed25519: no Secure Boot v2 digest


def _generate(args: argparse.Namespace) -> int:
    key_type = KeyType(args.type)
    result: dict[str, Any] = {"type": str(key_type)}
    if args.hsm:
        from medfw.keys.hsm import generate_key  # noqa: PLC0415 - python-pkcs11 loads only when a token is used

        public: PublicKey = generate_key(args.hsm, key_type)
        result["key"] = args.hsm
        if args.out:
            atomic_write(args.out, public_key_pem(public), mode=0o644, overwrite=args.force)
            result["public_key_file"] = args.out
    else:
        if not args.out:
            raise UsageError("--out KEY.pem is required (or --hsm URI to generate inside a token)", field="--out")
        private = generate_private_key(key_type)
        write_private_key(private, args.out, force=args.force)
        public = private.public_key()
        result["key"] = args.out
    key_type_of(public)
    result["sbv2_digest"] = _sbv2_digest(public)

    def human() -> None:
        where = "in the token" if args.hsm else f"to {args.out} (mode 0600)"
        out_console.print(f"generated {key_type} key {where}", markup=False)
        if result.get("public_key_file"):
            out_console.print(f"public key written to {result['public_key_file']}", markup=False)
        if result["sbv2_digest"]:
            out_console.print(f"Secure Boot v2 key digest: {result['sbv2_digest']}", markup=False)

    emit(args, result, human)
    return 0


def _digest(args: argparse.Namespace) -> int:
    key = load_any_public_key(args.key)
    if args.format == "sbv2":
        from medfw.image.sbv2 import public_key_digest  # noqa: PLC0415

        try:
            digest = public_key_digest(key)
        except MedfwError as e:
            raise e.with_path(args.key) from None
    else:
        try:
            mcuboot = importlib.import_module("medfw.image.mcuboot")
        except ImportError as e:  # pragma: no cover - the module ships with medfw
            raise UsageError("MCUboot support is not available") from e
        digest = bytes(mcuboot.key_hash(key))
    if args.out:
        atomic_write(args.out, digest, mode=0o644)
    result = {"key": args.key, "format": args.format, "digest": digest.hex(), "type": str(key_type_of(key))}
    emit(args, result, lambda: out_console.print(digest.hex(), markup=False))
    return 0


def register(sub: Any) -> None:
    """Register ``medfw keys ...``."""
    group = add_group(sub, "keys", "generate keys, print key digests, manage the key lifecycle")

    gen = group.add_parser(
        "generate",
        help="generate a signing key (PEM, mode 0600) or a key inside a PKCS#11 token",
        description="Generate a private key as unencrypted PKCS#8 PEM with mode 0600, refusing to overwrite "
        "without --force; or, with --hsm, generate it inside a PKCS#11 token (nothing secret is written).",
    )
    gen.add_argument("--type", required=True, choices=[t.value for t in KeyType], help="key type")
    gen.add_argument("--out", metavar="KEY.pem", help="private key file (with --hsm: optional public key PEM)")
    gen.add_argument("--hsm", metavar="URI", help="generate in the PKCS#11 token named by this pkcs11: URI")
    gen.add_argument("--force", action="store_true", help="overwrite an existing output file")
    add_json_flag(gen)
    gen.set_defaults(func=_generate)

    dig = group.add_parser(
        "digest",
        help="print a public key digest (Secure Boot v2 eFuse digest or MCUboot KEYHASH)",
        description="Print the SHA-256 key digest a bootloader trusts: --format sbv2 gives the eFuse digest exactly "
        "as espsecure digest-sbv2-public-key; --format mcuboot gives imgtool's KEYHASH. KEY is a public or private "
        "key file or a pkcs11: URI.",
    )
    dig.add_argument("key", metavar="KEY", help="key file (public or private) or pkcs11: URI")
    dig.add_argument("--format", required=True, choices=["sbv2", "mcuboot"], help="digest format")
    dig.add_argument("--out", metavar="FILE", help="also write the raw digest bytes to FILE")
    add_json_flag(dig)
    dig.set_defaults(func=_digest)

    _keys_lifecycle.register(group)
    _keys_campaign.register(group)
