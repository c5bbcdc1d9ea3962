"""``medfw ota``: the TUF update repository (offline steps), the fleet server, and operator commands.

Offline (keys never leave the release machine or HSM):
    ``ota repo init``, ``ota repo rotate``, ``ota release publish``.
Online (the server host): ``ota repo refresh``, ``ota serve``, ``ota token create``.
Operators (over the management API, ``--server`` / ``--token`` or ``MEDFW_OTA_SERVER`` / ``MEDFW_OTA_TOKEN``):
    ``ota device add|list``, ``ota rollout create|status|pause|resume|cancel``, ``ota release list|sync``,
    ``ota fleet``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from medfw._io import read_bytes
from medfw.cli import _ota_documents, _ota_trust
from medfw.cli._common import (
    add_audit_flag,
    add_group,
    add_json_flag,
    audit_sink,
    emit,
    err_console,
    out_console,
    print_table,
)
from medfw.crypto.keys import KeyType, generate_private_key, load_private_key, private_key_pem
from medfw.errors import EXIT_OK, InputError, MedfwError, UsageError

if TYPE_CHECKING:
    from medfw.update.repository import TufRepository
    from medfw.update.tuf_signer import MedfwTufSigner

__all__ = ["register"]

MAX_IMAGE = 64 * 1024 * 1024


# ---- helpers -------------------------------------------------------------------------------------------------


def _repo(path: str | Path) -> TufRepository:
    from medfw.update.repository import TufRepository  # noqa: PLC0415 - keep CLI start-up light

    return TufRepository(path)


def _signers(uris: list[str] | None) -> list[MedfwTufSigner]:
    from medfw.update.tuf_signer import MedfwTufSigner  # noqa: PLC0415

    return [MedfwTufSigner.from_medfw_uri(u) for u in uris or []]


def _online_key_path(repo_dir: Path, role: str) -> Path:
    return repo_dir / "online-keys" / f"{role}.pem"


def _online_signer(repo_dir: Path, role: str, uri: str | None, *, generate: bool) -> MedfwTufSigner:
    """The online key of ``role``: the given URI, else ``online-keys/<role>.pem`` (generated when asked)."""
    from medfw.update.publish import online_signer  # noqa: PLC0415

    return online_signer(repo_dir, role, uri, generate=generate)


def _secret_file(path: str, what: str, flag: str) -> str:
    """Read a secret from a file (first line, stripped); refuse a file other users can read."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e.strerror}", path=path, field=flag) from None
    if mode & 0o077:
        raise UsageError(f"{what} file is readable by other users: chmod 600 {path}", path=path, field=flag)
    text = read_bytes(path, max_length=4096, what=what).decode("utf-8", "replace").strip()
    if not text:
        raise UsageError(f"{what} file is empty", path=path, field=flag)
    return text.splitlines()[0].strip()


def _client(args: argparse.Namespace) -> Any:
    from medfw.server.client import FleetClient  # noqa: PLC0415 - keep CLI start-up light

    server = args.server or os.environ.get("MEDFW_OTA_SERVER")
    token: str | None
    if args.token_file:
        token = _secret_file(args.token_file, "API token", "--token-file")
    else:
        token = args.token or os.environ.get("MEDFW_OTA_TOKEN")
    if args.token:
        err_console.print(
            "medfw: warning: --token puts the secret in the process list; use --token-file or MEDFW_OTA_TOKEN",
            markup=False,
            style="yellow",
        )
    if not server:
        raise UsageError("no server: give --server URL or set MEDFW_OTA_SERVER", field="--server")
    if not token:
        raise UsageError("no API token: give --token-file FILE or set MEDFW_OTA_TOKEN", field="--token-file")
    return FleetClient(server, token)


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL", help="fleet server base URL (default: $MEDFW_OTA_SERVER)")
    p.add_argument("--token-file", metavar="FILE", help="file holding the management API token (mode 0600)")
    p.add_argument(
        "--token",
        metavar="TOKEN",
        help="management API token (visible in the process list: prefer --token-file or $MEDFW_OTA_TOKEN)",
    )
    add_json_flag(p)


