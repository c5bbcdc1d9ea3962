"""CLI commands for MCUboot signing and verification (registered by ``medfw.cli.sign`` and ``medfw.cli.verify``).

``medfw sign mcuboot`` signs a firmware binary like ``imgtool sign``; ``medfw verify mcuboot`` verifies a signed
image as bootutil does. Exit codes: 0 success, 1 the image does not verify, 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditEvent, AuditSink
from medfw.cli._common import add_audit_flag, add_json_flag, audit_sink, emit, err_console, out_console
from medfw.errors import InputError, MedfwError, UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

    from medfw.crypto.keys import PublicKey
    from medfw.image.mcuboot import CounterRule, McubootVerification

# The crypto and image modules are imported by the command handlers, keeping `medfw --help` start-up light.

__all__ = ["register_sign", "register_verify"]

#: inputs at least this large show a progress bar (when stderr is a terminal)
_PROGRESS_THRESHOLD = 4 * 1024 * 1024


def _int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer (use 0x.. for hex)") from None


def _counter(text: str) -> int | CounterRule:
    from medfw.image.mcuboot_sign import CounterRule  # noqa: PLC0415 - only when the option is given

    if text.lower() == CounterRule.AUTO:
        return CounterRule.AUTO
    return _int(text)


def _key_label(uri: str) -> str:
    """A key reference safe to log: PKCS#11 URIs lose their query part (where a PIN may be)."""
    return uri.split("?", 1)[0] if uri.startswith("pkcs11:") else uri


