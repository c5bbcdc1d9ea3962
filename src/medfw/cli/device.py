"""``medfw device``: provision, flash, boot and update a simulated unit kept in a directory.

Exit codes: 0 success; 1 a boot or update was refused (verification failed); 2 bad input or a state that does
not allow the command.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from medfw._io import atomic_write, read_bytes
from medfw.audit.sink import AuditSink
from medfw.chips import DEFAULT_CHIP
from medfw.cli import _device_agent, _device_identity
from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, out_console
from medfw.crypto.keys import load_public_key
from medfw.device import BootFailedError, Device, UpdateRejectedError
from medfw.device.bootloader import BootResult
from medfw.device.chips import CHIPS, get_chip
from medfw.device.ota import InstallResult
from medfw.errors import EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]

_MAX_IMAGE = 16 * 1024 * 1024


def _digest(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.strip())
    except ValueError:
        raise UsageError(f"--key-digest {text!r} is not hex", field="key_digest") from None
    if len(raw) != 32:
        raise UsageError(f"--key-digest must be 32 bytes (64 hex digits), got {len(raw)}", field="key_digest")
    return raw


def _sink(args: argparse.Namespace) -> AuditSink:
    """The command's audit sink, opened once and closed by :func:`_closing` when the command ends."""
    sink: AuditSink | None = getattr(args, "_audit_sink", None)
    if sink is None:
        sink = audit_sink(args)
        args._audit_sink = sink
    return sink


