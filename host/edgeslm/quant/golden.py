"""The golden model: exactly the arithmetic of the firmware's C kernels, in numpy, run over the
same step table as the firmware (lower/schedule.py): one function per kernel, `GOLDEN[<op>_<contract>]`.

This file is the specification the C kernels mirror. Every value is float32 or an integer; every
float operation is one IEEE-754 single-precision operation (+ - * / sqrt, correctly rounded on x86,
Cortex-M and RISC-V alike, hard or soft float), in the order written here; sums are sequential,
left to right ("seqsum"), never pairwise. The C is built with -ffp-contract=off (no fused
multiply-add) and without fast-math. The only transcendental is esl_expf, two fixed tables, so no
libm function can change the bits. RoPE's cos/sin are tables computed on the host.

Kernel specs (C: firmware/kernels/<op>/esl_<op>_<contract>.c; helpers in firmware/kernels/common):

esl_expf(x):
    x  = min(max(x, -87.0f), 88.0f)
    k  = (int32)(x * EXP_SCALE + (x >= 0 ? 0.5f : -0.5f))        C cast: truncation toward zero
    m  = EXP2_HI[(k >> 8) & 255] * EXP2_LO[k & 255]               EXP2_HI[i] = float32(2^(i/256)),
                                                                  EXP2_LO[j] = float32(2^(j/65536))
    return float_from_bits(bits(m) + ((k >> 16) << 23))           m in [1, 2): exact scaling by 2^floor
esl_rmsnorm_f32(o, x, w, n):
    ss = seqsum(x[j] * x[j]);  ss = ss / (float)n;  ss = ss + eps;  r = 1.0f / sqrtf(ss)
    o[j] = w[j] * (r * x[j])
esl_quantize_i8(q, s, x, n, gs):  per group g of x (groups of gs, the last may be shorter)
    amax = max |x[j]|;  if amax == 0: s[g] = 0, q[j] = 0
    else: s[g] = amax / 127.0f;  inv = 127.0f / amax
          q[j] = clamp((int32)(x[j] * inv + (x[j] >= 0 ? 0.5f : -0.5f)), -127, 127)
esl_quantize_i16(q, s, x, n, gs):  as esl_quantize_i8 with 32767 for 127 (q int16)
esl_matmul_f32(y, W, x):  y[i] = seqsum_j(W[i][j] * x[j])
esl_matmul_w8f / esl_matmul_w4f(y, W, ws, x):  x quantized by esl_quantize_i8 with W's group size
    (w8f with int16 activations, ESL_MATMUL_X16: by esl_quantize_i16; groups of at most 512)
    isum[i][g] = sum over the group of (int32)Wq[i][j] * (int32)xq[j]      exact int32
    y[i] = 0.0f;  for g in order: y[i] = y[i] + (float)isum[i][g] * (ws[i][g] * xs[g])
esl_embed_w8f(o, E, token):  o[j] = (float)Eq[token][j] * Es[token][j / gs]   (esl_embed_f32: a copy)
esl_rope_f32(v, cos, sin, heads):  for each head and pair p = 0 .. head_size/2-1:
    a = v[2p]; b = v[2p+1];  v[2p] = a*cos[p] - b*sin[p];  v[2p+1] = a*sin[p] + b*cos[p]
    cos/sin[pos][p] = float32(cos/sin(pos * theta^(-2p/head_size))) computed in float64 on the host
esl_softmax_f32(x, n):  m = max x;  e[t] = esl_expf(x[t] - m);  sum = seqsum(e);  inv = 1.0f / sum
    x[t] = e[t] * inv
esl_kvstore_f32: a copy.  esl_kvstore_kv8: k, v by esl_quantize_i8 with group = head_size
esl_attention_f32 (head h reads kv head h / (n_heads / n_kv_heads); t = 0 .. pos):
    score[t] = seqsum_i(q[i] * k[t][i]) * inv_sqrt_hs          inv_sqrt_hs = float32(1/sqrt(hs))
    p = esl_softmax_f32(score);  out[i] = seqsum_t(p[t] * v[t][i])
esl_attention_kv8 (k, v stored by esl_kvstore_kv8: int8, one scale ks[t], vs[t] per position and kv
head; integer dot products, a fixed-point softmax after the float scores):
    (qq, qs) = esl_quantize_i16(q, hs, hs);  c = qs * inv_sqrt_hs
    score[t] = (float)isum_i(qq[i] * kq[t][i]) * (ks[t] * c)          isum: exact int32
    m = max score;  d = min((m - score[t]) * EXP8_SCALE, 8191.0f)      float32(log2(e) * 256); d >= 0
    k = (int32)d;  e[t] = EXP8_Q15[k & 255] >> (k >> 8)                 2^(-d/256) in Q15, k truncated
    sum = isum_t(e[t])  (uint32)                                        EXP8_Q15[i] = round(2^15 * 2^(-i/256))
    vmax = max_t vs[t];  if vmax < 2^-100: out[i] = 0
    g = (1.0f / (float)sum) * (32767.0f / vmax)
    w[t] = min((int32)(((float)e[t] * vs[t]) * g + 0.5f), 32767)       p[t] * vs[t] / vmax in Q15
    out[i] = (float)isum_t(w[t] * vq[t][i]) * (vmax / 32767.0f)
    No sum overflows: |qq| <= 32767 and |kq| <= 127 give |isum| < 2^31 for hs <= 516; e <= 2^15 keeps
    the uint32 sum exact for n < 2^17; the w[t] sum to at most 32767 * (1 + 2^-20) + n/2, so with
    |vq| <= 127 isum_t is exact for any n < 2^24.
esl_swiglu_f32(h1, h3):  h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]
esl_add_f32(x, y):  x[i] = x[i] + y[i]
"""

