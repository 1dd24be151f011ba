/* TFLite-Micro's / gemmlowp's fixed-point arithmetic, integer only, bit for bit as the host's
 * numpy model host/edgeslm/quant/tflm_int.py computes it (tests/test_fixedpoint.py: zero mismatches).
 * No float, no libm; C99 with fixed-size types. Q(I).(31-I) means an int32 with 31-I fraction bits.
 *
 * esl_srdhm(a, b)              SaturatingRoundingDoublingHighMul: (a*b + nudge) / 2^31 in int64, toward 0,
 *                              nudge = 2^30 if a*b >= 0 else 1 - 2^30; INT32_MIN*INT32_MIN -> INT32_MAX
 * esl_rdbp(x, e)               RoundingDivideByPOT, e in [0, 31]: (x >> e) + (rem > (mask >> 1) + (x < 0)),
 *                              mask = 2^e - 1, rem = x & mask: x / 2^e rounded half away from zero
 * esl_rdbp64(x, e)             the same rule on int64, e in [0, 63]
 * esl_mbqm(x, q, shift)        MultiplyByQuantizedMultiplier, shift in [-31, 31] (TFLM's double rounding):
 *                              esl_rdbp(esl_srdhm(sat32(x * 2^max(shift,0)), q), max(-shift,0))
 * esl_mbqm64(x, q, shift)      TFLM's int64 MultiplyByQuantizedMultiplier (its 16x8 kernels), |x| < 2^47,
 *                              shift in [-31, 7]: r = q < 0x7FFF0000 ? (q + 2^15) >> 16 : 0x7FFF;
 *                              (x * r + 2^(14 - shift)) >> (15 - shift), one rounding
 * esl_sat_rounding_mul_by_pot(x, e)   e in [-31, 31]: e < 0: esl_rdbp(x, -e); e > 0: x * 2^e saturated
 *                              (x > 2^(31-e) - 1 -> INT32_MAX, x < -(2^(31-e) - 1) -> INT32_MIN)
 * esl_exp_on_negative_values(a, I)    I in [0, 29], a in Q(I).(31-I), a <= 0 -> exp(a) in Q0.31: Taylor
 *                              series around -1/8 on (a mod 1/4) - 1/4, then the barrel of exp(-2^k)
 *                              multipliers for the bits of the rest; a < -2^(36-I) -> 0 when I > 5;
 *                              a == 0 -> INT32_MAX. (Any int32 a gives tflm_int.py's value.)
 * esl_one_over_one_plus_x_for_x_in_0_1(a)   a in Q0.31, [0, 1) -> 1/(1+a) in Q0.31: three Newton-Raphson
 *                              steps in Q2.29 from 48/17 - 32/17 * (1+a)/2; a < 0 -> INT32_MAX (what the
 *                              numpy's int64 arithmetic gives for every negative a: 1/(1+a) >= 1 saturates)
 * esl_get_reciprocal(x, I, &bits)      TFLM GetReciprocal: h = clz(x as uint32), bits = I - h,
 *                              esl_one_over_one_plus_x_for_x_in_0_1((x << h) - 2^31 as uint32); x == 0:
 *                              h = 32, result INT32_MAX (as the numpy)
 *
 * Defined behaviour throughout: no signed overflow (int64 where a product needs it, range arguments in
 * the comments where int32 suffices), no left shift of a negative value. Right shifts of negative
 * values are implementation-defined in C; gcc (the only compiler the firmware is built with) makes
 * them arithmetic, which is what the numpy's `>>` does and what TFLM assumes. */
#ifndef ESL_FIXEDPOINT_H
#define ESL_FIXEDPOINT_H

#include <limits.h>
#include <stdint.h>

/* ESL_FX_ARM: the Cortex-M DSP builds (ESL_KERNELS_DSP on a core with the DSP extension) take the
 * ARM branches below: the same results as the portable C (the reference), fewer instructions. */
#if ESL_KERNELS_DSP && defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#define ESL_FX_ARM 1
#else
#define ESL_FX_ARM 0
#endif

static inline int32_t esl_srdhm(int32_t a, int32_t b)
{
#if ESL_FX_ARM
    /* hi:lo = a*b + 2^30 (SMLAL), the result (hi:lo) >> 31 = 2 * hi + bit 31 of lo. hi < 2^30
     * except for a = b = INT32_MIN (hi = 2^30, lo = 2^30), where QADD's doubling saturates to
     * INT32_MAX and lo adds no bit: no branch. */
    uint32_t lo = UINT32_C(1) << 30;
    int32_t hi = 0;
    __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(b));
    return (int32_t)((uint32_t)__qadd(hi, hi) | (lo >> 31));
