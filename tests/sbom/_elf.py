"""A minimal ELF file with a .note.package section, for the package-note tests."""

from __future__ import annotations

import struct


def elf_with_notes(notes: list[tuple[bytes, int, bytes]]) -> bytes:
    """A minimal little-endian ELF64 with a .note.package section holding ``notes`` (owner, type, desc)."""
    body = b""
    for owner, ntype, desc in notes:
        name = owner + b"\x00"
        body += struct.pack("<III", len(name), len(desc), ntype)
        body += name + b"\x00" * (-len(name) % 4) + desc + b"\x00" * (-len(desc) % 4)
    shstrtab = b"\x00.note.package\x00.shstrtab\x00"
    note_off = 64
    shstr_off = note_off + len(body)
    sh_off = shstr_off + len(shstrtab)
    sh_off += -sh_off % 8
    header = b"\x7fELF" + bytes([2, 1, 1, 0]) + b"\x00" * 8
    header += struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, sh_off, 0, 64, 0, 0, 64, 3, 2)
    data = header + body + shstrtab
    data += b"\x00" * (sh_off - len(data))
    null = b"\x00" * 64
    note = struct.pack("<IIQQQQIIQQ", 1, 7, 2, 0, note_off, len(body), 0, 0, 4, 0)
    strtab = struct.pack("<IIQQQQIIQQ", 15, 3, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)
    return data + null + note + strtab
