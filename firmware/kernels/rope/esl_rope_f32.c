/* rope_f32: for each of n_heads heads and pair p: a = v[2p], b = v[2p+1];
 * v[2p] = a*cos[p] - b*sin[p]; v[2p+1] = a*sin[p] + b*cos[p]  (cos/sin: host-made tables). */
#include "esl_kernels.h"

void esl_rope_f32(float *v, const float *cos, const float *sin, uint32_t n_heads, uint32_t head_size)
{
    for (uint32_t h = 0; h < n_heads; h++, v += head_size) {
        for (uint32_t p = 0; p < head_size / 2; p++) {
            const float a = v[2 * p], b = v[2 * p + 1];
            v[2 * p] = a * cos[p] - b * sin[p];
            v[2 * p + 1] = a * sin[p] + b * cos[p];
        }
    }
}

/* Step: rotate arena[out] (n heads) by the position's table rows. */
void esl_step_rope_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_rope_f32(c->arena + s->out, c->cos, c->sin, s->n, c->m->head_size);
}
