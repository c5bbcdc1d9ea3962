"""The TUF repository: init, publish, online re-signing, rotation of every role, checked with python-tuf's client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient.fetcher import FetcherInterface
from tuf.ngclient.updater import Updater

from medfw.errors import InputError, UsageError, VerificationError
from medfw.update.repository import ExpiryPolicy, ReleaseInfo, TufRepository, release_from_target

from .fleet import tuf_signer


class DirFetcher(FetcherInterface):
    """Serves a repository directory as if over HTTP (``http://repo/metadata/…``, ``http://repo/targets/…``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _fetch(self, url: str) -> Iterator[bytes]:
        path = self.root / url.removeprefix("http://repo/")
        if not path.is_file():
            raise DownloadHTTPError("not found", 404)
        return iter([path.read_bytes()])


@pytest.fixture
def keys() -> dict[str, object]:
    return {r: tuf_signer() for r in ("root", "targets", "snapshot", "timestamp")}


def _repo(tmp_path: Path, keys: dict[str, object]) -> TufRepository:
    return TufRepository.init(
        tmp_path / "repo",
        root_signers=[keys["root"]],  # type: ignore[list-item]
        targets_signers=[keys["targets"]],  # type: ignore[list-item]
        snapshot_signer=keys["snapshot"],  # type: ignore[arg-type]
        timestamp_signer=keys["timestamp"],  # type: ignore[arg-type]
    )


def _client(repo: TufRepository, tmp_path: Path, root: bytes) -> Updater:
    meta = tmp_path / "client"
    meta.mkdir(exist_ok=True)
    if not (meta / "root.json").exists():
        (meta / "root.json").write_bytes(root)
    up = Updater(
        str(meta),
        "http://repo/metadata/",
        str(tmp_path / "dl"),
        "http://repo/targets/",
        DirFetcher(repo.path),
        bootstrap=None,
    )
    up.refresh()
    return up


def _release(version: str, svn: int, model: str = "pump") -> ReleaseInfo:
    return ReleaseInfo(
        f"{model}/{model}-{version}.bin",
        model,
        "esp32c3",
        "esp-app",
        version,
        svn,
        0,
        "",
        {"ref": "sbom.json", "sha256": "ab" * 32},
    )


def test_publish_and_client_download(tmp_path: Path, keys: dict[str, object]) -> None:
    repo = _repo(tmp_path, keys)
    image = b"\x5a" * 3000
    rel = repo.publish(image, _release("1.1.0", 2), targets_signers=[keys["targets"]])  # type: ignore[list-item]
    assert rel.length == 3000 and len(rel.sha256) == 64
    assert repo.sign_online(keys["snapshot"], keys["timestamp"])  # type: ignore[arg-type]
    assert not repo.sign_online(keys["snapshot"], keys["timestamp"])  # type: ignore[arg-type]  # fresh: nothing to do
    up = _client(repo, tmp_path, repo.root_bytes())
    info = up.get_targetinfo("pump/pump-1.1.0.bin")
    assert info is not None
    got = release_from_target(info)
    assert (got.model, got.version, got.secure_version, got.chip) == ("pump", "1.1.0", 2, "esp32c3")
    assert dict(got.sbom) == {"ref": "sbom.json", "sha256": "ab" * 32}
    path = up.download_target(info, str(tmp_path / "out.bin"))
    assert Path(path).read_bytes() == image
    assert repo.releases() == [got]


def test_online_metadata_is_short_lived_and_refreshed(tmp_path: Path, keys: dict[str, object]) -> None:
    repo = _repo(tmp_path, keys)
    policy = ExpiryPolicy()
    ts = repo.load("timestamp").signed
    assert ts.expires - datetime.now(UTC) <= policy.timestamp
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=13)
    assert repo.sign_online(keys["snapshot"], keys["timestamp"], now=later)  # type: ignore[arg-type]
    assert repo.load("timestamp").signed.version == ts.version + 1


def test_publish_refuses_bad_names_and_replacement(tmp_path: Path, keys: dict[str, object]) -> None:
    repo = _repo(tmp_path, keys)
    t = [keys["targets"]]
    bad = ReleaseInfo("../evil.bin", "pump", "", "", "1", 1, 0, "")
    with pytest.raises(UsageError, match="target path"):
        repo.publish(b"x", bad, targets_signers=t)  # type: ignore[arg-type]
    repo.publish(b"one", _release("1.0.0", 1), targets_signers=t)  # type: ignore[arg-type]
    repo.publish(b"one", _release("1.0.0", 1), targets_signers=t)  # type: ignore[arg-type]  # same bytes: idempotent
    with pytest.raises(UsageError, match="different image"):
        repo.publish(b"two", _release("1.0.0", 1), targets_signers=t)  # type: ignore[arg-type]


def test_publish_with_wrong_key_is_refused(tmp_path: Path, keys: dict[str, object]) -> None:
    repo = _repo(tmp_path, keys)
    before = repo.targets().signed.version
    with pytest.raises(VerificationError, match="threshold"):
        repo.publish(b"x", _release("1.0.0", 1), targets_signers=[keys["snapshot"]])  # type: ignore[list-item]
    assert repo.targets().signed.version == before
    assert not list((repo.targets_dir).rglob("*.bin"))


