/* kvstore_kv8: k and v each quantized by esl_quantize_i8 with group = head_size, so one fp32 scale
 * per (layer, position, kv head). */
#include "esl_kernels.h"

void esl_kvstore_kv8(int8_t *key, float *key_scale, int8_t *value, float *value_scale, const float *k,
                     const float *v, uint32_t n, uint32_t head_size)
{
    esl_quantize_i8(key, key_scale, k, n, head_size);
    esl_quantize_i8(value, value_scale, v, n, head_size);
}

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values), quantized. */
void esl_step_kvstore_kv8(const esl_step_t *s, const esl_ctx_t *c)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim;
    const uint32_t srow = (s->layer * m->max_seq + c->pos) * m->n_kv_heads;
    esl_kvstore_kv8(m->kv.key_i8 + row, m->kv.key_scale + srow, m->kv.value_i8 + row,
                    m->kv.value_scale + srow, c->arena + s->in, c->arena + s->in2, m->kv_dim, m->head_size);
}
