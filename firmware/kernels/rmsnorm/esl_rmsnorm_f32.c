/* rmsnorm_f32: o[j] = w[j] * (r * x[j]),  r = 1.0f / sqrtf(seqsum(x[j]*x[j]) / (float)n + eps).
 * sqrtf is IEEE-exact everywhere (hardware VSQRT, or newlib's bitwise soft-float sqrtf). */
#include <math.h>
#include "esl_kernels.h"

void esl_rmsnorm_f32(float *o, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f;
    for (uint32_t j = 0; j < n; j++) {
        ss += x[j] * x[j];
    }
    ss = ss / (float)n;
    ss = ss + eps;
    const float r = 1.0f / sqrtf(ss);
    for (uint32_t j = 0; j < n; j++) {
        o[j] = w[j] * (r * x[j]);
    }
}

/* Step: arena[out] = rmsnorm(arena[in], s->norm) over n. */
void esl_step_rmsnorm_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_rmsnorm_f32(c->arena + s->out, c->arena + s->in, s->norm, s->n, c->m->norm_eps);
}
