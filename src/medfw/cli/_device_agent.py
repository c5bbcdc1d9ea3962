"""``medfw device agent DIR --server URL [--once]``: run the OTA update agent of a simulated unit.

Registered into the ``device`` group by :func:`register` (called from ``medfw.cli.device``).
Exit codes: 0 idle, updated or deferred (a download resumes next time); 1 the update was rejected or reverted;
2 the server could not be reached or the unit is not provisioned.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import Any

from medfw.cli._common import add_audit_flag, add_json_flag, audit_sink, emit, err_console, out_console
from medfw.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, UsageError

__all__ = ["register"]


def _cmd_agent(args: argparse.Namespace) -> int:
    import httpx  # noqa: PLC0415 - keep CLI start-up light
    from rich.progress import Progress, TaskID  # noqa: PLC0415

    from medfw.device import Device  # noqa: PLC0415
    from medfw.update.agent import AgentOutcome, UpdateAgent, load_config  # noqa: PLC0415

    if not 1 <= args.deadline <= 86_400:
        raise UsageError("--deadline must be 1 to 86400 seconds", field="--deadline")
    from medfw.update.device_port import TrustedModelDevice  # noqa: PLC0415

    config = load_config(args.dir)
    server = args.server or config.server
    if not server or not server.startswith(("http://", "https://")):
        raise UsageError("give --server http(s)://HOST:PORT (none stored at provisioning)", field="--server")
    sink = audit_sink(args)
    device = Device.open(args.dir, audit=sink)
    bar = Progress(console=err_console, transient=True, disable=bool(args.json))
    tasks: list[TaskID] = []

    def progress(done: int, total: int) -> None:
        if not tasks:
            tasks.append(bar.add_task("downloading image", total=total))
        bar.update(tasks[0], completed=done, total=total)

    verify: Any = True
    identity = Path(args.dir) / "identity"
    if server.startswith("https://") and (identity / "device.crt").is_file():
        from medfw.identity.tls import client_ssl_context  # noqa: PLC0415

        # a certificate unit: mutual TLS with its identity certificate
        verify = client_ssl_context(server_ca=args.ca_file, cert=identity / "device.crt", key=identity / "device.key")
    elif args.ca_file:  # the CA that issued the server's TLS certificate (not the system store)
        import ssl  # noqa: PLC0415

        verify = ssl.create_default_context(cafile=args.ca_file)
    with httpx.Client(base_url=server, timeout=args.timeout, verify=verify) as client, bar:
        agent = UpdateAgent(
            args.dir,
            TrustedModelDevice(device),
            client,
            config=config,
            sink=sink,
            app_check=lambda _state: not args.app_fails,
            progress=progress,
            deadline=args.deadline,
        )
        try:
            result = agent.run(cycles=1 if args.once else args.cycles)
        finally:
            device.close()
    data: dict[str, Any] = asdict(result)
    emit(
        args,
        data,
        lambda: out_console.print(
            f"{result.outcome}"
            + (f" ({result.reason})" if result.reason else "")
            + f": running {result.version} in {result.slot}",
            markup=False,
        ),
    )
    if result.outcome in (AgentOutcome.REJECTED, AgentOutcome.REVERTED):
        return EXIT_FAILED
    if result.outcome is AgentOutcome.UNREACHABLE:
        return EXIT_BAD_INPUT
    return EXIT_OK


def register(group: Any) -> None:
    """Add ``agent`` to the ``medfw device`` sub-commands."""
    p: argparse.ArgumentParser = group.add_parser(
        "agent", help="run the OTA update agent (poll, verify with TUF, install, confirm, report)"
    )
    p.add_argument("dir", metavar="DIR", help="device directory (provisioned with `medfw ota device add --provision`)")
    p.add_argument("--server", metavar="URL", help="fleet server (default: the one stored at provisioning)")
    p.add_argument("--once", action="store_true", help="run one poll-and-update cycle and exit")
    p.add_argument("--cycles", type=int, metavar="N", help="run N cycles (default: forever)")
    p.add_argument("--ca-file", metavar="PEM", help="CA certificate(s) that issued the server's TLS certificate")
    p.add_argument("--app-fails", action="store_true", help="the new app never confirms (watchdog revert)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="HTTP timeout in seconds (per read)")
    p.add_argument(
        "--deadline",
        type=float,
        default=300.0,
        metavar="S",
        help="overall seconds one image download or one TUF metadata file may take (default 300)",
    )
    add_json_flag(p)
    add_audit_flag(p)
    p.set_defaults(func=_cmd_agent)
