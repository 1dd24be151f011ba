/* Sampling on int8 logits with integer arithmetic only, for integer-only builds (scheme i8: cores
 * with no FPU). No float type, constant or helper; the Python mirror is sample_s8 in
 * host/edgeslm/sampler.py, which states the same rules in the same words:
 *
 * Inputs: int8 logits q[0..n); temperature and top-p as unsigned Q16.16 (temp_q16, topp_q16); the
 * xorshift64* state (esl_random_u32); K = round(s_l * 2^42) as uint64, s_l the logits' scale (the
 * host computes it: logit_k). Only the first 65536 logits are read; n == 0 gives token 0.
 * 1. temp_q16 == 0: the argmax, the first maximum (strict > scan); no random number is drawn.
 * 2. Otherwise u = esl_random_u32(state), drawn once per token, always. qmax = max q. The weight
 *    table, once per request: for d = 0..255, a = (d * K) / temp_q16 (exact, floor); E16[d] = 0 if
 *    a >= 2^31, else (E + 2^14) >> 15 with E = esl_exp_on_negative_values(-a, 5) in Q0.31 (so
 *    E16[0] = 65536). Token i weighs w_i = E16[qmax - q_i].
 * 3. Without top-p (topp_q16 == 0 or topp_q16 >= 65536): total = the sum of all w_i;
 *    r = (u * total) >> 32; the token is the first i (index order) whose cumulative weight
 *    w_0 + ... + w_i exceeds r.
 * 4. With top-p: order the tokens by d = qmax - q_i ascending, then by index ascending (most
 *    probable first). Keep the shortest prefix of that order whose cumulative weight C satisfies
 *    C * 65536 > topp_q16 * total (all tokens if none does); r = (u * C) >> 32; the token is the
 *    first in that order whose cumulative weight exceeds r.
 * Every product and sum is exact (64 bits hold them all). A token of weight 0 is never chosen, and
 * the answer is always an index in [0, n).
 *
 * How rule 4 runs here in O(n + 256), without sorting: every token of the same d has the same
 * weight, so the order is 256 bins (d ascending) of tokens in index order. Count the tokens per d;
 * walk the bins to the one where the kept prefix ends (it may end inside a bin: the first k tokens
 * of it, k from one division); walk them again to the bin where r lands, where the token is the
 * j-th of its bin, j = (r - weight of the bins before) / E16[d]; one scan by index finds it. The
 * naive sort-and-scan of sampler.py gives the same token (tests/test_sampler_s8.py). */
#include "esl_fixedpoint.h"
#include "esl_runtime.h"

#define Q16_ONE 65536u
#define BINS 256u

/* E16[d] of rule 2; temp_q16 > 0. A product d * K of 64 bits or more gives a >= 2^64 / 2^32. */
static uint32_t weight_q16(uint32_t d, uint64_t k, uint32_t temp_q16)
{
    if (d != 0 && k > UINT64_MAX / d) return 0;
    const uint64_t a = ((uint64_t)d * k) / temp_q16;
    if (a >= (UINT64_C(1) << 31)) return 0;
    const int32_t e = esl_exp_on_negative_values(-(int32_t)a, 5);     /* in [0, INT32_MAX] */
    return ((uint32_t)e + (1u << 14)) >> 15;
}

void esl_sampler_s8_init(esl_sampler_s8_t *s, uint32_t temp_q16, uint32_t topp_q16, uint64_t logit_k,
                         uint64_t seed)
{
    s->temp_q16 = temp_q16;
    s->topp_q16 = topp_q16;
    s->logit_k = logit_k;
    s->rng_state = seed;
    for (uint32_t d = 0; d < BINS; d++) {
        s->e16[d] = temp_q16 == 0 ? 0 : weight_q16(d, logit_k, temp_q16);   /* greedy: no table */
        s->count[d] = 0;
    }
}

static uint32_t argmax_s8(const int8_t *q, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (q[i] > q[best]) best = i;
    }
    return best;
}

/* The index of the j-th token (from 0, index order) whose logit is `value`. */
static uint32_t nth_with_value(const int8_t *q, uint32_t n, int32_t value, uint32_t j)
{
    for (uint32_t i = 0; i < n; i++) {
        if (q[i] == value) {
            if (j == 0) return i;
            j--;
        }
    }
    return n - 1;                          /* not reached: the bin holds more than j tokens */
}

