"""Small emitters of C data: Python computes and range-checks, templates only place the text.

Floats are emitted as C99 hex literals of their exact float32 value, so no digit is lost.
"""

from __future__ import annotations

import re

import numpy as np

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def ident(name: str) -> str:
    """A C identifier from a tensor name: 'layers.0.attention.wq' -> 'layers_0_attention_wq'."""
    out = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not _IDENT.match(out):
        raise ValueError(f"cannot make a C identifier from {name!r}")
    return out


def f32(v) -> str:
    v = float(np.float32(v))
    if not np.isfinite(v):
        raise ValueError(f"non-finite float {v} cannot be emitted")
    if v == 0:
        return "-0.0f" if np.signbit(v) else "0.0f"
    mant, exp = v.hex().split("p")
    return f"{mant.rstrip('0').rstrip('.')}p{exp}f"


def i32(v) -> str:
    """An int32 literal; refuses what does not fit (INT32_MIN written so C keeps it int32)."""
    v = int(v)
    if not -(1 << 31) <= v < (1 << 31):
        raise ValueError(f"{v} does not fit int32")
    return "(-2147483647 - 1)" if v == -(1 << 31) else str(v)


def _rows(items: list[str], per_line: int) -> str:
    return ",\n".join("    " + ", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def int_body(a: np.ndarray, per_line: int = 24) -> str:
    return _rows([str(int(v)) for v in np.asarray(a).reshape(-1).tolist()], per_line)


def f32_body(a: np.ndarray, per_line: int = 6) -> str:
    flat = np.asarray(a, np.float32).reshape(-1)
    if not np.isfinite(flat).all():
        raise ValueError("non-finite values cannot be emitted")
    return _rows([f32(v) for v in flat.tolist()], per_line)

