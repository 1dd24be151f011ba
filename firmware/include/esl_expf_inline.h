/* esl_expf's body, inline: the exp of softmax and SwiGLU runs once per score / element, where a
 * call costs more than a third of the work. esl_expf (esl_expf.c) is the same code out of line.
 * x clamped to [-87, 88]; k = nearest integer to x*log2(e) (ties away); r = (x - k*LN2_HI) - k*LN2_LO;
 * p = Horner over 1/i!, i = 6..0; returns p * 2^k (exact scaling). Mirrored by golden.esl_expf. */
#ifndef ESL_EXPF_INLINE_H
#define ESL_EXPF_INLINE_H

#include <stdint.h>
#include <string.h>

/* Constants as exact float32 bit patterns (hex literals), the same values golden.py uses. */
#define ESL_LOG2E   0x1.715476p+0f
#define ESL_LN2_HI  0x1.63p-1f           /* few mantissa bits: k * LN2_HI is exact for |k| <= 128 */
#define ESL_LN2_LO  (-0x1.bd0106p-13f)

/* The polynomial and the scaling, once x is clamped and k chosen. */
static inline float esl_expf_poly(float x, int32_t k)
{
    const float fk = (float)k;
    const float r = (x - fk * ESL_LN2_HI) - fk * ESL_LN2_LO;
    float p = 0x1.6c16c2p-10f;           /* float32(1/720) */
    p = p * r + 0x1.111112p-7f;          /* 1/120 */
    p = p * r + 0x1.555556p-5f;          /* 1/24 */
    p = p * r + 0x1.555556p-3f;          /* 1/6 */
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const uint32_t bits = (uint32_t)(k + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float esl_expf_inline(float x)
{
    if (x < -87.0f) x = -87.0f;           /* keeps the result normal: no flush-to-zero differences */
    if (x > 88.0f) x = 88.0f;
    return esl_expf_poly(x, (int32_t)(x * ESL_LOG2E + (x >= 0.0f ? 0.5f : -0.5f)));
}

/* esl_expf_inline for x <= 0 (softmax's score - max): the same result, without the upper clamp
 * and the sign test (for x = +-0 both roundings give k = 0). */
static inline float esl_expf_nonpos_inline(float x)
{
    if (x < -87.0f) x = -87.0f;
    return esl_expf_poly(x, (int32_t)(x * ESL_LOG2E + -0.5f));
}

#endif
