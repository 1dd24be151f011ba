/* esl_expf's body, inline: the exp of softmax and SwiGLU runs once per score / element, where a
 * call costs more than a third of the work. esl_expf (esl_expf.c) is the same code out of line.
 * A fixed-point power of two from two tables (a handful of instructions, no polynomial):
 *   x clamped to [-87, 88];  k = (int32)(x * EXP_SCALE + (x >= 0 ? 0.5f : -0.5f))   (x*log2(e) in 1/65536)
 *   m = esl_exp2_hi[(k >> 8) & 255] * esl_exp2_lo[k & 255]        2^(frac/65536), in [1, 2)
 *   return m * 2^(k >> 16)        (k >> 16 is the floor; added to m's exponent bits: exact, normal)
 * Relative error against exp(x): at most about 1.1e-5 (k's rounding: half a step of 2^-16 in
 * log2, plus float32 rounding of x*EXP_SCALE near the clamps). Mirrored by golden.esl_expf. */
#ifndef ESL_EXPF_INLINE_H
#define ESL_EXPF_INLINE_H

#include <stdint.h>
#include <string.h>

#include "esl_kernels.h"   /* esl_f32_bits */

#define ESL_EXP_SCALE 0x1.715476p+16f    /* float32(log2(e) * 65536), the same value golden.py uses */

/* 2^(i/256) and 2^(j/65536), i, j = 0..255 (esl_exp2_table.c). */
extern const float esl_exp2_hi[256];
extern const float esl_exp2_lo[256];

/* attention_kv8's fixed-point exp: round(2^15 * 2^(-i/256)), i = 0..255 (esl_exp2_table.c), and
 * its input's scale, float32(log2(e) * 256) (golden.EXP8_Q15, EXP8_SCALE). */
extern const uint16_t esl_exp8_q15[256];
#define ESL_EXP8_SCALE 0x1.715476p+8f

/* 2^(k/65536) for k in [-8225716, 8320265] (x in [-87, 88]): the result is normal. */
static inline float esl_exp2_fixed(int32_t k)
{
    const float m = esl_exp2_hi[((uint32_t)k >> 8) & 255u] * esl_exp2_lo[(uint32_t)k & 255u];
    const uint32_t bits = esl_f32_bits(m) + ((uint32_t)(k >> 16) << 23);   /* >>: the floor, also for k < 0 */
    float r;
    memcpy(&r, &bits, sizeof r);
    return r;
}

static inline float esl_expf_inline(float x)
{
    if (x < -87.0f) x = -87.0f;           /* keeps the result normal: no flush-to-zero differences */
    if (x > 88.0f) x = 88.0f;
    return esl_exp2_fixed((int32_t)(x * ESL_EXP_SCALE + (x >= 0.0f ? 0.5f : -0.5f)));
}

/* esl_expf_inline for x <= 0 (softmax's score - max): the same result, without the upper clamp
 * and the sign test (for x = +-0 both roundings give k = 0). */
static inline float esl_expf_nonpos_inline(float x)
{
    if (x < -87.0f) x = -87.0f;
    return esl_exp2_fixed((int32_t)(x * ESL_EXP_SCALE + -0.5f));
}

#endif
