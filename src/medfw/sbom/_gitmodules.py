"""Read ``.gitmodules`` (git-config syntax) and the ``sbom-*`` keys esp-idf-sbom puts there."""

from __future__ import annotations

import re

from medfw.errors import ManifestError

__all__ = ["parse_gitmodules"]

_SECTION_RE = re.compile(r'^\[\s*submodule\s+"((?:[^"\\]|\\.)*)"\s*\]\s*(?:[#;].*)?$')
_OTHER_SECTION_RE = re.compile(r"^\[[^\]]*\]\s*(?:[#;].*)?$")
_KEY_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(?:=\s*(.*))?$")


def _unquote(raw: str) -> str:
    out: list[str] = []
    quoted = False
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            out.append({"n": "\n", "t": "\t", "b": "\b"}.get(nxt, nxt))
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c in "#;" and not quoted:
            break
        else:
            out.append(c)
        i += 1
    return "".join(out).strip()


def parse_gitmodules(text: str, *, path: str) -> dict[str, dict[str, list[str]]]:
    """Parse ``.gitmodules`` into ``{submodule name: {key (lower-case): [values…]}}``.

    Keys repeat in git config (``sbom-cve-exclude-list`` once per CVE), so every key maps to a list.

    Raises:
        ManifestError: a line is neither a section header, a key, a comment nor blank (with its byte offset).
    """
    modules: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    offset = 0
    for raw_line in text.splitlines(keepends=True):
        line = raw_line.strip()
        line_offset = offset
        offset += len(raw_line.encode("utf-8"))
        if not line or line[0] in "#;":
            continue
        m = _SECTION_RE.match(line)
        if m:
            current = modules.setdefault(m.group(1), {})
            continue
        if _OTHER_SECTION_RE.match(line):
            current = None
            continue
        k = _KEY_RE.match(line)
        if k is None:
            raise ManifestError(f"cannot parse line {line[:60]!r}", path=path, offset=line_offset)
        if current is None:
            continue
        value = _unquote(k.group(2)) if k.group(2) is not None else "true"
        current.setdefault(k.group(1).lower(), []).append(value)
    return modules
