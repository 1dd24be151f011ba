/* attention_s8: one layer at position pos over the int8 KV cache, per head h (kv head
 * h / (n_heads / n_kv_heads)), positions t = 0..pos (TFLM BATCH_MATMUL, SOFTMAX, BATCH_MATMUL):
 *   score[t] = clamp(mbqm(sum_i (q[i] - q_zp)(k[t][i] - k_zp), score_mult, score_shift) + score_zp)
 *   d[t] = max(score) - score[t]; valid = d[t] <= d_valid (TFLM's diff_min)
 *   total = sum over valid t of rdbp(exp_table[d[t]], 12)        (Q12.19, exact int32)
 *   (r, bits) = get_reciprocal(total, 12)
 *   prob[t] = valid ? clamp(rdbp(srdhm(r, exp_table[d[t]]), bits + 23) - 128) : -128   (the
 *             exponent can pass 31 with long contexts: rdbp64)
 *   out[i] = clamp(mbqm(sum_t (prob[t] + 128)(v[t][i] - v_zp), av_mult, av_shift) + out_zp)
 * exp_table (per layer, from the host) is TFLM's exp_on_negative_values of every difference.
 * scratch: one head's scores, then its probabilities, int8[max_seq]. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

void esl_attention_s8(int8_t *out, const int8_t *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                      const esl_attention_s8_t *p, void *scratch)
{
    const uint32_t hs = m->head_size, kv_dim = m->kv_dim, rep = m->n_heads / m->n_kv_heads;
    const uint32_t n = pos + 1u;
    int8_t *prob = (int8_t *)scratch;
    const int8_t *keys = m->kv.key_i8 + layer * m->max_seq * kv_dim;
    const int8_t *values = m->kv.value_i8 + layer * m->max_seq * kv_dim;
    for (uint32_t h = 0; h < m->n_heads; h++) {
        const int8_t *qh = q + h * hs;
        const uint32_t kvo = (h / rep) * hs;
        /* scores, and their maximum */
        int32_t qsum = 0;
        for (uint32_t i = 0; i < hs; i++) qsum += qh[i] - p->q_zp;
        int32_t best = -128;
        for (uint32_t t = 0; t < n; t++) {
            const int8_t *k = keys + t * kv_dim + kvo;
            int32_t dot = 0;
            for (uint32_t i = 0; i < hs; i++) dot += (qh[i] - p->q_zp) * k[i];
            /* sum (q - q_zp)(k - k_zp) = sum (q - q_zp) k - k_zp * sum (q - q_zp), exact */
            const int32_t sc = esl_clamp8(esl_mbqm(dot - p->k_zp * qsum, p->score_mult, p->score_shift)
                                          + p->score_zp);
            prob[t] = (int8_t)sc;
            if (sc > best) best = sc;
        }
        /* softmax */
        int32_t total = 0;
        for (uint32_t t = 0; t < n; t++) {
            const int32_t d = best - prob[t];
            if (d <= p->d_valid) total += esl_rdbp(p->exp_table[d], 12);
        }
        int bits;
        const int32_t r = esl_get_reciprocal(total, 12, &bits);
        for (uint32_t t = 0; t < n; t++) {
            const int32_t d = best - prob[t];
            prob[t] = (d <= p->d_valid) ? esl_clamp8((int32_t)esl_rdbp64(esl_srdhm(r, p->exp_table[d]), bits + 23) - 128)
                                        : (int8_t)-128;
        }
        /* out = prob . V: sum (prob + 128)(v - v_zp) = sum (prob + 128) v - v_zp * sum (prob + 128) */
        int32_t psum = 0;
        for (uint32_t t = 0; t < n; t++) psum += prob[t] + 128;
        for (uint32_t i = 0; i < hs; i++) {
            const int8_t *v = values + kvo + i;
            int32_t acc = 0;
            for (uint32_t t = 0; t < n; t++, v += kv_dim) acc += (prob[t] + 128) * *v;
            out[h * hs + i] = esl_clamp8(esl_mbqm(acc - p->v_zp * psum, p->av_mult, p->av_shift) + p->out_zp);
        }
    }
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's int8 cache, positions 0..pos. */
void esl_step_attention_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_attention_s8(a + s->out, a + s->in, c->m, s->layer, c->pos, (const esl_attention_s8_t *)s->p, c->scratch);
}
