"""The file rules every command shares (``medfw._io``): bounded reads, atomic writes, private secret files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medfw._io import atomic_write, atomic_write_text, check_private, read_bytes, read_secret
from medfw.errors import InputError, KeyMaterialError, StorageError


def test_read_bytes_names_what_is_wrong(tmp_path: Path) -> None:
    f = tmp_path / "fw.bin"
    f.write_bytes(b"x" * 10)
    assert read_bytes(f, max_length=10) == b"x" * 10
    with pytest.raises(InputError, match="larger than the limit of 9 bytes") as e:
        read_bytes(f, max_length=9, what="image")
    assert e.value.path == str(f)
    with pytest.raises(InputError, match="image not found"):
        read_bytes(tmp_path / "missing.bin", what="image")
    with pytest.raises(InputError, match="is a directory"):
        read_bytes(tmp_path)
    if os.geteuid() != 0:  # root reads any file
        f.chmod(0)
        with pytest.raises(InputError, match="cannot read"):
            read_bytes(f)


def test_atomic_write_replaces_whole_files_only(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "out.json"
    atomic_write_text(out, "one", mode=0o600)
    assert out.read_text() == "one" and out.stat().st_mode & 0o777 == 0o600
    with pytest.raises(InputError, match="output file exists"):
        atomic_write(out, b"two", overwrite=False)
    assert out.read_text() == "one"
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match="cannot create output"):
        atomic_write(blocker / "out.json", b"x")
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.json"]  # no temp file left behind


def test_secret_files_must_be_private_and_non_empty(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret\nignored\n")
    token.chmod(0o644)
    with pytest.raises(KeyMaterialError, match="chmod 600"):
        read_secret(token, what="API token", field="--token-file")
    token.chmod(0o600)
    assert read_secret(token, what="API token") == "s3cret"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(InputError, match="API token file is empty"):
        read_secret(empty, what="API token")
    with pytest.raises(InputError, match="cannot read API token"):
        check_private(tmp_path / "missing", what="API token")


def test_read_bytes_reads_files_whose_size_is_not_known_in_advance() -> None:
    status = read_bytes("/proc/self/status", what="status")  # st_size 0: read until the end, still bounded
    assert status.startswith(b"Name:") and len(status) > 1
    with pytest.raises(InputError, match="larger than the limit of 8 bytes"):
        read_bytes("/proc/self/status", max_length=8)


def test_a_failed_rename_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(StorageError, match="cannot write output: No space left on device"):
        atomic_write(tmp_path / "out.bin", b"data")
    assert list(tmp_path.iterdir()) == []
