"""Scheme i8: integer-only inference with static calibration (TFLite-Micro's int8 arithmetic).

Weights int8 symmetric per output channel; every activation int8 asymmetric per tensor, its
(scale, zero point) from a Calibration; int32 accumulation; requantization by an int32 multiplier
and shift with TFLM's double rounding (quant/tflm_int.py). No float at inference time: every
multiplier, shift, table and offset below is computed here, on the host.

Ops and their TFLM twins (bit-exact where a twin exists; tests/test_tflm_ops.py):
  linear (q k v o w1 w2 w3 classifier)   FULLY_CONNECTED int8, per-channel
  RoPE                                   FULLY_CONNECTED int8: each head (head_size,) times the
                                         position's rotation matrix R (head_size, head_size),
                                         R = round(127 * rotation), scale 1/127, zero point 0
  scores = q.K^T / sqrt(hd)              BATCH_MATMUL int8, 1/sqrt(hd) folded into the output scale
  softmax                                SOFTMAX int8 -> int8 (scale 1/256, zero point -128)
  out = p.V                              BATCH_MATMUL int8
  SiLU = h1 * sigmoid(h1)                LOGISTIC int8 (a 256-entry table of it) then MUL int8
  gated = silu * h3                      MUL int8
  residual adds                          ADD int8
No TFLM twin (edgeslm's own integer arithmetic, stated here):
  embedding   x0[j] = MBQM(Wq[tok][j], m_tok, s_tok) + zp_x0, (m_tok, s_tok) = QM(s_w[tok] / s_x0)
              (the int8 per-row table is shared with the classifier when the model ties them)
  RMSNorm     xc = x - zp;  T = max(1, sum(xc^2) + n_eps), n_eps = round(n * eps / s_x^2)
              a = (62 - bitlen(T)) // 2;  sq = isqrt(T << 2a);  inv = 2^60 // sq
              y[j] = RDBP(xc[j] * SRDHM(inv, m_j), 60 - a - s_j) + zp_y,
              (m_j, s_j) = QM(w_j * sqrt(n) / s_y)                      (w_j: the norm weight)
  embedding   as above; a .tflite export GATHERs from the table of its results (exact)
  KV cache    int8 rotated keys and values, one (scale, zero point) per layer from calibration
--int16 keys (Scheme.int16): k, its rotation and the cached keys int16, symmetric (zero point 0,
  scale max|range| / 32767): wk's FULLY_CONNECTED clamps to int16 instead (no TFLM twin: TFLM's
  int8 FC writes int8); the keys' RoPE is TFLM's FULLY_CONNECTED 16x8 (int64 sums, its int64
  requantization); the scores sum (q - q_zp) * k in int32 (exact for head sizes up to 256).
--int16 ffn: h1, h3 (out of w1, w3, clamped to int16 as wk's), the SiLU and the gated value int16:
  SiLU = MUL(h1, LOGISTIC(h1)) and gated = MUL(silu, h3) are TFLM's int16 LOGISTIC and MUL (sigmoid
  at 1/32768); w2 takes the int16 gated value: int32 sums (exact for hidden sizes up to 516) and
  the int8 FC's requantization to its int8 output (TFLM's 16x8 FC writes int16: no twin).
--int16 residual: the residual stream x (x0, x_att, x_ffn) and what is added to it (o out of wo, f
  out of w2) int16: the embedding and wo/w2 clamp to int16, the adds are TFLM's int16 ADD (left
  shift 15), the RMSNorms read int16 x (T summed in int64; their rounding exponent capped at 47,
  past which |xc * srdhm| < 2^46 rounds to 0).
--int16 norms: the RMSNorms' outputs int16 (their rounded value clamped to int16, zero point 0), so
  wq, wk, wv, w1, w3 and the classifier read int16 x (w2's arithmetic: int32 sums, exact for a dim up
  to 516, the int8 FC's requantization).
(QM = quantize_multiplier, MBQM = multiply_by_quantized_multiplier, RDBP = rounding_divide_by_pot,
SRDHM = saturating rounding doubling high multiply; everything clamps to int8 at the end.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..model.ir import Model
from . import tflm_int as T
from .calibrate import Calibration

ROT_SCALE = 1.0 / 127.0


@dataclass
class Linear:
    w: np.ndarray            # int8 (out, in), symmetric
    w_scale: np.ndarray      # float32 (out,), host-only (folded into mult/shift)
    mult: np.ndarray         # int64 (out,)
    shift: np.ndarray        # int64 (out,)
    in_zp: int
    out_zp: int
    out_bits: int = 8        # 16: y int16 (zero point 0), an --int16 part's input

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return T.fully_connected_per_channel(x[None], self.in_zp, self.w, None, self.mult, self.shift,
                                             self.out_zp, self.out_bits)[0]


@dataclass
class Norm:
    zp: int
    n_eps: int
    mult: np.ndarray
    shift: np.ndarray
    out_zp: int
    out_bits: int = 8        # 16: y int16 (zero point 0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        xc = x.astype(np.int64) - self.zp
        t = max(1, int(np.sum(xc * xc)) + self.n_eps)
        a = (62 - t.bit_length()) // 2
        inv = (1 << 60) // math.isqrt(t << (2 * a))
        scaled = xc * T.srdhm(inv, self.mult)
        e = 60 - a - self.shift
        y = np.where(e >= 0, T.rounding_divide_by_pot(scaled, np.maximum(e, 0)), scaled << np.maximum(-e, 0))
        return T.clamp_to(y + self.out_zp, self.out_bits)


def rotation_matrices(head_size: int, max_seq: int, theta: float) -> np.ndarray:
    """RoPE as matrices: R[pos] (out, in) rotates each pair (2p, 2p+1); int8 at scale 1/127."""
    ang = np.arange(max_seq)[:, None] * (theta ** (-np.arange(0, head_size, 2) / head_size))[None, :]
    c, s = np.rint(np.cos(ang) * 127), np.rint(np.sin(ang) * 127)
    r = np.zeros((max_seq, head_size, head_size))
    p = np.arange(0, head_size, 2)
    r[:, p, p], r[:, p, p + 1] = c, -s           # y[2p]   = cos * x[2p] - sin * x[2p+1]
    r[:, p + 1, p], r[:, p + 1, p + 1] = s, c    # y[2p+1] = sin * x[2p] + cos * x[2p+1]
    return r.astype(np.int8)


def _symmetric_rows(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    amax = np.abs(w).max(axis=1).astype(np.float64)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    q = np.clip(np.rint(w / scale[:, None].astype(np.float64)), -127, 127).astype(np.int8)
    return q, scale


def _linear(w: np.ndarray, s_in: tuple[float, int], s_out: tuple[float, int], out_bits: int = 8) -> Linear:
    q, ws = _symmetric_rows(w)
    mq = [T.conv_multiplier(s_in[0], float(s), s_out[0]) for s in ws]
    return Linear(q, ws, np.array([m for m, _ in mq], np.int64), np.array([s for _, s in mq], np.int64),
                  s_in[1], s_out[1], out_bits)


def params16(lo: float, hi: float) -> tuple[float, int]:
    """int16 symmetric (scale, zero point 0) for a range: TFLM's int16 convention."""
    amax = max(abs(lo), abs(hi))
    return (float(np.float32(amax / 32767.0)), 0) if amax > 1e-12 else (1e-8, 0)