from __future__ import annotations

import numpy as np

from typing import Callable

from ..lower.schedule import Step, schedule
from ..reference import rmsnorm, rope, seqdot  # the same arithmetic as run.c's (specs above)
from .golden_s8 import GOLDEN_S8
from .quantize import QTensor, QuantModel

F32 = np.float32
# Exact float32 values, the same as firmware/include/esl_expf_inline.h and esl_exp2_table.c.
EXP_SCALE = F32(float.fromhex("0x1.715476p+16"))          # float32(log2(e) * 65536)
EXP2_HI = np.exp2(np.arange(256) / 256.0).astype(F32)     # 2^(i/256), float64 then rounded
EXP2_LO = np.exp2(np.arange(256) / 65536.0).astype(F32)   # 2^(j/65536)
EXP_MIN, EXP_MAX = F32(-87.0), F32(88.0)


def _half_away(v: np.ndarray) -> np.ndarray:
    """(int32)(v + (v >= 0 ? 0.5f : -0.5f)), the C rounding idiom used throughout."""
    return np.trunc(v + np.where(v >= 0, F32(0.5), F32(-0.5))).astype(np.int32)


def esl_expf(x: np.ndarray) -> np.ndarray:
    x = np.minimum(np.maximum(np.asarray(x, F32), EXP_MIN), EXP_MAX)
    k = _half_away(x * EXP_SCALE)
    m = EXP2_HI[(k >> 8) & 255] * EXP2_LO[k & 255]
    return (m.view(np.int32) + ((k >> 16) << 23)).view(F32)


