"""The float reference: llama2.c run.c's forward pass in numpy fp32 (tier 1 of the verification).

Sums run sequentially in float32 (np.add.accumulate), as run.c's loops do, so that greedy decoding
follows run.c token for token. exp/cos/sin/pow come from numpy (run.c uses libm's); they differ from
libm by at most an ulp or so, which is why this is the accuracy oracle and not the bit-exact one
(that is quant.golden).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .model.ir import Model

F32 = np.float32


def seqdot(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    """W (d, n) @ x (n,) -> (d,), each row summed left to right in float32 like run.c's matmul."""
    return np.add.accumulate(w * x, axis=-1)[..., -1]


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    ss = np.add.accumulate(x * x)[-1]
    ss = ss / F32(x.shape[0])
    ss = ss + F32(eps)
    ss = F32(1.0) / np.sqrt(ss)
    return weight * (ss * x)


def rope_tables(head_size: int, max_seq_len: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """cos/sin (max_seq_len, head_size/2) as run.c computes them: freq = 1/powf(theta, hd/hs)
    for head_dim hd = 0, 2, ..., val = pos * freq, all in float32."""
    hd = np.arange(0, head_size, 2, dtype=F32)
    freq = F32(1.0) / np.power(F32(theta), hd / F32(head_size))
    val = np.arange(max_seq_len, dtype=F32)[:, None] * freq[None, :]
    return np.cos(val).astype(F32), np.sin(val).astype(F32)


def rope(vec: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate each (even, odd) pair of every head: vec (heads, head_size), cos/sin (head_size/2,)."""
    v0, v1 = vec[:, 0::2], vec[:, 1::2]
    out = np.empty_like(vec)
    out[:, 0::2] = v0 * cos - v1 * sin
    out[:, 1::2] = v0 * sin + v1 * cos
    return out


class FloatEngine:
    """run.c's Transformer: weights + run state (KV cache). forward(token, pos) -> logits.
    `tap(name, value)`, if given, sees every activation the integer scheme quantizes (calibration)."""

    def __init__(self, model: Model, max_seq_len: int | None = None,
                 tap: Callable[[str, np.ndarray], None] | None = None):
        self.model = model
        self.tapping = tap is not None
        self.tap = tap or (lambda name, value: None)
        c = model.config
        self.max_seq_len = max_seq_len or c.max_seq_len
        self.cos, self.sin = rope_tables(c.head_size, self.max_seq_len, c.rope_theta)
        shape = (c.n_layers, self.max_seq_len, c.n_kv_heads, c.head_size)
        self.key_cache = np.zeros(shape, F32)
        self.value_cache = np.zeros(shape, F32)

    def reset(self) -> None:
        self.key_cache[:] = 0
        self.value_cache[:] = 0

    def _tap_norm(self, name: str, x: np.ndarray, eps: float) -> None:
        """RMSNorm's parts, as TFLite builtins compute it (x*x, mean, rsqrt, x*r): for export-tflite."""
        if self.tapping:
            ms = np.mean(x * x, keepdims=True)
            r = F32(1.0) / np.sqrt(ms + F32(eps))
            self.tap(name + ".sq", x * x), self.tap(name + ".ms", ms), self.tap(name + ".r", r)
            self.tap(name + ".n", x * r)

    def forward(self, token: int, pos: int) -> np.ndarray:
        c, w = self.model.config, self.model.tensors
        hs, kv_mul = c.head_size, c.n_heads // c.n_kv_heads
        tap = self.tap
        x = w["tok_embeddings"][token].copy()
        tap("x0", x)
        for l in range(c.n_layers):
            p = f"layers.{l}."
            xb = rmsnorm(x, w[p + "attention_norm"], c.norm_eps)
            self._tap_norm(f"{l}.att_norm", x, c.norm_eps)
            q = seqdot(w[p + "attention.wq"], xb).reshape(c.n_heads, hs)
            k = seqdot(w[p + "attention.wk"], xb).reshape(c.n_kv_heads, hs)
            v = seqdot(w[p + "attention.wv"], xb).reshape(c.n_kv_heads, hs)
            tap(f"{l}.att_norm", xb), tap(f"{l}.q", q), tap(f"{l}.k", k), tap(f"{l}.v", v)
            q = rope(q, self.cos[pos], self.sin[pos])
            k = rope(k, self.cos[pos], self.sin[pos])
            tap(f"{l}.q_rot", q), tap(f"{l}.k_rot", k)
            self.key_cache[l, pos] = k
            self.value_cache[l, pos] = v
            # attention, all heads at once; head h reads kv head h // kv_mul
            keys = self.key_cache[l, :pos + 1][:, np.arange(c.n_heads) // kv_mul]      # (t, h, hs)
            vals = self.value_cache[l, :pos + 1][:, np.arange(c.n_heads) // kv_mul]
            scores = np.add.accumulate(q[None] * keys, axis=-1)[..., -1] / np.sqrt(F32(hs))  # (t, h)
            tap(f"{l}.scores", scores)
            att = np.exp(scores - scores.max(axis=0))
            att = att / np.add.accumulate(att, axis=0)[-1]
            xb = np.add.accumulate(att[:, :, None] * vals, axis=0)[-1].reshape(-1)
            o = seqdot(w[p + "attention.wo"], xb)
            x = x + o
            tap(f"{l}.att_out", xb), tap(f"{l}.o", o), tap(f"{l}.x_att", x)
            xb = rmsnorm(x, w[p + "ffn_norm"], c.norm_eps)
            self._tap_norm(f"{l}.ffn_norm", x, c.norm_eps)
            h1 = seqdot(w[p + "feed_forward.w1"], xb)
            h3 = seqdot(w[p + "feed_forward.w3"], xb)
            silu = h1 * (F32(1.0) / (F32(1.0) + np.exp(-h1)))
            hb = silu * h3
            f = seqdot(w[p + "feed_forward.w2"], hb)
            x = x + f
            tap(f"{l}.ffn_norm", xb), tap(f"{l}.h1", h1), tap(f"{l}.h3", h3), tap(f"{l}.silu", silu)
            tap(f"{l}.gated", hb), tap(f"{l}.f", f), tap(f"{l}.x_ffn", x)
        self._tap_norm("final_norm", x, c.norm_eps)
        x = rmsnorm(x, w["norm"], c.norm_eps)
        logits = seqdot(self.model.classifier(), x)
        tap("final_norm", x), tap("logits", logits)
        return logits
