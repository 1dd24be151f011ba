"""Helpers of the reliability tests (issue 15): processes left behind, fault frames, symbols."""

from __future__ import annotations

import os
import signal
import struct
import time
import uuid
from pathlib import Path

from hypothesis.configuration import set_hypothesis_home_dir

from edgeslm.bridge import protocol as P

TAG = "EDGESLM_TEST_TAG"
# hypothesis keeps files of its own (the property tests use no example database): in pytest's
# git-ignored cache, not in the work tree.
set_hypothesis_home_dir(str(Path(__file__).resolve().parents[1] / ".pytest_cache" / "hypothesis"))


def new_tag() -> str:
    return uuid.uuid4().hex


def tagged_env(tag: str) -> dict:
    """The environment of a child under test: every process it starts inherits the tag."""
    return {**os.environ, TAG: tag}


def processes_with_tag(tag: str) -> list[tuple[int, str]]:
    """(pid, command line) of every live process whose environment holds the tag."""
    found, me = [], os.getpid()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            env = (entry / "environ").read_bytes()
            if f"{TAG}={tag}".encode() not in env.split(b"\0"):
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue                  # a zombie is gone, only not yet reaped by its parent
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue                      # it ended while we looked
        found.append((int(entry.name), cmd))
    return found


def assert_none_left(tag: str, timeout: float = 15.0) -> None:
    """Every process of the tag is gone within `timeout` s; otherwise kill them (they are ours:
    the tag is this test's) and fail, naming them."""
    deadline = time.monotonic() + timeout
    while True:
        left = processes_with_tag(tag)
        if not left:
            return
        if time.monotonic() > deadline:
            for pid, _ in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            raise AssertionError(f"processes left behind: {left}")
        time.sleep(0.1)


def fault_frame(pc: int, lr: int, cfsr: int, hfsr: int, exception: int, text: bytes = b"the core faulted") -> bytes:
    """ERROR FAULT as firmware/runtime/fault.c sends it (a leading 0x00, then the frame)."""
    body = bytes([P.FAULT]) + struct.pack("<IIIIB", pc, lr, cfsr, hfsr, exception) + text
    return b"\0" + P.encode_frame(P.ERROR, 0, body)


def symbol_address(elf: Path, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        sym = ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)
    assert sym, f"no symbol {name} in {elf}"
    return sym[0]["st_value"] & ~1
