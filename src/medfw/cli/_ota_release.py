"""``medfw ota release publish | list``: a signed image becomes a TUF target (offline), releases the server knows."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from medfw._io import read_bytes
from medfw.cli import _ota_documents
from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, err_console, out_console
from medfw.cli._ota_client import ENV_SERVER, ENV_TOKEN, add_server_flags, fleet_client, table
from medfw.cli._ota_repo import signers
from medfw.errors import EXIT_OK, InputError, MedfwError, UsageError

__all__ = ["register"]

MAX_IMAGE = 64 * 1024 * 1024


def _describe_image(image: bytes, path: str, fmt: str) -> dict[str, Any]:
    """Version, secure_version and chip as the image itself states them (ESP app descriptor or MCUboot header and
    SEC_CNT TLV); empty for other formats."""
    if fmt == "mcuboot":
        from medfw.image.mcuboot_format import parse_image  # noqa: PLC0415

        mcu = parse_image(image)
        v = mcu.version
        info: dict[str, Any] = {"version": f"{v.major}.{v.minor}.{v.revision}" + (f"+{v.build}" if v.build else "")}
        if mcu.security_counter is not None:
            info["secure_version"] = mcu.security_counter
        return info
    if fmt != "esp-app":
        return {}
    from medfw.image.esp import EspImage  # noqa: PLC0415
    from medfw.image.sbv2 import parse_signed_image  # noqa: PLC0415

    img = EspImage.from_bytes(image, path=path)
    parse_signed_image(image, path=path)  # a release must carry its boot signature
    desc = img.app_desc
    if desc is None:
        raise InputError("image has no app description (version / secure_version)", path=path, offset=0x20)
    return {"version": desc.version, "secure_version": desc.secure_version, "chip": img.chip}


def _same_version(fmt: str, given: str, stated: str) -> bool:
    if fmt != "mcuboot":
        return given == stated
    from medfw.image.mcuboot_format import ImageVersion  # noqa: PLC0415

    return ImageVersion.parse(given) == ImageVersion.parse(stated)


def _release_fields(args: argparse.Namespace, image: bytes) -> tuple[str, int, str]:
    """The release's version, secure_version and chip: the image's own, and any flag that disagrees is refused."""
    info = _describe_image(image, args.image, args.format)
    given = {"version": args.version, "secure_version": args.secure_version, "chip": args.chip}
    for name, value in given.items():
        stated = info.get(name)
        if value is None or stated is None:
            continue
        same = _same_version(args.format, value, stated) if name == "version" else value == stated
        if not same:
            flag = "--" + name.replace("_", "-")
            raise InputError(
                f"{flag} {value} disagrees with the image, which states {name} {stated}", path=args.image, field=name
            )
    version = info.get("version", args.version)
    secure_version = info.get("secure_version", args.secure_version)
    if version is None or secure_version is None:
        missing = "--version" if version is None else "--secure-version"
        raise UsageError(f"the image does not state it: give {missing}", field=missing)
    return str(version), int(secure_version), str(info.get("chip", args.chip or ""))


def _fleet_secure_versions(model: str) -> dict[str, int] | None:
    """The highest secure_version devices of ``model`` report, per version, when a fleet server is configured."""
    server, token = os.environ.get(ENV_SERVER), os.environ.get(ENV_TOKEN)
    if not (server and token):
        return None
    from medfw.server.client import FleetClient  # noqa: PLC0415

    try:
        rows = FleetClient(server, token, timeout=10.0).request("GET", "/api/v1/fleet")
    except MedfwError as e:
        err_console.print(f"medfw: warning: fleet not checked: {e.message}", markup=False, style="yellow")
        return None
    return {str(r["version"]): int(r["secure_version"]) for r in rows if r["model"] == model and r["devices"]}


def _rollback_warning(args: argparse.Namespace, secure_version: int) -> str | None:
    """A warning when devices of the model already report a higher secure_version than the release's."""
    fleet = _fleet_secure_versions(args.model)
    if not fleet:
        return None
    highest = max(fleet.values())
    if secure_version >= highest:
        return None
    return (
        f"secure_version {secure_version} is below {highest}, which devices of model {args.model} report: "
        "they will skip this release (secure_version_lower)"
    )


