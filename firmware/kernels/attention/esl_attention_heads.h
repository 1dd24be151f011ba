/* The body of attention_f32 and attention_kv8 (included by both kernel files, static inline, so
 * each kernel is still one object with its own copy; kv8 is a constant where it is inlined).
 * For head h (kv head h / (n_heads / n_kv_heads)), t = 0..pos:
 *   f32:  score[t] = seqsum_i(q[i] * k[t][i]) * inv_sqrt_hs
 *   kv8:  score[t] = (seqsum_i(q[i] * (float)kq[t][i]) * ks[t]) * inv_sqrt_hs
 *   p = esl_softmax_f32(score), that is  mx = max score;  e[t] = esl_expf(score[t] - mx);
 *       inv = 1.0f / seqsum_t(e[t]);  p[t] = e[t] * inv
 *   f32:  out[i] = seqsum_t(p[t] * v[t][i])
 *   kv8:  out[i] = seqsum_t((p[t] * vs[t]) * (float)vq[t][i])
 * Query heads that read the same kv head go two at a time (grouped-query attention), so each key
 * and value load (and int8 conversion) feeds both; the max is kept while scoring, the exp is
 * esl_expf's for x <= 0, and with head size 8 (each head's outputs fit in registers) p[t] is
 * formed inside the weighted sum. A head's arithmetic is the same in a pair or alone. */
#ifndef ESL_ATTENTION_HEADS_H
#define ESL_ATTENTION_HEADS_H

#include <float.h>

#include "esl_expf_inline.h"
#include "esl_kernels.h"

/* With hardware float the hot cases (head size 8; a pair) get their own unrolled copies; with soft
 * float every float operation is a library call, so one compact copy serves (the M0's flash). */
#if defined(__ARM_FP) || defined(__riscv_flen) || !defined(__arm__)
#define ESL_ATT_SPECIALIZE 1
#define ESL_ATT_UNROLL(n) _Pragma(#n)
#else
#define ESL_ATT_SPECIALIZE 0
#define ESL_ATT_UNROLL(n)
#endif

/* The Cortex-M branch of attention_f32 (its dsp variant, with a hardware FPU): a pair of heads of
 * size 8 scores and sums in assembly, one VLDM per key or value row feeding both heads (the C
 * loads each element: 8 VLDR). The arithmetic is the C's, operation for operation: VMUL then VADD,
 * never fused, in the same order. */
#if ESL_KERNELS_DSP && defined(__ARM_FP) && (__ARM_FP & 4) && defined(__thumb2__)
#define ESL_ATT_VFP 1
/* Element i of the row (s<i>) against q[i] of both heads (s<a>, s<b>): da, db (s8, s9) += products. */
#define ESL_ATT_SCORE(i, a, b)                                                                        \
    "vmul.f32 s10, s" #a ", s" #i "\n\t"                                                             \
    "vadd.f32 s8, s8, s10\n\t"                                                                       \
    "vmul.f32 s11, s" #b ", s" #i "\n\t"                                                             \
    "vadd.f32 s9, s9, s11\n\t"
/* Element i of the value row (s<i>) into both heads' output i (s<a>, s<b>), by pa, pb (s8, s9). */
#define ESL_ATT_VALUE(i, a, b)                                                                        \
    "vmul.f32 s12, s8, s" #i "\n\t"                                                                  \
    "vadd.f32 s" #a ", s" #a ", s12\n\t"                                                             \
    "vmul.f32 s13, s9, s" #i "\n\t"                                                                  \
    "vadd.f32 s" #b ", s" #b ", s13\n\t"

/* For t < n (n >= 1), key row k (stride bytes apart), heads q[0..7] and q[8..15]:
 *   da = q[0] * k0;  da = da + q[i] * ki (i = 1..7);  da = da * inv;  ea[t] = da;  if (da > *ma) *ma = da;
 * and db from q[8 + i] into eb, *mb. q in s16-s31 for the whole loop; per position one VLDM of the
 * row, 16 VMUL and 14 VADD, two scalings, two stores, two max updates: 46 instructions. */
