/* rope_f32: for each of n_heads heads and pair p: a = v[2p], b = v[2p+1];
 * v[2p] = a*cos[p] - b*sin[p]; v[2p+1] = a*sin[p] + b*cos[p]  (cos/sin: host-made tables).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of heads. */
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

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    float *v;
    const float *cos, *sin;
    uint32_t n_heads, head_size;
} rope_job_t;

static void rope_job(void *arg)
{
    const rope_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n_heads, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_rope_f32(j->v + begin * j->head_size, j->cos, j->sin, end - begin, j->head_size);
}
#endif

/* Step: rotate arena[out] (n heads) by the position's table rows. */
void esl_step_rope_f32(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    rope_job_t j = { c->arena + s->out, c->cos, c->sin, s->n, c->m->head_size };
    esl_cl_team_fork(rope_job, &j);
#else
    esl_rope_f32(c->arena + s->out, c->cos, c->sin, s->n, c->m->head_size);
#endif
}