def _check_sbom_binding(sbom_bytes: bytes, image: bytes, args: argparse.Namespace) -> None:
    """Refuse to publish an image the SBOM does not describe (see :mod:`medfw.sbom.binding`)."""
    from medfw.sbom.binding import verify_binding  # noqa: PLC0415
    from medfw.sbom.document import parse_sbom  # noqa: PLC0415

    doc = parse_sbom(sbom_bytes, path=str(args.sbom))
    props = doc.component.properties if doc.component else ()
    verify_binding(props, image, sbom_path=str(args.sbom), image_path=str(args.image))


def _publish(args: argparse.Namespace) -> int:
    from medfw.update.publish import publish_release  # noqa: PLC0415
    from medfw.update.repository import ReleaseInfo  # noqa: PLC0415

    repo_dir = Path(args.repo)
    image = read_bytes(args.image, max_length=MAX_IMAGE, what="image")
    version, secure_version, chip = _release_fields(args, image)
    targets = signers(args.targets_key)
    if args.sbom:  # the library references the SBOM by name and hash; the CLI first checks it describes the image
        _check_sbom_binding(read_bytes(args.sbom, max_length=MAX_IMAGE, what="SBOM"), image, args)
    name = args.name or f"{args.model}-{version}.bin"
    release = ReleaseInfo(
        target_path=f"{args.model}/{name}",
        model=args.model,
        chip=chip,
        image_format=args.format,
        version=str(version),
        secure_version=int(secure_version),
        length=len(image),
        sha256="",
    )
    sink = audit_sink(args)
    try:
        result = publish_release(
            repo_dir,
            image,
            release,
            targets_signers=targets,
            root_signers=signers(args.root_key),
            sbom=args.sbom,
            sink=sink,
        )
    finally:
        close = getattr(sink, "close", None)
        if callable(close):
            close()
    for warning in result.warnings:
        err_console.print(f"warning: {warning}", markup=False, style="yellow")
    release = result.release
    data = _published(result)
    rollback = _rollback_warning(args, release.secure_version)
    data["warnings"] = [*result.warnings, *([rollback] if rollback else [])]
    if rollback:
        err_console.print(f"medfw: warning: {rollback}", markup=False, style="yellow")
    emit(args, data, lambda: out_console.print(f"published {release.target_path} ({release.version})"))
    return EXIT_OK


def _published(result: Any) -> dict[str, Any]:
    """The ``--json`` document of a published release."""
    release = result.release
    return {
        "target_path": release.target_path,
        "model": release.model,
        "chip": release.chip,
        "format": release.image_format,
        "version": release.version,
        "secure_version": release.secure_version,
        "length": release.length,
        "sha256": release.sha256,
        "sbom": dict(release.sbom),
        "targets_version": result.targets_version,
        "online_signed": result.online_signed,
    }


def _release_list(args: argparse.Namespace) -> int:
    path = "/api/v1/releases/sync" if args.sync else "/api/v1/releases"
    rows = fleet_client(args).request("POST" if args.sync else "GET", path)
    cols = ["id", "target_path", "model", "version", "secure_version", "length"]
    emit(args, rows, lambda: table("releases", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def register(ota: Any) -> None:
    """Add ``ota release …``."""
    group = add_group(ota, "release", "releases")
    p = group.add_parser("publish", help="add a signed image as a TUF target (offline step)")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument("--image", required=True, metavar="SIGNED.bin", help="signed firmware image to publish")
    p.add_argument("--model", required=True, help="device model the release is for (target path prefix)")
    p.add_argument(
        "--targets-key",
        action="append",
        required=True,
        metavar="KEY",
        help="targets key URI (repeatable, up to the threshold)",
    )
    p.add_argument("--root-key", action="append", metavar="KEY", help="create the repository first with this root")
    p.add_argument("--name", help="target file name (default MODEL-VERSION.bin)")
    p.add_argument("--version", help="release version (default: from the image; refused if it disagrees)")
    p.add_argument(
        "--secure-version", type=int, help="anti-rollback version (default: from the image; refused if it disagrees)"
    )
    p.add_argument("--chip", help="chip (default: from the image; refused if it disagrees)")
    p.add_argument(
        "--format",
        default="esp-app",
        help="image format: esp-app (ESP app descriptor), mcuboot (header + SEC_CNT TLV), or another name whose "
        "fields must all be given (default esp-app)",
    )
    p.add_argument("--sbom", metavar="FILE", help="SBOM to reference by name and SHA-256")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_publish)
    p = group.add_parser("list", help="releases known to the server")
    p.add_argument("--sync", action="store_true", help="first read new releases from the repository (admin)")
    add_server_flags(p)
    p.set_defaults(func=_release_list)
    _ota_documents.register(group, add_server_flags)  # attach / documents
