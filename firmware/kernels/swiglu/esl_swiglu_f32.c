/* swiglu_f32: h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]. */
#include "esl_expf_inline.h"
#include "esl_kernels.h"

void esl_swiglu_f32(float *h1, const float *h3, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf_inline(-h1[i])))) * h3[i];
    }
}

#if defined(ESL_CLUSTER_CORES)
/* On a cluster (esl_cluster.h): each worker a contiguous range of the elements. */
#include "esl_cluster.h"

typedef struct {
    float *h1;
    const float *h3;
    uint32_t n;
} swiglu_job_t;

static void swiglu_job(void *arg)
{
    const swiglu_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_swiglu_f32(j->h1 + begin, j->h3 + begin, end - begin);
}
#endif

/* Step: arena[out] = silu(arena[out]) * arena[in] over n. */
void esl_step_swiglu_f32(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    swiglu_job_t j = { c->arena + s->out, c->arena + s->in, s->n };
    esl_cl_team_fork(swiglu_job, &j);
#else
    esl_swiglu_f32(c->arena + s->out, c->arena + s->in, s->n);
#endif
}