def _norm(weight: np.ndarray, s_in: tuple[float, int], s_out: tuple[float, int], eps: float,
          out_bits: int = 8) -> Norm:
    n = weight.shape[0]
    mq = [T.quantize_multiplier(float(wj) * math.sqrt(n) / s_out[0]) if wj != 0 else (0, 0) for wj in weight]
    return Norm(s_in[1], int(round(n * eps / (s_in[0] ** 2))), np.array([m for m, _ in mq], np.int64),
                np.array([s for _, s in mq], np.int64), s_out[1], out_bits)


@dataclass
class I8Model:
    model: Model
    calib: Calibration
    params: dict[str, tuple[float, int]]
    layers: list[dict] = field(default_factory=list)
    embed_q: np.ndarray | None = None          # int8 (vocab, dim), per-row symmetric
    embed_mult: np.ndarray | None = None
    embed_shift: np.ndarray | None = None
    final_norm: Norm | None = None
    classifier: Linear | None = None
    rope: np.ndarray | None = None             # int8 (max_seq, head_size, head_size), scale 1/127
    int16: tuple[str, ...] = ()                # the scheme's int16 parts (Scheme.int16)

    # what the lowering pipeline reads of any quantized model (as of a QuantModel)
    @property
    def config(self):
        return self.model.config

    @property
    def scheme(self):
        from .schemes import get_scheme
        return get_scheme("i8", int16=self.int16)

    @property
    def model_fingerprint(self) -> str:
        return self.model.fingerprint()


