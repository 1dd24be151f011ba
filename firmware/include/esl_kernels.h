/* edgeslm kernels: portable C reference implementations, named esl_<op>_<dtype>.
 *
 * Every kernel states its exact arithmetic; host/edgeslm/quant/golden.py is the same arithmetic in
 * numpy and the tests require the two to agree bit for bit. All floats are IEEE-754 single
 * precision, each operation rounded (build with -ffp-contract=off, no fast-math); "seqsum" is a
 * left-to-right sum into a float accumulator starting at 0.0f. Output comes first.
 *
 * ISA variants are branches inside a kernel's file, chosen by one build setting (ESL_KERNELS_DSP=1:
 * Cortex-M DSP extension, from the board's kernel_variant); each keeps the portable C as its
 * fallback and gives the same bits (only exact integer sums are rearranged). */
#ifndef ESL_KERNELS_H
#define ESL_KERNELS_H

#include <stdint.h>
#include "esl_types.h"

/* x clamped to [-87, 88]; k = nearest integer to x*log2(e) (ties away); r = (x - k*LN2_HI) - k*LN2_LO;
 * p = Horner over 1/i!, i = 6..0; returns p * 2^k (exact scaling). Never returns a subnormal. */
float esl_expf(float x);

/* o[j] = w[j] * (r * x[j]),  r = 1.0f / sqrtf(seqsum(x[j]*x[j]) / (float)n + eps).  o may be x. */
void esl_rmsnorm_f32(float *o, const float *x, const float *w, uint32_t n, float eps);

/* Per group of gs (last may be shorter): amax = max|x|; amax == 0 -> s = 0, q = 0; else
 * s = amax / 127.0f, inv = 127.0f / amax, q[j] = clamp((int32_t)(x[j]*inv + (x[j] >= 0 ? .5f : -.5f)), -127, 127). */
void esl_quantize_i8(int8_t *q, float *s, const float *x, uint32_t n, uint32_t gs);

/* y[i] = seqsum_j(W[i][j] * x[j]).  W (rows, cols) fp32. */
void esl_matmul_f32(float *y, const esl_weight_t *w, const float *x);

/* x quantized by esl_quantize_i8 (into xq, xs) with W's group size; per row i and group g:
 * isum = sum((int32_t)Wq * (int32_t)xq) (exact), y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), g in order.
 * q8: Wq int8. q4: Wq in [-7, 7], two per byte, element 2j in the low nibble, rows padded to even. */
/* xq: 4-byte aligned scratch of round_up(cols, 4) + 2 * cols bytes (the DSP variant widens x there). */
void esl_matmul_q8(float *y, const esl_weight_t *w, const float *x, int8_t *xq, float *xs);
void esl_matmul_q4(float *y, const esl_weight_t *w, const float *x, int8_t *xq, float *xs);

/* o[j] = (float)Eq[token][j] * Es[token][j / gs]; an fp32 table is copied. */
void esl_embed(float *o, const esl_weight_t *table, uint32_t token);

/* For each of n_heads heads and pair p: a = v[2p], b = v[2p+1];
 * v[2p] = a*cos[p] - b*sin[p]; v[2p+1] = a*sin[p] + b*cos[p]. */
void esl_rope_f32(float *v, const float *cos, const float *sin, uint32_t n_heads, uint32_t head_size);

/* m = max x; e[t] = esl_expf(x[t] - m); inv = 1.0f / seqsum(e); x[t] = e[t] * inv. */
void esl_softmax_f32(float *x, uint32_t n);

/* Attention for one layer at position pos; head h reads kv head h / (n_heads / n_kv_heads).
 * f32 KV: score[t] = seqsum_i(q[i]*k[t][i]) * inv_sqrt_hs; out[i] = seqsum_t(p[t] * v[t][i]).
 * i8 KV:  score[t] = (seqsum_i(q[i]*(float)kq[t][i]) * ks[t]) * inv_sqrt_hs;
 *         out[i] = seqsum_t((p[t] * vs[t]) * (float)vq[t][i]).   p = esl_softmax_f32(score). */
/* att: scratch for the scores, (n_heads, pos + 1) used, max_seq per head reserved. */
void esl_attention_f32(float *out, const float *q, float *att, const esl_model_t *m, uint32_t layer,
                       uint32_t pos);
void esl_attention_i8(float *out, const float *q, float *att, const esl_model_t *m, uint32_t layer,
                      uint32_t pos);

/* h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]. */
void esl_swiglu_f32(float *h1, const float *h3, uint32_t n);

/* x[i] = x[i] + y[i]. */
void esl_add_f32(float *x, const float *y, uint32_t n);

#endif