def _db_url(args: argparse.Namespace, url: str) -> str:
    """The database URL with the password from ``--db-password-file`` (else libpq's ``PGPASSFILE`` applies)."""
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    from medfw.server.db import normalise_url  # noqa: PLC0415

    if make_url(normalise_url(url)).password:
        err_console.print(
            "medfw: warning: a password in --db is visible in the process list; use --db-password-file or PGPASSFILE",
            markup=False,
            style="yellow",
        )
    if not getattr(args, "db_password_file", None):
        return url
    password = _secret_file(args.db_password_file, "database password", "--db-password-file")
    return make_url(normalise_url(url)).set(password=password).render_as_string(hide_password=False)


def _add_db_password_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db-password-file",
        metavar="FILE",
        help="file holding the PostgreSQL password (mode 0600); without it, PGPASSFILE / ~/.pgpass apply",
    )


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table; every cell is plain text (devices report versions and reasons: never rich markup)."""

    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:  # device-reported strings may hold rich markup ("[/x]"): cells are plain Text
        t.add_row(*[Text("" if v is None else str(v)) for v in r])
    print_table(t)


# ---- repository ----------------------------------------------------------------------------------------------


def _new_online_key(role: str, given: str | None) -> tuple[MedfwTufSigner, bytes | None]:
    """The signer for an online role and the key file to keep in ``online-keys/`` (None for a token key).

    ``given`` is a key file or ``pkcs11:`` URI; without it a fresh ECDSA P-256 key is generated. Nothing is
    written here: the repository stores the file in the same all-or-nothing step as the metadata.
    """
    from medfw.crypto.signer import FileSigner  # noqa: PLC0415
    from medfw.update.tuf_signer import MedfwTufSigner  # noqa: PLC0415

    if given and given.startswith("pkcs11:"):
        return MedfwTufSigner.from_medfw_uri(given), None
    key = load_private_key(given.removeprefix("file:")) if given else generate_private_key(KeyType.ECDSA_P256)
    return MedfwTufSigner(FileSigner(key, key_id=given or f"online-keys/{role}.pem")), private_key_pem(key)


def _warn(warnings: list[str]) -> None:
    for w in warnings:
        err_console.print(f"warning: {w}", markup=False, style="yellow")


def _repo_init(args: argparse.Namespace) -> int:
    from medfw.update.repository import TufRepository, client_support_warnings  # noqa: PLC0415

    repo_dir = Path(args.repo)
    if (repo_dir / "metadata" / "root.json").exists():
        raise UsageError("a TUF repository already exists here", path=str(repo_dir))
    roots = _signers(args.root_key)
    targets = _signers(args.targets_key)
    snap, snap_pem = _new_online_key("snapshot", args.snapshot_key)
    ts, ts_pem = _new_online_key("timestamp", args.timestamp_key)
    files = {role: pem for role, pem in (("snapshot", snap_pem), ("timestamp", ts_pem)) if pem is not None}
    warnings = [
        *client_support_warnings("root", [s.public_key for s in roots]),
        *client_support_warnings("targets", [s.public_key for s in targets]),
        *client_support_warnings("snapshot", [snap.public_key]),
        *client_support_warnings("timestamp", [ts.public_key]),
    ]
    _warn(warnings)
    repo = TufRepository.init(
        repo_dir,
        root_signers=roots,
        targets_signers=targets,
        snapshot_signer=snap,
        timestamp_signer=ts,
        root_threshold=args.root_threshold,
        targets_threshold=args.targets_threshold,
        online_key_files=files,
    )
    root = repo.root().signed
    root_sha256 = hashlib.sha256(repo.root_bytes()).hexdigest()
    data: dict[str, Any] = {
        "repo": str(repo_dir),
        "root_version": root.version,
        "roles": {r: {"keyids": list(root.roles[r].keyids), "threshold": root.roles[r].threshold} for r in root.roles},
        "root_sha256": root_sha256,
        "warnings": warnings,
    }
    sink = audit_sink(args)
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415

    sink.record(
        AuditEvent(
            type="key.generate",
            outcome="success",
            actor="cli",
            objects={"root_sha256": root_sha256},
            data={"action": "tuf.repo.init"},
        )
    )
    emit(args, data, lambda: out_console.print(f"TUF repository created in {repo_dir} (root v{root.version})"))
    return EXIT_OK


def _repo_rotate(args: argparse.Namespace) -> int:
    from medfw.update.repository import ONLINE_ROLES, client_support_warnings  # noqa: PLC0415

    repo = _repo(args.repo)
    role = args.role
    old_root = _signers(args.root_key)
    key_files: dict[str, bytes] = {}
    if role in ONLINE_ROLES:
        if args.new_key and len(args.new_key) > 1:
            raise UsageError(f"the {role} role takes one online key", field="--new-key")
        signer, pem = _new_online_key(role, args.new_key[0] if args.new_key else None)
        new_signers = [signer]
        if pem is not None:
            key_files[role] = pem
    else:
        new_signers = _signers(args.new_key)
    if not new_signers:
        raise UsageError(f"give the new {role} key(s) with --new-key", field="--new-key")
    warnings = client_support_warnings(role, [s.public_key for s in new_signers])
    _warn(warnings)
    online = None
    if role in ONLINE_ROLES or role == "targets":
        snap = new_signers[0] if role == "snapshot" else _online_signer(repo.path, "snapshot", None, generate=False)
        ts = new_signers[0] if role == "timestamp" else _online_signer(repo.path, "timestamp", None, generate=False)
        online = (snap, ts)
    new_root = repo.rotate(
        role,
        [s.public_key for s in new_signers],
        old_root_signers=old_root,
        new_root_signers=new_signers if role == "root" else (),
        threshold=args.threshold,
        targets_signers=new_signers if role == "targets" else (),
        online_signers=online,
        online_key_files=key_files,
        remove_online_key=role in ONLINE_ROLES and not key_files,
    )
    from medfw.audit.sink import AuditEvent  # noqa: PLC0415

    audit_sink(args).record(
        AuditEvent(
            type="key.rotate",
            outcome="success",
            actor="cli",
            objects={"root_sha256": hashlib.sha256(repo.root_bytes()).hexdigest()},
            data={"role": role, "root_version": new_root.signed.version, "keyids": [s.key_id for s in new_signers]},
        )
    )
    data = {
        "role": role,
        "root_version": new_root.signed.version,
        "keyids": [s.key_id for s in new_signers],
        "warnings": warnings,
    }
    emit(args, data, lambda: out_console.print(f"{role} keys rotated: root is now v{new_root.signed.version}"))
    return EXIT_OK


def _repo_refresh(args: argparse.Namespace) -> int:
    repo = _repo(args.repo)
    snap = _online_signer(repo.path, "snapshot", args.snapshot_key, generate=False)
    ts = _online_signer(repo.path, "timestamp", args.timestamp_key, generate=False)
    changed = repo.sign_online(snap, ts, force=args.force)
    emit(args, {"changed": changed}, lambda: out_console.print("re-signed" if changed else "still fresh"))
    return EXIT_OK


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
    server, token = os.environ.get("MEDFW_OTA_SERVER"), os.environ.get("MEDFW_OTA_TOKEN")
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
    targets = _signers(args.targets_key)
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
            root_signers=_signers(args.root_key),
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
    data = {
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
    rollback = _rollback_warning(args, release.secure_version)
    data["warnings"] = [*result.warnings, *([rollback] if rollback else [])]
    if rollback:
        err_console.print(f"medfw: warning: {rollback}", markup=False, style="yellow")
    emit(args, data, lambda: out_console.print(f"published {release.target_path} ({release.version})"))
    return EXIT_OK


# ---- server --------------------------------------------------------------------------------------------------


def _port_free(host: str, port: int) -> None:
    """Refuse to start when ``host:port`` cannot be bound (another server holds it)."""
    import socket  # noqa: PLC0415

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what uvicorn sets too
        try:
            sock.bind((host, port))
        except OSError as e:
            raise UsageError(f"cannot listen on {host}:{port}: {e.strerror} (choose --port)", field="--port") from None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415

    from medfw import __version__  # noqa: PLC0415
    from medfw.server import asgi  # noqa: PLC0415
    from medfw.server.db import make_engine, migrate, safe_url  # noqa: PLC0415

    if args.workers < 1:
        raise UsageError("--workers must be at least 1", field="--workers")
    db = _db_url(args, args.db) if args.db else asgi.default_db_url(args.repo)
    if args.repo:
        _repo(args.repo)  # fail early on a wrong directory
    device_tls = _serve_tls(args)
    engine = make_engine(db)
    migrate(engine)
    if args.artifact_base_url and not args.artifact_base_url.startswith(("https://", "http://")):
        raise UsageError("--artifact-base-url must be an http(s) URL", field="--artifact-base-url")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give both --tls-cert and --tls-key", field="--tls-key")
    if args.tls_cert:
        from medfw.server.tls import check_server_files  # noqa: PLC0415

        check_server_files(args.tls_cert, args.tls_key)
    _port_free(args.host, args.port)
    url = f"{'https' if args.tls_cert else 'http'}://{args.host}:{args.port}"
    started = {
        "listening": url,
        "version": __version__,
        "backend": engine.dialect.name,
        "db": safe_url(db),
        "repo": args.repo,
        "workers": args.workers,
    }
    engine.dispose()
    emit(
        args,
        started,
        lambda: out_console.print(
            f"medfw {__version__} fleet server on {url} ({engine.dialect.name} {safe_url(db)}, "
            f"{args.workers} worker(s), repository {args.repo or '-'})",
            markup=False,
            highlight=False,
        ),
        now=True,
    )
    os.environ[asgi.ENV_DB] = db
    os.environ[asgi.ENV_MIGRATED] = "1"
    os.environ[asgi.ENV_LOG_FORMAT] = args.log_format
    if args.artifact_base_url:
        os.environ[asgi.ENV_ARTIFACT_BASE] = args.artifact_base_url
    if args.repo:
        os.environ[asgi.ENV_REPO] = str(Path(args.repo).resolve())
    if args.audit_log:
        os.environ[asgi.ENV_AUDIT] = args.audit_log
    if args.vuln_db:
        os.environ[asgi.ENV_VULN_DB] = args.vuln_db
    uvicorn.run(
        "medfw.server.asgi:create_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        access_log=False,
        **_transport_options(args),
        **device_tls,
    )
    return EXIT_OK


def _serve_tls(args: argparse.Namespace) -> dict[str, Any]:
    """Check the device-trust options, export them to the workers, return uvicorn's mutual-TLS options."""
    from medfw.server import asgi  # noqa: PLC0415

    if args.device_ca and not args.tls_cert:
        raise UsageError("--device-ca (mutual TLS) needs --tls-cert and --tls-key", field="--device-ca")
    settings = asgi.ServerSettings(
        db="",
        device_ca=args.device_ca,
        device_audit_master=args.device_audit_master,
        allow_shared_secret_devices=args.allow_shared_secret_devices,
        approval_policy=args.approval_policy,
    )
    settings.trust()  # fail early on a bad file
    for env, value in (
        (asgi.ENV_DEVICE_CA, args.device_ca),
        (asgi.ENV_AUDIT_MASTER, args.device_audit_master),
        (asgi.ENV_APPROVAL_POLICY, args.approval_policy),
        (asgi.ENV_ALLOW_SIMULATORS, "1" if args.allow_shared_secret_devices else None),
    ):
        if value:
            os.environ[env] = str(Path(value).resolve()) if env != asgi.ENV_ALLOW_SIMULATORS else value
    if not args.device_ca:
        return {}
    from medfw.identity.tls import uvicorn_tls_options  # noqa: PLC0415

    options = uvicorn_tls_options(cert=args.tls_cert, key=args.tls_key, device_ca=args.device_ca)
    return {k: v for k, v in options.items() if k not in ("ssl_certfile", "ssl_keyfile")}