def quantize_int8(model: Model, calib: Calibration, int16: tuple[str, ...] = ()) -> I8Model:
    """Every integer parameter of the i8 scheme, from the float model and its calibration;
    `int16`: the parts kept in int16 (schemes.INT16_PARTS)."""
    from ..errors import UsageError
    from .schemes import MAX_FFN16_HIDDEN, MAX_KEYS16_HEAD, parse_int16
    c, t = model.config, model.tensors
    int16 = parse_int16(int16)
    if "keys" in int16 and c.head_size > MAX_KEYS16_HEAD:
        raise UsageError(f"--int16 keys with head size {c.head_size}: a score's int32 sum could overflow",
                         f"it takes head sizes up to {MAX_KEYS16_HEAD}; run without --int16 keys")
    if "ffn" in int16 and c.hidden_dim > MAX_FFN16_HIDDEN:
        raise UsageError(f"--int16 ffn with hidden size {c.hidden_dim}: w2's int32 sums could overflow",
                         f"it takes hidden sizes up to {MAX_FFN16_HIDDEN}; run without --int16 ffn")
    if "norms" in int16 and c.dim > MAX_FFN16_HIDDEN:
        raise UsageError(f"--int16 norms with dim {c.dim}: the matmuls' int32 sums could overflow",
                         f"it takes a dim up to {MAX_FFN16_HIDDEN}; run without --int16 norms")
    P = {name: calib.params(name) for name in calib.ranges}
    P["probs"] = P["sigmoid"] = (1.0 / 256.0, -128)
    keys16, ffn16, res16, norms16 = ("keys" in int16, "ffn" in int16, "residual" in int16, "norms" in int16)
    wide = (("k", "k_rot") if keys16 else ()) + (("h1", "h3", "silu", "gated") if ffn16 else ()) + \
        (("o", "x_att", "f", "x_ffn") if res16 else ()) + (("att_norm", "ffn_norm") if norms16 else ())
    for name in (("x0",) if res16 else ()) + (("final_norm",) if norms16 else ()):
        P[name] = params16(*calib.ranges[name])
    norm_bits = 16 if norms16 else 8
    add_bits = 16 if res16 else 8
    for l in range(c.n_layers):
        for name in wide:
            P[f"{l}.{name}"] = params16(*calib.ranges[f"{l}.{name}"])
    sig_scale = 1.0 / 32768.0 if ffn16 else 1.0 / 256.0       # LOGISTIC's output, int16 or int8
    qm = I8Model(model, calib, P, int16=int16)
    emb_q, emb_s = _symmetric_rows(t["tok_embeddings"])
    mq = [T.quantize_multiplier(float(s) / P["x0"][0]) for s in emb_s]
    qm.embed_q = emb_q
    qm.embed_mult = np.array([m for m, _ in mq], np.int64)
    qm.embed_shift = np.array([s for _, s in mq], np.int64)
    hs = c.head_size
    qm.rope = rotation_matrices(hs, c.max_seq_len, c.rope_theta)
    x_in = "x0"
    for l in range(c.n_layers):
        p, L = f"layers.{l}.", lambda n: P[f"{l}.{n}"]      # noqa: E731
        s_eff = T.f32(L("scores")[0] * math.sqrt(hs))        # 1/sqrt(hd) folded into the output scale
        layer = {
            "att_norm": _norm(t[p + "attention_norm"], P[x_in], L("att_norm"), c.norm_eps, norm_bits),
            "wq": _linear(t[p + "attention.wq"], L("att_norm"), L("q")),
            "wk": _linear(t[p + "attention.wk"], L("att_norm"), L("k"), 16 if keys16 else 8),
            "wv": _linear(t[p + "attention.wv"], L("att_norm"), L("v")),
            "rope_q": T.conv_multiplier(L("q")[0], ROT_SCALE, L("q_rot")[0]),
            "rope_k": T.conv_multiplier(L("k")[0], ROT_SCALE, L("k_rot")[0]),
            "score": T.conv_multiplier(L("q_rot")[0], L("k_rot")[0], s_eff),
            "softmax": T.softmax_params(L("scores")[0]),
            "av": T.conv_multiplier(1.0 / 256.0, L("v")[0], L("att_out")[0]),
            "wo": _linear(t[p + "attention.wo"], L("att_out"), L("o"), add_bits),
            "add_att": T.add_params(P[x_in][0], L("o")[0], L("x_att")[0], add_bits),
            "ffn_norm": _norm(t[p + "ffn_norm"], L("x_att"), L("ffn_norm"), c.norm_eps, norm_bits),
            "w1": _linear(t[p + "feed_forward.w1"], L("ffn_norm"), L("h1"), 16 if ffn16 else 8),
            "w3": _linear(t[p + "feed_forward.w3"], L("ffn_norm"), L("h3"), 16 if ffn16 else 8),
            "sigmoid": T.logistic16_params(L("h1")[0]) if ffn16 else T.logistic_params(*L("h1")),
            "silu": T.conv_multiplier(L("h1")[0], sig_scale, L("silu")[0]),
            "gate": T.conv_multiplier(L("silu")[0], L("h3")[0], L("gated")[0]),
            "w2": _linear(t[p + "feed_forward.w2"], L("gated"), L("f"), add_bits),
            "add_ffn": T.add_params(L("x_att")[0], L("f")[0], L("x_ffn")[0], add_bits),
            "x_in": x_in,
        }
        # the sigmoid of every possible int8 input (the firmware holds the SiLU table made from it:
        # golden_s8.silu_table); int16 h1 computes it (swiglu_s16)
        if not ffn16:
            layer["sigmoid_lut"] = T.logistic_int8(np.arange(-128, 128).astype(np.int8), layer["sigmoid"])
        qm.layers.append(layer)
        x_in = f"{l}.x_ffn"
    qm.final_norm = _norm(t["norm"], P[x_in], P["final_norm"], c.norm_eps, norm_bits)
    qm.classifier = _linear(model.classifier(), P["final_norm"], P["logits"])
    return qm


