"""The golden model of the integer-only scheme (i8) as kernels over the step table: one function
per s8 kernel (`GOLDEN_S8["<op>_s8"]`), each mirroring firmware/kernels/<op>/esl_<op>_s8.c bit
for bit, and `step_params`, the integers each step carries in the firmware's step table.

The arithmetic is quant/int8.py's (TFLM's where TFLM has the op). What the kernels do beyond a
literal transcription, each exactly equal to it:
  matmul_s8     acc[o] = bias[o] + sum_d w[o,d] * x[d], bias[o] = -in_zp * sum_d w[o,d]
                (= sum_d w[o,d] * (x[d] - in_zp), CMSIS-NN's precomputed kernel sum)
  rope_s8       only the two non-zero terms of each rotation row: for pair p, a = x[2p] - zp,
                b = x[2p+1] - zp: y[2p] = c*a - s*b, y[2p+1] = s*a + c*b (c, s: int8 tables of
                the position, c = R[2p][2p], s = R[2p+1][2p] of int8.rotation_matrices)
  attention_s8  the softmax's exp of every possible score difference d = max - score (0..255) is a
                host table per layer: exp_table[d] = exp_on_negative_values(srdhm(-d << left_shift,
                mult), 5) (Q0.31); d > d_valid (= -diff_min) takes no part (TFLM's diff_min test)
  swiglu_s8     SiLU = MUL(h1, LOGISTIC(h1)) depends on h1 alone: a host table of its 256 values
  rmsnorm_s8    the final rounding shift e = 60 - a - shift[j] is taken as min(e, 40): |scaled| <
                2^39, so every e >= 40 rounds to 0, as e = 40 does (int16 x, in_bits 16: min(e, 47),
                |scaled| < 2^46)
  rope_s16      rope_s8's two terms on int16 (zero point 0) with TFLM's 16x8 requantization
                (multiply_by_quantized_multiplier_64): the keys of --int16 keys
  swiglu_s16    TFLM's int16 LOGISTIC of h1 (SIGMOID_TABLE_U16 interpolated), MUL(h1, sig), MUL(silu, h3)
  matmul_s16    int16 x (zero point 0) times int8 W: int32 sums (exact for cols <= 516), matmul_s8's
                requantization to int8
The --int16 parts' values are int16 (zero point 0): matmul_s8 / matmul_s16 / embed_s8 with out_bits
16 clamp to int16, rmsnorm_s8 with in_bits / out_bits 16 reads / writes int16, add_s8 with bits 16 is
TFLM's int16 ADD,
and kvstore_s8 / attention_s8 take the cache's keys at the engine's key width.
"""

from __future__ import annotations

import math

import numpy as np

from ..lower.schedule import Step
from . import tflm_int as T

# The one place a step's role is read from its value names (lower/schedule.py names them).
_MATMUL_KEY = {"attention.wq": "wq", "attention.wk": "wk", "attention.wv": "wv", "attention.wo": "wo",
               "feed_forward.w1": "w1", "feed_forward.w2": "w2", "feed_forward.w3": "w3"}
RMS_E_MAX = {8: 40, 16: 47}          # rmsnorm_s8's exponent cap by input width (above)


def softmax_exp_table(p: dict) -> np.ndarray:
    """exp_on_negative_values of every score difference 0..255, as TFLM's softmax computes it."""
    diff = -np.arange(256, dtype=np.int64)
    scaled = T.srdhm(T._sat32(diff * (1 << p["left_shift"])), p["mult"])
    return T.exp_on_negative_values(scaled, 5).astype(np.int32)


def silu_table(sigmoid: np.ndarray, h1_zp: int, mult: int, shift: int, silu_zp: int) -> np.ndarray:
    """SiLU of every int8 h1: TFLM MUL(h1, LOGISTIC(h1)) (sigmoid: the 256-entry LOGISTIC table)."""
    h1 = np.arange(-128, 128).astype(np.int8)
    return T.mul(h1, h1_zp, sigmoid, -128, mult, shift, silu_zp)