__attribute__((noinline)) static void esl_scores8x2_vfp(float *ea, float *eb, const float *q, const float *k,
                                                        uint32_t stride, uint32_t n, float inv, float *ma,
                                                        float *mb)
{
    __asm__ volatile(
        "vldmia  %[q], {s16-s31}\n\t"
        "vmov    s14, %[inv]\n\t"
        "vldr    s12, [%[ma]]\n\t"
        "vldr    s13, [%[mb]]\n\t"
        "1:\n\t"
        "vldmia  %[k], {s0-s7}\n\t"
        "add     %[k], %[k], %[stride]\n\t"
        "vmul.f32 s8, s16, s0\n\t"
        "vmul.f32 s9, s24, s0\n\t"
        ESL_ATT_SCORE(1, 17, 25) ESL_ATT_SCORE(2, 18, 26) ESL_ATT_SCORE(3, 19, 27) ESL_ATT_SCORE(4, 20, 28)
        ESL_ATT_SCORE(5, 21, 29) ESL_ATT_SCORE(6, 22, 30) ESL_ATT_SCORE(7, 23, 31)
        "vmul.f32 s8, s8, s14\n\t"
        "vmul.f32 s9, s9, s14\n\t"
        "vstmia  %[ea]!, {s8}\n\t"
        "vstmia  %[eb]!, {s9}\n\t"
        "vcmp.f32 s8, s12\n\t"
        "vmrs    APSR_nzcv, fpscr\n\t"
        "it      gt\n\t"
        "vmovgt.f32 s12, s8\n\t"
        "vcmp.f32 s9, s13\n\t"
        "vmrs    APSR_nzcv, fpscr\n\t"
        "it      gt\n\t"
        "vmovgt.f32 s13, s9\n\t"
        "subs    %[n], %[n], #1\n\t"
        "bne     1b\n\t"
        "vstr    s12, [%[ma]]\n\t"
        "vstr    s13, [%[mb]]\n\t"
        : [ea] "+r"(ea), [eb] "+r"(eb), [k] "+r"(k), [n] "+r"(n)
        : [q] "r"(q), [stride] "r"(stride), [inv] "r"(esl_f32_bits(inv)), [ma] "r"(ma), [mb] "r"(mb)
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14",
          "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29",
          "s30", "s31", "cc", "memory");
}

/* For t < n (n >= 1), value row v (stride bytes apart):  pa = ea[t] * inva;
 *   o[i] = o[i] + pa * v[i]  (i = 0..7, from +0.0f), and pb = eb[t] * invb into o[8 + i].
 * The sums in s16-s31 for the whole loop; per position two loads and scalings, one VLDM of the
 * row, 16 VMUL and 16 VADD: 40 instructions. */
__attribute__((noinline)) static void esl_values8x2_vfp(float *o, const float *ea, const float *eb, const float *v,
                                                        uint32_t stride, uint32_t n, float inva, float invb)
{
    const uint32_t zero = 0u;
    __asm__ volatile(
        "vmov    s16, s17, %[zero], %[zero]\n\t"
        "vmov    s18, s19, %[zero], %[zero]\n\t"
        "vmov    s20, s21, %[zero], %[zero]\n\t"
        "vmov    s22, s23, %[zero], %[zero]\n\t"
        "vmov    s24, s25, %[zero], %[zero]\n\t"
        "vmov    s26, s27, %[zero], %[zero]\n\t"
        "vmov    s28, s29, %[zero], %[zero]\n\t"
        "vmov    s30, s31, %[zero], %[zero]\n\t"
        "vmov    s10, %[ia]\n\t"
        "vmov    s11, %[ib]\n\t"
        "1:\n\t"
        "vldmia  %[ea]!, {s8}\n\t"
        "vldmia  %[eb]!, {s9}\n\t"
        "vmul.f32 s8, s8, s10\n\t"
        "vmul.f32 s9, s9, s11\n\t"
        "vldmia  %[v], {s0-s7}\n\t"
        "add     %[v], %[v], %[stride]\n\t"
        ESL_ATT_VALUE(0, 16, 24) ESL_ATT_VALUE(1, 17, 25) ESL_ATT_VALUE(2, 18, 26) ESL_ATT_VALUE(3, 19, 27)
        ESL_ATT_VALUE(4, 20, 28) ESL_ATT_VALUE(5, 21, 29) ESL_ATT_VALUE(6, 22, 30) ESL_ATT_VALUE(7, 23, 31)
        "subs    %[n], %[n], #1\n\t"
        "bne     1b\n\t"
        "vstmia  %[o], {s16-s31}\n\t"
        : [ea] "+r"(ea), [eb] "+r"(eb), [v] "+r"(v), [n] "+r"(n)
        : [o] "r"(o), [stride] "r"(stride), [ia] "r"(esl_f32_bits(inva)), [ib] "r"(esl_f32_bits(invb)),
          [zero] "r"(zero)
        : "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13",
          "s16", "s17", "s18", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s28", "s29",
          "s30", "s31", "cc", "memory");
}

