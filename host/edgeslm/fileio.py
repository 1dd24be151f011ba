"""Writing output files so that a reader never sees half of one (write a sibling, then rename)."""

from __future__ import annotations

from pathlib import Path


def write_atomic(path: str | Path, data: bytes | str) -> Path:
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    if isinstance(data, str):
        tmp.write_text(data)
    else:
        tmp.write_bytes(data)
    tmp.replace(p)
    return p
