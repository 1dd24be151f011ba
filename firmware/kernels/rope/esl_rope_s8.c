/* rope_s8: TFLM FULLY_CONNECTED of each head with the position's int8 rotation matrix (scale 1/127),
 * computed from its two non-zero entries per row: for pair p, a = v[2p] - in_zp, b = v[2p+1] - in_zp,
 * c = cos[pos][p], s = sin[pos][p]: v[2p] = clamp(mbqm(c*a - s*b, mult, shift) + out_zp),
 * v[2p+1] = clamp(mbqm(s*a + c*b, mult, shift) + out_zp). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

void esl_rope_s8(int8_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos, const esl_rope_s8_t *p)
{
    const uint32_t half = head_size / 2u;
    const int8_t *cs = p->cos + pos * half, *sn = p->sin + pos * half;
    for (uint32_t h = 0; h < n_heads; h++, v += head_size) {
        for (uint32_t i = 0; i < half; i++) {
            const int32_t a = v[2u * i] - p->in_zp, b = v[2u * i + 1u] - p->in_zp;
            const int32_t c = cs[i], s = sn[i];
            v[2u * i] = esl_clamp8(esl_mbqm(c * a - s * b, p->mult, p->shift) + p->out_zp);
            v[2u * i + 1u] = esl_clamp8(esl_mbqm(s * a + c * b, p->mult, p->shift) + p->out_zp);
        }
    }
}

#if defined(ESL_CLUSTER_CORES)
/* On a cluster (esl_cluster.h): each worker a contiguous range of the heads. */
#include "esl_cluster.h"

typedef struct {
    int8_t *v;
    uint32_t n_heads, head_size, pos;
    const esl_rope_s8_t *p;
} rope_job_t;

static void rope_job(void *arg)
{
    const rope_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n_heads, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_rope_s8(j->v + begin * j->head_size, end - begin, j->head_size, j->pos, j->p);
}
#endif

/* Step: rotate arena[out] (n heads) by the position's table rows. */
void esl_step_rope_s8(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    rope_job_t j = { (int8_t *)c->arena + s->out, s->n, c->m->head_size, c->pos, (const esl_rope_s8_t *)s->p };
    esl_cl_team_fork(rope_job, &j);
#else
    esl_rope_s8((int8_t *)c->arena + s->out, s->n, c->m->head_size, c->pos, (const esl_rope_s8_t *)s->p);
#endif
}
