"""What the ``ota`` and ``keys rotation`` commands share: the management-API client (server URL and token, never
in argv), the database URL with its password from a file, durations, and tables of device-reported text."""

from __future__ import annotations

import argparse
import os
from typing import Any

from rich.table import Table
from rich.text import Text

from medfw._io import read_secret
from medfw.cli._common import add_json_flag, err_console, print_table
from medfw.errors import UsageError

__all__ = [
    "ENV_SERVER",
    "ENV_TOKEN",
    "add_db_password_flag",
    "add_server_flags",
    "api_token",
    "db_url",
    "duration",
    "fleet_client",
    "table",
    "warn",
]

ENV_SERVER = "MEDFW_OTA_SERVER"
ENV_TOKEN = "MEDFW_OTA_TOKEN"  # noqa: S105 - the variable's name, not a secret


def api_token(args: argparse.Namespace) -> str | None:
    """The management API token: from ``--token-file`` (mode 0600), else ``$MEDFW_OTA_TOKEN``; never argv."""
    if getattr(args, "token_file", None):
        return read_secret(args.token_file, what="API token", field="--token-file")
    return os.environ.get(ENV_TOKEN) or None


def fleet_client(args: argparse.Namespace) -> Any:
    """A :class:`~medfw.server.client.FleetClient` for ``--server`` / ``$MEDFW_OTA_SERVER`` and the token.

    Raises:
        UsageError: no server or no token given.
    """
    from medfw.server.client import FleetClient  # noqa: PLC0415 - keep CLI start-up light

    server = args.server or os.environ.get(ENV_SERVER)
    token = api_token(args)
    if not server:
        raise UsageError(f"no server: give --server URL or set {ENV_SERVER}", field="--server")
    if not token:
        raise UsageError(f"no API token: give --token-file FILE or set {ENV_TOKEN}", field="--token-file")
    return FleetClient(server, token)


def add_server_flags(p: argparse.ArgumentParser) -> None:
    """``--server URL``, ``--token-file FILE`` (the token also comes from ``$MEDFW_OTA_TOKEN``) and ``--json``."""
    p.add_argument("--server", metavar="URL", help=f"fleet server base URL (default: ${ENV_SERVER})")
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help=f"file holding the management API token (mode 0600; default: ${ENV_TOKEN})",
    )
    # without this, argparse would take "--token SECRET" as an abbreviation of --token-file
    p.add_argument("--token", nargs="?", help=argparse.SUPPRESS, action=_RefuseSecretArgument)
    add_json_flag(p)


class _RefuseSecretArgument(argparse.Action):
    """A secret given as an argument: refused (exit 2) without repeating it."""

    refused = True

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        parser.error(
            f"--token is not accepted (argv is visible in the process list): "
            f"use --token-file FILE (mode 0600) or set {ENV_TOKEN}"
        )


def db_url(args: argparse.Namespace, url: str) -> str:
    """The database URL with the password from ``--db-password-file`` (else libpq's ``PGPASSFILE`` applies).

    Raises:
        UsageError: the URL itself holds a password (it would be visible in the process list).
    """
    from sqlalchemy.engine import make_url  # noqa: PLC0415

    from medfw.server.db import normalise_url  # noqa: PLC0415

    if make_url(normalise_url(url)).password is not None:
        raise UsageError(
            "a password in --db is visible in the process list: use --db-password-file FILE or PGPASSFILE",
            field="--db",
        )
    if not getattr(args, "db_password_file", None):
        return url
    password = read_secret(args.db_password_file, what="database password", field="--db-password-file")
    return make_url(normalise_url(url)).set(password=password).render_as_string(hide_password=False)


def add_db_password_flag(p: argparse.ArgumentParser) -> None:
    """``--db-password-file FILE``."""
    p.add_argument(
        "--db-password-file",
        metavar="FILE",
        help="file holding the PostgreSQL password (mode 0600); without it, PGPASSFILE / ~/.pgpass apply",
    )


def duration(text: str, flag: str) -> Any:
    """A duration such as ``10m`` or ``90d`` (a :class:`datetime.timedelta`).

    Raises:
        UsageError: not a duration, named by ``flag``.
    """
    from medfw.server.credentials import parse_duration  # noqa: PLC0415

    try:
        return parse_duration(text)
    except ValueError as e:
        raise UsageError(str(e), field=flag) from None


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """Print a table; every cell is plain text (devices report versions and reasons: never rich markup)."""
    t = Table(title=title)
    for c in columns:
        t.add_column(c)
    for r in rows:  # device-reported strings may hold rich markup ("[/x]"): cells are plain Text
        t.add_row(*[Text("" if v is None else str(v)) for v in r])
    print_table(t)


def warn(messages: list[str]) -> None:
    """Print each warning on stderr (plain text)."""
    for w in messages:
        err_console.print(f"warning: {w}", markup=False, style="yellow")
