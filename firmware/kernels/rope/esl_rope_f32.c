/* rope_f32: for each of n_heads heads and pair p: a = v[2p], b = v[2p+1];
 * v[2p] = a*cos[p] - b*sin[p]; v[2p+1] = a*sin[p] + b*cos[p]  (cos/sin: host-made tables).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of heads. */
#include "esl_kernels.h"
#include "esl_step_range.h"

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

/* Step: rotate arena[out] (n heads) by the position's table rows; heads [begin, end) of them. */
static void rope_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    const uint32_t hs = c->m->head_size;
    esl_rope_f32(c->arena + s->out + begin * hs, c->cos, c->sin, end - begin, hs);
}

void esl_step_rope_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, rope_range);
}