def _transport_options(args: argparse.Namespace) -> dict[str, Any]:
    """uvicorn options for TLS (1.2 or newer) and for headers from trusted reverse proxies only."""
    options: dict[str, Any] = {"proxy_headers": bool(args.trusted_proxy)}
    if args.trusted_proxy:
        options["forwarded_allow_ips"] = ",".join(args.trusted_proxy)
    if args.tls_cert:
        from medfw.server.tls import server_context_factory  # noqa: PLC0415

        options.update(ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key, ssl_context_factory=server_context_factory)
    return options


def _duration(text: str, flag: str) -> Any:
    from medfw.server.credentials import parse_duration  # noqa: PLC0415

    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(str(e), field=flag) from None


def _token_create(args: argparse.Namespace) -> int:
    from medfw.server.credentials import Role  # noqa: PLC0415
    from medfw.server.db import make_engine, make_sessionmaker, migrate  # noqa: PLC0415
    from medfw.server.service import FleetService  # noqa: PLC0415

    expires_in = _duration(args.expires_in, "--expires-in") if args.expires_in else None
    engine = make_engine(_db_url(args, args.db))
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), audit_sink(args))
    token = service.create_token(args.name, Role(args.role), expires_in=expires_in)
    (view,) = [v for v in service.tokens() if v.name == args.name]
    data = {"name": args.name, "role": args.role, "token": token, "expires": view.expires}
    emit(args, data, lambda: out_console.print(token, markup=False, highlight=False))
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    rows = _client(args).request("GET", "/api/v1/tokens")
    cols = ["name", "role", "created", "expires", "last_used", "revoked", "active"]
    emit(args, rows, lambda: _table("tokens", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    row = _client(args).request("DELETE", f"/api/v1/tokens/{args.name}")
    emit(args, row, lambda: out_console.print(f"token {row['name']} revoked", markup=False, highlight=False))
    return EXIT_OK


def _device_rotate(args: argparse.Namespace) -> int:
    client = _client(args)
    body = {"grace": args.grace}
    _duration(args.grace, "--grace")
    created = client.request("POST", f"/api/v1/devices/{args.id}/credential", json=body)
    data: dict[str, Any] = {"id": created["id"], "grace": args.grace}
    if args.provision:
        from medfw.update.agent import load_config, provision  # noqa: PLC0415

        old = load_config(args.provision)
        root = Path(args.provision, "ota", "tuf", "root.json").read_bytes()
        provision(
            args.provision,
            device_id=old.device_id,
            model=old.model,
            chip=old.chip,
            credential=created["credential"],
            root=root,
            server=old.server,
        )
        data["provisioned"] = str(args.provision)
    else:
        data["credential"] = created["credential"]
    emit(args, data, lambda: out_console.print(f"device {created['id']} has a new credential" + _cred_note(data)))
    return EXIT_OK


# ---- operator commands ---------------------------------------------------------------------------------------


def _device_add(args: argparse.Namespace) -> int:
    root: bytes | None = None
    if args.provision:
        if args.repo:
            root = _repo(args.repo).root_bytes()
        elif args.root:
            root = read_bytes(args.root, max_length=8 * 1024 * 1024, what="TUF root")
        else:
            raise UsageError("--provision needs the root of trust: --repo DIR or --root FILE", field="--provision")
    client = _client(args)
    body = {"id": args.id, "model": args.model, "chip": args.chip or "", "group": args.group}
    if args.reprovision:  # a decommissioned id, registered again (admin); without the flag it is 409
        del body["id"]
        created = client.request("POST", f"/api/v1/devices/{args.id}/reprovision", json=body)
    else:
        created = client.request("POST", "/api/v1/devices", json=body)
    data: dict[str, Any] = {"id": created["id"], "model": args.model, "group": args.group}
    if args.provision and root is not None:
        from medfw.update.agent import provision  # noqa: PLC0415

        provision(
            args.provision,
            device_id=created["id"],
            model=args.model,
            chip=args.chip or "",
            credential=created["credential"],
            root=root,
            server=client.server,
        )
        data["provisioned"] = str(args.provision)
    else:
        data["credential"] = created["credential"]
    emit(args, data, lambda: out_console.print(f"device {created['id']} registered" + _cred_note(data)))
    return EXIT_OK


def _cred_note(data: dict[str, Any]) -> str:
    if "provisioned" in data:
        return f"; credential and TUF root stored in {data['provisioned']}"
    return f"; credential (shown once): {data['credential']}"


def _device_list(args: argparse.Namespace) -> int:
    params = {k: v for k, v in (("group", args.group), ("model", args.model)) if v}
    rows = _client(args).request("GET", "/api/v1/devices", params=params)
    cols = ["id", "model", "group", "version", "secure_version", "slot", "last_status", "last_seen"]
    emit(args, rows, lambda: _table("devices", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _rollout_human(r: dict[str, Any]) -> None:
    out_console.print(
        f"rollout {r['id']} {r['name']}: {r['state']}"
        + (f" ({r['state_reason']})" if r.get("state_reason") else "")
        + f", release {r['release']} v{r['version']} svn {r['secure_version']}, phase {r['current_phase']}"
        + f"/{len(r['phases'])}",
        markup=False,
        highlight=False,
    )
    states = sorted({s for p in r["phases"] for s in p["counts"]})
    _table(
        "phases",
        ["phase", "spec", *states],
        [[p["phase"], p["spec"]] + [p["counts"].get(s, 0) for s in states] for p in r["phases"]],
    )
    if r.get("reasons"):
        rows = [[x["state"], x["reason"], x["devices"]] for x in r["reasons"]]
        _table("reasons", ["state", "reason", "devices"], rows)
    trust = r.get("trust") or {}
    notes = [f"deferred {k}: {v}" for k, v in (trust.get("deferred") or {}).items()]
    notes += [f"outside maintenance window ({g}): {n}" for g, n in (trust.get("outside_window") or {}).items()]
    if trust.get("require_approval"):
        notes.append("installs need the user's approval on each unit")
    if trust.get("campaign"):
        notes.append(f"key-rotation campaign {trust['campaign']}")
    for note in notes:
        out_console.print(note, markup=False)


def _rollout_create(args: argparse.Namespace) -> int:
    release: str | int = int(args.release) if args.release.isdigit() else args.release
    body = {
        "release": release,
        "name": args.name,
        "group": args.group,
        "devices": args.device,
        "version": args.from_version,
        "phases": [p for p in args.phases.split(",") if p],
        "success_threshold": args.success_threshold,
        "error_threshold": args.error_threshold,
        "require_approval": args.require_approval,
    }
    r = _client(args).request("POST", "/api/v1/rollouts", json=body)
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def _rollout_status(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.id is None:
        rows = client.request("GET", "/api/v1/rollouts")
        cols = ["id", "name", "release", "state", "current_phase"]
        table = [
            [*(r[c] for c in cols), ", ".join(f"{x['reason']} ×{x['devices']}" for x in r["reasons"])] for r in rows
        ]
        emit(args, rows, lambda: _table("rollouts", [*cols, "reasons"], table))
        return EXIT_OK
    r = client.request("GET", f"/api/v1/rollouts/{args.id}")
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def _rollout_control(args: argparse.Namespace) -> int:
    r = _client(args).request("POST", f"/api/v1/rollouts/{args.id}/{args.action}")
    emit(args, r, lambda: _rollout_human(r))
    return EXIT_OK


def _reports(args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"limit": args.limit}
    if args.device:
        params["device"] = args.device
    if args.rollout is not None:
        params["rollout"] = args.rollout
    rows = _client(args).request("GET", "/api/v1/reports", params=params)
    cols = ["id", "created", "device", "rollout", "status", "reason", "version", "secure_version", "slot"]
    emit(args, rows, lambda: _table("reports", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _device_remove(args: argparse.Namespace) -> int:
    _client(args).request("DELETE", f"/api/v1/devices/{args.id}")
    emit(args, {"id": args.id, "removed": True}, lambda: out_console.print(f"device {args.id} decommissioned"))
    return EXIT_OK


def _device_set_group(args: argparse.Namespace) -> int:
    row = _client(args).request("PUT", f"/api/v1/devices/{args.id}/group", json={"group": args.group})
    emit(args, row, lambda: out_console.print(f"device {row['id']} is now in group {row['group']}", markup=False))
    return EXIT_OK


def _fleet(args: argparse.Namespace) -> int:
    rows = _client(args).request("GET", "/api/v1/fleet")
    cols = ["model", "version", "secure_version", "devices"]
    emit(args, rows, lambda: _table("fleet", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _release_list(args: argparse.Namespace) -> int:
    path = "/api/v1/releases/sync" if args.sync else "/api/v1/releases"
    rows = _client(args).request("POST" if args.sync else "GET", path)
    cols = ["id", "target_path", "model", "version", "secure_version", "length"]
    emit(args, rows, lambda: _table("releases", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


# ---- registration --------------------------------------------------------------------------------------------


def register(sub: Any) -> None:
    """Register the ``ota`` command group."""
    ota = add_group(sub, "ota", "signed OTA delivery: TUF repository, fleet server, rollouts")

    repo = add_group(ota, "repo", "TUF update repository (offline root and targets keys)")
    p = repo.add_parser("init", help="create a TUF repository")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument("--root-key", action="append", required=True, metavar="KEY", help="root key URI (repeatable)")
    p.add_argument("--root-threshold", type=int, default=1, help="root signatures required")
    p.add_argument("--targets-key", action="append", required=True, metavar="KEY", help="targets key (repeatable)")
    p.add_argument("--targets-threshold", type=int, default=1, help="targets signatures required")
    p.add_argument("--snapshot-key", metavar="KEY", help="online snapshot key (default: generated in DIR/online-keys)")
    p.add_argument("--timestamp-key", metavar="KEY", help="online timestamp key (default: generated)")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_repo_init)

    p = repo.add_parser("rotate", help="replace the keys of a role (root N→N+1 signed by old and new keys)")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument(
        "--role",
        required=True,
        choices=["root", "targets", "snapshot", "timestamp"],
        help="TUF role whose keys are replaced",
    )
    p.add_argument("--root-key", action="append", required=True, metavar="KEY", help="current root key(s)")
    p.add_argument("--new-key", action="append", metavar="KEY", help="new key(s) (online roles: default generated)")
    p.add_argument("--threshold", type=int, default=1, help="signatures the role needs after rotation")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_repo_rotate)

    p = repo.add_parser("refresh", help="re-sign snapshot/timestamp with the online keys when due")
    p.add_argument("--repo", required=True, metavar="DIR", help="TUF repository directory")
    p.add_argument("--snapshot-key", metavar="KEY", help="online snapshot key (default: DIR/online-keys/snapshot.pem)")
    p.add_argument(
        "--timestamp-key", metavar="KEY", help="online timestamp key (default: DIR/online-keys/timestamp.pem)"
    )
    p.add_argument("--force", action="store_true", help="re-sign even when the online metadata is still fresh")
    add_json_flag(p)
    p.set_defaults(func=_repo_refresh)

    release = add_group(ota, "release", "releases")
    p = release.add_parser("publish", help="add a signed image as a TUF target (offline step)")
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
    p = release.add_parser("list", help="releases known to the server")
    p.add_argument("--sync", action="store_true", help="first read new releases from the repository (admin)")
    _add_server_flags(p)
    p.set_defaults(func=_release_list)
    _ota_documents.register(release, _add_server_flags)  # attach / documents

    p = ota.add_parser("serve", help="run the fleet server")
    p.add_argument("--db", metavar="URL", help="sqlite:///PATH or postgresql://… (default: REPO/fleet.sqlite)")
    _add_db_password_flag(p)
    p.add_argument("--repo", metavar="DIR", help="TUF repository to serve")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=8080, help="TCP port")
    p.add_argument("--workers", type=int, default=1, help="worker processes (with --audit-log: one appends it)")
    p.add_argument(
        "--artifact-base-url",
        metavar="URL",
        help="static host/CDN serving REPO's metadata/ and targets/: devices download there (TUF-checked)",
    )
    p.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS (TLS 1.2 or newer) with this certificate chain")
    p.add_argument("--tls-key", metavar="PEM", help="the certificate's private key (mode 0600)")
    p.add_argument(
        "--trusted-proxy",
        action="append",
        metavar="ADDR",
        help="reverse proxy address whose X-Forwarded-For/-Proto are believed (repeatable; default: none)",
    )
    p.add_argument(
        "--log-format", choices=["text", "json"], default="text", help="server log lines on stderr (default text)"
    )
    p.add_argument(
        "--device-ca", metavar="CA.crt", help="authenticate units by mutual TLS against this manufacturer device CA"
    )
    p.add_argument(
        "--device-audit-master", metavar="FILE", help="device-audit master secret: collect and verify unit trails"
    )
    p.add_argument(
        "--allow-shared-secret-devices",
        action="store_true",
        help="let confirmations of shared-secret (simulator) units count toward rollout thresholds",
    )
    p.add_argument("--approval-policy", metavar="POLICY", help="M-of-N approval policy for key-rotation campaigns")
    p.add_argument(
        "--vuln-db",
        metavar="URL",
        help="vulnerability index whose released SBOMs and findings the console shows (default: none)",
    )
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_serve)

    token = add_group(ota, "token", "management API tokens")
    p = token.add_parser("create", help="create a token directly in the database (bootstrap)")
    p.add_argument("--db", required=True, metavar="URL", help="fleet database URL (sqlite:///PATH or postgresql://…)")
    _add_db_password_flag(p)
    p.add_argument("--name", required=True, help="token name (who or what uses it)")
    p.add_argument("--role", required=True, choices=["admin", "operator", "read-only"], help="what the token may do")
    p.add_argument("--expires-in", metavar="DURATION", help="lifetime such as 10m, 12h, 90d (default: until revoked)")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_token_create)

    p = token.add_parser("list", help="list tokens: role, expiry, last use, revocation (admin)")
    _add_server_flags(p)
    p.set_defaults(func=_token_list)
    p = token.add_parser("revoke", help="revoke a token at once (admin)")
    p.add_argument("name", help="the token's name")
    _add_server_flags(p)
    p.set_defaults(func=_token_revoke)

    device = add_group(ota, "device", "devices of the fleet")
    p = device.add_parser("add", help="register a device (and provision its directory)")
    p.add_argument("--id", required=True, help="device id (unique in the fleet)")
    p.add_argument("--model", required=True, help="device model the release is for (target path prefix)")
    p.add_argument("--chip", default="", help="chip of the device (esp32c3, …; empty: any)")
    p.add_argument("--group", default="default", help="device group rollouts target")
    p.add_argument("--provision", metavar="DEVICE_DIR", help="store credential and TUF root in this device dir")
    p.add_argument("--repo", metavar="DIR", help="TUF repository whose root the device trusts")
    p.add_argument("--root", metavar="FILE", help="TUF root.json the device trusts")
    p.add_argument("--reprovision", action="store_true", help="register a decommissioned id again (admin)")
    _add_server_flags(p)
    p.set_defaults(func=_device_add)
    p = device.add_parser("rotate", help="give a device a new credential; the old one works for --grace more")
    p.add_argument("--id", required=True, help="device id")
    p.add_argument("--grace", default="0", metavar="DURATION", help="old credential stays valid (default 0: refused)")
    p.add_argument("--provision", metavar="DEVICE_DIR", help="store the new credential in this device directory")
    _add_server_flags(p)
    p.set_defaults(func=_device_rotate)
    p = device.add_parser("list", help="list devices")
    p.add_argument("--group", help="only this device group")
    p.add_argument("--model", help="only this device model")
    _add_server_flags(p)
    p.set_defaults(func=_device_list)
    _ota_trust.register(ota, device, _client, _table, _add_server_flags)
    p = device.add_parser("remove", help="decommission a device: its credential stops working, its history stays")
    p.add_argument("id", help="device id")
    _add_server_flags(p)
    p.set_defaults(func=_device_remove)
    p = device.add_parser("set-group", help="move a device to another group (rollouts created later see it)")
    p.add_argument("id", help="device id")
    p.add_argument("group", help="the new group")
    _add_server_flags(p)
    p.set_defaults(func=_device_set_group)

    p = ota.add_parser("reports", help="device reports, newest first (with refusal reasons)")
    p.add_argument("--device", metavar="ID", help="only this device's reports (default: all devices)")
    p.add_argument("--rollout", type=int, metavar="ID", help="only reports about this rollout (default: all)")
    p.add_argument("--limit", type=int, default=100, help="at most this many reports, 1-1000 (default: 100)")
    _add_server_flags(p)
    p.set_defaults(func=_reports)

    rollout = add_group(ota, "rollout", "staged rollouts")
    p = rollout.add_parser("create", help="start a staged rollout")
    p.add_argument("--release", required=True, help="release target path or id")
    p.add_argument("--name", help="rollout name (default: the release name)")
    p.add_argument("--group", help="only this device group")
    p.add_argument("--device", action="append", help="limit to these devices (repeatable)")
    p.add_argument("--from-version", help="only devices reporting this version")
    p.add_argument("--phases", default="10%,100%", help="comma-separated counts or percentages (canary first)")
    p.add_argument(
        "--success-threshold",
        type=int,
        default=90,
        metavar="PCT",
        help="percent of a phase that must succeed before the next starts",
    )
    p.add_argument(
        "--error-threshold",
        type=int,
        default=10,
        metavar="PCT",
        help="percent of failures in a phase that halts the rollout",
    )
    p.add_argument("--require-approval", action="store_true", help="each unit installs only after on-device approval")
    _add_server_flags(p)
    p.set_defaults(func=_rollout_create)
    p = rollout.add_parser("status", help="show one rollout (or all)")
    p.add_argument("id", nargs="?", type=int, help="rollout id (default: all rollouts)")
    _add_server_flags(p)
    p.set_defaults(func=_rollout_status)
    for action in ("pause", "resume", "cancel"):
        p = rollout.add_parser(action, help=f"{action} a rollout")
        p.add_argument("id", type=int, help="rollout id")
        _add_server_flags(p)
        p.set_defaults(func=_rollout_control, action=action)

    p = ota.add_parser("fleet", help="versions across the fleet")
    _add_server_flags(p)
    p.set_defaults(func=_fleet)
