/* add_s8 (TFLM int8 ADD, the residual connection): a' = (a - a_zp) << left_shift, b' likewise;
 * x = clamp(mbqm(mbqm(a', m1, sh1) + mbqm(b', m2, sh2), my, shy) + out_zp), in place in x = a.
 * bits 16 (--int16 residual): TFLM's int16 ADD, the same formula on int16 x and y (zero points 0,
 * left_shift 15: |a'| <= 2^30), clamped to int16. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_add_s8(void *x, const void *y, uint32_t n, const esl_add_s8_t *p)
{
    /* the parameters in locals: the stores to x may alias *p, so the loop would reload them */
    const int32_t a_zp = p->a_zp, b_zp = p->b_zp, out_zp = p->out_zp, m1 = p->m1, m2 = p->m2, my = p->my;
    const int left_shift = p->left_shift, sh1 = p->sh1, sh2 = p->sh2, shy = p->shy;
    if (p->bits == 16) {
        int16_t *x16 = x;
        const int16_t *y16 = y;
        for (uint32_t i = 0; i < n; i++) {
            const int32_t a = (int32_t)((uint32_t)(int32_t)x16[i] << left_shift);
            const int32_t b = (int32_t)((uint32_t)(int32_t)y16[i] << left_shift);
            x16[i] = esl_clamp16(esl_mbqm(esl_mbqm(a, m1, sh1) + esl_mbqm(b, m2, sh2), my, shy));
        }
        return;
    }
    int8_t *x8 = x;
    const int8_t *y8 = y;
    for (uint32_t i = 0; i < n; i++) {
        const int32_t a = (int32_t)((uint32_t)(x8[i] - a_zp) << left_shift);
        const int32_t b = (int32_t)((uint32_t)(y8[i] - b_zp) << left_shift);
        const int32_t sum = esl_mbqm(a, m1, sh1) + esl_mbqm(b, m2, sh2);
        x8[i] = esl_clamp8(esl_mbqm(sum, my, shy) + out_zp);
    }
}

/* Step: arena[out] = add(arena[out], arena[in]) over n (items [begin, end) of it). */
static void add_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    int8_t *a = (int8_t *)c->arena;
    const esl_add_s8_t *p = (const esl_add_s8_t *)s->p;
    const uint32_t w = (uint32_t)p->bits / 8u;         /* bytes per element */
    esl_add_s8(a + s->out + begin * w, a + s->in + begin * w, end - begin, p);
}

void esl_step_add_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, add_range);
}
