/* rope_s16: TFLM FULLY_CONNECTED 16x8 of each int16 head (zero point 0) with the position's int8
 * rotation matrix (scale 1/127), computed from its two non-zero entries per row: for pair p,
 * a = v[2p], b = v[2p+1], c = cos[pos][p], s = sin[pos][p]:
 *   v[2p] = clamp16(mbqm64(c*a - s*b, mult, shift)), v[2p+1] = clamp16(mbqm64(s*a + c*b, mult, shift))
 * mbqm64: TFLM's int64 requantization (esl_fixedpoint.h). |c*a - s*b| <= 2 * 127 * 32768, so the
 * sums are exact in int32 (TFLM sums in int64: the same values). The keys of --int16 keys. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_rope_s16(int16_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos, const esl_rope_s16_t *p)
{
    const uint32_t half = head_size / 2u;
    const int8_t *cs = p->cos + pos * half, *sn = p->sin + pos * half;
    const int32_t mult = p->mult, shift = p->shift;
    for (uint32_t h = 0; h < n_heads; h++, v += head_size) {
        for (uint32_t i = 0; i < half; i++) {
            const int32_t a = v[2u * i], b = v[2u * i + 1u];
            const int32_t c = cs[i], s = sn[i];
            v[2u * i] = esl_clamp16(esl_mbqm64(c * a - s * b, mult, shift));
            v[2u * i + 1u] = esl_clamp16(esl_mbqm64(s * a + c * b, mult, shift));
        }
    }
}

/* Step: rotate arena[out] (n heads, int16) by the position's table rows; heads [begin, end) of them. */
static void rope_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    const uint32_t hs = c->m->head_size;
    esl_rope_s16((int16_t *)(void *)((int8_t *)c->arena + s->out) + begin * hs, end - begin, hs, c->pos,
                 (const esl_rope_s16_t *)s->p);
}

void esl_step_rope_s16(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, rope_range);
}
