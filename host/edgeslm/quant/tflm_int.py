"""TFLite-Micro's integer arithmetic, in numpy, exactly (int64 intermediates, C rounding rules).

These are the primitives of the integer-only scheme; tests/test_tflm_ops.py builds the matching
single-op .tflite models and requires zero mismatches against tflite-micro's interpreter.

quantize_multiplier(m)          -> (q, shift): m = q * 2^(shift - 31), q in [2^30, 2^31)
srdhm(a, b)                     SaturatingRoundingDoublingHighMul: (a*b + nudge) / 2^31, toward 0,
                                nudge = 2^30 if a*b >= 0 else 1 - 2^30; INT32_MIN*INT32_MIN saturates
rounding_divide_by_pot(x, e)    x >> e, rounded half away from zero (gemmlowp)
multiply_by_quantized_multiplier(x, q, shift)
                                rounding_divide_by_pot(srdhm(x * 2^max(shift,0), q), max(-shift,0))
                                (TFLM's default "double rounding")
fully_connected_per_channel     acc[o] = sum_d w[o,d] * (x[d] - x_zp); requantize per output channel;
                                + y_zp; clamp to int8
batch_matmul                    acc = sum_k (a + a_off) * (b + b_off); requantize; + y_zp; clamp
add                             TFLM int8 ADD: left shift 20, per-input multipliers, output multiplier
Every *_params function takes scales as the .tflite file holds them (float32) and derives the
multipliers in double, as TFLM's Prepare does.
mul                             TFLM int8 MUL: (a - a_zp) * (b - b_zp), requantize, + y_zp, clamp
"""

from __future__ import annotations

import math

import numpy as np

I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (quantization_util.cc)."""
    if m == 0.0:
        return 0, 0
    frac, shift = math.frexp(m)
    q = int(round(frac * (1 << 31)))       # std::round: half away from zero (frac > 0 here)
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return (1 << 31) - 1, 30
    return q, shift


def _c_div_pow2_31(x: np.ndarray) -> np.ndarray:
    """int64 division by 2^31 truncating toward zero, as C does."""
    q = np.abs(x) >> 31
    return np.where(x < 0, -q, q)


def srdhm(a, b) -> np.ndarray:
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, np.int64(1 << 30), np.int64(1 - (1 << 30)))
    out = _c_div_pow2_31(ab + nudge)
    overflow = (a == I32_MIN) & (b == I32_MIN)
    return np.where(overflow, I32_MAX, out).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, q, shift) -> np.ndarray:
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, np.int64) * (np.int64(1) << left)
    x = np.clip(x, I32_MIN, I32_MAX)       # the C code multiplies in int32
    return rounding_divide_by_pot(srdhm(x, q), right)


def _clamp8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


def fully_connected_per_channel(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray | None,
                                mult: np.ndarray, shift: np.ndarray, y_zp: int) -> np.ndarray:
    """x (batch, in) int8, w (out, in) int8 symmetric -> y (batch, out) int8."""
    acc = (x.astype(np.int64) - x_zp) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return _clamp8(multiply_by_quantized_multiplier(acc, mult, shift) + y_zp)


def batch_matmul(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, mult: int, shift: int,
                 y_zp: int) -> np.ndarray:
    """a (..., M, K) @ b (..., K, N), int8 -> int8."""
    acc = (a.astype(np.int64) - a_zp) @ (b.astype(np.int64) - b_zp)
    return _clamp8(multiply_by_quantized_multiplier(acc, mult, shift) + y_zp)


def f32(scale: float) -> float:
    """A scale as the .tflite file stores it (float32), widened to double as TFLM's Prepare does."""
    return float(np.float32(scale))


def conv_multiplier(in_scale: float, w_scale: float, out_scale: float) -> tuple[int, int]:
    """TFLM GetQuantizedConvolutionMultipler for FC / BATCH_MATMUL / MUL: s_in * s_w / s_out."""
    return quantize_multiplier(f32(in_scale) * f32(w_scale) / f32(out_scale))


def add_params(s1: float, s2: float, sy: float) -> dict:
    """TFLM int8 ADD Prepare: left_shift 20, inputs rescaled to twice the larger input scale."""
    s1, s2, sy = f32(s1), f32(s2), f32(sy)
    left_shift = 20
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    my, shy = quantize_multiplier(twice_max / ((1 << left_shift) * sy))
    return dict(left_shift=left_shift, m1=m1, sh1=sh1, m2=m2, sh2=sh2, my=my, shy=shy)


def add(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, p: dict, y_zp: int) -> np.ndarray:
    sa = (a.astype(np.int64) - a_zp) * (1 << p["left_shift"])
    sb = (b.astype(np.int64) - b_zp) * (1 << p["left_shift"])
    ra = multiply_by_quantized_multiplier(sa, p["m1"], p["sh1"])
    rb = multiply_by_quantized_multiplier(sb, p["m2"], p["sh2"])
    return _clamp8(multiply_by_quantized_multiplier(ra + rb, p["my"], p["shy"]) + y_zp)


def mul(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, mult: int, shift: int, y_zp: int) -> np.ndarray:
    prod = (a.astype(np.int64) - a_zp) * (b.astype(np.int64) - b_zp)
    return _clamp8(multiply_by_quantized_multiplier(prod, mult, shift) + y_zp)


# ---- gemmlowp fixed point (Q(I).(31-I) in int32), as TFLM's softmax and logistic use it ----------

def _sat32(x: np.ndarray) -> np.ndarray:
    return np.clip(x, I32_MIN, I32_MAX).astype(np.int64)