def test_root_rotation_old_and_new_keys(tmp_path: Path, keys: dict[str, object]) -> None:
    repo = _repo(tmp_path, keys)
    root_v1 = repo.root_bytes()
    _client(repo, tmp_path, root_v1)
    new_root = tuf_signer()
    with pytest.raises(VerificationError):
        repo.rotate("root", [new_root.public_key], old_root_signers=[], new_root_signers=[new_root])
    with pytest.raises(VerificationError):
        repo.rotate("root", [new_root.public_key], old_root_signers=[keys["root"]], new_root_signers=[])  # type: ignore[list-item]
    md = repo.rotate("root", [new_root.public_key], old_root_signers=[keys["root"]], new_root_signers=[new_root])  # type: ignore[list-item]
    assert md.signed.version == 2 and len(md.signatures) == 2
    up = _client(repo, tmp_path, root_v1)  # the client walks v1 -> v2
    assert up._trusted_set.root.version == 2
    # the old root key alone can no longer rotate
    with pytest.raises(VerificationError):
        repo.rotate("root", [tuf_signer().public_key], old_root_signers=[keys["root"]], new_root_signers=[])  # type: ignore[list-item]


@pytest.mark.parametrize("role", ["targets", "snapshot", "timestamp"])
def test_rotate_every_role(tmp_path: Path, keys: dict[str, object], role: str) -> None:
    repo = _repo(tmp_path, keys)
    root_v1 = repo.root_bytes()
    _client(repo, tmp_path, root_v1)
    new = tuf_signer()
    signers = dict(keys)
    signers[role] = new
    before = _tree(tmp_path / "repo")
    with pytest.raises(VerificationError, match="client would refuse"):  # rotating alone breaks every client
        repo.rotate(role, [new.public_key], old_root_signers=[keys["root"]])  # type: ignore[list-item]
    assert _tree(tmp_path / "repo") == before
    repo.rotate(
        role,
        [new.public_key],
        old_root_signers=[keys["root"]],  # type: ignore[list-item]
        targets_signers=[new] if role == "targets" else (),
        online_signers=(signers["snapshot"], signers["timestamp"]),  # type: ignore[arg-type]
    )
    repo.publish(b"img", _release("2.0.0", 3), targets_signers=[signers["targets"]])  # type: ignore[list-item]
    repo.sign_online(signers["snapshot"], signers["timestamp"])  # type: ignore[arg-type]
    up = _client(repo, tmp_path, root_v1)
    assert up._trusted_set.root.version == 2
    assert up.get_targetinfo("pump/pump-2.0.0.bin") is not None
    if role == "targets":  # the old targets key is no longer trusted
        with pytest.raises(VerificationError):
            repo.publish(b"x", _release("2.0.1", 3), targets_signers=[keys["targets"]])  # type: ignore[list-item]


def test_threshold_two_of_two(tmp_path: Path) -> None:
    r1, r2, t = tuf_signer(), tuf_signer(), tuf_signer()
    with pytest.raises(UsageError):
        TufRepository.init(
            tmp_path / "x",
            root_signers=[r1],
            targets_signers=[t],
            snapshot_signer=t,
            timestamp_signer=t,
            root_threshold=2,
        )
    repo = TufRepository.init(
        tmp_path / "r",
        root_signers=[r1, r2],
        root_threshold=2,
        targets_signers=[t],
        snapshot_signer=tuf_signer(),
        timestamp_signer=tuf_signer(),
    )
    with pytest.raises(VerificationError):
        repo.rotate("targets", [tuf_signer().public_key], old_root_signers=[r1])


def test_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a TUF repository"):
        TufRepository(tmp_path)
    (tmp_path / "metadata").mkdir()
    (tmp_path / "metadata" / "root.json").write_text("{")
    with pytest.raises(InputError, match="malformed root metadata"):
        TufRepository(tmp_path).root()


def test_release_from_target_requires_fields(tmp_path: Path, keys: dict[str, object]) -> None:
    from tuf.api._payload import TargetFile

    tf = TargetFile(1, {"sha256": "00" * 32}, "x/y", unrecognized_fields={"custom": {"model": "m", "version": "1"}})
    with pytest.raises(InputError, match="release fields"):
        release_from_target(tf)
    tf.unrecognized_fields["custom"]["secure_version"] = True
    with pytest.raises(InputError):
        release_from_target(tf)


def test_release_fields_parser_fuzz() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from tuf.api._payload import TargetFile

    json_values = st.recursive(
        st.none() | st.booleans() | st.integers(-5, 10) | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )
    keys = st.sampled_from(["model", "version", "secure_version", "chip", "format", "sbom", "x"])

    @settings(max_examples=150, deadline=None)
    @given(st.dictionaries(keys, json_values, max_size=7))
    def run(custom: dict[str, object]) -> None:
        tf = TargetFile(1, {"sha256": "00" * 32}, "m/x.bin", unrecognized_fields={"custom": custom})
        try:
            rel = release_from_target(tf)
        except InputError:
            return
        assert isinstance(rel.secure_version, int) and rel.secure_version >= 0
        assert isinstance(rel.model, str) and isinstance(rel.version, str)

    run()


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (but the writer lock) and its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
