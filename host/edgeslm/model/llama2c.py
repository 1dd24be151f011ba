"""Read llama2.c checkpoints into the IR.

Formats (all little-endian), in the words of llama2.c's run.c and export.py:

version 0 (legacy, run.c's own): a 28-byte header of 7 int32
    dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
  (vocab_size < 0 means the classifier is NOT shared with the embedding), then fp32 arrays:
    tok_embeddings (vocab, dim), rms_att (L, dim), wq (L, dim, dim), wk (L, kv_dim, dim),
    wv (L, kv_dim, dim), wo (L, dim, dim), rms_ffn (L, dim), w1 (L, hidden, dim),
    w2 (L, dim, hidden), w3 (L, hidden, dim), rms_final (dim),
    freq_cis_real (seq_len, head_size/2), freq_cis_imag (seq_len, head_size/2)  [unused],
    wcls (vocab, dim)  [only if not shared]

versions 1 and 2 (export.py): a 256-byte header
    uint32 magic 0x616b3432 ("ak42"), int32 version, 7 int32 params as above (vocab always > 0),
    uint8 shared_classifier, [version 2: int32 group_size, unaligned at byte 37], zero padding.
  version 1, fp32: attention norms (L, dim), ffn norms (L, dim), final norm (dim), tok_embeddings,
    wq x L, wk x L, wv x L, wo x L, w1 x L, w2 x L, w3 x L, [output].
  version 2, Q8_0: the three norm groups in fp32 as in v1, then for each of tok_embeddings, wq x L,
    wk x L, wv x L, wo x L, w1 x L, w2 x L, w3 x L, [output]: int8 values (numel), then fp32 scales
    (numel / group_size), groups taken over the flattened tensor; value = int8 * scale.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from .ir import Model, ModelConfig, make_model

MAGIC = 0x616B3432
HEADER_V1_BYTES = 256
SUPPORTED_VERSIONS = (0, 1, 2)
_LAYER_MATRICES = ["attention.wq", "attention.wk", "attention.wv", "attention.wo",
                   "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]


class _Reader:
    """Sequential reads from a byte buffer that fail with a message naming the file and tensor."""

    def __init__(self, data: bytes, path: str, offset: int):
        self.data, self.path, self.pos = data, path, offset

    def array(self, dtype: str, count: int, what: str) -> np.ndarray:
        nbytes = count * np.dtype(dtype).itemsize
        if self.pos + nbytes > len(self.data):
            raise ModelFormatError(
                f"{self.path}: truncated: {what} needs {nbytes} bytes at offset {self.pos}, "
                f"the file has {len(self.data)} bytes",
                "the file is incomplete; download or export it again")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += nbytes
        return out

    def expect_end(self) -> None:
        extra = len(self.data) - self.pos
        if extra:
            raise ModelFormatError(
                f"{self.path}: sizes do not add up: {extra} bytes left after the last tensor",
                "the header does not describe this file; it is corrupt or of another format")


def _config(params: tuple[int, ...], shared: bool, path: str) -> ModelConfig:
    dim, hidden, layers, heads, kv_heads, vocab, seq = params
    cfg = ModelConfig(dim=dim, hidden_dim=hidden, n_layers=layers, n_heads=heads,
                      n_kv_heads=kv_heads, vocab_size=vocab, max_seq_len=seq,
                      shared_classifier=shared)
    try:
        cfg.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{path}: {e}", e.hint) from None
    return cfg


def _layer_stack(r: _Reader, cfg: ModelConfig, name: str, shape: tuple[int, ...],
                 tensors: dict, dtype: str = "<f4") -> None:
    """One (L, *shape) block of per-layer tensors, split into layers.{l}.name."""
    n = int(np.prod(shape))
    block = r.array(dtype, cfg.n_layers * n, name)
    for l in range(cfg.n_layers):
        tensors[f"layers.{l}.{name}"] = block[l * n:(l + 1) * n].reshape(shape)


def _matrix_shapes(cfg: ModelConfig) -> dict[str, tuple[int, int]]:
    return {
        "attention.wq": (cfg.dim, cfg.dim), "attention.wk": (cfg.kv_dim, cfg.dim),
        "attention.wv": (cfg.kv_dim, cfg.dim), "attention.wo": (cfg.dim, cfg.dim),
        "feed_forward.w1": (cfg.hidden_dim, cfg.dim), "feed_forward.w2": (cfg.dim, cfg.hidden_dim),
        "feed_forward.w3": (cfg.hidden_dim, cfg.dim),
    }


def _read_v0(data: bytes, path: str) -> Model:
    if len(data) < 28:
        raise ModelFormatError(f"{path}: truncated: {len(data)} bytes, a llama2.c header alone is 28")
    params = struct.unpack_from("<7i", data, 0)
    shared = params[5] > 0
    params = params[:5] + (abs(params[5]),) + params[6:]
    cfg = _config(params, shared, path)
    if cfg.n_heads * cfg.head_size != cfg.dim:
        raise ModelFormatError(f"{path}: dim {cfg.dim} is not n_heads * head_size")
    r = _Reader(data, path, 28)
    shapes = _matrix_shapes(cfg)
    t: dict[str, np.ndarray] = {}
    t["tok_embeddings"] = r.array("<f4", cfg.vocab_size * cfg.dim, "tok_embeddings").reshape(
        cfg.vocab_size, cfg.dim)
    _layer_stack(r, cfg, "attention_norm", (cfg.dim,), t)
    for name in ["attention.wq", "attention.wk", "attention.wv", "attention.wo"]:
        _layer_stack(r, cfg, name, shapes[name], t)
    _layer_stack(r, cfg, "ffn_norm", (cfg.dim,), t)
    for name in ["feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]:
        _layer_stack(r, cfg, name, shapes[name], t)
    t["norm"] = r.array("<f4", cfg.dim, "norm")
    r.array("<f4", cfg.max_seq_len * cfg.head_size, "freq_cis tables")  # recomputed, not used
    if not shared:
        t["output"] = r.array("<f4", cfg.vocab_size * cfg.dim, "output").reshape(cfg.vocab_size, cfg.dim)
    r.expect_end()
    return make_model(cfg, t, path)


def _read_v1_v2(data: bytes, path: str, version: int) -> Model:
    if len(data) < HEADER_V1_BYTES:
        raise ModelFormatError(f"{path}: truncated: {len(data)} bytes, a version {version} header "
                               f"alone is {HEADER_V1_BYTES}")
    params = struct.unpack_from("<7i", data, 8)
    shared = bool(data[36])
    cfg = _config(params, shared, path)
    r = _Reader(data, path, HEADER_V1_BYTES)
    t: dict[str, np.ndarray] = {}
    _layer_stack(r, cfg, "attention_norm", (cfg.dim,), t)
    _layer_stack(r, cfg, "ffn_norm", (cfg.dim,), t)
    t["norm"] = r.array("<f4", cfg.dim, "norm")
    shapes = _matrix_shapes(cfg)
    order = [("tok_embeddings", (cfg.vocab_size, cfg.dim))]
    for name in _LAYER_MATRICES:
        order += [(f"layers.{l}.{name}", shapes[name]) for l in range(cfg.n_layers)]
    if not shared:
        order.append(("output", (cfg.vocab_size, cfg.dim)))
    if version == 1:
        for name, shape in order:
            t[name] = r.array("<f4", int(np.prod(shape)), name).reshape(shape)
    else:
        (group_size,) = struct.unpack_from("<i", data, 37)
        if group_size <= 0:
            raise ModelFormatError(f"{path}: version 2 header has group_size={group_size}")
        for name, shape in order:
            n = int(np.prod(shape))
            if n % group_size:
                raise ModelFormatError(f"{path}: {name} has {n} values, not a multiple of the "
                                       f"header's group_size {group_size}")
            q = r.array("<i1", n, name + " (int8)")
            s = r.array("<f4", n // group_size, name + " (scales)")
            vals = q.reshape(-1, group_size).astype(np.float32) * s[:, None]
            t[name] = vals.reshape(shape)
    r.expect_end()
    return make_model(cfg, t, path)


def read_checkpoint(path: str | Path) -> Model:
    """Load a llama2.c checkpoint of version 0, 1 or 2 (the version is detected from the header)."""
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFormatError(f"cannot read model file {path}: {e.strerror}") from None
    if len(data) >= 8 and struct.unpack_from("<I", data, 0)[0] == MAGIC:
        (version,) = struct.unpack_from("<i", data, 4)
        if version not in (1, 2):
            raise ModelFormatError(
                f"{path}: llama2.c checkpoint version {version} is not supported "
                f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})",
                "re-export with llama2.c's export.py --version 1 (fp32) or 2 (Q8_0)")
        return _read_v1_v2(data, path, version)
    try:
        return _read_v0(data, path)
    except ModelFormatError as e:
        if "implausible" not in str(e) and "inconsistent" not in str(e):
            raise
        raise ModelFormatError(
            f"{path}: not a llama2.c checkpoint: no 'ak42' magic (first bytes {data[:4].hex()}) "
            f"and not a plausible version 0 header ({str(e).split(': ', 1)[-1]})",
            "pass a llama2.c .bin (version 0, 1 or 2) or an .onnx model") from None