def sat_rounding_mul_by_pot(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent>."""
    x = np.asarray(x, np.int64)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, I32_MAX, np.where(x < -threshold, I32_MIN, x << exponent)).astype(np.int64)


def rescale(x, src_bits: int, dst_bits: int) -> np.ndarray:
    return sat_rounding_mul_by_pot(x, src_bits - dst_bits)


def _exp_on_interval_between_negative_one_quarter_and_0_excl(a: np.ndarray) -> np.ndarray:
    """a in Q0.31, in [-1/4, 0): Taylor series around -1/8."""
    constant_term = 1895147668             # exp(-1/8)
    constant_1_over_3 = 715827883
    x = a + (1 << 28)                       # a + 1/8
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = sat_rounding_mul_by_pot(x4, -2)
    poly = sat_rounding_mul_by_pot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return constant_term + srdhm(constant_term, x + poly)


_EXP_BARREL = [(-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
               (3, 720401), (4, 242)]


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a in Q(integer_bits), a <= 0 -> exp(a) in Q0.31."""
    a = np.asarray(a, np.int64)
    frac_bits = 31 - integer_bits
    one_quarter = 1 << (frac_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    result = _exp_on_interval_between_negative_one_quarter_and_0_excl(
        rescale(a_mod_quarter_minus_one_quarter, integer_bits, 0))
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac_bits + exponent)
            result = np.where(remainder & bit, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, I32_MAX, result).astype(np.int64)


def _rounding_half_sum(a, b) -> np.ndarray:
    s = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    sign = np.where(s >= 0, 1, -1)
    q = s + sign
    return np.where(q < 0, -((-q) // 2), q // 2)          # C division: toward zero


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """Q0.31 a in [0, 1) -> 1/(1+a) in Q0.31, three Newton-Raphson steps in Q2.29."""
    half_denominator = _rounding_half_sum(a, I32_MAX)
    x = 1515870810 + srdhm(half_denominator, -1010580540)   # 48/17 - 32/17 * d, in Q2.29
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = one_q2 - half_denominator_times_x
        x = x + rescale(srdhm(x, one_minus), 4, 2)
    return rescale(x, 1, 0)                                  # ExactMulByPot<-1>: Q2 -> Q1, same raw


def get_reciprocal(x: np.ndarray, x_integer_digits: int) -> tuple[np.ndarray, np.ndarray]:
    """TFLM GetReciprocal: (1/x as Q0.31 of the normalized x, num_bits_over_unit)."""
    x = np.asarray(x, np.int64)
    ux = x & 0xFFFFFFFF
    headroom_plus_one = 32 - np.floor(np.log2(np.maximum(ux, 1))).astype(np.int64) - 1
    headroom_plus_one = np.where(ux == 0, 32, headroom_plus_one)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = ((ux << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31)
    shifted = np.where(shifted >= (1 << 31), shifted - (1 << 32), shifted)
    return one_over_one_plus_x_for_x_in_0_1(shifted), num_bits_over_unit


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * (1 << (total_signed_bits - input_integer_bits))
                          / (1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


def softmax_params(input_scale: float, beta: float = 1.0) -> dict:
    """TFLM SOFTMAX Prepare for int8 in / int8 out (output scale 1/256, zero point -128)."""
    real = min(beta * f32(input_scale) * (1 << (31 - 5)), (1 << 31) - 1.0)
    mult, left_shift = quantize_multiplier(real)
    return dict(mult=mult, left_shift=left_shift, diff_min=-calculate_input_radius(5, left_shift))


def softmax_int8(x: np.ndarray, p: dict) -> np.ndarray:
    """TFLM reference int8 SOFTMAX over the last axis."""
    x = x.astype(np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    valid = diff >= p["diff_min"]
    scaled = srdhm(_sat32(diff * (1 << p["left_shift"])), p["mult"])
    exps = exp_on_negative_values(scaled, 5)
    contrib = np.where(valid, rescale(exps, 0, 12), 0)
    total = np.zeros(x.shape[:-1], np.int64)
    for c in range(x.shape[-1]):                    # sum in the kernel's order, in int32 (Q12.19)
        total = total + contrib[..., c]
    shifted_scale, bits_over = get_reciprocal(total, 12)
    out = rounding_divide_by_pot(srdhm(shifted_scale[..., None], exps), (bits_over + 31 - 8)[..., None])
    out = np.clip(out - 128, -128, 127)
    return np.where(valid, out, -128).astype(np.int8)


def logistic_params(input_scale: float, input_zp: int) -> dict:
    """TFLM LOGISTIC Prepare for int8 (output scale 1/256, zero point -128)."""
    real = f32(input_scale) * (1 << (31 - 4))
    q, shift = math.frexp(real)
    mult = int(round(q * (1 << 31)))
    return dict(zp=input_zp, mult=mult, shift=shift, radius=calculate_input_radius(4, shift))


def logistic_int8(x: np.ndarray, p: dict) -> np.ndarray:
    """TFLM reference int8 LOGISTIC (gemmlowp::logistic on Q4.27)."""
    inp = x.astype(np.int64) - p["zp"]
    q4 = multiply_by_quantized_multiplier(np.clip(inp, -p["radius"], p["radius"]), p["mult"], p["shift"])
    pos = q4 > 0
    abs_in = np.where(pos, q4, -q4)
    r_pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_in, 4))
    r = np.where(q4 == 0, 1 << 30, np.where(pos, r_pos, I32_MAX - r_pos))
    out = np.clip(rounding_divide_by_pot(r, 31 - 8) - 128, -128, 127)
    out = np.where(inp <= -p["radius"], -128, np.where(inp >= p["radius"], 127, out))
    return out.astype(np.int8)