def register_sign(sub: Any) -> None:
    """Register ``medfw sign mcuboot``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "mcuboot",
        help="sign an image for the MCUboot bootloader (like imgtool sign)",
        description="Add the MCUboot header, protected TLVs (security counter), hash, KEYHASH and signature TLVs, "
        "and optionally pad to the slot with the image trailer. Keys: RSA-3072, ECDSA P-256/P-384, Ed25519.",
    )
    p.add_argument("--key", required=True, metavar="KEY", help="private key file, file:PATH or pkcs11: URI")
    p.add_argument("--version", dest="image_version", required=True, metavar="X.Y.Z[+B]", help="image version")
    p.add_argument(
        "--security-counter",
        type=_counter,
        metavar="N|auto",
        help="add the protected security counter TLV (auto: major<<24 | minor<<16 | revision)",
    )
    p.add_argument("--header-size", type=_int, required=True, metavar="N", help="header size, e.g. 0x200")
    p.add_argument("--pad-header", action="store_true", help="prepend the header room (erased value) to the input")
    p.add_argument("--slot-size", type=_int, metavar="N", help="slot size; the image and trailer must fit")
    p.add_argument("--pad", action="store_true", help="pad to --slot-size and write the trailer magic")
    p.add_argument("--confirm", action="store_true", help="also set image_ok in the trailer (implies --pad)")
    p.add_argument("--align", type=int, default=1, choices=(1, 2, 4, 8, 16, 32), help="flash write size")
    p.add_argument("--max-align", type=int, choices=(8, 16, 32), help="BOOT_MAX_ALIGN (default max(8, align))")
    p.add_argument("--max-sectors", type=int, default=128, metavar="N", help="sectors in the swap status area")
    p.add_argument("--overwrite-only", action="store_true", help="trailer for overwrite-only upgrades")
    p.add_argument("--erased-val", type=_int, default=0xFF, choices=(0, 0xFF), help="value of erased flash")
    p.add_argument("--load-addr", type=_int, default=0, metavar="ADDR", help="RAM load address (sets RAM_LOAD)")
    p.add_argument("--rom-fixed", type=_int, metavar="ADDR", help="flash address the image is built for")
    p.add_argument("--non-bootable", action="store_true", help="mark the image non-bootable")
    p.add_argument("input", metavar="IN", help="firmware binary")
    p.add_argument("output", metavar="OUT", help="signed image to write")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_cmd_sign)


def register_verify(sub: Any) -> None:
    """Register ``medfw verify mcuboot``."""
    p: argparse.ArgumentParser = sub.add_parser(
        "mcuboot",
        help="verify an MCUboot image as the bootloader does",
        description="Check the header, TLV areas, image hash, KEYHASH and signature against trusted keys.",
    )
    p.add_argument(
        "--key",
        dest="keys",
        action="append",
        required=True,
        metavar="KEY",
        help="trusted key: public or private key file, file:PATH or pkcs11: URI (repeatable)",
    )
    p.add_argument("file", metavar="FILE", help="signed MCUboot image")
    add_json_flag(p)
    p.set_defaults(func=_cmd_verify)


@contextlib.contextmanager
def _progress(args: argparse.Namespace, size: int, what: str) -> Iterator[Progress]:
    from rich.progress import BarColumn, Progress, TextColumn  # noqa: PLC0415

    quiet = getattr(args, "json", False) or size < _PROGRESS_THRESHOLD or not err_console.is_terminal
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), console=err_console, transient=True, disable=quiet
    )
    with progress:
        progress.add_task(what, total=3)
        yield progress


def _advance(progress: Progress) -> None:
    for task in progress.tasks:
        progress.advance(task.id)


def _cmd_sign(args: argparse.Namespace) -> int:
    sink = audit_sink(args)
    try:
        return _sign_recorded(args, sink)
    finally:
        close = getattr(sink, "close", None)
        if callable(close):
            close()


def _sign_recorded(args: argparse.Namespace, sink: AuditSink) -> int:
    from medfw.crypto.registry import load_signer  # noqa: PLC0415
    from medfw.image.mcuboot import key_hash, sign_image, verify_image  # noqa: PLC0415

    actor = _key_label(args.key)
    try:
        payload = read_bytes(args.input, what="input image")
        with _progress(args, len(payload), "signing MCUboot image") as progress:
            signer = load_signer(args.key)
            actor = signer.key_id
            _advance(progress)
            try:
                image = sign_image(
                    payload,
                    signer,
                    version=args.image_version,
                    header_size=args.header_size,
                    pad_header=args.pad_header,
                    security_counter=args.security_counter,
                    slot_size=args.slot_size,
                    pad=args.pad,
                    confirm=args.confirm,
                    align=args.align,
                    erased_val=args.erased_val,
                    load_addr=args.load_addr,
                    rom_fixed=args.rom_fixed,
                    max_align=args.max_align,
                    max_sectors=args.max_sectors,
                    overwrite_only=args.overwrite_only,
                    non_bootable=args.non_bootable,
                )
            except InputError as e:
                if not isinstance(e, UsageError):
                    e.with_path(args.input)
                raise
            result = verify_image(image, [signer.public_key()])
            _advance(progress)
            atomic_write(args.output, image)
            _advance(progress)
    except MedfwError as e:
        sink.record(
            AuditEvent(
                type="release.sign",
                outcome="failure",
                reason=type(e).__name__,
                actor=actor,
                data={"format": "mcuboot", "input": str(args.input), "error": e.diagnostics()},
            )
        )
        raise
    image_sha256 = hashlib.sha256(image).hexdigest()
    input_sha256 = hashlib.sha256(payload).hexdigest()
    pub_hash = key_hash(signer.public_key()).hex()
    sink.record(
        AuditEvent(
            type="release.sign",
            outcome="success",
            actor=actor,
            objects={
                "image_sha256": image_sha256,
                "input_sha256": input_sha256,
                "key_hash_sha256": pub_hash,
                "mcuboot_digest": result.digest.hex(),
            },
            data={
                "format": "mcuboot",
                "output": str(args.output),
                "version": str(result.image.version),
                "security_counter": result.image.security_counter,
                "key_type": str(result.key_type),
                "hash": result.hash_name,
                "size": len(image),
                "confirmed": bool(result.image.trailer and result.image.trailer.confirmed),
            },
        )
    )
    data = {
        **result.to_dict(),
        "output": str(args.output),
        "image_sha256": image_sha256,
        "input_sha256": input_sha256,
        "key_hash_sha256": pub_hash,
    }

    def human() -> None:
        out_console.print(
            f"signed {args.output}: MCUboot image {result.image.version}, {len(image)} bytes", markup=False
        )
        _print_details(result)

    emit(args, data, human)
    return 0


def _load_trusted(ref: str) -> PublicKey:
    from medfw.crypto.keys import load_public_key  # noqa: PLC0415
    from medfw.crypto.registry import load_signer  # noqa: PLC0415

    if ref.startswith("pkcs11:"):
        return load_signer(ref).public_key()
    return load_public_key(ref.removeprefix("file:"))


def _print_details(result: McubootVerification) -> None:
    img = result.image
    counter = "none" if img.security_counter is None else f"{img.security_counter} (0x{img.security_counter:x})"
    lines = [
        f"  key:              {result.key_type}, KEYHASH {result.key_hash.hex()}",
        f"  image hash:       {result.hash_name} {result.digest.hex()}",
        f"  header / body:    {img.header.hdr_size} + {img.header.img_size} bytes, flags "
        f"{','.join(img.header.flag_names) or 'none'}, load address 0x{img.header.load_addr:x}",
        f"  security counter: {counter}",
        f"  signature:        {result.signature_tlv.name} at offset {result.signature_tlv.offset}",
    ]
    if img.trailer is not None:
        state = "confirmed (image_ok set)" if img.trailer.confirmed else "test (image_ok unset)"
        lines.append(f"  trailer:          magic at offset {img.trailer.offset}, {state}")
    for line in lines:
        out_console.print(line, markup=False)


def _cmd_verify(args: argparse.Namespace) -> int:
    from medfw.image.mcuboot import verify_file  # noqa: PLC0415

    keys = [_load_trusted(k) for k in args.keys]
    try:
        result = verify_file(args.file, keys)
    except MedfwError as e:
        raise e.with_path(args.file) from None

    def human() -> None:
        out_console.print(f"OK: {args.file} is a valid MCUboot image {result.image.version}", markup=False)
        _print_details(result)

    emit(args, {**result.to_dict(), "path": str(args.file)}, human)
    return 0
