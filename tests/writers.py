"""Independent writers of llama2.c's files, transcribed from llama2.c's export.py / tokenizer.py
(struct layouts as written there), so that import tests do not read back our own writer."""

import struct

import numpy as np

LAYER_MATS = ["attention.wq", "attention.wk", "attention.wv", "attention.wo",
              "feed_forward.w1", "feed_forward.w2", "feed_forward.w3"]


def _header(model, version: int, shared: bool, extra: bytes = b"") -> bytes:
    c = model.config
    h = struct.pack("I", 0x616B3432) + struct.pack("i", version)
    h += struct.pack("iiiiiii", c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                     c.vocab_size, c.max_seq_len)
    h += struct.pack("B", int(shared)) + extra
    return h + b"\0" * (256 - len(h))


def _norms(model) -> list:
    t, L = model.tensors, model.config.n_layers
    return ([t[f"layers.{l}.attention_norm"] for l in range(L)]
            + [t[f"layers.{l}.ffn_norm"] for l in range(L)] + [t["norm"]])


def _matrices(model, shared: bool) -> list:
    t, L = model.tensors, model.config.n_layers
    ws = [t["tok_embeddings"]]
    for name in LAYER_MATS:
        ws += [t[f"layers.{l}.{name}"] for l in range(L)]
    if not shared:
        ws.append(t.get("output", t["tok_embeddings"]))
    return ws


def export_v1(model, shared: bool = True) -> bytes:
    out = _header(model, 1, shared)
    for w in _norms(model) + _matrices(model, shared):
        out += np.asarray(w, "<f4").tobytes()
    return out


def quantize_q80(w: np.ndarray, group_size: int):
    """export.py quantize_q80: groups over the flattened tensor, scale = max|w| / 127."""
    w = w.astype(np.float32).reshape(-1, group_size)
    wmax = np.abs(w).max(axis=1)
    scale = wmax / 127.0
    quant = np.round(w / scale[:, None]).astype(np.int8)
    return quant, scale.astype(np.float32)


def export_v2(model, group_size: int = 64, shared: bool = True) -> bytes:
    while model.config.dim % group_size != 0:
        group_size //= 2
    out = _header(model, 2, shared, struct.pack("i", group_size))
    for w in _norms(model):
        out += np.asarray(w, "<f4").tobytes()
    for w in _matrices(model, shared):
        q, s = quantize_q80(w, group_size)
        out += q.tobytes() + s.tobytes()
    return out
