"""The state a benchmark measures medfw in: installed, its modules byte-compiled.

A package installed from its wheel has compiled bytecode, and any other environment writes it on a module's first
import. A development install in an environment that sets ``PYTHONDONTWRITEBYTECODE`` never writes it, so every
``medfw`` process would compile medfw's own sources again (about 30 ms before the audit verifier's fork, some 70 ms
in a scan process), a cost no installed copy has. Benchmarks that time whole ``medfw`` processes call
:func:`compile_medfw` first and print what it did.
"""

from __future__ import annotations

import compileall
import os
from pathlib import Path

import medfw

__all__ = ["compile_medfw"]


def compile_medfw() -> str:
    """Byte-compile the imported medfw package's modules in place and return a line saying so."""
    root = Path(medfw.__file__).resolve().parent
    if not compileall.compile_dir(str(root), quiet=1, workers=1):
        raise RuntimeError(f"{root}: a module did not compile")
    env = "set" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "not set"
    return f"medfw's modules byte-compiled in {root} (as an installed package has them; PYTHONDONTWRITEBYTECODE {env})"
