/* add_f32: x[i] = x[i] + y[i] (the residual connection). */
#include "esl_kernels.h"

void esl_add_f32(float *x, const float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        x[i] = x[i] + y[i];
    }
}

/* Step: arena[out] += arena[in] over n. */
void esl_step_add_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_add_f32(c->arena + s->out, c->arena + s->in, s->n);
}