def quantize_i8(x: np.ndarray, group_size: int, qmax: int = 127) -> tuple[np.ndarray, np.ndarray]:
    """esl_quantize_i8 on a vector: (q int8 of len(x), scales float32 of n_groups); with qmax
    32767, esl_quantize_i16 (q int16)."""
    n = x.shape[0]
    n_groups = -(-n // group_size)
    g = np.zeros(n_groups * group_size, F32)
    g[:n] = x
    g = g.reshape(n_groups, group_size)
    amax = np.abs(g).max(axis=1)
    nz = amax != 0
    safe = np.where(nz, amax, F32(1.0))
    scales = np.where(nz, amax / F32(qmax), F32(0.0)).astype(F32)
    inv = F32(qmax) / safe
    q = np.clip(_half_away(g * inv[:, None]), -qmax, qmax)
    q = np.where(nz[:, None], q, 0).astype(np.int8 if qmax == 127 else np.int16)
    return q.reshape(-1)[:n], scales


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """esl_softmax_f32 along `axis` (sequential sum along it)."""
    e = esl_expf(x - x.max(axis=axis, keepdims=True))
    total = np.take(np.add.accumulate(e, axis=axis), -1, axis=axis)
    inv = F32(1.0) / np.expand_dims(total, axis)
    return e * inv


def rope_tables(head_size: int, max_seq_len: int, theta: float) -> tuple[np.ndarray, np.ndarray]:
    """The (max_seq_len, head_size/2) cos and sin tables the firmware gets, float64 then rounded."""
    freq = theta ** (-np.arange(0, head_size, 2, dtype=np.float64) / head_size)
    ang = np.arange(max_seq_len, dtype=np.float64)[:, None] * freq[None, :]
    return np.cos(ang).astype(F32), np.sin(ang).astype(F32)


def attention(q: np.ndarray, keys: np.ndarray, values: np.ndarray, inv_sqrt_hs: np.float32) -> np.ndarray:
    """esl_attention_f32 for positions 0..t-1: q (n_heads, hs), keys/values (t, n_kv_heads, hs)
    float32. Returns (n_heads * hs,)."""
    kvh = np.arange(q.shape[0]) // (q.shape[0] // keys.shape[1])
    dots = np.add.accumulate(q[None] * keys[:, kvh], axis=-1)[..., -1]    # (t, h)
    p = softmax(dots * inv_sqrt_hs, axis=0)
    return np.add.accumulate(p[:, :, None] * values[:, kvh], axis=0)[-1].reshape(-1)


KV8_VMIN = F32(2.0 ** -100)       # below it a head's values are all but zero: out = 0 (32767/vmax finite)
EXP8_SCALE = F32(float.fromhex("0x1.715476p+8"))           # float32(log2(e) * 256)
EXP8_Q15 = np.round(32768.0 * np.exp2(-np.arange(256) / 256.0)).astype(np.int64)   # esl_exp8_q15
EXP8_DMAX = F32(8191.0)           # d's cap: 2^(-8191/256) is 0 in Q15, and (int32)d stays defined


def exp8_q15(d: np.ndarray) -> np.ndarray:
    """attention_kv8's exp: 2^(-d/256) in Q15 for d = (max - score) * EXP8_SCALE >= 0 (float32)."""
    k = np.minimum(np.asarray(d, F32), EXP8_DMAX).astype(np.int64)     # truncation, as the C cast
    return EXP8_Q15[k & 255] >> (k >> 8)


def attention_kv8(q: np.ndarray, keys: np.ndarray, values: np.ndarray, key_scale: np.ndarray,
                  value_scale: np.ndarray, inv_sqrt_hs: np.float32) -> np.ndarray:
    """esl_attention_kv8 for positions 0..t-1: q (n_heads, hs) float32, keys/values (t, n_kv_heads,
    hs) int8, their scales (t, n_kv_heads). Returns (n_heads * hs,)."""
    n_heads, hs = q.shape
    kvh = np.arange(n_heads) // (n_heads // keys.shape[1])
    qq, qs = quantize_i8(q.reshape(-1), hs, qmax=32767)               # one group per head
    c = qs * inv_sqrt_hs                                              # (h,)
    isum = np.einsum("thi,hi->th", keys[:, kvh].astype(np.int64), qq.reshape(n_heads, hs).astype(np.int64))
    score = isum.astype(np.int32).astype(F32) * (key_scale[:, kvh] * c)
    e = exp8_q15((score.max(axis=0) - score) * EXP8_SCALE)           # (t, h) int, <= 2^15
    total = e.sum(axis=0).astype(np.uint32)
    vs = value_scale[:, kvh]                                          # (t, h)
    vmax = vs.max(axis=0)
    live = vmax >= KV8_VMIN
    g = (F32(1.0) / total.astype(F32)) * (F32(32767.0) / np.where(live, vmax, F32(1.0)))
    w = np.minimum(np.trunc((e.astype(F32) * vs) * g + F32(0.5)).astype(np.int64), 32767)
    acc = np.einsum("th,thi->hi", w, values[:, kvh].astype(np.int64)).astype(np.int32)
    out = acc.astype(F32) * (vmax / F32(32767.0))[:, None]
    return np.where(live[:, None], out, F32(0.0)).astype(F32).reshape(-1)


class _Matmul:
    """esl_matmul_* for one weight: the integer weights are padded to whole groups once, here.
    act_bits: w8f's input quantized to int8 or int16."""

    def __init__(self, w: QTensor, act_bits: int = 8):
        self.w = w
        self.qmax = {8: 127, 16: 32767}[act_bits]
        if w.bits != 32:
            rows, cols = w.shape
            padded = np.zeros((rows, w.n_groups * w.group_size), np.int32)
            padded[:, :cols] = w.values
            self.wg = padded.reshape(rows, w.n_groups, w.group_size)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        w = self.w
        if w.bits == 32:
            return seqdot(w.values, x)
        xq, xs = quantize_i8(x, w.group_size, self.qmax)
        xg = np.zeros(w.n_groups * w.group_size, np.int32)
        xg[:xq.shape[0]] = xq
        isum = np.einsum("rgk,gk->rg", self.wg, xg.reshape(w.n_groups, w.group_size))
        y = np.zeros(w.shape[0], F32)
        for g in range(w.n_groups):
            y = y + isum[:, g].astype(F32) * (w.scales[:, g] * xs[g])
        return y


def embed(table: QTensor, token: int) -> np.ndarray:
    """esl_embed_f32 / esl_embed_w8f."""
    if table.bits == 32:
        return table.values[token].copy()
    s = np.repeat(table.scales[token], table.group_size)[:table.shape[1]]
    return table.values[token].astype(F32) * s


def swiglu(h1: np.ndarray, h3: np.ndarray) -> np.ndarray:
    """esl_swiglu_f32."""
    return (h1 * (F32(1.0) / (F32(1.0) + esl_expf(-h1)))) * h3


# ---- the kernels by name, each run on one step of the table: (engine, step) -> None ------------

def _embed(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = embed(e.qm.tensors[s.weight], e.token)


def _rmsnorm(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = rmsnorm(e.val[s.inp], e.qm.tensors[s.norm], e.qm.config.norm_eps)


def _matmul(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = e.mm[s.weight](e.val[s.inp])


def _rope(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = rope(e.val[s.inp].reshape(s.n, -1), e.cos[e.pos], e.sin[e.pos]).reshape(-1)


def _kvstore_f32(e: "GoldenEngine", s: Step) -> None:
    hs = e.qm.config.head_size
    e.key_cache[s.layer, e.pos] = e.val[s.inp].reshape(-1, hs)
    e.value_cache[s.layer, e.pos] = e.val[s.in2].reshape(-1, hs)


def _kvstore_kv8(e: "GoldenEngine", s: Step) -> None:
    hs = e.qm.config.head_size
    for cache, scale, vec in ((e.key_cache, e.key_scale, e.val[s.inp]),
                              (e.value_cache, e.value_scale, e.val[s.in2])):
        q, sc = quantize_i8(vec, hs)
        cache[s.layer, e.pos], scale[s.layer, e.pos] = q.reshape(-1, hs), sc


def _attention(e: "GoldenEngine", s: Step) -> None:
    l, n = s.layer, e.pos + 1
    q = e.val[s.inp].reshape(e.qm.config.n_heads, -1)
    if s.contract == "kv8":
        e.val[s.out] = attention_kv8(q, e.key_cache[l, :n], e.value_cache[l, :n], e.key_scale[l, :n],
                                     e.value_scale[l, :n], e.inv_sqrt_hs)
    else:
        e.val[s.out] = attention(q, e.key_cache[l, :n], e.value_cache[l, :n], e.inv_sqrt_hs)


def _add(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = e.val[s.out] + e.val[s.inp]


def _swiglu(e: "GoldenEngine", s: Step) -> None:
    e.val[s.out] = swiglu(e.val[s.out], e.val[s.inp])


GOLDEN: dict[str, Callable[["GoldenEngine", Step], None]] = {
    "embed_f32": _embed, "embed_w8f": _embed,
    "rmsnorm_f32": _rmsnorm,
    "matmul_f32": _matmul, "matmul_w8f": _matmul, "matmul_w4f": _matmul,   # _Matmul: by the weight
    "rope_f32": _rope,
    "kvstore_f32": _kvstore_f32, "kvstore_kv8": _kvstore_kv8,
    "attention_f32": _attention, "attention_kv8": _attention,
    "add_f32": _add,
    "swiglu_f32": _swiglu,
    **GOLDEN_S8,            # the integer-only scheme's kernels (quant/golden_s8.py), run by I8Engine
}


class GoldenEngine:
    """The firmware's forward pass on the host: the schedule's steps, each through its kernel's
    golden function. forward(token, pos) -> logits (float32)."""

    def __init__(self, qmodel: QuantModel, max_seq_len: int | None = None):
        self.qm = qmodel
        c = qmodel.config
        self.max_seq_len = max_seq_len or c.max_seq_len
        self.steps, _ = schedule(c, qmodel.scheme, self.max_seq_len)
        self.run = [GOLDEN[s.kernel] for s in self.steps]
        self.logits = self.steps[-1].out
        self.cos, self.sin = rope_tables(c.head_size, self.max_seq_len, c.rope_theta)
        self.inv_sqrt_hs = F32(1.0 / np.sqrt(c.head_size))
        bits = qmodel.scheme.act_bits
        self.mm = {n: _Matmul(t, bits if t.bits == 8 else 8) for n, t in qmodel.tensors.items() if isinstance(t, QTensor)}
        shape = (c.n_layers, self.max_seq_len, c.n_kv_heads, c.head_size)
        kv_dtype = np.int8 if qmodel.scheme.kv == "i8" else F32
        self.key_cache = np.zeros(shape, kv_dtype)
        self.value_cache = np.zeros(shape, kv_dtype)
        self.key_scale = np.zeros(shape[:3], F32)
        self.value_scale = np.zeros(shape[:3], F32)
        self.val: dict[str, np.ndarray] = {}
        self.token = self.pos = 0

    def reset(self) -> None:
        for a in (self.key_cache, self.value_cache, self.key_scale, self.value_scale):
            a[:] = 0

    def forward(self, token: int, pos: int) -> np.ndarray:
        self.token, self.pos = token, pos
        for run, s in zip(self.run, self.steps):
            run(self, s)
        return self.val[self.logits]


def engine_for(qmodel, max_seq_len: int | None = None):
    """The golden engine of an already quantized model: QuantModel, or the i8 scheme's I8Model."""
    from .int8 import I8Engine, I8Model
    if isinstance(qmodel, I8Model):
        return I8Engine(qmodel, max_seq_len)
    return GoldenEngine(qmodel, max_seq_len)


def golden_engine(model, scheme, calib=None, max_seq_len: int | None = None):
    """The engine that computes what the firmware computes under `scheme`: GoldenEngine, or for
    the integer-only scheme the i8 engine (which needs the calibration file's ranges)."""
    from .quantize import quantize
    if scheme.integer:
        from .int8 import I8Engine, quantize_int8
        if calib is None:
            from ..errors import UsageError
            raise UsageError("--quant i8 needs a calibration file (--calib)",
                             "make one: edgeslm calibrate MODEL -o calib.json")
        return I8Engine(quantize_int8(model, calib, scheme.int16), max_seq_len)
    return GoldenEngine(quantize(model, scheme), max_seq_len)
