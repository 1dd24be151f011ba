"""Bytes per memory region of a linked ELF, read from its section headers (no binutils needed);
the integrity check a build passes before it is trusted; addresses to <function>+<offset>."""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeslmError
from .boards import Board

SHF_ALLOC = 0x2
SHT_NOBITS = 8
PT_LOAD = 1
EM_ARM = 40


class ElfError(EdgeslmError):
    """A firmware ELF that is missing, truncated or not what a build makes."""


@dataclass
class Section:
    name: str
    addr: int
    size: int
    nobits: bool          # occupies RAM only (.bss-like), nothing in the image


def _bad(elf: Path, what: str) -> ElfError:
    return ElfError(f"{elf} is not a whole firmware image: {what}",
                    "it was cut short or overwritten; `edgeslm build` rebuilds it")


def check_elf(elf: Path, machine: int | None = None) -> bytes:
    """The file's bytes if it is a whole 32-bit little-endian ELF executable (for `machine`, e.g.
    EM_ARM, if given):
    header, program and section header tables, every loaded segment and every section with
    contents inside the file, section names inside the name table. ElfError names what is not."""
    elf = Path(elf)
    try:
        data = elf.read_bytes()
    except OSError as e:
        raise ElfError(f"cannot read {elf}: {e.strerror or e}", "run `edgeslm build`") from None
    if len(data) < 52:
        raise _bad(elf, f"{len(data)} bytes, shorter than an ELF header")
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise _bad(elf, "not a 32-bit little-endian ELF file")
    e_type, e_machine = struct.unpack_from("<HH", data, 16)
    if e_type != 2 or (machine is not None and e_machine != machine):
        raise _bad(elf, f"ELF type {e_type}, machine {e_machine}: not an executable for this core")
    phoff, shoff = struct.unpack_from("<II", data, 0x1C)
    phentsize, phnum, shentsize, shnum, shstrndx = struct.unpack_from("<HHHHH", data, 0x2A)
    if phnum == 0 or phentsize < 32 or phoff + phnum * phentsize > len(data):
        raise _bad(elf, "its program headers are missing or past its end")
    if shnum == 0 or shentsize < 40 or shoff + shnum * shentsize > len(data) or shstrndx >= shnum:
        raise _bad(elf, "its section headers are missing or past its end")
    for i in range(phnum):
        p_type, p_offset, _, _, p_filesz = struct.unpack_from("<IIIII", data, phoff + i * phentsize)
        if p_type == PT_LOAD and p_offset + p_filesz > len(data):
            raise _bad(elf, f"loaded segment {i} ends at byte {p_offset + p_filesz:,}, the file has {len(data):,}")
    heads = [struct.unpack_from("<IIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off, strtab_size = heads[shstrndx][4], heads[shstrndx][5]
    if strtab_off + strtab_size > len(data):
        raise _bad(elf, "its section name table is past its end")
    for name_off, typ, _, _, off, size in heads:
        if typ != SHT_NOBITS and typ != 0 and off + size > len(data):
            raise _bad(elf, f"a section ends at byte {off + size:,}, the file has {len(data):,}")
        if name_off >= max(strtab_size, 1):
            raise _bad(elf, "a section name is outside the name table")
    return data


def sections(elf: Path) -> list[Section]:
    data = check_elf(elf)
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    heads = [struct.unpack_from("<IIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab_off = heads[shstrndx][4]
    out = []
    for name_off, typ, flags, addr, off, size in heads:
        if not flags & SHF_ALLOC or size == 0:
            continue
        start = strtab_off + name_off
        end = data.find(b"\0", start)
        out.append(Section(data[start:end if end >= 0 else len(data)].decode(errors="replace"), addr, size,
                           typ == SHT_NOBITS))
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


def symbolize(elf: str | Path, addr: int) -> str | None:
    """`function+0xoffset` for a code address (Thumb bit ignored), from the ELF's symbol table;
    None if the ELF cannot be read or no function holds the address."""
    try:
        from elftools.elf.elffile import ELFFile
        with open(elf, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if symtab is None:
                return None
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] != "STT_FUNC" or not sym.name:
                    continue
                start = sym["st_value"] & ~1
                if start <= addr < start + max(sym["st_size"], 1):
                    return f"{sym.name}+0x{addr - start:x}"
    except Exception:            # a report must not fail for want of symbols (pyelftools missing, bad file)
        return None
    return None


# What linking floating point into an Arm image leaves in its symbol table: the EABI soft-float
# helpers (__aeabi_fadd, __aeabi_dmul, __aeabi_f2iz, __aeabi_cfcmple, __aeabi_i2f, ...), libgcc's
# generic ones (__addsf3, __floatsidf, __fixdfsi, __extendsfdf2, ...), float printf, and libm.
_FLOAT_SYMBOL = re.compile(
    r"^(__aeabi_(f|d|cf|cd|i2f|i2d|ui2f|ui2d|l2f|l2d|ul2f|ul2d)\w*"     # EABI float helpers
    r"|__\w*?(sf|df|tf)\w*"                                          # libgcc soft float
    r"|_printf_float|_dtoa_r|__ieee754\w*"
    r"|(sqrt|exp|log|pow|sin|cos|tan|tanh|floor|ceil|fabs|round|fmod)f?)$")


def float_symbols(elf: str | Path) -> list[str]:
    """Every symbol of the ELF (defined or not) that means floating point is linked in: what an
    integer-only build (no FPU: each would be a software float routine) must have none of."""
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            raise ElfError(f"{elf} has no symbol table", "build it without stripping (`edgeslm build` keeps it)")
        return sorted({s.name for s in symtab.iter_symbols() if s.name and _FLOAT_SYMBOL.match(s.name)})