def embedding_rows(qm: I8Model, tokens: np.ndarray) -> np.ndarray:
    """x0 for each token: its int8 row requantized from the row's scale to x0's (see above)."""
    x = T.multiply_by_quantized_multiplier(qm.embed_q[tokens].astype(np.int64), qm.embed_mult[tokens, None],
                                           qm.embed_shift[tokens, None]) + qm.params["x0"][1]
    return T.clamp_to(x, 16 if "residual" in qm.int16 else 8)


class I8Engine:
    """The i8 golden model: integer numpy, forward(token, pos) -> logits dequantized to float32
    (for evaluation; the integer logits, which the firmware samples from, are self.last_logits_q).
    forward runs the firmware's step table through quant/golden_s8.py's kernels; the block methods
    below compose TFLM's ops for the tflite-micro replay (tests require the two equal)."""

    def __init__(self, qm: I8Model, max_seq_len: int | None = None):
        self.qm = qm
        c = qm.model.config
        self.max_seq_len = max_seq_len or c.max_seq_len
        shape = (c.n_layers, self.max_seq_len, c.n_kv_heads, c.head_size)
        self.keys = np.zeros(shape, np.int16 if "keys" in qm.int16 else np.int8)
        self.values = np.zeros(shape, np.int8)
        self.last_logits_q = None
        # the firmware's step table and each step's integers (quant/golden_s8.py)
        from ..lower.schedule import schedule
        from .golden_s8 import GOLDEN_S8, rope_tables_s8, step_params
        from .schemes import get_scheme
        self.steps, _ = schedule(c, qm.scheme, self.max_seq_len)
        self.params = {s: step_params(qm, s) for s in self.steps}
        self.run = [GOLDEN_S8[s.kernel] for s in self.steps]
        self.rope_s8 = rope_tables_s8(qm.rope[:self.max_seq_len])
        self.val: dict[str, np.ndarray] = {}
        self.token = self.pos = 0

    def reset(self) -> None:
        self.keys[:] = 0
        self.values[:] = 0

    def _rope(self, x: np.ndarray, zp_in: int, zp_out: int, mq: tuple[int, int], pos: int) -> np.ndarray:
        """FULLY_CONNECTED of each head (a row of x) with the position's rotation matrix (16x8 for int16 x)."""
        n = x.shape[1]
        if x.dtype == np.int16:
            return T.fully_connected_16x8(x, self.qm.rope[pos], None, np.full(n, mq[0]), np.full(n, mq[1]))
        return T.fully_connected_per_channel(x, zp_in, self.qm.rope[pos], None, np.full(n, mq[0]),
                                             np.full(n, mq[1]), zp_out)

    # The forward pass in blocks, so that tests can replay any block on another engine's tensors.
    def embed(self, token: int) -> np.ndarray:
        return embedding_rows(self.qm, np.array([token]))[0]

    def qkv(self, l: int, xn: np.ndarray, pos: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(q_rot (heads, hd), k_rot (kv, hd), v (kv, hd)) from the normed input."""
        c, Ly, L = self.qm.model.config, self.qm.layers[l], self._params(l)
        q = Ly["wq"](xn).reshape(c.n_heads, -1)
        k = Ly["wk"](xn).reshape(c.n_kv_heads, -1)
        v = Ly["wv"](xn).reshape(c.n_kv_heads, -1)
        return (self._rope(q, L("q")[1], L("q_rot")[1], Ly["rope_q"], pos),
                self._rope(k, L("k")[1], L("k_rot")[1], Ly["rope_k"], pos), v)

    def attend(self, l: int, q_rot: np.ndarray, pos: int) -> np.ndarray:
        """Attention over cache positions 0..pos (the caller stored this position's k, v)."""
        c, Ly, L = self.qm.model.config, self.qm.layers[l], self._params(l)
        rep = c.n_heads // c.n_kv_heads
        keys = np.repeat(self.keys[l, :pos + 1].transpose(1, 2, 0), rep, axis=0)     # (h, hs, t)
        vals = np.repeat(self.values[l, :pos + 1].transpose(1, 0, 2), rep, axis=0)   # (h, t, hs)
        scores = T.batch_matmul(q_rot[:, None, :], L("q_rot")[1], keys, L("k_rot")[1], *Ly["score"],
                                L("scores")[1])                                       # (h, 1, t)
        probs = T.softmax_int8(scores, Ly["softmax"])
        return T.batch_matmul(probs, -128, vals, L("v")[1], *Ly["av"], L("att_out")[1]).reshape(-1)

    def attention_out(self, l: int, x: np.ndarray, att: np.ndarray) -> np.ndarray:
        Ly, L, P = self.qm.layers[l], self._params(l), self.qm.params
        o = Ly["wo"](att)
        return T.add(x, P[Ly["x_in"]][1], o, L("o")[1], Ly["add_att"], L("x_att")[1], 8 * x.itemsize)

    def feed_forward(self, l: int, x_att: np.ndarray, xn: np.ndarray) -> np.ndarray:
        Ly, L = self.qm.layers[l], self._params(l)
        h1, h3 = Ly["w1"](xn), Ly["w3"](xn)
        if h1.dtype == np.int16:                  # --int16 ffn: TFLM's int16 LOGISTIC and MULs
            sig = T.logistic_int16(h1, *Ly["sigmoid"])
            silu = T.mul(h1, 0, sig, 0, *Ly["silu"], 0, 16)
            return T.add(x_att, L("x_att")[1], Ly["w2"](T.mul(silu, 0, h3, 0, *Ly["gate"], 0, 16)),
                         L("f")[1], Ly["add_ffn"], L("x_ffn")[1], 8 * x_att.itemsize)
        sig = Ly["sigmoid_lut"][h1.astype(np.int64) + 128]
        silu = T.mul(h1, L("h1")[1], sig, -128, *Ly["silu"], L("silu")[1])
        g = T.mul(silu, L("silu")[1], h3, L("h3")[1], *Ly["gate"], L("gated")[1])
        f = Ly["w2"](g)
        return T.add(x_att, L("x_att")[1], f, L("f")[1], Ly["add_ffn"], L("x_ffn")[1], 8 * x_att.itemsize)

    def _params(self, l: int):
        return lambda name: self.qm.params[f"{l}.{name}"]

    def forward_blocks(self, token: int, pos: int) -> np.ndarray:
        """The forward pass composed of the blocks above (TFLM's ops): the int8 logits.
        forward() must give the same bits through the firmware's kernels (tests/test_int8.py)."""
        qm = self.qm
        x = self.embed(token)
        for l, Ly in enumerate(qm.layers):
            q_rot, self.keys[l, pos], self.values[l, pos] = self.qkv(l, Ly["att_norm"](x), pos)
            x = self.attention_out(l, x, self.attend(l, q_rot, pos))
            x = self.feed_forward(l, x, Ly["ffn_norm"](x))
        return qm.classifier(qm.final_norm(x))

    def forward(self, token: int, pos: int) -> np.ndarray:
        """The firmware's forward pass: the step table, each step through its s8 kernel's golden."""
        self.token, self.pos = token, pos
        for run, st in zip(self.run, self.steps):
            run(self, st)
        logits = self.val["logits"]
        self.last_logits_q = logits
        s, zp = self.qm.params["logits"]
        return ((logits.astype(np.float32) - np.float32(zp)) * np.float32(s)).astype(np.float32)
