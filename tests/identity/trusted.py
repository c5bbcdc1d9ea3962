"""A trusted fleet for the proof tests: a real TLS fleet server on 127.0.0.1 with a device CA (mutual TLS), units
with certificates, their own sealed audit logs and agents that sign their claims."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.identity.ca import DeviceCA
from medfw.identity.tls import client_ssl_context, uvicorn_tls_options
from medfw.identity.unit import AUDIT_LOG, provision_identity
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image
from medfw.server.app import OnlineKeys, create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig
from medfw.update.agent import AgentConfig, DeviceState, UpdateAgent, provision
from medfw.update.device_port import TrustedModelDevice
from medfw.update.fetcher import RetryPolicy
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

from .pki import ServerTls, device_ca, run_server, server_tls

CHIP = "esp32c6"
SLOT = 0x10000
FLASH = 0x40000
MASTER = bytes(range(1, 33))


def _tuf() -> MedfwTufSigner:
    return MedfwTufSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))


def app_image(signers: list[FileSigner], version: str, secure_version: int, *, size: int = 8192) -> bytes:
    return sign_image(build_app_image(chip=CHIP, version=version, secure_version=secure_version, size=size), signers)


@dataclass
class Unit:
    id: str
    dir: Path
    device: Device
    port: TrustedModelDevice
    agent: UpdateAgent
    sink: MemorySink
    client: httpx.Client
    healthy: bool = True

    def state(self) -> DeviceState:
        return self.port.state()

    def cycle(self) -> str:
        return self.agent.run_once().outcome


@dataclass
class TrustedFleet:
    tmp: Path
    repo: TufRepository
    targets: MedfwTufSigner
    online: OnlineKeys
    old_key: FileSigner
    new_key: FileSigner
    ca: DeviceCA
    tls: ServerTls
    service: FleetService
    sink: MemorySink
    url: str
    admin: httpx.Client
    units: dict[str, Unit] = field(default_factory=dict)

    def publish(self, version: str, secure_version: int, *, signers: list[FileSigner] | None = None) -> str:
        data = app_image(signers or [self.old_key], version, secure_version)
        info = ReleaseInfo(f"pump/pump-{version}.bin", "pump", CHIP, "esp-app", version, secure_version, 0, "")
        rel = self.repo.publish(data, info, targets_signers=[self.targets])
        self.repo.sign_online(self.online.snapshot, self.online.timestamp)
        r = self.admin.post("/api/v1/releases/sync")
        assert r.status_code == 200, r.text
        return rel.target_path

    def bootloader(self, signers: list[FileSigner] | None = None) -> bytes:
        # the factory bootloader is signed with both keys, so it keeps booting after the old key is revoked
        return sign_image(
            build_app_image(chip=CHIP, version="bootloader", secure_version=0, project_name="bootloader"),
            signers or [self.old_key, self.new_key],
        )

    def unit(
        self,
        device_id: str,
        *,
        preauthorize: bool = True,
        keep_unused_slots: bool = False,
        digests: list[bytes] | None = None,
        client_cert: tuple[Path, Path] | None = None,
        factory_key: FileSigner | None = None,
    ) -> Unit:
        if preauthorize:
            r = self.admin.post(
                "/api/v1/enrollment/preauthorized", json={"serials": [{"serial": device_id, "model": "pump"}]}
            )
            assert r.status_code == 200, r.text
        d = self.tmp / "units" / device_id
        provision_identity(d, self.ca, device_id=device_id, model="pump", chip=CHIP, audit_master=MASTER)
        sink = MemorySink()
        dev = Device.in_memory(
            chip=CHIP,
            key_digests=digests or [public_key_digest((factory_key or self.old_key).public_key())],
            slot_size=SLOT,
            flash_size=FLASH,
            audit=sink,
            revoke_unused_slots=not keep_unused_slots,
        )
        dev.attach_own_log(d / AUDIT_LOG)
        if factory_key is None:
            dev.flash(self.bootloader(), app_image([self.old_key], "1.0.0", 1))
        else:
            dev.flash(self.bootloader([factory_key]), app_image([factory_key], "1.0.0", 1))
        config: AgentConfig = provision(
            d, device_id=device_id, model="pump", chip=CHIP, credential="", root=self.repo.root_bytes()
        )
        cert, key = client_cert or (d / "identity" / "device.crt", d / "identity" / "device.key")
        client = httpx.Client(base_url=self.url, verify=client_ssl_context(server_ca=self.tls.ca, cert=cert, key=key))
        port = TrustedModelDevice(dev)
        unit = Unit(device_id, d, dev, port, None, sink, client)  # type: ignore[arg-type]
        unit.agent = UpdateAgent(
            d,
            port,
            client,
            config=config,
            sink=sink,
            app_check=lambda _st: unit.healthy,
            retry=RetryPolicy(attempts=2, base=0.0),
            sleep=lambda _s: None,
        )
        self.units[device_id] = unit
        return unit

    def rollout(self, release: str, **body: Any) -> dict[str, Any]:
        r = self.admin.post("/api/v1/rollouts", json={"release": release, **body})
        assert r.status_code == 201, r.text
        return dict(r.json())

    def status(self, rollout_id: int) -> dict[str, Any]:
        return dict(self.admin.get(f"/api/v1/rollouts/{rollout_id}").json())

    def counts(self, rollout_id: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for phase in self.status(rollout_id)["phases"]:
            for k, v in phase["counts"].items():
                out[k] = out.get(k, 0) + v
        return out


@contextlib.contextmanager
def trusted_fleet(
    tmp: Path, *, approval_policy: Any = None, allow_shared_secret: bool = False
) -> Iterator[TrustedFleet]:
    root, targets = _tuf(), _tuf()
    online = OnlineKeys(_tuf(), _tuf())
    repo = TufRepository.init(
        tmp / "repo",
        root_signers=[root],
        targets_signers=[targets],
        snapshot_signer=online.snapshot,
        timestamp_signer=online.timestamp,
    )
    tls = server_tls(tmp / "tls")
    ca = device_ca()
    ca_path = tmp / "device-ca.crt"
    ca_path.write_bytes(ca.certificate.public_bytes(serialization.Encoding.PEM))
    engine = make_engine(f"sqlite:///{tmp / 'fleet.sqlite'}")
    migrate(engine)
    sink = MemorySink()
    trust = TrustConfig(
        device_ca=ca.certificate,
        audit_master=MASTER,
        allow_shared_secret=allow_shared_secret,
        approval_policy=approval_policy,
    )
    service = FleetService(make_sessionmaker(engine), sink, trust=trust)
    token = service.create_token("admin", Role.ADMIN)
    app = create_app(service, repo, online_keys=online, maintenance_interval=3600)
    options = uvicorn_tls_options(cert=tls.cert, key=tls.key, device_ca=ca_path)
    srv, thread, port = run_server(app, **options)
    url = f"https://127.0.0.1:{port}"
    admin = httpx.Client(
        base_url=url, verify=client_ssl_context(server_ca=tls.ca), headers={"Authorization": f"Bearer {token}"}
    )
    old_key = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    new_key = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    fleet = TrustedFleet(tmp, repo, targets, online, old_key, new_key, ca, tls, service, sink, url, admin)
    try:
        yield fleet
    finally:
        for unit in fleet.units.values():
            unit.client.close()
            unit.device.close()
        admin.close()
        srv.should_exit = True
        thread.join(timeout=10)
