/* add_f32: x[i] = x[i] + y[i] (the residual connection).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of i. */
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_add_f32(float *x, const float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        x[i] = x[i] + y[i];
    }
}

/* Step: arena[out] += arena[in] over n (items [begin, end) of it). */
static void add_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    esl_add_f32(c->arena + s->out + begin, c->arena + s->in + begin, end - begin);
}

void esl_step_add_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, add_range);
}
