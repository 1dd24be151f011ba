/* attention_s8: one layer at position pos over the int8 KV cache, per head h (kv head
 * h / (n_heads / n_kv_heads)), positions t = 0..pos (TFLM BATCH_MATMUL, SOFTMAX, BATCH_MATMUL):
 *   score[t] = clamp(mbqm(sum_i (q[i] - q_zp)(k[t][i] - k_zp), score_mult, score_shift) + score_zp)
 *   d[t] = max(score) - score[t]; valid = d[t] <= d_valid (TFLM's diff_min)
 *   total = sum over valid t of rdbp(exp_table[d[t]], 12)        (Q12.19, exact int32)
 *   (r, bits) = get_reciprocal(total, 12)
 *   prob[t] = valid ? clamp(rdbp(srdhm(r, exp_table[d[t]]), bits + 23) - 128) : -128
 *   out[i] = clamp(mbqm(sum_t (prob[t] + 128)(v[t][i] - v_zp), av_mult, av_shift) + out_zp)
 * exp_table (per layer, from the host) is TFLM's exp_on_negative_values of every difference.
 * Where the cache holds int16 keys (--int16 keys: m->kv.key_i16, k_zp 0) the score's sum takes them
 * as they are: |q - q_zp| <= 255 and |k| <= 32768, so it is exact in int32 for head sizes up to 256.
 * The sums are rearranged exactly: sum (q - q_zp)(k - k_zp) = sum (q - q_zp) k - k_zp sum (q - q_zp),
 * and likewise for V; the rounding shift takes 32-bit arithmetic unless bits + 23 > 31 (long contexts).
 * scratch: q - q_zp as int16[head_size] (DSP: each 4 stored as q0 q2 q1 q3, SXTB16's split of 4 keys),
 * then one head's scores, then its weights prob + 128, uint8[max_seq] (the same bytes), then the
 * weight of each difference d, uint8[256]. On a cluster the workers take contiguous ranges of heads,
 * each in its own L1 scratch (esl_cl_l1_scratch): a head's arithmetic is the same on any core. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#if ESL_KERNELS_DSP
#include "esl_arm_dsp.h"
#endif

/* q' = q - q_zp for one head, laid out for the dot with int8 keys below (natural: in order, for
 * int16 keys). */
static void prepare_q(int16_t *qc, const int8_t *q, uint32_t hs, int32_t q_zp, int natural)
{
    uint32_t i = 0;
#if ESL_KERNELS_DSP
    for (; !natural && i + 4u <= hs; i += 4u) {
        qc[i] = (int16_t)(q[i] - q_zp);
        qc[i + 1u] = (int16_t)(q[i + 2u] - q_zp);
        qc[i + 2u] = (int16_t)(q[i + 1u] - q_zp);
        qc[i + 3u] = (int16_t)(q[i + 3u] - q_zp);
    }
#else
    (void)natural;                               /* the dot below reads q' in order anyway */
#endif
    for (; i < hs; i++) qc[i] = (int16_t)(q[i] - q_zp);
}

/* sum_i q'[i] * k[i] over one key (exact). */
static inline int32_t dot_qk_n(const int16_t *qc, const int8_t *k, uint32_t hs)
{
    int32_t acc = 0;
    uint32_t i = 0;
#if ESL_KERNELS_DSP
    for (; i + 4u <= hs; i += 4u) {
        const uint32_t k4 = esl_ld32(k + i);
        acc = __smlad(__sxtb16(k4), esl_ld32(qc + i), acc);            /* q0*k0 + q2*k2 */
        acc = __smlad(esl_sxtb16_ror8(k4), esl_ld32(qc + i + 2u), acc);  /* q1*k1 + q3*k3 */
    }
#else
    for (; i + 4u <= hs; i += 4u) {
        acc += qc[i] * k[i] + qc[i + 1u] * k[i + 1u] + qc[i + 2u] * k[i + 2u] + qc[i + 3u] * k[i + 3u];
    }
#endif
    if ((hs & 3u) != 0u) {
        for (; i < hs; i++) acc += qc[i] * k[i];
    }
    return acc;
}

/* DSP cores: the common head sizes as constants, so the compiler unrolls the dot completely (a
 * head of 8 is two 4-element steps: the loop's own bookkeeping would cost as much as the MACs).
 * Elsewhere (ARMv6-M parts with little flash) one loop serves every size. */
