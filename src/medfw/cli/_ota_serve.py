"""``medfw ota serve`` (the fleet server: TLS, trusted proxies, workers) and ``ota token create | list | revoke``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from medfw.cli._common import add_audit_flag, add_group, add_json_flag, audit_sink, emit, out_console
from medfw.cli._ota_client import add_db_password_flag, add_server_flags, db_url, duration, fleet_client, table
from medfw.cli._ota_repo import open_repo
from medfw.errors import EXIT_OK, UsageError

__all__ = ["register"]


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
    from medfw.server.db import make_engine, migrate, safe_url  # noqa: PLC0415

    db, device_tls = _checked(args)
    engine = make_engine(db)
    migrate(engine)
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
    _export(args, db)
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


def _checked(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """The database URL and uvicorn's mutual-TLS options, once every option has been checked."""
    from medfw.server import asgi  # noqa: PLC0415

    if args.workers < 1:
        raise UsageError("--workers must be at least 1", field="--workers")
    db = db_url(args, args.db) if args.db else asgi.default_db_url(args.repo)
    if args.repo:
        open_repo(args.repo)  # fail early on a wrong directory
    device_tls = _serve_tls(args)
    if args.artifact_base_url and not args.artifact_base_url.startswith(("https://", "http://")):
        raise UsageError("--artifact-base-url must be an http(s) URL", field="--artifact-base-url")
    if bool(args.tls_cert) != bool(args.tls_key):
        raise UsageError("give both --tls-cert and --tls-key", field="--tls-key")
    if args.tls_cert:
        from medfw.server.tls import check_server_files  # noqa: PLC0415

        check_server_files(args.tls_cert, args.tls_key)
    return db, device_tls


def _export(args: argparse.Namespace, db: str) -> None:
    """Hand the settings to the worker processes (environment, never argv: the URL may hold a password)."""
    from medfw.server import asgi  # noqa: PLC0415

    os.environ[asgi.ENV_DB] = db
    os.environ[asgi.ENV_MIGRATED] = "1"
    os.environ[asgi.ENV_LOG_FORMAT] = args.log_format
    for env, value in (
        (asgi.ENV_ARTIFACT_BASE, args.artifact_base_url),
        (asgi.ENV_REPO, str(Path(args.repo).resolve()) if args.repo else None),
        (asgi.ENV_AUDIT, args.audit_log),
        (asgi.ENV_VULN_DB, args.vuln_db),
    ):
        if value:
            os.environ[env] = value


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


def _token_create(args: argparse.Namespace) -> int:
    from medfw.server.credentials import Role  # noqa: PLC0415
    from medfw.server.db import make_engine, make_sessionmaker, migrate  # noqa: PLC0415
    from medfw.server.service import FleetService  # noqa: PLC0415

    expires_in = duration(args.expires_in, "--expires-in") if args.expires_in else None
    engine = make_engine(db_url(args, args.db))
    migrate(engine)
    service = FleetService(make_sessionmaker(engine), audit_sink(args))
    token = service.create_token(args.name, Role(args.role), expires_in=expires_in)
    (view,) = [v for v in service.tokens() if v.name == args.name]
    data = {"name": args.name, "role": args.role, "token": token, "expires": view.expires}
    emit(args, data, lambda: out_console.print(token, markup=False, highlight=False))
    return EXIT_OK


def _token_list(args: argparse.Namespace) -> int:
    rows = fleet_client(args).request("GET", "/api/v1/tokens")
    cols = ["name", "role", "created", "expires", "last_used", "revoked", "active"]
    emit(args, rows, lambda: table("tokens", cols, [[r[c] for c in cols] for r in rows]))
    return EXIT_OK


def _token_revoke(args: argparse.Namespace) -> int:
    row = fleet_client(args).request("DELETE", f"/api/v1/tokens/{args.name}")
    emit(args, row, lambda: out_console.print(f"token {row['name']} revoked", markup=False, highlight=False))
    return EXIT_OK


def register(ota: Any) -> None:
    """Add ``ota serve`` and ``ota token …``."""
    _register_serve(ota)
    _register_tokens(ota)


def _register_serve(ota: Any) -> None:
    p = ota.add_parser("serve", help="run the fleet server")
    p.add_argument("--db", metavar="URL", help="sqlite:///PATH or postgresql://… (default: REPO/fleet.sqlite)")
    add_db_password_flag(p)
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


def _register_tokens(ota: Any) -> None:
    group = add_group(ota, "token", "management API tokens")
    p = group.add_parser("create", help="create a token directly in the database (bootstrap)")
    p.add_argument("--db", required=True, metavar="URL", help="fleet database URL (sqlite:///PATH or postgresql://…)")
    add_db_password_flag(p)
    p.add_argument("--name", required=True, help="token name (who or what uses it)")
    p.add_argument("--role", required=True, choices=["admin", "operator", "read-only"], help="what the token may do")
    p.add_argument("--expires-in", metavar="DURATION", help="lifetime such as 10m, 12h, 90d (default: until revoked)")
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_token_create)

    p = group.add_parser("list", help="list tokens: role, expiry, last use, revocation (admin)")
    add_server_flags(p)
    p.set_defaults(func=_token_list)
    p = group.add_parser("revoke", help="revoke a token at once (admin)")
    p.add_argument("name", help="the token's name")
    add_server_flags(p)
    p.set_defaults(func=_token_revoke)
