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
            uint32_t i = 0;
            for (; i + 4u <= hs; i += 4u) {     /* unrolled; the additions stay in order */
                dot += qh[i] * k[i];
                dot += qh[i + 1u] * k[i + 1u];
                dot += qh[i + 2u] * k[i + 2u];
                dot += qh[i + 3u] * k[i + 3u];
            }
            for (; i < hs; i++) dot += qh[i] * k[i];
            att[t] = dot * m->inv_sqrt_head_size;
        }
        esl_softmax_f32(att, pos + 1);
        /* out[i] sums over t in order; four outputs at a time, each in its own register */
        const float *v = values + kvoff;
        float *o = out + h * hs;
        uint32_t i = 0;
        for (; i + 4u <= hs; i += 4u) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            const float *vt = v + i;
            for (uint32_t t = 0; t <= pos; t++, vt += m->kv_dim) {
                const float p = att[t];
                a0 += p * vt[0];
                a1 += p * vt[1];
                a2 += p * vt[2];
                a3 += p * vt[3];
            }
            o[i] = a0;
            o[i + 1u] = a1;
            o[i + 2u] = a2;
            o[i + 3u] = a3;
        }
        for (; i < hs; i++) {
            float acc = 0.0f;
            for (uint32_t t = 0; t <= pos; t++) acc += att[t] * v[t * m->kv_dim + i];
            o[i] = acc;
        }
    }
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's cache, positions 0..pos. */
void esl_step_attention_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_attention_f32(c->arena + s->out, c->arena + s->in, c->m, s->layer, c->pos, c->scratch);
}