def _closing(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        finally:
            device = getattr(args, "_device", None)
            if device is not None:
                device.close()
            close = getattr(getattr(args, "_audit_sink", None), "close", None)
            if callable(close):
                close()

    return run


def _open(args: argparse.Namespace) -> Device:
    device = Device.open(args.dir, audit=_sink(args))
    args._device = device  # its own audit log is closed when the command ends
    return device


def _cmd_init(args: argparse.Namespace) -> int:
    from medfw.image.sbv2 import public_key_digest, scheme_of_key  # noqa: PLC0415 - keep CLI start-up light

    chip = get_chip(args.chip)
    digests = [_digest(d) for d in args.key_digest or ()]
    sha384 = False
    for path in args.key or ():
        key = load_public_key(path)
        scheme = scheme_of_key(key, path=path)
        if not chip.supports_scheme(scheme):
            raise UsageError(
                f"{path}: a {scheme} key cannot verify on {chip.name}, whose Secure Boot v2 verifies "
                f"{chip.scheme_names} only",
                field="key",
            )
        sha384 = sha384 or (str(scheme) == "ecdsa-p384" and chip.sha384_enable is not None)
        digests.append(public_key_digest(key))
    if not digests:
        raise UsageError("give at least one --key-digest HEX or --key PUBKEY", field="key_digest")
    device = Device.init(
        args.dir,
        chip=args.chip,
        key_digests=digests,
        secure_version_bits=args.secure_version_bits,
        audit=_sink(args),
        flash_encryption=args.flash_encryption,
        revoke_unused_slots=not args.keep_unused_slots,
        sha384=sha384,
    )
    data = device.status().to_dict()
    emit(args, data, lambda: out_console.print(f"provisioned {device.chip.name} unit in {args.dir}", markup=False))
    return EXIT_OK


def _cmd_flash(args: argparse.Namespace) -> int:
    bootloader = read_bytes(args.bootloader, max_length=_MAX_IMAGE, what="bootloader image")
    app = read_bytes(args.app, max_length=_MAX_IMAGE, what="app image")
    device = _open(args)
    device.flash(bootloader, app)
    data = {"bootloader_bytes": len(bootloader), "app_bytes": len(app), "slot": 0}
    emit(args, data, lambda: out_console.print(f"flashed bootloader and app (ota_0) into {args.dir}", markup=False))
    return EXIT_OK


def _print_boot(result: BootResult) -> None:
    out_console.print(
        f"booted ota_{result.slot}: version {result.version}, secure_version {result.secure_version}, "
        f"reason {result.reason}, otadata {result.state} (seq {result.seq}), eFuse counter {result.counter}"
        + (" — app crashed before confirming" if result.app_failed else ""),
        markup=False,
    )


def _boot_failed(args: argparse.Namespace, e: BootFailedError) -> int:
    data = {
        "booted": False,
        "reason": e.reason,
        "message": e.message,
        "events": [{"type": ev.type, "outcome": ev.outcome, "reason": ev.reason} for ev in e.events],
    }
    line = f"boot refused: {e.message} (reason {e.reason})"
    emit(args, data, lambda: out_console.print(line, markup=False))
    return EXIT_FAILED


def _cmd_boot(args: argparse.Namespace) -> int:
    device = _open(args)
    try:
        result = device.boot(app_fails=args.app_fails, confirm=args.confirm)
    except BootFailedError as e:
        return _boot_failed(args, e)
    emit(args, {"booted": True} | result.to_dict(), lambda: _print_boot(result))
    return EXIT_OK


def _print_install(result: InstallResult) -> None:
    if result.interrupted:
        out_console.print(
            f"power cut after {result.sector_writes} sector writes"
            + (" (last write torn)" if result.torn else "")
            + f"; ota_{result.slot} not activated",
            markup=False,
        )
        return
    out_console.print(
        f"installed version {result.version} (secure_version {result.secure_version}) into ota_{result.slot}, "
        f"{result.sector_writes} sector writes; it boots on trial next (seq {result.seq})",
        markup=False,
    )


def _cmd_update(args: argparse.Namespace) -> int:
    if args.torn and args.power_cut_after is None:
        raise UsageError("--torn needs --power-cut-after N", field="torn")
    image = read_bytes(args.image, max_length=_MAX_IMAGE, what="update image")
    device = _open(args)
    try:
        result = device.install_update(image, power_cut_after=args.power_cut_after, torn=args.torn)
    except UpdateRejectedError as e:
        e.with_path(str(args.image))
        data = {"accepted": False, "reason": e.reason, "message": e.message, "offset": e.offset}
        line = f"{e.diagnostics()} (reason {e.reason})"
        emit(args, data, lambda: out_console.print(line, markup=False))
        return EXIT_FAILED
    emit(args, {"accepted": not result.interrupted} | result.to_dict(), lambda: _print_install(result))
    return EXIT_OK


def _cmd_confirm(args: argparse.Namespace) -> int:
    device = _open(args)
    counter = device.confirm(power_cut_before_burn=args.power_cut_before_burn)
    data = {
        "confirmed": True,
        "slot": device.running_slot,
        "counter": counter,
        "burned": not args.power_cut_before_burn,
    }
    emit(args, data, lambda: out_console.print(f"app confirmed (VALID); eFuse counter {counter}", markup=False))
    return EXIT_OK


def _cmd_revert(args: argparse.Namespace) -> int:
    device = _open(args)
    try:
        result = device.revert()
    except BootFailedError as e:
        return _boot_failed(args, e)
    emit(args, {"booted": True} | result.to_dict(), lambda: _print_boot(result))
    return EXIT_OK


def _print_status(data: dict[str, Any]) -> None:
    efuse = data["efuse"]
    out_console.print(f"chip {data['chip']}, power {data['power']}, running slot {data['running_slot']}", markup=False)
    for s in data["slots"]:
        verdict = "ok" if s["ok"] else s["reason"]
        out_console.print(
            f"  {s['partition']}: version {s['version']}, secure_version {s['secure_version']}, {verdict}", markup=False
        )
    for o in data["otadata"]:
        out_console.print(f"  otadata[{o['copy']}]: seq {o['seq']}, {o['state']}, ok {o['ok']}", markup=False)
    out_console.print(
        f"  eFuse: counter {efuse['secure_version_counter']}/{efuse['secure_version_bits']}, "
        f"secure boot {efuse['secure_boot_enabled']}, JTAG disabled {efuse['jtag_disabled']}, "
        f"download disabled {efuse['download_mode_disabled']}, flash encryption {efuse['flash_encryption_enabled']}",
        markup=False,
    )
    for k in efuse["key_slots"]:
        out_console.print(
            f"  key slot {k['slot']}: {k['digest'] or '-'}{' (revoked)' if k['revoked'] else ''}", markup=False
        )


def _cmd_status(args: argparse.Namespace) -> int:
    data = _open(args).status().to_dict()
    emit(args, data, lambda: _print_status(data))
    return EXIT_OK


def _cmd_revoke(args: argparse.Namespace) -> int:
    device = _open(args)
    device.revoke_key(args.slot)
    data = {"revoked": True, "slot": args.slot}
    emit(args, data, lambda: out_console.print(f"key slot {args.slot} revoked", markup=False))
    return EXIT_OK


def _cmd_summary(args: argparse.Namespace) -> int:
    device = _open(args)
    summary = device.efuse.to_espefuse_summary(device.chip.name)
    atomic_write(args.out, (json.dumps(summary, indent=4, sort_keys=True) + "\n").encode("utf-8"))
    data = {"out": str(args.out), "chip": device.chip.name, "fields": len(summary)}
    emit(args, data, lambda: out_console.print(f"wrote espefuse-style summary to {args.out}", markup=False))
    return EXIT_OK


def _leaf(group: Any, name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = group.add_parser(name, help=help_text, description=help_text)
    p.add_argument("dir", metavar="DIR", help="device directory")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_closing(func))
    return p


def register(sub: Any) -> None:
    """Register the ``device`` command group."""
    group = add_group(sub, "device", "simulate a secure-boot unit: eFuses, flash, A/B updates")
    p = _leaf(group, "init", "provision a new unit: key digests, secure boot on, JTAG and ROM download off", _cmd_init)
    p.add_argument("--key-digest", action="append", metavar="HEX", help="SBv2 public key digest (repeat for more)")
    p.add_argument("--key", action="append", metavar="PUBKEY", help="public key file whose SBv2 digest to burn")
    p.add_argument("--chip", default=DEFAULT_CHIP, choices=sorted(CHIPS), help=f"chip (default {DEFAULT_CHIP})")
    p.add_argument(
        "--secure-version-bits",
        type=int,
        metavar="N",
        help="anti-rollback field width (default: 16, or the chip's SECURE_VERSION width where it is narrower)",
    )
    p.add_argument("--flash-encryption", action="store_true", help="also burn the flash-encryption counter")
    p.add_argument("--keep-unused-slots", action="store_true", help="do not revoke unused key digest slots")
    p = _leaf(group, "flash", "factory-program the bootloader and the app (ota_0)", _cmd_flash)
    p.add_argument("--bootloader", required=True, metavar="B", help="signed bootloader image")
    p.add_argument("--app", required=True, metavar="A", help="signed app image")
    p = _leaf(group, "boot", "reset the unit and run the bootloader", _cmd_boot)
    p.add_argument("--app-fails", action="store_true", help="the app crashes before confirming (watchdog reset)")
    p.add_argument("--confirm", action="store_true", help="the app confirms itself after booting")
    p = _leaf(group, "update", "install a signed image into the inactive slot and activate it", _cmd_update)
    p.add_argument("image", metavar="IMAGE", help="signed app image")
    p.add_argument("--power-cut-after", type=int, metavar="N", help="cut power after N sector writes")
    p.add_argument("--torn", action="store_true", help="with --power-cut-after: leave the next write half done")
    p = _leaf(group, "confirm", "the running app confirms itself (VALID), then the counter advances", _cmd_confirm)
    p.add_argument("--power-cut-before-burn", action="store_true", help="lose power before the eFuse burn")
    _leaf(group, "revert", "the running app rolls itself back (INVALID) and the unit reboots", _cmd_revert)
    _leaf(group, "status", "show slots, otadata, eFuse counter and key slots", _cmd_status)
    p = _leaf(group, "revoke-key", "revoke a key digest slot (only if the unit still boots without it)", _cmd_revoke)
    p.add_argument("--slot", type=int, required=True, metavar="N", help="digest slot 0..2")
    p = _leaf(group, "efuse-summary", "export the eFuses as 'espefuse summary --format json'", _cmd_summary)
    p.add_argument("--out", required=True, metavar="F", help="output JSON file")
    _device_identity.register(group, _leaf, _open)
    _device_agent.register(group)  # ``medfw device agent``: the OTA update agent (medfw.update)