#else
    if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
    const int64_t ab = (int64_t)a * (int64_t)b;                 /* |ab| < 2^62 */
    /* gemmlowp's (ab + nudge) / 2^31 toward zero, nudge = ab >= 0 ? 2^30 : 1 - 2^30, is exactly
     * floor((ab + 2^30) / 2^31): for ab < 0, trunc((ab + 1 - 2^30) / 2^31) = floor((ab + 1 - 2^30
     * + 2^31 - 1) / 2^31). One add and an arithmetic shift (gcc: >> of a negative is arithmetic). */
    return (int32_t)((ab + (INT64_C(1) << 30)) >> 31);
#endif
}

static inline int32_t esl_rdbp(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u);   /* <= INT32_MAX: exact */
    const int32_t remainder = x & mask;                 /* int32_t is two's complement (C99 7.18.1.1) */
    const int32_t threshold = (mask >> 1) + (x < 0);
#if ESL_FX_ARM
    /* remainder > threshold as the sign bit of threshold - remainder (both in [0, 2^exponent - 1]
     * + 1: no overflow): no compare and conditional add */
    return (x >> exponent) + (int32_t)((uint32_t)(threshold - remainder) >> 31);
#else
    return (x >> exponent) + (remainder > threshold);   /* + 1 only when x >> exponent < INT32_MAX */
#endif
}

static inline int64_t esl_rdbp64(int64_t x, int exponent)
{
    const int64_t mask = (int64_t)((UINT64_C(1) << exponent) - 1u);
    const int64_t remainder = x & mask;
    const int64_t threshold = (mask >> 1) + (x < 0);
    return (x >> exponent) + (remainder > threshold);
}

/* x * 2^exponent for exponent in [1, 31] and x in [-2^(31-exponent), 2^(31-exponent) - 1]: the
 * product fits int32, and so does every intermediate (|x * 2^(exponent-1)| <= 2^30). */
static inline int32_t esl_fx_mul_pot_in_range(int32_t x, int exponent)
{
    return (x * (INT32_C(1) << (exponent - 1))) * 2;
}

/* TFLM computes x * (1 << left_shift) in int32, which overflows (undefined; it wraps in practice)
 * when |x| >= 2^(31 - left_shift); TFLM's own callers never get there. tflm_int.py multiplies in
 * int64 and clips to int32, so here an overflowing x saturates to INT32_MIN / INT32_MAX. */
static inline int32_t esl_mbqm(int32_t x, int32_t q, int shift)
{
#if ESL_FX_ARM
    if (shift < 0) {
        /* rdbp(srdhm(x, q), e), e = -shift >= 1, as one 64-bit sum: with P = x*q + 2^30 (srdhm's
         * numerator) and s = (P < 0) (the sign of srdhm's result), rdbp(v, e) = floor((v + 2^(e-1)
         * - s) / 2^e) and v = floor(P / 2^31) give floor((P + (2^(e-1) - s) * 2^31) / 2^(31+e)):
         * the high word of that sum >> (e - 1). Also where srdhm saturates (x = q = INT32_MIN: both
         * are 2^(31-e)). SMLAL, then ADDS/ADC of c = 2^(e-1) - s shifted by 31, then ASR. */
        const int em1 = -shift - 1;
        uint32_t lo = UINT32_C(1) << 30;
        int32_t hi = 0;
        __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(x), "r"(q));
        const int32_t c = (INT32_C(1) << em1) + (hi >> 31);
        __asm__("adds %0, %0, %2, lsl #31\n\tadc %1, %1, %2, lsr #1" : "+r"(lo), "+r"(hi) : "r"(c) : "cc");
        return hi >> em1;
    }
#endif
    if (shift > 0) {
        const int32_t hi = INT32_MAX >> shift;          /* 2^(31-shift) - 1 */
        if (x > hi) x = INT32_MAX;
        else if (x < -hi - 1) x = INT32_MIN;
        else x = esl_fx_mul_pot_in_range(x, shift);
    }
    return esl_rdbp(esl_srdhm(x, q), shift > 0 ? 0 : -shift);
}

static inline int32_t esl_mbqm64(int64_t x, int32_t q, int shift)
{
    const int64_t r = q < INT32_C(0x7FFF0000) ? (q + (INT32_C(1) << 15)) >> 16 : INT32_C(0x7FFF);
    const int total = 15 - shift;
    return (int32_t)((x * r + (INT64_C(1) << (total - 1))) >> total);
}

static inline int32_t esl_sat_rounding_mul_by_pot(int32_t x, int exponent)
{
    if (exponent == 0) return x;
    if (exponent < 0) return esl_rdbp(x, -exponent);
    const int32_t threshold = INT32_MAX >> exponent;    /* 2^(31-exponent) - 1 */
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return esl_fx_mul_pot_in_range(x, exponent);
}

