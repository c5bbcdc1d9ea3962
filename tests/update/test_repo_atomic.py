"""Every ``ota repo`` / ``ota release`` command is all or nothing.

Each command is failed (an exception) and killed (the process dies, simulated by an exception the transaction
does not catch) at each of its writes; afterwards the repository must be byte-identical to before. After every
successful step python-tuf's ngclient, trusting only the first root, must accept the repository.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tuf.ngclient import Updater, UpdaterConfig

from medfw.cli import main
from medfw.crypto.keys import KeyType, generate_private_key, write_private_key
from medfw.crypto.signer import FileSigner
from medfw.image.esp import build_app_image
from medfw.image.sbv2 import sign_image
from medfw.update import repo_txn


class Killed(BaseException):
    """The process dies at this write (nothing in the transaction catches a BaseException)."""


def tree(root: Path) -> dict[str, bytes]:
    """Every file of the repository (but the writer lock) and its bytes."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A real HTTP server on 127.0.0.1 serving a directory the tests put repositories in."""
    root = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.RequestHandlerClass.log_message = lambda *a: None  # type: ignore[method-assign]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def client_accepts(
    server: tuple[str, Path], repo: Path, trusted_root: bytes, tmp: Path, target: str | None = None
) -> None:
    """A fresh ngclient trusting ``trusted_root`` refreshes from ``repo`` over HTTP (and fetches ``target``)."""
    url, served = server
    rel = repo.relative_to(served).as_posix()
    meta = tmp / "client-meta"
    shutil.rmtree(meta, ignore_errors=True)
    meta.mkdir(parents=True)
    updater = Updater(
        metadata_dir=str(meta),
        metadata_base_url=f"{url}/{rel}/metadata/",
        target_base_url=f"{url}/{rel}/targets/",
        target_dir=str(tmp),
        config=UpdaterConfig(prefix_targets_with_hash=True),
        bootstrap=trusted_root,
    )
    updater.refresh()
    if target is not None:
        info = updater.get_targetinfo(target)
        assert info is not None
        updater.download_target(info, str(tmp / "t.bin"))


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, str]:
    keys = tmp_path / "keys"
    out = {}
    for name in ("root", "root2", "targets", "targets2", "snapshot2", "boot"):
        write_private_key(generate_private_key(KeyType.ECDSA_P256), keys / f"{name}.pem")
        out[name] = str(keys / f"{name}.pem")
    signer = FileSigner.from_file(out["boot"])
    for version, svn in (("1.0.0", 1), ("1.1.0", 2)):
        image = sign_image(build_app_image(chip="esp32c6", version=version, secure_version=svn, size=8192), [signer])
        (tmp_path / f"app-{version}.bin").write_bytes(image)
        out[f"image-{version}"] = str(tmp_path / f"app-{version}.bin")
    return out


def _commands(k: dict[str, str], repo: str) -> list[tuple[str, list[str], str | None]]:
    """(name, argv, target the client must then find) in an order where each step builds on the last."""
    return [
        ("publish", ["ota", "release", "publish", "--repo", repo, "--image", k["image-1.0.0"], "--model", "pump",
                     "--targets-key", k["targets"]], "pump/pump-1.0.0.bin"),
        ("refresh", ["ota", "repo", "refresh", "--repo", repo, "--force"], None),
        ("rotate-snapshot", ["ota", "repo", "rotate", "--repo", repo, "--role", "snapshot", "--root-key", k["root"],
                             "--new-key", k["snapshot2"]], None),
        ("refresh-after-rotation", ["ota", "repo", "refresh", "--repo", repo, "--force"], None),
        ("rotate-timestamp", ["ota", "repo", "rotate", "--repo", repo, "--role", "timestamp", "--root-key", k["root"]],
         None),
        ("rotate-targets", ["ota", "repo", "rotate", "--repo", repo, "--role", "targets", "--root-key", k["root"],
                            "--new-key", k["targets2"]], None),
        ("publish-new-key", ["ota", "release", "publish", "--repo", repo, "--image", k["image-1.1.0"], "--model",
                             "pump", "--targets-key", k["targets2"]], "pump/pump-1.1.0.bin"),
        ("rotate-root", ["ota", "repo", "rotate", "--repo", repo, "--role", "root", "--root-key", k["root"],
                         "--new-key", k["root2"]], None),
    ]  # fmt: skip


def _count_writes(run: Callable[[], int]) -> int:
    seen: list[str] = []
    repo_txn.before_write = seen.append
    try:
        assert run() == 0
    finally:
        repo_txn.before_write = None
    return len(seen)


@pytest.fixture(autouse=True)
def _no_hook() -> Iterator[None]:
    yield
    repo_txn.before_write = None


def _fail_at(k: int, exc: BaseException) -> Callable[[str], None]:
    count = [0]

    def hook(_rel: str) -> None:
        if count[0] == k:
            raise exc
        count[0] += 1

    return hook