def rope_tables_s8(rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cos, sin) int8 (max_seq, head_size / 2) from the rotation matrices (int8.rotation_matrices)."""
    p = np.arange(0, rot.shape[1], 2)
    return np.ascontiguousarray(rot[:, p, p]), np.ascontiguousarray(rot[:, p + 1, p])


def _linear_params(lin) -> dict:
    w = lin.w.astype(np.int64)
    return {"mult": lin.mult.astype(np.int32), "shift": lin.shift.astype(np.int8),
            "bias": (-lin.in_zp * w.sum(axis=1)).astype(np.int32), "in_zp": lin.in_zp, "out_zp": lin.out_zp,
            "out_bits": lin.out_bits, "w": lin.w}


def _norm_params(nm, in_bits: int) -> dict:
    if not 0 <= nm.n_eps < 1 << 31:
        raise ValueError(f"RMSNorm's n * eps / s^2 = {nm.n_eps} does not fit int32 (a residual scale this small "
                         "is not a calibration to trust)")
    return {"mult": nm.mult.astype(np.int32), "shift": nm.shift.astype(np.int8), "in_zp": nm.zp,
            "out_zp": nm.out_zp, "n_eps": nm.n_eps, "in_bits": in_bits, "out_bits": nm.out_bits}


def step_params(qm, step: Step) -> dict:
    """The integers of one s8 step (plain data: ints and numpy arrays), for golden and codegen alike."""
    P, l = qm.params, step.layer
    zp = lambda name: P[f"{l}.{name}"][1]           # noqa: E731
    Ly = qm.layers[l] if qm.layers else {}
    res_bits = 16 if "residual" in qm.int16 else 8
    if step.op == "embed":
        return {"mult": qm.embed_mult.astype(np.int32), "shift": qm.embed_shift.astype(np.int8),
                "out_zp": P["x0"][1], "out_bits": res_bits, "w": qm.embed_q}
    if step.op == "rmsnorm":
        nm = qm.final_norm if step.norm == "norm" else Ly["att_norm" if step.norm.endswith("attention_norm") else "ffn_norm"]
        return _norm_params(nm, res_bits)
    if step.op == "matmul":
        suffix = step.weight.split(".", 2)[-1]
        lin = _linear_params(Ly[_MATMUL_KEY[suffix]] if step.weight.startswith("layers.") else qm.classifier)
        if step.contract == "s16":                   # int16 x: zero point 0, so no bias to fold
            assert lin["in_zp"] == 0, step
            return {k: lin[k] for k in ("mult", "shift", "out_zp", "out_bits", "w")}
        return lin
    if step.op == "rope":
        which = "q" if step.inp.startswith("q") else "k"
        mult, shift = Ly[f"rope_{which}"]
        if step.contract == "s16":
            return {"mult": mult, "shift": shift}
        return {"mult": mult, "shift": shift, "in_zp": zp(which), "out_zp": zp(f"{which}_rot")}
    if step.op == "kvstore":
        return {}
    if step.op == "attention":
        sm = Ly["softmax"]
        return {"score_mult": Ly["score"][0], "score_shift": Ly["score"][1], "q_zp": zp("q_rot"),
                "k_zp": zp("k_rot"), "score_zp": zp("scores"), "exp_table": softmax_exp_table(sm),
                "d_valid": min(255, -sm["diff_min"]), "av_mult": Ly["av"][0], "av_shift": Ly["av"][1],
                "v_zp": zp("v"), "out_zp": zp("att_out")}
    if step.op == "add":
        first = step.inp.startswith("o")
        p = Ly["add_att" if first else "add_ffn"]
        a_zp = P[Ly["x_in"]][1] if first else zp("x_att")
        return {**{k: p[k] for k in ("left_shift", "m1", "sh1", "m2", "sh2", "my", "shy")},
                "a_zp": a_zp, "b_zp": zp("o" if first else "f"), "out_zp": zp("x_att" if first else "x_ffn"),
                "bits": res_bits}
    if step.op == "swiglu" and step.contract == "s16":
        (sm, ss), (um, us), (gm, gs) = Ly["sigmoid"], Ly["silu"], Ly["gate"]
        return {"sig_mult": sm, "sig_shift": ss, "silu_mult": um, "silu_shift": us, "gate_mult": gm,
                "gate_shift": gs}
    if step.op == "swiglu":
        return {"silu": silu_table(Ly["sigmoid_lut"], zp("h1"), *Ly["silu"], zp("silu")),
                "gate_mult": Ly["gate"][0], "gate_shift": Ly["gate"][1], "silu_zp": zp("silu"),
                "h3_zp": zp("h3"), "out_zp": zp("gated")}
    raise KeyError(f"no s8 parameters for op {step.op!r}")


def _clamp8(x) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


# ---- the kernels: (engine, step) -> None, the engine's values are int8 vectors -----------------

def embed_s8(e, s: Step) -> None:
    p = e.params[s]
    row = p["w"][e.token].astype(np.int64)
    y = T.multiply_by_quantized_multiplier(row, p["mult"][e.token], p["shift"][e.token]) + p["out_zp"]
    e.val[s.out] = T.clamp_to(y, p["out_bits"])


def rmsnorm_s8(e, s: Step) -> None:
    """xc = x - in_zp; T = max(1, sum xc^2 + n_eps); a = (62 - bitlen(T)) // 2; inv = 2^60 // isqrt(T << 2a);
    y[j] = clamp(rdbp64(xc[j] * srdhm(inv, mult[j]), min(60 - a - shift[j], 40)) + out_zp)."""
    p = e.params[s]
    xc = e.val[s.inp].astype(np.int64) - p["in_zp"]
    t = max(1, int(np.sum(xc * xc)) + p["n_eps"])
    a = (62 - t.bit_length()) // 2
    inv = (1 << 60) // math.isqrt(t << (2 * a))
    scaled = xc * T.srdhm(inv, p["mult"].astype(np.int64))
    ex = np.minimum(60 - a - p["shift"].astype(np.int64), RMS_E_MAX[p["in_bits"]])
    e.val[s.out] = T.clamp_to(T.rounding_divide_by_pot(scaled, ex) + p["out_zp"], p["out_bits"])


def matmul_s8(e, s: Step) -> None:
    p = e.params[s]
    acc = p["bias"].astype(np.int64) + p["w"].astype(np.int64) @ e.val[s.inp].astype(np.int64)
    e.val[s.out] = _requantize_rows(acc, p)


def _requantize_rows(acc: np.ndarray, p: dict) -> np.ndarray:
    """matmul_s8 / matmul_s16's y = clamp(mbqm(acc, mult, shift) + out_zp) at the output's width."""
    y = T.multiply_by_quantized_multiplier(acc, p["mult"].astype(np.int64), p["shift"].astype(np.int64))
    return T.clamp_to(y + p["out_zp"], p["out_bits"])


def _rope_terms(e, s: Step, zp: int) -> np.ndarray:
    """Each head's pairs (a, b) = (x[2p] - zp, x[2p+1] - zp) rotated by the position's int8 (c, s):
    c*a - s*b, s*a + c*b (exact int64), shaped (heads, head_size)."""
    c, sn = (t[e.pos].astype(np.int64) for t in e.rope_s8)
    x = e.val[s.inp].astype(np.int64).reshape(s.n, -1) - zp
    a, b = x[:, 0::2], x[:, 1::2]
    acc = np.empty_like(x)
    acc[:, 0::2], acc[:, 1::2] = c * a - sn * b, sn * a + c * b
    return acc


def rope_s8(e, s: Step) -> None:
    p = e.params[s]
    y = T.multiply_by_quantized_multiplier(_rope_terms(e, s, p["in_zp"]), p["mult"], p["shift"]) + p["out_zp"]
    e.val[s.out] = _clamp8(y).reshape(-1)


def rope_s16(e, s: Step) -> None:
    """rope_s8's terms on int16 x: y = clamp16(mbqm64(c*a - s*b)), clamp16(mbqm64(s*a + c*b))."""
    p = e.params[s]
    y = T.multiply_by_quantized_multiplier_64(_rope_terms(e, s, 0), p["mult"], p["shift"])
    e.val[s.out] = T.clamp16(y).reshape(-1)