uint32_t esl_sample_s8(esl_sampler_s8_t *s, const int8_t *q, uint32_t n)
{
    if (n > ESL_SAMPLER_S8_MAX_N) n = ESL_SAMPLER_S8_MAX_N;
    if (s->temp_q16 == 0) return argmax_s8(q, n);                         /* rule 1 */
    const uint32_t u = esl_random_u32(&s->rng_state);                     /* rule 2 */
    if (n <= 1) return 0;
    const uint32_t *e16 = s->e16;
    uint32_t *count = s->count;
    int32_t qmax = q[0];
    for (uint32_t i = 1; i < n; i++) {
        if (q[i] > qmax) qmax = q[i];
    }
    for (uint32_t d = 0; d < BINS; d++) count[d] = 0;
    for (uint32_t i = 0; i < n; i++) count[(uint32_t)(qmax - q[i])]++;
    uint64_t total = 0;                    /* <= 65536 tokens * 65536 = 2^32; >= E16[0] = 65536 */
    for (uint32_t d = 0; d < BINS; d++) total += (uint64_t)count[d] * e16[d];

    if (s->topp_q16 == 0 || s->topp_q16 >= Q16_ONE) {                     /* rule 3 */
        const uint64_t r = ((uint64_t)u * total) >> 32;                   /* < total */
        uint64_t cum = 0;
        for (uint32_t i = 0; i < n; i++) {
            cum += e16[(uint32_t)(qmax - q[i])];
            if (r < cum) return i;
        }
        return n - 1;                      /* not reached */
    }

    /* rule 4: the bin where the kept prefix ends, and how many of its tokens it keeps */
    const uint64_t bound = (uint64_t)s->topp_q16 * total;                 /* < 2^48 */
    uint64_t before = 0;                   /* weight of the bins before d_end */
    uint32_t d_end = 0;
    while (d_end < BINS - 1) {
        const uint64_t bin = (uint64_t)count[d_end] * e16[d_end];
        if ((before + bin) * Q16_ONE > bound) break;
        before += bin;
        d_end++;
    }
    /* all of the prefix satisfies the bound (topp_q16 < 65536), so this bin crosses it: its weight
     * E16[d_end] > 0, and k = the fewest tokens of it that cross, at most count[d_end] */
    const uint32_t e_end = e16[d_end];
    const uint32_t k = (uint32_t)((bound - before * Q16_ONE) >> 16) / e_end + 1;
    const uint64_t kept = before + (uint64_t)k * e_end;
    const uint64_t r = ((uint64_t)u * kept) >> 32;                        /* < kept */
    /* the bin where r lands: the bins before d_end whole, then the first k tokens of d_end */
    uint64_t cum = 0;
    uint32_t d = 0;
    for (; d < d_end; d++) {
        const uint64_t bin = (uint64_t)count[d] * e16[d];
        if (r < cum + bin) break;
        cum += bin;
    }
    const uint32_t j = (uint32_t)(r - cum) / e16[d];                      /* E16[d] > 0: r lands in it */
    return nth_with_value(q, n, qmax - (int32_t)d, j);
}

/* value = m * 2^(e - 150) (normal: m = fraction + 2^23, e = exponent field) or m * 2^-149
 * (subnormal: m = fraction), so value * 2^16 = m * 2^shift with shift = e - 134 (or -133). */
int esl_q16_from_f32_bits(uint32_t bits, uint32_t *q16)
{
    const uint32_t exponent = (bits >> 23) & 0xFFu;
    const uint32_t fraction = bits & 0x7FFFFFu;
    if (exponent == 0xFFu) return 1;                                      /* inf or NaN */
    if (bits & 0x80000000u) {
        if (bits & 0x7FFFFFFFu) return 1;                                 /* negative */
        *q16 = 0;                                                         /* -0.0 */
        return 0;
    }
    const uint32_t m = exponent != 0 ? fraction | 0x800000u : fraction;  /* < 2^24 */
    const int32_t shift = (exponent != 0 ? (int32_t)exponent : 1) - 134;
    if (shift >= 0) {
        const uint64_t v = shift < 32 ? (uint64_t)m << shift : UINT64_MAX;    /* m == 0 -> shift < 0 */
        *q16 = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
    } else if (shift > -32) {
        const uint32_t right = (uint32_t)-shift;                          /* round half up */
        *q16 = (uint32_t)(((uint64_t)m + (UINT64_C(1) << (right - 1))) >> right);
    } else {
        *q16 = 0;                                                         /* < 2^24 / 2^32 < 1/2 */
    }
    return 0;
}
