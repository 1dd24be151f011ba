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
#include <string.h>
#include "esl_types.h"
#if ESL_KERNELS_DSP && defined(__ARM_FEATURE_SAT)
#include <arm_acle.h>
#endif

/* ---- helpers shared by kernels (firmware/kernels/common) -------------------------------- */

/* A float's IEEE-754 bit pattern (for integer compares, and for assembly operands in core registers). */
static inline uint32_t esl_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* x clamped to [-87, 88]; k = x*log2(e)*65536 rounded (ties away); returns 2^(k/65536) from two
 * tables (esl_expf_inline.h): relative error at most about 1.1e-5. Never returns a subnormal. */
float esl_expf(float x);

/* Per group of gs (last may be shorter): amax = max|x|; amax == 0 -> s = 0, q = 0; else
 * s = amax / 127.0f, inv = 127.0f / amax, q[j] = clamp((int32_t)(x[j]*inv + (x[j] >= 0 ? .5f : -.5f)), -127, 127). */
void esl_quantize_i8(int8_t *q, float *s, const float *x, uint32_t n, uint32_t gs);
/* The same with 32767 for 127: s = amax / 32767.0f, q int16 in [-32767, 32767]. */
void esl_quantize_i16(int16_t *q, float *s, const float *x, uint32_t n, uint32_t gs);
/* One group of len (q, x at its start) as the two above quantize it, but only q[lo..hi) written,
 * and *s unless s is NULL (amax is the whole group's): cluster workers sharing a group. */
