/* rmsnorm_f32: o[j] = w[j] * (r * x[j]),  r = 1.0f / sqrtf(seqsum(x[j]*x[j]) / (float)n + eps).
 * sqrtf is IEEE-exact everywhere (hardware VSQRT, or newlib's bitwise soft-float sqrtf).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the fabric controller forms r (the sum is a
 * reduction: never split), then the workers scale contiguous ranges of j: each o[j] is the same
 * product whichever core forms it, so the result is the single-core one bit for bit. */
#include <math.h>
#include "esl_kernels.h"

/* r = 1.0f / sqrtf(seqsum(x[j]*x[j]) / (float)n + eps): the reduction (never split). */
static float rms_factor(const float *x, uint32_t n, float eps)
{
    float ss = 0.0f;
    uint32_t j = 0;
    for (; j + 4u <= n; j += 4u) {          /* the same sum in the same order, a quarter of the loop's overhead */
        ss += x[j] * x[j];
        ss += x[j + 1u] * x[j + 1u];
        ss += x[j + 2u] * x[j + 2u];
        ss += x[j + 3u] * x[j + 3u];
    }
    for (; j < n; j++) {
        ss += x[j] * x[j];
    }
    ss = ss / (float)n;
    ss = ss + eps;
    return 1.0f / sqrtf(ss);
}

/* o[j] = w[j] * (r * x[j]) for j in [begin, end). */
static void rms_scale(float *o, const float *x, const float *w, float r, uint32_t begin, uint32_t end)
{
    for (uint32_t j = begin; j < end; j++) {
        o[j] = w[j] * (r * x[j]);
    }
}

void esl_rmsnorm_f32(float *o, const float *x, const float *w, uint32_t n, float eps)
{
    rms_scale(o, x, w, rms_factor(x, n, eps), 0u, n);
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    float *o;
    const float *x, *w;
    float r;
    uint32_t n;
} rmsnorm_job_t;

/* One worker's share: its contiguous range of j. */
static void rmsnorm_job(void *arg)
{
    const rmsnorm_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    rms_scale(j->o, j->x, j->w, j->r, begin, end);
}
#endif

/* Step: arena[out] = rmsnorm(arena[in], s->norm) over n. */
void esl_step_rmsnorm_f32(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    const float *x = c->arena + s->in;
    rmsnorm_job_t j = { c->arena + s->out, x, s->norm, rms_factor(x, s->n, c->m->norm_eps), s->n };
    esl_cl_team_fork(rmsnorm_job, &j);
#else
    esl_rmsnorm_f32(c->arena + s->out, c->arena + s->in, s->norm, s->n, c->m->norm_eps);
#endif
}
