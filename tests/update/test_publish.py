"""Publishing is a library call: repository update, online re-signing and the audit event, without the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfw.audit.sink import MemorySink
from medfw.errors import InputError
from medfw.update.publish import publish_release
from medfw.update.repository import ReleaseInfo, TufRepository

from .fleet import tuf_signer


def test_publish_release_updates_the_repository_and_audits(tmp_path: Path) -> None:
    image = bytes(range(256)) * 16
    sbom = tmp_path / "sbom.cdx.json"
    sbom.write_text("{}")
    release = ReleaseInfo("pump/pump-1.2.0.bin", "pump", "esp32c3", "esp-app", "1.2.0", 3, 0, "")
    root, targets = tuf_signer(), tuf_signer()
    sink = MemorySink()
    repo_dir = tmp_path / "repo"
    with pytest.raises(InputError, match="no TUF repository"):
        publish_release(repo_dir, image, release, targets_signers=[targets], sink=sink)
    assert sink.events == [] and not repo_dir.exists()
    result = publish_release(
        repo_dir, image, release, targets_signers=[targets], root_signers=[root], sbom=sbom, sink=sink, actor="ci"
    )
    assert (result.release.length, result.online_signed, result.release.sbom["ref"]) == (4096, True, "sbom.cdx.json")
    repo = TufRepository(repo_dir)
    assert [r.target_path for r in repo.releases()] == ["pump/pump-1.2.0.bin"]
    assert repo.targets().signed.version == result.targets_version
    (event,) = sink.events
    assert (event.type, event.actor, event.objects["target"]) == ("release.publish", "ci", "pump/pump-1.2.0.bin")
    assert event.objects["image_sha256"] == result.release.sha256
    with pytest.raises(InputError, match="SBOM"):
        publish_release(repo_dir, image, release, targets_signers=[targets], sbom=tmp_path / "missing", sink=sink)
    assert len(sink.events) == 1