void esl_quantize_i8_part(int8_t *q, float *s, const float *x, uint32_t len, uint32_t lo, uint32_t hi);
void esl_quantize_i16_part(int16_t *q, float *s, const float *x, uint32_t len, uint32_t lo, uint32_t hi);

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
 * scratch: xq int8[round_up(cols, 4)], then xs float[n_groups], then (w8f, DSP) x16 int16[cols].
 * w8f built with ESL_MATMUL_X16 (the scheme's int16 activations): x quantized by esl_quantize_i16,
 * xq int16[cols] padded to 4 bytes; groups of at most 512 (the int32 sums cannot overflow). */
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
 * f32 KV: score[t] = seqsum_i(q[i]*k[t][i]) * inv_sqrt_hs; out[i] = seqsum_t(p[t] * v[t][i]),
 *         p = esl_softmax_f32(score). scratch: two heads' scores, float[2 * max_seq].
 * kv8:    integer dot products against the int8 keys and values, a fixed-point softmax (the exact
 *         arithmetic: esl_attention_kv8.c). scratch: float[2 * max_seq], then int16[2 * head_size]. */
void esl_attention_f32(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch);
void esl_attention_kv8(float *out, const float *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                       void *scratch);

/* h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i]. */
void esl_swiglu_f32(float *h1, const float *h3, uint32_t n);

/* x[i] = x[i] + y[i]. */
void esl_add_f32(float *x, const float *y, uint32_t n);

/* ---- s8: the integer-only scheme (TFLite-Micro int8 arithmetic) ------------------------------
 * Every value is int8 with a zero point; every rescale is TFLM's MultiplyByQuantizedMultiplier
 * (esl_mbqm, esl_fixedpoint.h) with a multiplier and shift the host prepared
 * (host/edgeslm/quant/golden_s8.py: step_params; the kernels' golden functions are beside it).
 * "clamp" is to [-128, 127]. No float anywhere: these build for cores without an FPU. */

static inline int8_t esl_clamp8(int32_t v)
{
#if ESL_KERNELS_DSP && defined(__ARM_FEATURE_SAT)
    return (int8_t)__ssat(v, 8);                        /* SSAT #8: the same clamp */
#else
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
#endif
}

/* The int16 values of i8's --int16 parts: symmetric (zero point 0), "clamp16" to [-32768, 32767]. */
static inline int16_t esl_clamp16(int32_t v)
{
#if ESL_KERNELS_DSP && defined(__ARM_FEATURE_SAT)
    return (int16_t)__ssat(v, 16);
#else
    return (int16_t)(v < -32768 ? -32768 : (v > 32767 ? 32767 : v));
#endif
}

/* embed_s8: o[j] = clamp(mbqm(E[token][j], mult[token], shift[token]) + out_zp); out_bits 16 (--int16
 * residual): o int16, clamp16, out_zp 0. */
typedef struct { const int32_t *mult; const int8_t *shift; int32_t out_zp, out_bits; } esl_embed_s8_t;
void esl_embed_s8(void *o, const esl_weight_t *table, uint32_t token, const esl_embed_s8_t *p);

/* rmsnorm_s8: xc = x - in_zp; T = max(1, sum xc^2 + n_eps); a = (62 - bitlen(T)) / 2;
 * inv = 2^60 / isqrt(T << 2a); o[j] = clamp(rdbp64(xc[j] * srdhm(inv, mult[j]), min(60 - a - shift[j], 40))
 * + out_zp).  (mult, shift)[j] = the norm weight j times sqrt(n) over the output scale. o may be x.
 * in_bits 16 (--int16 residual): x int16 (in_zp 0), the exponent capped at 47 instead; out_bits 16
 * (--int16 norms): o int16, clamp16, out_zp 0. */
typedef struct {
    const int32_t *mult; const int8_t *shift; int32_t in_zp, out_zp, n_eps, in_bits, out_bits;
} esl_rmsnorm_s8_t;
void esl_rmsnorm_s8(void *o, const void *x, uint32_t n, const esl_rmsnorm_s8_t *p);

/* matmul_s8 (TFLM FULLY_CONNECTED, per-channel): acc = bias[i] + sum_j W[i][j] * x[j], where
 * bias[i] = -in_zp * sum_j W[i][j] (host); y[i] = clamp(mbqm(acc, mult[i], shift[i]) + out_zp);
 * out_bits 16 (an --int16 part's input, e.g. the keys): y int16, y[i] = clamp16(mbqm(acc, ..)),
 * out_zp 0. W int8 (rows, cols). scratch (dsp): x widened to int16[round_up(cols, 2)]. */
typedef struct {
    const int32_t *mult; const int8_t *shift; const int32_t *bias; int32_t in_zp, out_zp, out_bits;
} esl_matmul_s8_t;
void esl_matmul_s8(void *y, const esl_weight_t *w, const int8_t *x, const esl_matmul_s8_t *p, void *scratch);

/* rope_s8 (TFLM FULLY_CONNECTED with the position's rotation matrix, its zeros skipped): per head
 * and pair p, a = v[2p] - in_zp, b = v[2p+1] - in_zp, c = cos[pos][p], s = sin[pos][p] (int8, scale
 * 1/127): v[2p] = clamp(mbqm(c*a - s*b, mult, shift) + out_zp), v[2p+1] = clamp(mbqm(s*a + c*b, ..) + out_zp). */
typedef struct { const int8_t *cos, *sin; int32_t mult, shift, in_zp, out_zp; } esl_rope_s8_t;
void esl_rope_s8(int8_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos, const esl_rope_s8_t *p);

/* rope_s16 (TFLM FULLY_CONNECTED 16x8 with the position's rotation matrix, its zeros skipped): rope_s8
 * on int16 v (zero point 0) with TFLM's int64 requantization: v[2p] = clamp16(mbqm64(c*a - s*b, mult,
 * shift)), v[2p+1] = clamp16(mbqm64(s*a + c*b, mult, shift)), a = v[2p], b = v[2p+1]. */
typedef struct { const int8_t *cos, *sin; int32_t mult, shift; } esl_rope_s16_t;
void esl_rope_s16(int16_t *v, uint32_t n_heads, uint32_t head_size, uint32_t pos, const esl_rope_s16_t *p);

/* matmul_s16 (--int16 ffn's w2): y[i] = clamp(mbqm(sum_j W[i][j] * x[j], mult[i], shift[i]) + out_zp),
 * x int16 (zero point 0), W int8, int32 sums exact for cols <= 516; out_bits 16 (--int16 residual):
 * y int16, clamp16, out_zp 0. scratch (dsp): int16[round_up(cols, 2)]. */
typedef struct { const int32_t *mult; const int8_t *shift; int32_t out_zp, out_bits; } esl_matmul_s16_t;
void esl_matmul_s16(void *y, const esl_weight_t *w, const int16_t *x, const esl_matmul_s16_t *p, void *scratch);

/* swiglu_s16 (--int16 ffn): h1 = MUL(MUL(h1, LOGISTIC(h1)), h3) in TFLM's int16 LOGISTIC and MULs
 * (zero points 0; LOGISTIC interpolates esl_sigmoid_u16, TFLM's sigmoid(i / 24) in Q0.16). */
typedef struct { int32_t sig_mult, sig_shift, silu_mult, silu_shift, gate_mult, gate_shift; } esl_swiglu_s16_t;
extern const uint16_t esl_sigmoid_u16[256];
void esl_swiglu_s16(int16_t *h1, const int16_t *h3, uint32_t n, const esl_swiglu_s16_t *p);

/* kvstore_s8: key[i] = k[i], value[i] = v[i], i < n (already int8 at the cache's zero points); the
 * keys int16 where the cache holds int16 keys (--int16 keys: m->kv.key_i16). */
void esl_kvstore_s8(int8_t *key, int8_t *value, const int8_t *k, const int8_t *v, uint32_t n);

/* attention_s8, per head (kv head h / (n_heads / n_kv_heads)), t = 0..pos:
 *   score[t] = clamp(mbqm(sum_i (q[i] - q_zp)(k[t][i] - k_zp), score_mult, score_shift) + score_zp)
 *   (keys int8, or int16 with k_zp 0 where the cache holds int16 keys: the sum exact in int32 for
 *   head sizes up to 256)
 *   TFLM int8 SOFTMAX, d[t] = max(score) - score[t], valid = d[t] <= d_valid:
 *     total = sum_valid rdbp(exp_table[d], 12);  (r, bits) = get_reciprocal(total, 12)
 *     prob[t] = valid ? clamp(rdbp(srdhm(r, exp_table[d]), bits + 23) - 128) : -128
 *   out[i] = clamp(mbqm(sum_t (prob[t] + 128)(v[t][i] - v_zp), av_mult, av_shift) + out_zp)
 * exp_table[d] = gemmlowp exp_on_negative_values of the scaled difference -d (host, per layer).
 * scratch: q - q_zp int16[round_up(head_size, 2)], one head's scores / weights [max_seq], then a
 * table of weights by score difference [256]. */
typedef struct {
    int32_t score_mult, score_shift, q_zp, k_zp, score_zp;
    const int32_t *exp_table;      /* [256], Q0.31 */
    int32_t d_valid;
    int32_t av_mult, av_shift, v_zp, out_zp;
} esl_attention_s8_t;
void esl_attention_s8(int8_t *out, const int8_t *q, const esl_model_t *m, uint32_t layer, uint32_t pos,
                      const esl_attention_s8_t *p, void *scratch);

/* add_s8 (TFLM int8 ADD): a' = (a - a_zp) << left_shift, b' likewise; x = clamp(mbqm(mbqm(a', m1, sh1)
 * + mbqm(b', m2, sh2), my, shy) + out_zp); x is a (the residual stream, in place). bits 16 (--int16
 * residual): TFLM's int16 ADD, x and y int16, zero points 0, left_shift 15, clamp16. */
typedef struct { int32_t left_shift, m1, sh1, m2, sh2, my, shy, a_zp, b_zp, out_zp, bits; } esl_add_s8_t;
void esl_add_s8(void *x, const void *y, uint32_t n, const esl_add_s8_t *p);

/* swiglu_s8: silu = silu[h1 + 128] (host table of TFLM MUL(h1, LOGISTIC(h1)), every int8 h1);
 * h1 = clamp(mbqm((silu - silu_zp)(h3 - h3_zp), gate_mult, gate_shift) + out_zp)   TFLM MUL */
typedef struct {
    const int8_t *silu;            /* [256] */
    int32_t gate_mult, gate_shift, silu_zp, h3_zp, out_zp;
} esl_swiglu_s8_t;
void esl_swiglu_s8(int8_t *h1, const int8_t *h3, uint32_t n, const esl_swiglu_s8_t *p);

#endif
