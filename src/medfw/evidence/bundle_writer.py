"""How evidence sections read their inputs (recording each input's SHA-256) and write their files into the
staging directory of a bundle."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from medfw._io import read_bytes
from medfw.crypto.keys import PublicKey
from medfw.errors import EvidenceError

_MAX_INPUT = 512 * 1024 * 1024

__all__ = ["BundleWriter", "dump_json", "public_pem", "safe_name"]


def dump_json(data: Any) -> bytes:
    """The bundle's JSON file form: sorted keys, two-space indent, trailing newline (deterministic)."""
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def public_pem(key: PublicKey) -> bytes:
    """PEM SubjectPublicKeyInfo of ``key``."""
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def safe_name(name: str) -> str:
    """``name`` with every character other than letters, digits and ``-._`` replaced by ``_``."""
    return "".join(c if c.isalnum() or c in "-._" else "_" for c in name) or "file"


class BundleWriter:
    """Writes files into the staging directory and remembers every input read (path and SHA-256).

    Input paths inside ``base`` (the release directory) are recorded relative to it.
    """

    def __init__(self, root: Path, *, base: Path | None = None) -> None:
        self.root = root
        self.base = base
        self.inputs: list[dict[str, Any]] = []

    def put(self, rel: str, data: bytes) -> str:
        """Write ``data`` at ``rel``; two inputs may not map to the same file."""
        target = self.root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise EvidenceError("two inputs map to the same bundle file", path=rel)
        target.write_bytes(data)
        return rel

    def json(self, rel: str, data: Any) -> str:
        """Write ``data`` as the bundle's JSON form."""
        return self.put(rel, dump_json(data))

    def read(self, path: Path, what: str) -> bytes:
        """Read an input (bounded) and record its SHA-256."""
        data = read_bytes(path, max_length=_MAX_INPUT, what=what)
        inside = self.base is not None and path.is_relative_to(self.base)
        # never an absolute path of the build machine: inputs outside the release directory by file name only
        name = path.relative_to(self.base).as_posix() if self.base and inside else path.name
        entry: dict[str, Any] = {"input": what, "path": name, "sha256": hashlib.sha256(data).hexdigest()}
        if not inside:
            entry["outside_release"] = True
        self.inputs.append(entry)
        return data


# -- images and keys ------------------------------------------------------------------------------------
