/* kvstore_f32: key[i] = k[i], value[i] = v[i] for the layer's row at pos of the fp32 cache.
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers copy contiguous ranges of i. */
#include "esl_kernels.h"
#include "esl_step_range.h"

void esl_kvstore_f32(float *key, float *value, const float *k, const float *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        key[i] = k[i];
        value[i] = v[i];
    }
}

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values); elements [begin, end) of them. */
static void kvstore_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim + begin;
    esl_kvstore_f32(m->kv.key_f32 + row, m->kv.value_f32 + row, c->arena + s->in + begin, c->arena + s->in2 + begin,
                    end - begin);
}

void esl_step_kvstore_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, c->m->kv_dim, kvstore_range);
}
