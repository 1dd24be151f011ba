/* kvstore_f32: key[i] = k[i], value[i] = v[i] for the layer's row at pos of the fp32 cache.
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers copy contiguous ranges of i. */
#include "esl_kernels.h"

void esl_kvstore_f32(float *key, float *value, const float *k, const float *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        key[i] = k[i];
        value[i] = v[i];
    }
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    float *key, *value;
    const float *k, *v;
    uint32_t n;
} kvstore_job_t;

static void kvstore_job(void *arg)
{
    const kvstore_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    esl_kvstore_f32(j->key + begin, j->value + begin, j->k + begin, j->v + begin, end - begin);
}
#endif

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values). */
void esl_step_kvstore_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim;
#if defined(ESL_CLUSTER_CORES)
    kvstore_job_t j = { m->kv.key_f32 + row, m->kv.value_f32 + row, c->arena + s->in, c->arena + s->in2,
                        m->kv_dim };
    esl_cl_team_fork(kvstore_job, &j);
#else
    esl_kvstore_f32(m->kv.key_f32 + row, m->kv.value_f32 + row, c->arena + s->in, c->arena + s->in2,
                    m->kv_dim);
#endif
}
