/* attention_f32, one layer at position pos; head h reads kv head h / (n_heads / n_kv_heads):
 * score[t] = seqsum_i(q[i] * k[t][i]) * inv_sqrt_hs;  p = esl_softmax_f32(score);
 * out[i] = seqsum_t(p[t] * v[t][i]).  scratch: one head's scores, float[max_seq]. */
#include "esl_kernels.h"

void esl_attention_f32(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch)
{
    const uint32_t hs = m->head_size, kv_mul = m->n_heads / m->n_kv_heads;
    const float *keys = m->kv.key_f32 + layer * m->max_seq * m->kv_dim;
    const float *values = m->kv.value_f32 + layer * m->max_seq * m->kv_dim;
    float *att = (float *)scratch;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const float *qh = q + h * hs;
        const uint32_t kvoff = (h / kv_mul) * hs;
        for (uint32_t t = 0; t <= pos; t++) {
            const float *k = keys + t * m->kv_dim + kvoff;
            float dot = 0.0f;
            for (uint32_t i = 0; i < hs; i++) dot += qh[i] * k[i];
            att[t] = dot * m->inv_sqrt_head_size;
        }
        esl_softmax_f32(att, pos + 1);
        /* out[i] sums over t in order, one accumulator in a register per output element */
        const float *v = values + kvoff;
        for (uint32_t i = 0; i < hs; i++) {
            float acc = 0.0f;
            for (uint32_t t = 0; t <= pos; t++) acc += att[t] * v[t * m->kv_dim + i];
            out[h * hs + i] = acc;
        }
    }
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's cache, positions 0..pos. */
void esl_step_attention_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_attention_f32(c->arena + s->out, c->arena + s->in, c->m, s->layer, c->pos, c->scratch);
}
