/* swiglu_s8: silu = silu_table[h1 + 128], the host's table of TFLM MUL(h1, LOGISTIC(h1)) for
 * every int8 h1 (quant/golden_s8.py silu_table); then TFLM MUL with the up projection:
 * h1 = clamp(mbqm((silu - silu_zp) * (h3 - h3_zp), gate_mult, gate_shift) + out_zp). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_swiglu_s8(int8_t *h1, const int8_t *h3, uint32_t n, const esl_swiglu_s8_t *p)
{
    for (uint32_t i = 0; i < n; i++) {
        const int32_t silu = p->silu[h1[i] + 128];
        h1[i] = esl_clamp8(esl_mbqm((silu - p->silu_zp) * (h3[i] - p->h3_zp), p->gate_mult, p->gate_shift)
                           + p->out_zp);
    }
}

/* Step: arena[out] = swiglu(arena[out], arena[in]) over n (items [begin, end) of it). */
static void swiglu_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    int8_t *a = (int8_t *)c->arena;
    esl_swiglu_s8(a + s->out + begin, a + s->in + begin, end - begin, (const esl_swiglu_s8_t *)s->p);
}

void esl_step_swiglu_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, swiglu_range);
}
