"""A whole simulated OTA setup for tests: TUF repository, fleet server (in-process ASGI), devices with agents."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medfw.audit.sink import MemorySink
from medfw.crypto.keys import KeyType, generate_private_key
from medfw.crypto.signer import FileSigner
from medfw.device import Device
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import public_key_digest, sign_image
from medfw.server.app import OnlineKeys, create_app
from medfw.server.credentials import Role
from medfw.server.db import make_engine, make_sessionmaker, migrate
from medfw.server.service import FleetService
from medfw.server.trust_config import TrustConfig
from medfw.update.agent import AgentConfig, DeviceState, UpdateAgent, provision
from medfw.update.device_port import ModelDevice
from medfw.update.fetcher import RetryPolicy
from medfw.update.repository import ReleaseInfo, TufRepository
from medfw.update.tuf_signer import MedfwTufSigner

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CHIP = "esp32c6"
SLOT = 0x10000
FLASH = 0x40000


def tuf_signer() -> MedfwTufSigner:
    return MedfwTufSigner(FileSigner(generate_private_key(KeyType.ECDSA_P256)))


def signed_app(signer: FileSigner, version: str, secure_version: int, *, chip: str = CHIP, size: int = 8192) -> bytes:
    return sign_image(build_app_image(chip=chip, version=version, secure_version=secure_version, size=size), [signer])


@dataclass
class SimDevice:
    id: str
    dir: Path
    device: Device
    port: ModelDevice
    agent: UpdateAgent
    sink: MemorySink
    healthy: bool = True

    def state(self) -> DeviceState:
        return self.port.state()


@dataclass
class Fleet:
    root: Path
    repo: TufRepository
    root_signer: MedfwTufSigner
    targets_signer: MedfwTufSigner
    online: OnlineKeys
    boot_signer: FileSigner
    service: FleetService
    server_sink: MemorySink
    client: TestClient
    admin: str
    devices: dict[str, SimDevice] = field(default_factory=dict)
    base_image: bytes = b""

    @property
    def h(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}

    def publish(
        self, version: str, secure_version: int, *, model: str = "pump", chip: str = CHIP, image: bytes | None = None
    ) -> ReleaseInfo:
        data = image if image is not None else signed_app(self.boot_signer, version, secure_version, chip=chip)
        info = ReleaseInfo(f"{model}/{model}-{version}.bin", model, chip, "esp-app", version, secure_version, 0, "")
        rel = self.repo.publish(data, info, targets_signers=[self.targets_signer])
        self.repo.sign_online(self.online.snapshot, self.online.timestamp)
        r = self.client.post("/api/v1/releases/sync", headers=self.h)
        assert r.status_code == 200, r.text
        return rel

    def add_device(
        self, device_id: str, *, model: str = "pump", group: str = "default", healthy: bool = True
    ) -> SimDevice:
        r = self.client.post(
            "/api/v1/devices", json={"id": device_id, "model": model, "chip": CHIP, "group": group}, headers=self.h
        )
        assert r.status_code == 201, r.text
        d = self.root / "devices" / device_id
        config: AgentConfig = provision(
            d,
            device_id=device_id,
            model=model,
            chip=CHIP,
            credential=r.json()["credential"],
            root=self.repo.root_bytes(),
        )
        sink = MemorySink()
        dev = Device.in_memory(
            chip=CHIP,
            key_digests=[public_key_digest(self.boot_signer.public_key())],
            slot_size=SLOT,
            flash_size=FLASH,
            audit=sink,
        )
        dev.flash(self.bootloader(), self.base_image)
        port = ModelDevice(dev)
        sim = SimDevice(device_id, d, dev, port, None, sink, healthy)  # type: ignore[arg-type]
        sim.agent = UpdateAgent(
            d,
            port,
            self.client,
            config=config,
            sink=sink,
            app_check=lambda _st: sim.healthy,
            retry=RetryPolicy(attempts=3, base=0.0),
            sleep=lambda _s: None,
        )
        self.devices[device_id] = sim
        return sim

    def bootloader(self) -> bytes:
        return signed_app(self.boot_signer, "bootloader", 0, size=4096)

    def rollout(self, release: str, **body: Any) -> dict[str, Any]:
        r = self.client.post("/api/v1/rollouts", json={"release": release, **body}, headers=self.h)
        assert r.status_code == 201, r.text
        return dict(r.json())

    def status(self, rollout_id: int) -> dict[str, Any]:
        return dict(self.client.get(f"/api/v1/rollouts/{rollout_id}", headers=self.h).json())

    def close(self) -> None:
        self.client.__exit__(None, None, None)


def make_fleet(tmp: Path, *, db_url: str | None = None) -> Fleet:
    root_s, targets_s = tuf_signer(), tuf_signer()
    online = OnlineKeys(tuf_signer(), tuf_signer())
    repo = TufRepository.init(
        tmp / "repo",
        root_signers=[root_s],
        targets_signers=[targets_s],
        snapshot_signer=online.snapshot,
        timestamp_signer=online.timestamp,
    )
    engine = make_engine(db_url or f"sqlite:///{tmp / 'fleet.sqlite'}")
    migrate(engine)
    sink = MemorySink()
    service = FleetService(make_sessionmaker(engine), sink, trust=TrustConfig(allow_shared_secret=True))
    admin = service.create_token("admin", Role.ADMIN)
    client = TestClient(create_app(service, repo, online_keys=online, maintenance_interval=3600))
    client.__enter__()
    boot = FileSigner(generate_private_key(KeyType.ECDSA_P256))
    fleet = Fleet(tmp, repo, root_s, targets_s, online, boot, service, sink, client, admin)
    fleet.base_image = signed_app(boot, "1.0.0", 1)
    return fleet
