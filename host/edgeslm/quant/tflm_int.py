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
multiply_by_quantized_multiplier_64(x, q, shift)
                                TFLM's int64 form (the 16x8 kernels): q rounded to 16 bits,
                                (x * ((q + 2^15) >> 16) + 2^(14 - shift)) >> (15 - shift)
fully_connected_16x8            TFLM FULLY_CONNECTED int16 x int8: int64 sums, the int64 form
                                above, clamp to int16 (zero points 0)
logistic_int16                  TFLM int16 LOGISTIC: the input rescaled to 1/(3 * 4096) per unit,
                                then SIGMOID_TABLE_U16 interpolated linearly in 512 steps; output
                                scale 1/32768 (zero points 0)
mul(..., y_bits=16)             TFLM int16 MUL: the int8 formula, clamped to int16
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


def multiply_by_quantized_multiplier_64(x, q, shift) -> np.ndarray:
    """TFLM MultiplyByQuantizedMultiplier(int64_t x, ...) (common.cc): one rounding, with the
    multiplier reduced to 16 bits; |x| < 2^47, shift in [-31, 7]."""
    q = np.asarray(q, np.int64)
    total = 15 - np.asarray(shift, np.int64)
    reduced = np.where(q < 0x7FFF0000, (q + (1 << 15)) >> 16, 0x7FFF)
    return (np.asarray(x, np.int64) * reduced + (np.int64(1) << (total - 1))) >> total


def _clamp8(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -128, 127).astype(np.int8)


def clamp16(x: np.ndarray) -> np.ndarray:
    return np.clip(x, -32768, 32767).astype(np.int16)


def clamp_to(x: np.ndarray, bits: int) -> np.ndarray:
    """The output clamp of an int8 (bits 8) or int16 (bits 16) tensor."""
    return clamp16(x) if bits == 16 else _clamp8(x)


def fully_connected_per_channel(x: np.ndarray, x_zp: int, w: np.ndarray, bias: np.ndarray | None,
                                mult: np.ndarray, shift: np.ndarray, y_zp: int, y_bits: int = 8) -> np.ndarray:
    """x (batch, in) int8, w (out, in) int8 symmetric -> y (batch, out) int8 (y_bits 16: int16, clamped
    there, y_zp 0; not a TFLM configuration: i8's --int16 parts take it)."""
    acc = (x.astype(np.int64) - x_zp) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return clamp_to(multiply_by_quantized_multiplier(acc, mult, shift) + y_zp, y_bits)


def fully_connected_16x8(x: np.ndarray, w: np.ndarray, bias: np.ndarray | None,
                         mult: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """x (batch, in) int16, w (out, in) int8 symmetric -> y (batch, out) int16 (TFLM's 16x8 FC)."""
    acc = x.astype(np.int64) @ w.astype(np.int64).T
    if bias is not None:
        acc = acc + bias.astype(np.int64)
    return clamp16(multiply_by_quantized_multiplier_64(acc, mult, shift))


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


def add_params(s1: float, s2: float, sy: float, bits: int = 8) -> dict:
    """TFLM ADD Prepare: left_shift 20 (int16: 15), inputs rescaled to twice the larger input scale."""
    s1, s2, sy = f32(s1), f32(s2), f32(sy)
    left_shift = 15 if bits == 16 else 20
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier(s1 / twice_max)
    m2, sh2 = quantize_multiplier(s2 / twice_max)
    my, shy = quantize_multiplier(twice_max / ((1 << left_shift) * sy))
    return dict(left_shift=left_shift, m1=m1, sh1=sh1, m2=m2, sh2=sh2, my=my, shy=shy)


def add(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, p: dict, y_zp: int, y_bits: int = 8) -> np.ndarray:
    """TFLM ADD (int16: y_bits 16, zero points 0, p from add_params(..., bits=16))."""
    sa = (a.astype(np.int64) - a_zp) * (1 << p["left_shift"])
    sb = (b.astype(np.int64) - b_zp) * (1 << p["left_shift"])
    ra = multiply_by_quantized_multiplier(sa, p["m1"], p["sh1"])
    rb = multiply_by_quantized_multiplier(sb, p["m2"], p["sh2"])
    return clamp_to(multiply_by_quantized_multiplier(ra + rb, p["my"], p["shy"]) + y_zp, y_bits)


def mul(a: np.ndarray, a_zp: int, b: np.ndarray, b_zp: int, mult: int, shift: int, y_zp: int,
        y_bits: int = 8) -> np.ndarray:
    prod = (a.astype(np.int64) - a_zp) * (b.astype(np.int64) - b_zp)
    return clamp_to(multiply_by_quantized_multiplier(prod, mult, shift) + y_zp, y_bits)


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


# TFLM's sigmoid_table_uint16 (tensorflow/lite/kernels/internal/common.h; CMSIS-NN's arm_nntables.c
# holds the same): sigmoid(i / 24) in unsigned Q0.16, i = 0..255, as published. A constant of the
# int16 LOGISTIC, not a formula: entries differ from round(65536 * sigmoid(i / 24)) by up to one, so
# bit-exactness needs these values (tests/test_tflm_ops.py checks every int16 input against TFLM).
SIGMOID_TABLE_U16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535], np.int64)


def _checked_log2(x: float) -> tuple[bool, int]:
    """TFLM CheckedLog2, in float32 as it computes it: (x is a power of two, the rounded log2)."""
    x_log2 = np.float32(np.log(np.float32(x))) * np.float32(1.0 / np.log(np.float32(2.0)))
    rounded = np.float32(np.sign(x_log2) * np.floor(np.abs(x_log2) + np.float32(0.5)))   # TfLiteRound
    return bool(abs(np.float32(x_log2 - rounded)) < np.float32(1e-3)), int(rounded)


def logistic16_params(input_scale: float) -> tuple[int, int]:
    """TFLM int16 LOGISTIC Prepare (input zero point 0): (input_multiplier, input_left_shift);
    multiplier 0 marks a power-of-two scale of exactly 2^-12 (the kernel takes 3 << shift)."""
    pot, log2 = _checked_log2(input_scale)
    left_shift = 12 + log2
    if pot and left_shift == 0:
        return 0, left_shift
    multiplier, left_shift = f32(input_scale) * 4096.0 * 3.0, 0
    while multiplier <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        multiplier *= 2.0
    return int(multiplier), left_shift


def logistic_int16(x: np.ndarray, mult: int, left_shift: int) -> np.ndarray:
    """TFLM reference int16 LOGISTIC (reference_integer_ops::Logistic) -> int16 at 1/32768."""
    if mult == 0:
        mult, left_shift = 3 << left_shift, 0
    rnd = 1 << (left_shift - 1) if left_shift > 0 else 0
    v = (x.astype(np.int64) * mult + rnd) >> left_shift
    a = np.abs(v)
    uh = a >> 9
    ui = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE_U16[ui], SIGMOID_TABLE_U16[ui + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1)
    return (r >> 10).astype(np.int16)