def kvstore_s8(e, s: Step) -> None:
    hs = e.qm.model.config.head_size
    e.keys[s.layer, e.pos] = e.val[s.inp].reshape(-1, hs)
    e.values[s.layer, e.pos] = e.val[s.in2].reshape(-1, hs)


def attention_s8(e, s: Step) -> None:
    """Per head h (kv head h / (n_heads / n_kv_heads)), positions t = 0..pos:
    score[t] = clamp(mbqm(sum_i (q[i] - q_zp)(k[t][i] - k_zp), score_mult, score_shift) + score_zp)
    TFLM int8 softmax with d[t] = max(score) - score[t]: valid = d <= d_valid,
      total = sum over valid t of rdbp(exp_table[d], 12); (r, bits) = get_reciprocal(total, 12)
      prob[t] = valid ? clamp(rdbp(srdhm(r, exp_table[d]), bits + 23) - 128) : -128
    out[i] = clamp(mbqm(sum_t (prob[t] + 128)(v[t][i] - v_zp), av_mult, av_shift) + out_zp)."""
    p, c, n = e.params[s], e.qm.model.config, e.pos + 1
    rep = c.n_heads // c.n_kv_heads
    q = e.val[s.inp].astype(np.int64).reshape(c.n_heads, -1) - p["q_zp"]
    kvh = np.arange(c.n_heads) // rep
    k = e.keys[s.layer, :n][:, kvh].astype(np.int64) - p["k_zp"]          # (t, h, hs)
    v = e.values[s.layer, :n][:, kvh].astype(np.int64) - p["v_zp"]
    acc = np.einsum("hi,thi->ht", q, k)
    score = _clamp8(T.multiply_by_quantized_multiplier(acc, p["score_mult"], p["score_shift"]) + p["score_zp"])
    d = score.max(axis=1, keepdims=True).astype(np.int64) - score
    valid = d <= p["d_valid"]
    ex = p["exp_table"].astype(np.int64)[d]
    total = np.where(valid, T.rounding_divide_by_pot(ex, 12), 0).sum(axis=1)
    recip, bits = T.get_reciprocal(total, 12)
    prob = np.clip(T.rounding_divide_by_pot(T.srdhm(recip[:, None], ex), (bits + 31 - 8)[:, None]) - 128, -128, 127)
    prob = np.where(valid, prob, -128) + 128
    out = np.einsum("ht,thi->hi", prob, v)
    e.val[s.out] = _clamp8(T.multiply_by_quantized_multiplier(out, p["av_mult"], p["av_shift"]) + p["out_zp"]).reshape(-1)


