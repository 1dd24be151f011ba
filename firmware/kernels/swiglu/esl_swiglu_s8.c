/* swiglu_s8: silu = silu_table[h1 + 128], the host's table of TFLM MUL(h1, LOGISTIC(h1)) for
 * every int8 h1 (quant/golden_s8.py silu_table); then TFLM MUL with the up projection:
 * h1 = clamp(mbqm((silu - silu_zp) * (h3 - h3_zp), gate_mult, gate_shift) + out_zp). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

void esl_swiglu_s8(int8_t *h1, const int8_t *h3, uint32_t n, const esl_swiglu_s8_t *p)
{
    for (uint32_t i = 0; i < n; i++) {
        const int32_t silu = p->silu[h1[i] + 128];
        h1[i] = esl_clamp8(esl_mbqm((silu - p->silu_zp) * (h3[i] - p->h3_zp), p->gate_mult, p->gate_shift)
                           + p->out_zp);
    }
}

#if defined(ESL_CLUSTER_CORES)
/* On a cluster (esl_cluster.h): each worker a contiguous range of the elements. */
#include "esl_cluster.h"

typedef struct {
    int8_t *h1;
    const int8_t *h3;
    uint32_t n;
    const esl_swiglu_s8_t *p;
} swiglu_job_t;

static void swiglu_job(void *arg)
{
    const swiglu_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_swiglu_s8(j->h1 + begin, j->h3 + begin, end - begin, j->p);
}
#endif

/* Step: arena[out] = swiglu(arena[out], arena[in]) over n. */
void esl_step_swiglu_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
#if defined(ESL_CLUSTER_CORES)
    swiglu_job_t j = { a + s->out, a + s->in, s->n, (const esl_swiglu_s8_t *)s->p };
    esl_cl_team_fork(swiglu_job, &j);
#else
    esl_swiglu_s8(a + s->out, a + s->in, s->n, (const esl_swiglu_s8_t *)s->p);
#endif
}
