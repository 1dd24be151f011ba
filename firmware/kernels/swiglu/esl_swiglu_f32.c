/* swiglu_f32: h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]. */
#include "esl_expf_inline.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_swiglu_f32(float *h1, const float *h3, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf_inline(-h1[i])))) * h3[i];
    }
}

/* Step: arena[out] = silu(arena[out]) * arena[in] over n (items [begin, end) of it). */
static void swiglu_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    esl_swiglu_f32(c->arena + s->out + begin, c->arena + s->in + begin, end - begin);
}

void esl_step_swiglu_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, swiglu_range);
}
