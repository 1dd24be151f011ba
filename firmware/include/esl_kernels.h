/* edgeslm kernels, named esl_<op>_<contract> (contract = the arithmetic of weights and
 * activations: f32, w8f = int8 weights with float activations, w4f, kv8 = int8 KV cache).
 *
 * One kernel per file, firmware/kernels/<op>/esl_<op>_<contract>.c, which also defines the step
 * entry esl_step_<op>_<contract> the generated step table points at. The exact arithmetic of each
 * kernel is stated here and in host/edgeslm/quant/golden.py, and the tests require the two to
 * agree bit for bit. All floats are IEEE-754 single precision, each operation rounded (built with
 * -ffp-contract=off, no fast-math); "seqsum" is a left-to-right sum into a float accumulator that
 * starts at 0.0f. Output comes first.
 *
 * ISA variants are #if branches inside a kernel's file (ESL_KERNELS_DSP: the Arm v7E-M/v8-M DSP
 * extension), set by the build from the planner's choice; each keeps the portable C as its
 * reference and gives the same bits (only exact integer sums are rearranged). Scratch: a kernel
 * that needs some gets the shared scratch buffer; its size rule is the kernel's KernelSpec in
 * host/edgeslm/targets/ (the layout is stated below, the planner sizes the buffer). */
#ifndef ESL_KERNELS_H
#define ESL_KERNELS_H

#include <stdint.h>
#include "esl_types.h"

/* ---- helpers shared by kernels (firmware/kernels/common) -------------------------------- */

/* x clamped to [-87, 88]; k = nearest integer to x*log2(e) (ties away); r = (x - k*LN2_HI) - k*LN2_LO;
 * p = Horner over 1/i!, i = 6..0; returns p * 2^k (exact scaling). Never returns a subnormal. */
float esl_expf(float x);

/* Per group of gs (last may be shorter): amax = max|x|; amax == 0 -> s = 0, q = 0; else
 * s = amax / 127.0f, inv = 127.0f / amax, q[j] = clamp((int32_t)(x[j]*inv + (x[j] >= 0 ? .5f : -.5f)), -127, 127). */
void esl_quantize_i8(int8_t *q, float *s, const float *x, uint32_t n, uint32_t gs);

/* m = max x; e[t] = esl_expf(x[t] - m); inv = 1.0f / seqsum(e); x[t] = e[t] * inv. */
void esl_softmax_f32(float *x, uint32_t n);

/* ---- step kernels ------------------------------------------------------------------------- */

/* embed_f32: o[j] = E[token][j] (a copy).  embed_w8f: o[j] = (float)Eq[token][j] * Es[token][j / gs]. */
void esl_embed_f32(float *o, const esl_weight_t *table, uint32_t token);
void esl_embed_w8f(float *o, const esl_weight_t *table, uint32_t token);

/* o[j] = w[j] * (r * x[j]),  r = 1.0f / sqrtf(seqsum(x[j]*x[j]) / (float)n + eps).  o may be x. */
void esl_rmsnorm_f32(float *o, const float *x, const float *w, uint32_t n, float eps);

/* y[i] = seqsum_j(W[i][j] * x[j]).  W (rows, cols) fp32. */
void esl_matmul_f32(float *y, const esl_weight_t *w, const float *x);

/* x quantized by esl_quantize_i8 (into xq, xs) with W's group size; per row i and group g:
 * isum = sum((int32_t)Wq * (int32_t)xq) (exact), y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), g in order.
 * w8f: Wq int8. w4f: Wq in [-7, 7], two per byte, element 2j in the low nibble, rows padded to even.
 * scratch: xq int8[round_up(cols, 4)], then xs float[n_groups], then (w8f, DSP) x16 int16[cols]. */
void esl_matmul_w8f(float *y, const esl_weight_t *w, const float *x, void *scratch);
void esl_matmul_w4f(float *y, const esl_weight_t *w, const float *x, void *scratch);

/* For each of n_heads heads and pair p: a = v[2p], b = v[2p+1];
 * v[2p] = a*cos[p] - b*sin[p]; v[2p+1] = a*sin[p] + b*cos[p]. */
void esl_rope_f32(float *v, const float *cos, const float *sin, uint32_t n_heads, uint32_t head_size);

/* kvstore_f32: key[i] = k[i], value[i] = v[i], i < n.
 * kvstore_kv8: k and v quantized by esl_quantize_i8 with group = head_size (one scale per kv head). */
void esl_kvstore_f32(float *key, float *value, const float *k, const float *v, uint32_t n);
void esl_kvstore_kv8(int8_t *key, float *key_scale, int8_t *value, float *value_scale, const float *k,
                     const float *v, uint32_t n, uint32_t head_size);

/* Attention for one layer at position pos; head h reads kv head h / (n_heads / n_kv_heads).
 * f32 KV: score[t] = seqsum_i(q[i]*k[t][i]) * inv_sqrt_hs; out[i] = seqsum_t(p[t] * v[t][i]).
 * kv8:    score[t] = (seqsum_i(q[i]*(float)kq[t][i]) * ks[t]) * inv_sqrt_hs;
 *         out[i] = seqsum_t((p[t] * vs[t]) * (float)vq[t][i]).   p = esl_softmax_f32(score).
 * scratch: the scores of one head, float[max_seq]. */
void esl_attention_f32(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch);
void esl_attention_kv8(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch);

/* h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]. */
void esl_swiglu_f32(float *h1, const float *h3, uint32_t n);

/* x[i] = x[i] + y[i]. */
void esl_add_f32(float *x, const float *y, uint32_t n);

#endif