/* a in Q0.31, in [-1/4, 0) (here [-2^29, -1]) -> exp(a) in Q0.31, Taylor series around -1/8. All
 * values stay far inside int32; the result is at most 2147483155 (a = -1). */
static inline int32_t esl_fx_exp_on_interval_between_negative_one_quarter_and_0_excl(int32_t a)
{
    const int32_t constant_term = 1895147668;           /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = a + (INT32_C(1) << 28);           /* a + 1/8 */
    const int32_t x2 = esl_srdhm(x, x);
    const int32_t x3 = esl_srdhm(x2, x);
    const int32_t x4 = esl_srdhm(x2, x2);
    const int32_t x4_over_4 = esl_sat_rounding_mul_by_pot(x4, -2);
    const int32_t poly = esl_sat_rounding_mul_by_pot(esl_srdhm(x4_over_4 + x3, constant_1_over_3) + x2, -1);
    return constant_term + esl_srdhm(constant_term, x + poly);
}

static inline int32_t esl_exp_on_negative_values(int32_t a, int integer_bits)
{
    /* exp(-2^k) in Q0.31 for k = -2..4 */
    static const int8_t barrel_exponent[7] = { -2, -1, 0, 1, 2, 3, 4 };
    static const int32_t barrel_multiplier[7] = { 1672461947, 1302514674, 790015084, 290630308,
                                                  39332535, 720401, 242 };
    const int frac_bits = 31 - integer_bits;
    const int32_t one_quarter = INT32_C(1) << (frac_bits - 2);
    const int32_t mask = one_quarter - 1;
    /* in [-1/4, 0) as Q(I); times 2^I (never saturates) it is the same value in Q0.31 */
    const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
    int32_t result = esl_fx_exp_on_interval_between_negative_one_quarter_and_0_excl(
        esl_sat_rounding_mul_by_pot(a_mod_quarter_minus_one_quarter, integer_bits));
    /* a with its low bits cleared, negated, minus 1/4: in [-2^31, 2^31 - 1] for every int32 a */
    const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
    for (int i = 0; i < 7; i++) {
        if (integer_bits > barrel_exponent[i]) {
            const int32_t bit = INT32_C(1) << (frac_bits + barrel_exponent[i]);   /* bit <= 2^30 */
            if (remainder & bit) result = esl_srdhm(result, barrel_multiplier[i]);
        }
    }
    if (integer_bits > 5) {
        const int32_t clamp = -(INT32_C(1) << (36 - integer_bits));            /* -32.0 */
        if (a < clamp) result = 0;
    }
    return a == 0 ? INT32_MAX : result;
}

static inline int32_t esl_one_over_one_plus_x_for_x_in_0_1(int32_t a)
{
    if (a < 0) return INT32_MAX;
    /* gemmlowp RoundingHalfSum(a, 1): (a + INT32_MAX + 1) / 2 = 2^30 + (a >> 1) for a >= 0 */
    const int32_t half_denominator = (INT32_C(1) << 30) + (a >> 1);
    /* Q2.29: 48/17 + (-32/17) * half_denominator; x stays in [2^28, 2^30], every term in int32 */
    int32_t x = 1515870810 + esl_srdhm(half_denominator, -1010580540);
    const int32_t one_q2 = INT32_C(1) << 29;
    for (int i = 0; i < 3; i++) {
        const int32_t half_denominator_times_x = esl_srdhm(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = one_q2 - half_denominator_times_x;
        x = x + esl_sat_rounding_mul_by_pot(esl_srdhm(x, one_minus_half_denominator_times_x), 2);
    }
    return esl_sat_rounding_mul_by_pot(x, 1);           /* Q2.29 -> Q1.30 raw, read as Q0.31 */
}

/* Count leading zeros of x != 0. gcc's builtin is CLZ on ARMv7-M and a libgcc call (__clzsi2,
 * integer) on ARMv6-M. */
static inline int esl_clz32(uint32_t x)
{
#if defined(__GNUC__) && UINT_MAX == 0xFFFFFFFFu
    return __builtin_clz(x);
#else
    int n = 0;
    while (!(x & UINT32_C(0x80000000))) { x <<= 1; n++; }
    return n;
#endif
}

static inline int32_t esl_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit)
{
    const uint32_t ux = (uint32_t)x;
    if (ux == 0) {
        *num_bits_over_unit = x_integer_digits - 32;
        return INT32_MAX;
    }
    const int headroom_plus_one = esl_clz32(ux);
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    /* the top bit of ux << h is set: minus 2^31 it is in [0, 2^31), exact as int32 */
    const uint32_t shifted_minus_one = (ux << headroom_plus_one) - (UINT32_C(1) << 31);
    return esl_one_over_one_plus_x_for_x_in_0_1((int32_t)shifted_minus_one);
}

#endif
