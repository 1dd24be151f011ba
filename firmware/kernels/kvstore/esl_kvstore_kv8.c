/* kvstore_kv8: k and v each quantized by esl_quantize_i8 with group = head_size, so one fp32 scale
 * per (layer, position, kv head).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of the
 * 2 * n_kv_heads groups (the keys' heads, then the values'): each group's max and scale are its
 * own, so the result is the single-core one bit for bit. */
#include "esl_kernels.h"

void esl_kvstore_kv8(int8_t *key, float *key_scale, int8_t *value, float *value_scale, const float *k,
                     const float *v, uint32_t n, uint32_t head_size)
{
    esl_quantize_i8(key, key_scale, k, n, head_size);
    esl_quantize_i8(value, value_scale, v, n, head_size);
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    int8_t *key, *value;
    float *key_scale, *value_scale;
    const float *k, *v;
    uint32_t heads, head_size;      /* kv heads, each one group */
} kvstore_job_t;

/* One worker's share: groups [begin, end) of keys 0..heads-1, then values heads..2*heads-1. */
static void kvstore_job(void *arg)
{
    const kvstore_job_t *j = arg;
    const uint32_t hs = j->head_size;
    uint32_t begin, end;
    esl_cl_split(2u * j->heads, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    for (uint32_t g = begin; g < end && g < j->heads; g++)
        esl_quantize_i8(j->key + g * hs, j->key_scale + g, j->k + g * hs, hs, hs);
    for (uint32_t g = begin > j->heads ? begin - j->heads : 0u; g + j->heads < end; g++)
        esl_quantize_i8(j->value + g * hs, j->value_scale + g, j->v + g * hs, hs, hs);
}
#endif

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values), quantized. */
void esl_step_kvstore_kv8(const esl_step_t *s, const esl_ctx_t *c)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim;
    const uint32_t srow = (s->layer * m->max_seq + c->pos) * m->n_kv_heads;
#if defined(ESL_CLUSTER_CORES)
    kvstore_job_t j = { m->kv.key_i8 + row, m->kv.value_i8 + row, m->kv.key_scale + srow,
                        m->kv.value_scale + srow, c->arena + s->in, c->arena + s->in2,
                        m->kv_dim / m->head_size, m->head_size };
    esl_cl_team_fork(kvstore_job, &j);
#else
    esl_kvstore_kv8(m->kv.key_i8 + row, m->kv.key_scale + srow, m->kv.value_i8 + row,
                    m->kv.value_scale + srow, c->arena + s->in, c->arena + s->in2, m->kv_dim, m->head_size);
#endif
}