static inline int32_t dot_qk(const int16_t *qc, const int8_t *k, uint32_t hs)
{
#if ESL_KERNELS_DSP
    switch (hs) {
    case 8u: return dot_qk_n(qc, k, 8u);
    case 16u: return dot_qk_n(qc, k, 16u);
    case 32u: return dot_qk_n(qc, k, 32u);
    case 64u: return dot_qk_n(qc, k, 64u);
    default: return dot_qk_n(qc, k, hs);
    }
#else
    return dot_qk_n(qc, k, hs);
#endif
}

/* sum_i q'[i] * k[i] over one int16 key (exact: see the top; q' in natural order). */
static inline int32_t dot_qk16_n(const int16_t *qc, const int16_t *k, uint32_t hs)
{
    int32_t acc = 0;
    uint32_t i = 0;
#if ESL_KERNELS_DSP
    for (; i + 2u <= hs; i += 2u) acc = __smlad(esl_ld32(qc + i), esl_ld32(k + i), acc);   /* q0*k0 + q1*k1 */
#endif
    for (; i < hs; i++) acc += qc[i] * k[i];
    return acc;
}

/* As dot_qk: the common head sizes as constants on DSP cores (fully unrolled). */
static inline int32_t dot_qk16(const int16_t *qc, const int16_t *k, uint32_t hs)
{
#if ESL_KERNELS_DSP
    switch (hs) {
    case 8u: return dot_qk16_n(qc, k, 8u);
    case 16u: return dot_qk16_n(qc, k, 16u);
    case 32u: return dot_qk16_n(qc, k, 32u);
    case 64u: return dot_qk16_n(qc, k, 64u);
    default: return dot_qk16_n(qc, k, hs);
    }
#else
    return dot_qk16_n(qc, k, hs);
#endif
}

