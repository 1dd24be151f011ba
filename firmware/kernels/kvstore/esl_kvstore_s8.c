/* kvstore_s8: key[i] = k[i], value[i] = v[i] for i < n: the rotated keys and the values are
 * already at the cache's scale and zero point (one per layer, from calibration); the keys are
 * int8, or int16 (zero point 0) where the cache holds int16 keys (--int16 keys). */
#include <string.h>
#include "esl_kernels.h"

void esl_kvstore_s8(int8_t *key, int8_t *value, const int8_t *k, const int8_t *v, uint32_t n)
{
    memcpy(key, k, n);
    memcpy(value, v, n);
}

/* Step: cache[layer][pos] = arena[in] (keys), arena[in2] (values). */
void esl_step_kvstore_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    const esl_model_t *m = c->m;
    const uint32_t row = (s->layer * m->max_seq + c->pos) * m->kv_dim;
    const int8_t *a = (const int8_t *)c->arena;
    if (m->kv.key_i16 != NULL) {
        memcpy(m->kv.key_i16 + row, a + s->in, m->kv_dim * sizeof(int16_t));
        memcpy(m->kv.value_i8 + row, a + s->in2, m->kv_dim);
        return;
    }
    esl_kvstore_s8(m->kv.key_i8 + row, m->kv.value_i8 + row, a + s->in, a + s->in2, m->kv_dim);
}
