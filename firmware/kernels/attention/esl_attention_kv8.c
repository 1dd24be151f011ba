/* attention_kv8, one layer at position pos over the int8 cache; head h reads kv head
 * h / (n_heads / n_kv_heads):
 * score[t] = (seqsum_i(q[i] * (float)kq[t][i]) * ks[t]) * inv_sqrt_hs;  p = esl_softmax_f32(score);
 * out[i] = seqsum_t((p[t] * vs[t]) * (float)vq[t][i]).  scratch: one head's scores, float[max_seq].
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of heads, each
 * with its own scores in its L1 scratch (esl_cl_l1_scratch, sized by the planner): a head's
 * arithmetic is the same on any core, so the result is the single-core one bit for bit. */
#include "esl_kernels.h"

/* Head h of the layer's attention at pos; att: float[pos + 1] of scratch. Inlined into the
 * single-core loop over heads (the code other targets had before the cluster split). */
#if !defined(ESL_CLUSTER_CORES)
__attribute__((always_inline)) inline
#endif
static void attention_head(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                           uint32_t h, float *att)
{
    const uint32_t hs = m->head_size, kv_mul = m->n_heads / m->n_kv_heads;
    const int8_t *keys = m->kv.key_i8 + layer * m->max_seq * m->kv_dim;
    const int8_t *values = m->kv.value_i8 + layer * m->max_seq * m->kv_dim;
    const float *kscale = m->kv.key_scale + layer * m->max_seq * m->n_kv_heads;
    const float *vscale = m->kv.value_scale + layer * m->max_seq * m->n_kv_heads;
    const float *qh = q + h * hs;
    const uint32_t kvh = h / kv_mul;
    for (uint32_t t = 0; t <= pos; t++) {
        const int8_t *k = keys + t * m->kv_dim + kvh * hs;
        float dot = 0.0f;
        uint32_t i = 0;
        for (; i + 4u <= hs; i += 4u) {     /* unrolled; the additions stay in order */
            dot += qh[i] * (float)k[i];
            dot += qh[i + 1u] * (float)k[i + 1u];
            dot += qh[i + 2u] * (float)k[i + 2u];
            dot += qh[i + 3u] * (float)k[i + 3u];
        }
        for (; i < hs; i++) dot += qh[i] * (float)k[i];
        att[t] = (dot * kscale[t * m->n_kv_heads + kvh]) * m->inv_sqrt_head_size;
    }
    esl_softmax_f32(att, pos + 1);
    for (uint32_t t = 0; t <= pos; t++) att[t] = att[t] * vscale[t * m->n_kv_heads + kvh];
    /* out[i] sums over t in order; four outputs at a time, each in its own register */
    const int8_t *v = values + kvh * hs;
    float *o = out + h * hs;
    uint32_t i = 0;
    for (; i + 4u <= hs; i += 4u) {
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        const int8_t *vt = v + i;
        for (uint32_t t = 0; t <= pos; t++, vt += m->kv_dim) {
            const float p = att[t];
            a0 += p * (float)vt[0];
            a1 += p * (float)vt[1];
            a2 += p * (float)vt[2];
            a3 += p * (float)vt[3];
        }
        o[i] = a0;
        o[i + 1u] = a1;
        o[i + 2u] = a2;
        o[i + 3u] = a3;
    }
    for (; i < hs; i++) {
        float acc = 0.0f;
        for (uint32_t t = 0; t <= pos; t++) acc += att[t] * (float)v[t * m->kv_dim + i];
        o[i] = acc;
    }
}

#if defined(ESL_CLUSTER_CORES)
#include <stddef.h>
#include "esl_cluster.h"

typedef struct {
    float *out;
    const float *q;
    const esl_model_t *m;
    uint32_t layer, pos;
} attention_job_t;

/* One worker's share: its contiguous range of heads. */
static void attention_job(void *arg)
{
    const attention_job_t *j = arg;
    const uint32_t core = esl_cl_core_id();
    uint32_t begin, end;
    esl_cl_split(j->m->n_heads, 1u, core, esl_cl_cores(), &begin, &end);
    float *scores = (float *)esl_cl_l1_scratch(core);
    for (uint32_t h = begin; h < end; h++) attention_head(j->out, j->q, j->m, j->layer, j->pos, h, scores);
}
#endif

void esl_attention_kv8(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch)
{
#if defined(ESL_CLUSTER_CORES)
    (void)scratch;                               /* each worker has its own, in L1 */
    attention_job_t j = { out, q, m, layer, pos };
    esl_cl_team_fork(attention_job, &j);
#else
    for (uint32_t h = 0; h < m->n_heads; h++) attention_head(out, q, m, layer, pos, h, (float *)scratch);
#endif
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's int8 cache, positions 0..pos. */
void esl_step_attention_kv8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_attention_kv8(c->arena + s->out, c->arena + s->in, c->m, s->layer, c->pos, c->scratch);
}
