#include "esl_kernels.h"

void esl_attention_f32(float *out, const float *q, float *att_all, const esl_model_t *m, uint32_t layer,
                       uint32_t pos)
{
    const uint32_t hs = m->head_size, kv_mul = m->n_heads / m->n_kv_heads;
    const float *keys = m->kv.key_f32 + layer * m->max_seq * m->kv_dim;
    const float *values = m->kv.value_f32 + layer * m->max_seq * m->kv_dim;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const float *qh = q + h * hs;
        const uint32_t kvoff = (h / kv_mul) * hs;
        float *att = att_all + h * m->max_seq;
        for (uint32_t t = 0; t <= pos; t++) {
            const float *k = keys + t * m->kv_dim + kvoff;
            float dot = 0.0f;
            for (uint32_t i = 0; i < hs; i++) dot += qh[i] * k[i];
            att[t] = dot * m->inv_sqrt_head_size;
        }
        esl_softmax_f32(att, pos + 1);
        float *o = out + h * hs;
        for (uint32_t i = 0; i < hs; i++) o[i] = 0.0f;
        for (uint32_t t = 0; t <= pos; t++) {
            const float *v = values + t * m->kv_dim + kvoff;
            for (uint32_t i = 0; i < hs; i++) o[i] += att[t] * v[i];
        }
    }
}
