/* attention_kv8, one layer at position pos over the int8 cache; head h reads kv head
 * h / (n_heads / n_kv_heads). Integer dot products, a fixed-point softmax after the float scores:
 *   (qq, qs) = esl_quantize_i16(q, hs, hs);  score[t] = (float)isum_i(qq[i] * kq[t][i]) * (ks[t] * (qs * inv_sqrt_hs))
 *   e[t] = esl_exp8(min((max score - score[t]) * ESL_EXP8_SCALE, 8191.0f))  (Q15);  sum = isum e;  vmax = max vs
 *   w[t] = min((int32)(((float)e[t] * vs[t]) * ((1.0f / (float)sum) * (32767.0f / vmax)) + 0.5f), 32767)
 *   out[i] = (float)isum_t(w[t] * vq[t][i]) * (vmax / 32767.0f)    (vmax < 2^-100: out = 0)
 * The body (query heads in pairs per kv head; the bounds that keep every int32 sum exact) is
 * esl_attend_kv8 in esl_attention_heads.h. scratch: two heads' scores, float[2 * max_seq], then
 * their quantized q, int16[2 * head_size].
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of heads. */
#include "esl_attention_heads.h"

#if defined(ESL_CLUSTER_CORES)
ESL_ATTENTION_JOB(attention_job, 1)
#endif

void esl_attention_kv8(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch)
{
#if defined(ESL_CLUSTER_CORES)
    (void)scratch;                               /* each worker has its own, in L1 */
    esl_attention_job_t j = { out, q, m, layer, pos };
    esl_cl_team_fork(attention_job, &j);
#else
    esl_attend_heads(out, q, m, layer, pos, 0u, m->n_heads, 1, (float *)scratch);
#endif
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's int8 cache, positions 0..pos. */
void esl_step_attention_kv8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_attention_kv8(c->arena + s->out, c->arena + s->in, c->m, s->layer, c->pos, c->scratch);
}
