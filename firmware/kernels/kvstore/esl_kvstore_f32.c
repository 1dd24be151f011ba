/* kvstore_f32: key[i] = k[i], value[i] = v[i] for the layer's row at pos of the fp32 cache. */
#include "esl_kernels.h"

void esl_kvstore_f32(float *key, float *value, const float *k, const float *v, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        key[i] = k[i];
        value[i] = v[i];
    }
}

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values). */
void esl_step_kvstore_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim;
    esl_kvstore_f32(m->kv.key_f32 + row, m->kv.value_f32 + row, c->arena + s->in, c->arena + s->in2,
                    m->kv_dim);
}