/* Element t of e (its score) becomes esl_expf_nonpos_inline(e[t] - m), added to s: the C's
 * arithmetic operation for operation (clamp at -87 where x < -87, not for NaN; x * EXP_SCALE - 0.5;
 * truncating VCVT; the two table loads by register offset, one VMOV to the FPU for both; the
 * exponent added in the core): 22 instructions. */
#define ESL_ATT_EXP(e, m, s)                                                                          \
    "vldr     s0, [%[" #e "]]\n\t"                                                                  \
    "vsub.f32 s0, s0, %[" #m "]\n\t"                                                                \
    "vcmpe.f32 s0, %[mn]\n\t"                                                                       \
    "vmrs     APSR_nzcv, fpscr\n\t"                                                                 \
    "it       mi\n\t"                                                                               \
    "vmovmi.f32 s0, %[mn]\n\t"                                                                      \
    "vmul.f32 s0, s0, %[sc]\n\t"                                                                    \
    "vsub.f32 s0, s0, %[half]\n\t"                                                                  \
    "vcvt.s32.f32 s0, s0\n\t"                                                                       \
    "vmov     %[k], s0\n\t"                                                                         \
    "ubfx     %[i], %[k], #8, #8\n\t"                                                               \
    "uxtb     %[j], %[k]\n\t"                                                                       \
    "ldr      %[i], [%[hi], %[i], lsl #2]\n\t"                                                      \
    "ldr      %[j], [%[lo], %[j], lsl #2]\n\t"                                                      \
    "vmov     s0, s1, %[i], %[j]\n\t"                                                               \
    "vmul.f32 s0, s0, s1\n\t"                                                                       \
    "vmov     %[i], s0\n\t"                                                                         \
    "asr      %[k], %[k], #16\n\t"                                                                  \
    "add      %[i], %[i], %[k], lsl #23\n\t"                                                        \
    "str      %[i], [%[" #e "]], #4\n\t"                                                            \
    "vmov     s0, %[i]\n\t"                                                                         \
    "vadd.f32 %[" #s "], %[" #s "], s0\n\t"

/* For t < n (n >= 1):  ea[t] = esl_expf_nonpos_inline(ea[t] - ma);  *sa = seqsum_t(ea[t]) (from
 * 0.0f), and the same for eb, mb, *sb. 46 instructions a position (gcc's C: about 64, reloading
 * the tables' addresses and materializing the clamped case's constants on every exp). */
static inline void esl_exps2_vfp(float *ea, float *eb, uint32_t n, float ma, float mb, float *sa, float *sb)
{
    float suma = 0.0f, sumb = 0.0f;
    uint32_t k, i, j;
    __asm__ volatile(
        "1:\n\t"
        ESL_ATT_EXP(ea, ma, sa)
        ESL_ATT_EXP(eb, mb, sb)
        "subs     %[n], %[n], #1\n\t"
        "bne      1b\n\t"
        : [ea] "+r"(ea), [eb] "+r"(eb), [n] "+r"(n), [sa] "+t"(suma), [sb] "+t"(sumb), [k] "=&r"(k),
          [i] "=&r"(i), [j] "=&r"(j)
        : [ma] "t"(ma), [mb] "t"(mb), [mn] "t"(-87.0f), [sc] "t"(ESL_EXP_SCALE), [half] "t"(0.5f),
          [hi] "r"(esl_exp2_hi), [lo] "r"(esl_exp2_lo)
        : "s0", "s1", "cc", "memory");
    *sa = suma;
    *sb = sumb;
}
#else
#define ESL_ATT_VFP 0
#endif

