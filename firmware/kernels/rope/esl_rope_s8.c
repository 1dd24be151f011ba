/* rope_s8: TFLM FULLY_CONNECTED of each head with the position's int8 rotation matrix (scale 1/127),
 * computed from its two non-zero entries per row: for pair p, a = v[2p] - in_zp, b = v[2p+1] - in_zp,
 * c = cos[pos][p], s = sin[pos][p]: v[2p] = clamp(mbqm(c*a - s*b, mult, shift) + out_zp),
 * v[2p+1] = clamp(mbqm(s*a + c*b, mult, shift) + out_zp). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_rope_s8(int8_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos, const esl_rope_s8_t *p)
{
    const uint32_t half = head_size / 2u;
    const int8_t *cs = p->cos + pos * half, *sn = p->sin + pos * half;
    for (uint32_t h = 0; h < n_heads; h++, v += head_size) {
        for (uint32_t i = 0; i < half; i++) {
            const int32_t a = v[2u * i] - p->in_zp, b = v[2u * i + 1u] - p->in_zp;
            const int32_t c = cs[i], s = sn[i];
            v[2u * i] = esl_clamp8(esl_mbqm(c * a - s * b, p->mult, p->shift) + p->out_zp);
            v[2u * i + 1u] = esl_clamp8(esl_mbqm(s * a + c * b, p->mult, p->shift) + p->out_zp);
        }
    }
}

/* Step: rotate arena[out] (n heads) by the position's table rows; heads [begin, end) of them. */
static void rope_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    const uint32_t hs = c->m->head_size;
    esl_rope_s8((int8_t *)c->arena + s->out + begin * hs, end - begin, hs, c->pos, (const esl_rope_s8_t *)s->p);
}

void esl_step_rope_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, rope_range);
}