def test_init_fails_or_dies_at_every_write(setup: dict[str, str], tmp_path: Path) -> None:
    argv = ["ota", "repo", "init", "--root-key", setup["root"], "--targets-key", setup["targets"]]
    n = _count_writes(lambda: main([*argv, "--repo", str(tmp_path / "probe")]))
    assert n >= 6  # 3 versioned + 4 entry points + 2 online keys, minus timestamp's version
    for k in range(n):
        for exc in (RuntimeError("disk full"), Killed()):
            repo = tmp_path / f"r{k}-{type(exc).__name__}"
            repo_txn.before_write = _fail_at(k, exc)
            if isinstance(exc, Killed):
                with pytest.raises(Killed):
                    main([*argv, "--repo", str(repo)])
                repo_txn.before_write = None
                repo_txn.recover(repo)
            else:
                assert main([*argv, "--repo", str(repo)]) == 2
                repo_txn.before_write = None
            assert tree(repo) == {}, (k, type(exc).__name__)


def test_every_command_is_atomic_and_clients_accept_each_step(
    setup: dict[str, str], tmp_path: Path, server: tuple[str, Path]
) -> None:
    repo = server[1] / "atomic-repo"
    assert main(["ota", "repo", "init", "--repo", str(repo), "--root-key", setup["root"],
                 "--targets-key", setup["targets"]]) == 0  # fmt: skip
    root_v1 = (repo / "metadata" / "root.json").read_bytes()
    client_accepts(server, repo, root_v1, tmp_path / "c0")
    for step, (name, argv, target) in enumerate(_commands(setup, str(repo))):
        probe = tmp_path / f"probe-{name}"
        shutil.copytree(repo, probe)
        n = _count_writes(lambda a=argv, p=probe: main([*[str(p) if x == str(repo) else x for x in a]]))
        assert n >= 1, name
        before = tree(repo)
        for k in range(n):
            for exc in (RuntimeError("disk full"), Killed()):
                work = tmp_path / f"w-{name}-{k}-{type(exc).__name__}"
                shutil.copytree(repo, work)
                args = [str(work) if x == str(repo) else x for x in argv]
                repo_txn.before_write = _fail_at(k, exc)
                if isinstance(exc, Killed):
                    with pytest.raises(Killed):
                        main(args)
                    repo_txn.before_write = None
                    assert tree(work) != before or k == 0  # the dead process left a half-done change
                    assert repo_txn.recover(work)  # what the next writer does first
                else:
                    assert main(args) == 2, (name, k)
                    repo_txn.before_write = None
                assert tree(work) == before, (name, k, type(exc).__name__)
                shutil.rmtree(work)
        assert main(argv) == 0, name
        client_accepts(server, repo, root_v1, tmp_path / f"c{step + 1}", target)


def test_rotating_an_online_role_replaces_its_key_file(
    setup: dict[str, str], tmp_path: Path, server: tuple[str, Path]
) -> None:
    repo = server[1] / "rotate-repo"
    assert main(["ota", "repo", "init", "--repo", str(repo), "--root-key", setup["root"],
                 "--targets-key", setup["targets"]]) == 0  # fmt: skip
    old = (repo / "online-keys" / "snapshot.pem").read_bytes()
    assert main(["ota", "repo", "rotate", "--repo", str(repo), "--role", "snapshot", "--root-key", setup["root"],
                 "--new-key", setup["snapshot2"]]) == 0  # fmt: skip
    new = (repo / "online-keys" / "snapshot.pem").read_bytes()
    assert new != old
    assert (repo / "online-keys" / "snapshot.pem").stat().st_mode & 0o777 == 0o600
    # refresh and a later rotation work with the stored key (they failed when the file stayed stale)
    assert main(["ota", "repo", "refresh", "--repo", str(repo), "--force"]) == 0
    assert main(["ota", "repo", "rotate", "--repo", str(repo), "--role", "targets", "--root-key", setup["root"],
                 "--new-key", setup["targets2"]]) == 0  # fmt: skip
    client_accepts(server, repo, (repo / "metadata" / "1.root.json").read_bytes(), tmp_path / "c")


def test_a_refused_rotation_writes_nothing(setup: dict[str, str], tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert main(["ota", "repo", "init", "--repo", str(repo), "--root-key", setup["root"],
                 "--targets-key", setup["targets"]]) == 0  # fmt: skip
    before = tree(repo)
    # the wrong root key: the new root would not meet root v1's threshold
    assert main(["ota", "repo", "rotate", "--repo", str(repo), "--role", "targets", "--root-key", setup["root2"],
                 "--new-key", setup["targets2"]]) == 1  # fmt: skip
    assert tree(repo) == before
    # publishing with a key the root does not trust
    assert main(["ota", "release", "publish", "--repo", str(repo), "--image", setup["image-1.0.0"], "--model", "pump",
                 "--targets-key", setup["targets2"]]) == 1  # fmt: skip
    assert tree(repo) == before


@pytest.mark.parametrize(("kind", "scheme"), [(KeyType.ECDSA_P384, "nistp384"), (KeyType.RSA3072, "rsassa-pss")])
def test_p384_and_rsa_roles_warn_about_clients(
    kind: KeyType, scheme: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root.pem"
    write_private_key(generate_private_key(kind), root)
    targets = tmp_path / "targets.pem"
    write_private_key(generate_private_key(KeyType.ECDSA_P256), targets)
    code = main(["ota", "repo", "init", "--repo", str(tmp_path / "r"), "--root-key", str(root),
                 "--targets-key", str(targets)])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    assert "warning: root role" in err and scheme in err
    if kind is KeyType.ECDSA_P384:
        assert "tuf-js" in err and "SHA-256" in err
