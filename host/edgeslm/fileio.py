"""Writing output files so that a reader never sees half of one (write a sibling, then rename),
and nothing is left behind: the sibling goes on every exit path, Ctrl-C and signals included."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import EdgeslmError


class OutputError(EdgeslmError):
    """An output path that cannot be written: a folder, a missing folder, no permission."""


def check_output(path: str | Path) -> Path:
    """Refuse an output path before any work goes into it: it must name a file (not a folder) in
    a folder that exists. Returns it as a Path."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"cannot write {p}: it is a folder", f"name a file, e.g. {p / 'out.json'}")
    parent = p.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {p}: the folder {parent} does not exist",
                          f"create it first (mkdir -p {parent}) or write elsewhere")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {p}: no permission to write in {parent}", "write elsewhere")
    return p


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    """Write `data` to `path` through a sibling temporary file and a rename. The temporary file
    is removed whatever interrupts the write (an error, Ctrl-C, a signal turned into an exception
    by the CLI); OutputError names what is wrong with the path."""
    p = check_output(path)
    tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
    try:
        if isinstance(data, str):
            tmp.write_text(data)
        else:
            tmp.write_bytes(data)
        tmp.replace(p)
    except OSError as e:
        raise OutputError(f"cannot write {p}: {e.strerror or e}", "check the path and the free space") from None
    finally:
        tmp.unlink(missing_ok=True)       # gone already after the rename; else never left behind
    return p