/* acc[j] = sum_t w[t] * v[t][j], j < 4, the values of position t at v + t * stride (exact). */
static inline void weighted_sum4(int32_t acc[4], const uint8_t *w, const int8_t *v, uint32_t n, uint32_t stride)
{
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (uint32_t t = 0; t < n; t++, v += stride) {
        const int32_t wt = w[t];
#if ESL_KERNELS_DSP
        const uint32_t v4 = esl_ld32(v);
        const uint32_t v02 = __sxtb16(v4), v13 = esl_sxtb16_ror8(v4);
        a0 = __smlabb(wt, v02, a0);
        a2 = __smlabt(wt, v02, a2);
        a1 = __smlabb(wt, v13, a1);
        a3 = __smlabt(wt, v13, a3);
#else
        a0 += wt * v[0];
        a1 += wt * v[1];
        a2 += wt * v[2];
        a3 += wt * v[3];
#endif
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* prob + 128 of one valid position: clamp(rdbp(srdhm(r, exp), e) - 128) + 128. */
static inline uint8_t prob_weight(int32_t r, int32_t exp, int e)
{
    const int32_t x = esl_srdhm(r, exp);
    return (uint8_t)(esl_clamp8((e <= 31 ? esl_rdbp(x, e) : (int32_t)esl_rdbp64(x, e)) - 128) + 128);
}

/* Head h of attention_s8 (the arithmetic at the top of this file), with its own scratch. */
static void attention_head(int8_t *out, const int8_t *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                           const esl_attention_s8_t *p, uint32_t h, void *scratch)
{
    const uint32_t hs = m->head_size, kv_dim = m->kv_dim, rep = m->n_heads / m->n_kv_heads;
    const uint32_t n = pos + 1u;
    int16_t *qc = (int16_t *)scratch;
    int8_t *score = (int8_t *)(qc + ((hs + 1u) & ~1u));
    uint8_t *w = (uint8_t *)score;               /* prob + 128 replaces each score once it is read */
    uint8_t *table = w + m->max_seq;             /* prob + 128 by d, when that is cheaper */
    const int8_t *values = m->kv.value_i8 + layer * m->max_seq * kv_dim;
    /* the parameters in locals: the int8 stores below may alias anything, locals they cannot */
    const int32_t score_mult = p->score_mult, score_shift = p->score_shift, score_zp = p->score_zp;
    const int32_t d_valid = p->d_valid, av_mult = p->av_mult, av_shift = p->av_shift, out_zp = p->out_zp;
    const int32_t *const exp_table = p->exp_table;
    const uint32_t kvo = (h / rep) * hs;
    /* scores, and their maximum */
    const int16_t *keys16 = m->kv.key_i16;
    prepare_q(qc, q + h * hs, hs, p->q_zp, keys16 != NULL);
    int32_t best = -128;
    if (keys16 != NULL) {                        /* int16 keys, zero point 0 */
        const int16_t *k = keys16 + layer * m->max_seq * kv_dim + kvo;
        for (uint32_t t = 0; t < n; t++, k += kv_dim) {
            const int32_t sc = esl_clamp8(esl_mbqm(dot_qk16(qc, k, hs), score_mult, score_shift) + score_zp);
            score[t] = (int8_t)sc;
            if (sc > best) best = sc;
        }
    } else {
        int32_t qsum = 0;
        for (uint32_t i = 0; i < hs; i++) qsum += qc[i];
        const int32_t k_corr = p->k_zp * qsum;
        const int8_t *k = m->kv.key_i8 + layer * m->max_seq * kv_dim + kvo;
        for (uint32_t t = 0; t < n; t++, k += kv_dim) {
            const int32_t sc = esl_clamp8(esl_mbqm(dot_qk(qc, k, hs) - k_corr, score_mult, score_shift)
                                          + score_zp);
            score[t] = (int8_t)sc;
            if (sc > best) best = sc;
        }
    }
    /* softmax: every probability is a function of d alone; when fewer distinct d can occur
     * than there are positions, each is computed once into a table */
    int32_t total = 0, d_max = 0;
    for (uint32_t t = 0; t < n; t++) {
        const int32_t d = best - score[t];
        if (d <= d_valid) {
            total += esl_rdbp(exp_table[d], 12);
            if (d > d_max) d_max = d;
        }
    }
    int bits;
    const int32_t r = esl_get_reciprocal(total, 12, &bits);
    const int e = bits + 23;
    int32_t wsum = 0;
    if ((uint32_t)d_max + 1u < n) {
        for (int32_t d = 0; d <= d_max; d++) table[d] = prob_weight(r, exp_table[d], e);
        for (uint32_t t = 0; t < n; t++) {
            const int32_t d = best - score[t];
            w[t] = d <= d_valid ? table[d] : 0u;
            wsum += w[t];
        }
    } else {
        for (uint32_t t = 0; t < n; t++) {
            const int32_t d = best - score[t];
            w[t] = d <= d_valid ? prob_weight(r, exp_table[d], e) : 0u;
            wsum += w[t];
        }
    }
    /* out = prob . V */
    const int32_t v_corr = p->v_zp * wsum;
    int8_t *o = out + h * hs;
    uint32_t i = 0;
    for (; i + 4u <= hs; i += 4u) {
        int32_t acc[4];
        weighted_sum4(acc, w, values + kvo + i, n, kv_dim);
        for (uint32_t j = 0; j < 4u; j++) o[i + j] = esl_clamp8(esl_mbqm(acc[j] - v_corr, av_mult, av_shift) + out_zp);
    }
    for (; i < hs; i++) {
        const int8_t *v = values + kvo + i;
        int32_t acc = 0;
        for (uint32_t t = 0; t < n; t++, v += kv_dim) acc += w[t] * *v;
        o[i] = esl_clamp8(esl_mbqm(acc - v_corr, av_mult, av_shift) + out_zp);
    }
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    int8_t *out;
    const int8_t *q;
    const esl_model_t *m;
    uint32_t layer, pos;
    const esl_attention_s8_t *p;
} attention_job_t;

/* One worker's share: its contiguous range of heads, in its own L1 scratch. */
static void attention_job(void *arg)
{
    const attention_job_t *j = arg;
    const uint32_t core = esl_cl_core_id();
    uint32_t begin, end;
    esl_cl_split(j->m->n_heads, 1u, core, esl_cl_cores(), &begin, &end);
    void *scratch = esl_cl_l1_scratch(core);
    for (uint32_t h = begin; h < end; h++) attention_head(j->out, j->q, j->m, j->layer, j->pos, j->p, h, scratch);
}
#endif

void esl_attention_s8(int8_t *out, const int8_t *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                      const esl_attention_s8_t *p, void *scratch)
{
#if defined(ESL_CLUSTER_CORES)
    (void)scratch;                               /* each worker has its own, in L1 */
    attention_job_t j = { out, q, m, layer, pos, p };
    esl_cl_team_fork(attention_job, &j);
#else
    for (uint32_t h = 0; h < m->n_heads; h++) attention_head(out, q, m, layer, pos, p, h, scratch);
#endif
}

/* Step: arena[out] = attention(q = arena[in]) over the layer's int8 cache, positions 0..pos. */
void esl_step_attention_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_attention_s8(a + s->out, a + s->in, c->m, s->layer, c->pos, (const esl_attention_s8_t *)s->p, c->scratch);
}
