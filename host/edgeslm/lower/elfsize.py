"""Bytes per memory region of a linked ELF, read from its section headers (no binutils needed)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from .boards import Board

SHF_ALLOC = 0x2
SHT_NOBITS = 8


@dataclass
class Section:
    name: str
    addr: int
    size: int
    nobits: bool          # occupies RAM only (.bss-like), nothing in the image


def sections(elf: Path) -> list[Section]:
    data = Path(elf).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 1:
        raise ValueError(f"{elf} is not a 32-bit ELF file")
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    heads = [struct.unpack_from("<IIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = heads[shstrndx][4]
    out = []
    for name_off, typ, flags, addr, off, size in heads:
        if not flags & SHF_ALLOC or size == 0:
            continue
        end = data.index(b"\0", strtab_off + name_off)
        out.append(Section(data[strtab_off + name_off:end].decode(), addr, size, typ == SHT_NOBITS))
    return out


def region_usage(elf: Path, board: Board) -> dict[str, dict[str, int]]:
    """region -> {"image": bytes loaded there, "zero": bytes reserved (bss/NOLOAD), "length": size}."""
    use = {r.name: {"image": 0, "zero": 0, "length": r.length_bytes} for r in board.memory}
    for s in sections(elf):
        for r in board.memory:
            if r.origin <= s.addr < r.origin + r.length_bytes:
                use[r.name]["zero" if s.nobits else "image"] += s.size
                break
    return use