def add_s8(e, s: Step) -> None:
    """TFLM int8 ADD of the residual: x = add(x, y)."""
    p = e.params[s]
    e.val[s.out] = T.add(e.val[s.out], p["a_zp"], e.val[s.inp], p["b_zp"], p, p["out_zp"], p["bits"])


def swiglu_s8(e, s: Step) -> None:
    """silu = silu_table[h1 + 128] (TFLM MUL of h1 and its LOGISTIC, tabled); h1 = MUL(silu, h3)."""
    p = e.params[s]
    h1, h3 = e.val[s.out], e.val[s.inp]
    silu = p["silu"][h1.astype(np.int64) + 128]
    e.val[s.out] = T.mul(silu, p["silu_zp"], h3, p["h3_zp"], p["gate_mult"], p["gate_shift"], p["out_zp"])


def matmul_s16(e, s: Step) -> None:
    """y = clamp(mbqm(sum_j W[i][j] * x[j], mult[i], shift[i]) + out_zp), x int16."""
    p = e.params[s]
    e.val[s.out] = _requantize_rows(p["w"].astype(np.int64) @ e.val[s.inp].astype(np.int64), p)


def swiglu_s16(e, s: Step) -> None:
    """h1 = MUL(MUL(h1, LOGISTIC(h1)), h3), TFLM's int16 ops (zero points 0)."""
    p = e.params[s]
    h1, h3 = e.val[s.out], e.val[s.inp]
    sig = T.logistic_int16(h1, p["sig_mult"], p["sig_shift"])
    silu = T.mul(h1, 0, sig, 0, p["silu_mult"], p["silu_shift"], 0, 16)
    e.val[s.out] = T.mul(silu, 0, h3, 0, p["gate_mult"], p["gate_shift"], 0, 16)


GOLDEN_S8 = {"embed_s8": embed_s8, "rmsnorm_s8": rmsnorm_s8, "matmul_s8": matmul_s8, "rope_s8": rope_s8, "rope_s16": rope_s16,
             "kvstore_s8": kvstore_s8, "attention_s8": attention_s8, "add_s8": add_s8, "swiglu_s8": swiglu_s8,
             "swiglu_s16": swiglu_s16, "matmul_s16": matmul_s16}
