/* add_f32: x[i] = x[i] + y[i] (the residual connection).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of i. */
#include "esl_kernels.h"

void esl_add_f32(float *x, const float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        x[i] = x[i] + y[i];
    }
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    float *x;
    const float *y;
    uint32_t n;
} add_job_t;

static void add_job(void *arg)
{
    const add_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_add_f32(j->x + begin, j->y + begin, end - begin);
}
#endif

/* Step: arena[out] += arena[in] over n. */
void esl_step_add_f32(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    add_job_t j = { c->arena + s->out, c->arena + s->in, s->n };
    esl_cl_team_fork(add_job, &j);
#else
    esl_add_f32(c->arena + s->out, c->arena + s->in, s->n);
#endif
}
