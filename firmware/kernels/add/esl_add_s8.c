/* add_s8 (TFLM int8 ADD, the residual connection): a' = (a - a_zp) << left_shift, b' likewise;
 * x = clamp(mbqm(mbqm(a', m1, sh1) + mbqm(b', m2, sh2), my, shy) + out_zp), in place in x = a. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

void esl_add_s8(int8_t *x, const int8_t *y, uint32_t n, const esl_add_s8_t *p)
{
    /* the parameters in locals: the int8 stores to x may alias *p, so the loop would reload them */
    const int32_t a_zp = p->a_zp, b_zp = p->b_zp, out_zp = p->out_zp, m1 = p->m1, m2 = p->m2, my = p->my;
    const int left_shift = p->left_shift, sh1 = p->sh1, sh2 = p->sh2, shy = p->shy;
    for (uint32_t i = 0; i < n; i++) {
        const int32_t a = (int32_t)((uint32_t)(x[i] - a_zp) << left_shift);
        const int32_t b = (int32_t)((uint32_t)(y[i] - b_zp) << left_shift);
        const int32_t sum = esl_mbqm(a, m1, sh1) + esl_mbqm(b, m2, sh2);
        x[i] = esl_clamp8(esl_mbqm(sum, my, shy) + out_zp);
    }
}

#if defined(ESL_CLUSTER_CORES)
/* On a cluster (esl_cluster.h): each worker a contiguous range of the elements. */
#include "esl_cluster.h"

typedef struct {
    int8_t *x;
    const int8_t *y;
    uint32_t n;
    const esl_add_s8_t *p;
} add_job_t;

static void add_job(void *arg)
{
    const add_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_add_s8(j->x + begin, j->y + begin, end - begin, j->p);
}
#endif

/* Step: arena[out] = add(arena[out], arena[in]) over n. */
void esl_step_add_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
#if defined(ESL_CLUSTER_CORES)
    add_job_t j = { a + s->out, a + s->in, s->n, (const esl_add_s8_t *)s->p };
    esl_cl_team_fork(add_job, &j);
#else
    esl_add_s8(a + s->out, a + s->in, s->n, (const esl_add_s8_t *)s->p);
#endif
}