/* Element i of cached row r (kv_dim elements apart from the previous row) as float. */
#define ESL_KV_AT(kv8, base, r, i) ((kv8) ? (float)((const int8_t *)(base))[(r) + (i)] \
                                          : ((const float *)(base))[(r) + (i)])

/* nh (1 or 2) query heads from q (hs apart) over the n cached positions of one kv head: keys k,
 * values v (rows kv_dim apart) and, for kv8, their scales ks, vs (n_kv apart); outputs to o (hs
 * apart); att: float[2 * n]. hs, nh and kv8 are constants where this is inlined. */
__attribute__((always_inline)) static inline void esl_attend(
    float *restrict o, const float *restrict q, const void *k, const void *v, const float *ks, const float *vs,
    uint32_t kv_dim, uint32_t n_kv, uint32_t n, float inv_sqrt_hs, const uint32_t hs, const uint32_t nh,
    const int kv8, float *restrict att)
{
    float *const ea = att, *const eb = att + n;
    float ma = -FLT_MAX, mb = -FLT_MAX;
#if ESL_ATT_VFP
    if (!kv8 && hs == 8u && nh == 2u)
        esl_scores8x2_vfp(ea, eb, q, (const float *)k, kv_dim * 4u, n, inv_sqrt_hs, &ma, &mb);
    else
#endif
    for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
        const float k0 = ESL_KV_AT(kv8, k, r, 0u);
        float da = q[0] * k0, db = 0.0f;
        if (nh == 2u) db = q[hs] * k0;
        ESL_ATT_UNROLL(GCC unroll 16)
        for (uint32_t i = 1; i < hs; i++) {
            const float ki = ESL_KV_AT(kv8, k, r, i);
            da = da + q[i] * ki;
            if (nh == 2u) db = db + q[hs + i] * ki;
        }
        if (kv8) {
            da = da * ks[t * n_kv];
            if (nh == 2u) db = db * ks[t * n_kv];
        }
        da = da * inv_sqrt_hs;
        ea[t] = da;
        if (da > ma) ma = da;
        if (nh == 2u) {
            db = db * inv_sqrt_hs;
            eb[t] = db;
            if (db > mb) mb = db;
        }
    }
    float sa = 0.0f, sb = 0.0f;
#if ESL_ATT_VFP
    if (nh == 2u)
        esl_exps2_vfp(ea, eb, n, ma, mb, &sa, &sb);
    else
#endif
    for (uint32_t t = 0; t < n; t++) {
        const float a = esl_expf_nonpos_inline(ea[t] - ma);
        ea[t] = a;
        sa = sa + a;
        if (nh == 2u) {
            const float b = esl_expf_nonpos_inline(eb[t] - mb);
            eb[t] = b;
            sb = sb + b;
        }
    }
    const float inva = 1.0f / sa, invb = (nh == 2u) ? 1.0f / sb : 0.0f;
#if ESL_ATT_VFP
    if (!kv8 && hs == 8u && nh == 2u) {
        esl_values8x2_vfp(o, ea, eb, (const float *)v, kv_dim * 4u, n, inva, invb);
        return;
    }
#endif
    if (ESL_ATT_SPECIALIZE && hs == 8u) {   /* every output of both heads in a register, one pass over t */
        float oa[8] = { 0.0f }, ob[8] = { 0.0f };
        for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
            float pa = ea[t] * inva, pb = 0.0f;
            if (nh == 2u) pb = eb[t] * invb;
            if (kv8) {
                pa = pa * vs[t * n_kv];
                if (nh == 2u) pb = pb * vs[t * n_kv];
            }
            ESL_ATT_UNROLL(GCC unroll 8)
            for (uint32_t i = 0; i < 8u; i++) {
                const float vi = ESL_KV_AT(kv8, v, r, i);
                oa[i] = oa[i] + pa * vi;
                if (nh == 2u) ob[i] = ob[i] + pb * vi;
            }
        }
        ESL_ATT_UNROLL(GCC unroll 8)
        for (uint32_t i = 0; i < 8u; i++) {
            o[i] = oa[i];
            if (nh == 2u) o[hs + i] = ob[i];
        }
        return;
    }
    for (uint32_t t = 0; t < n; t++) {     /* p in place, then four outputs a pass per head */
        ea[t] = ea[t] * inva;
        if (kv8) ea[t] = ea[t] * vs[t * n_kv];
        if (nh == 2u) {
            eb[t] = eb[t] * invb;
            if (kv8) eb[t] = eb[t] * vs[t * n_kv];
        }
    }
    for (uint32_t h = 0; h < nh; h++) {
        const float *p = att + h * n;
        float *oh = o + h * hs;
        uint32_t i = 0;
        for (; i + 4u <= hs; i += 4u) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
                const float pt = p[t];
                a0 = a0 + pt * ESL_KV_AT(kv8, v, r, i);
                a1 = a1 + pt * ESL_KV_AT(kv8, v, r, i + 1u);
                a2 = a2 + pt * ESL_KV_AT(kv8, v, r, i + 2u);
                a3 = a3 + pt * ESL_KV_AT(kv8, v, r, i + 3u);
            }
            oh[i] = a0;
            oh[i + 1u] = a1;
            oh[i + 2u] = a2;
            oh[i + 3u] = a3;
        }
        for (; i < hs; i++) {
            float acc = 0.0f;
            for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) acc = acc + p[t] * ESL_KV_AT(kv8, v, r, i);
            oh[i] = acc;
        }
    }
}

/* Heads [begin, end) of layer `layer` at pos: two at a time while consecutive heads share a kv head. */
__attribute__((always_inline)) static inline void esl_attend_heads(float *out, const float *q, const esl_model_t *m,
                                                                   uint32_t layer, uint32_t pos, uint32_t begin,
                                                                   uint32_t end, const int kv8, float *att)
{
    const uint32_t hs = m->head_size, kv_dim = m->kv_dim, n_kv = m->n_kv_heads, kv_mul = m->n_heads / n_kv;
    const uint32_t n = pos + 1u, row0 = layer * m->max_seq * kv_dim;
    const float scale = m->inv_sqrt_head_size;
    for (uint32_t h = begin; h < end;) {
        const uint32_t kvh = h / kv_mul;
        const uint32_t nh = (h + 1u < end && (h + 1u) / kv_mul == kvh) ? 2u : 1u;
        const void *k, *v;
        const float *ks = NULL, *vs = NULL;
        if (kv8) {
            k = m->kv.key_i8 + row0 + kvh * hs;
            v = m->kv.value_i8 + row0 + kvh * hs;
            ks = m->kv.key_scale + layer * m->max_seq * n_kv + kvh;
            vs = m->kv.value_scale + layer * m->max_seq * n_kv + kvh;
        } else {
            k = m->kv.key_f32 + row0 + kvh * hs;
            v = m->kv.value_f32 + row0 + kvh * hs;
        }
        float *o = out + h * hs;
        const float *qh = q + h * hs;
        if (!ESL_ATT_SPECIALIZE)
            esl_attend(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, nh, kv8, att);
        else if (hs == 8u && nh == 2u)
            esl_attend(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, 8u, 2u, kv8, att);
        else if (hs == 8u)
            esl_attend(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, 8u, 1u, kv8, att);
        else if (nh == 2u)
            esl_attend(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, 2u, kv8, att);
        else
            esl_attend(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, 1u, kv8, att);
        h += nh;
    }
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    float *out;
    const float *q;
    const esl_model_t *m;
    uint32_t layer, pos;
} esl_attention_job_t;

/* One worker's share: its contiguous range of heads, its scores in its own L1 scratch
 * (esl_cl_l1_scratch, sized by the planner). A head's arithmetic is the same on any core, so the
 * result is the single-core one bit for bit. */
#define ESL_ATTENTION_JOB(name, kv8)                                                                  \
    static void name(void *arg)                                                                       \
    {                                                                                                 \
        const esl_attention_job_t *j = arg;                                                           \
        const uint32_t core = esl_cl_core_id();                                                       \
        uint32_t begin, end;                                                                          \
        esl_cl_split(j->m->n_heads, 1u, core, esl_cl_cores(), &begin, &end);                          \
        esl_attend_heads(j->out, j->q, j->m, j->layer, j->pos, begin, end, (kv8),                     \
                         (float *)esl_cl_l1_scratch(core));                                           \
    }
#endif

#endif
