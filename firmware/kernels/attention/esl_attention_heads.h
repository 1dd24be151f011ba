/* The bodies of attention_f32 and attention_kv8 (included by both kernel files, static inline, so
 * each kernel is still one object with its own copy; kv8 is a constant where it is inlined).
 * For head h (kv head h / (n_heads / n_kv_heads)), t = 0..pos:
 *   f32:  score[t] = seqsum_i(q[i] * k[t][i]) * inv_sqrt_hs
 *         p = esl_softmax_f32(score), that is  mx = max score;  e[t] = esl_expf(score[t] - mx);
 *         inv = 1.0f / seqsum_t(e[t]);  p[t] = e[t] * inv
 *         out[i] = seqsum_t(p[t] * v[t][i])
 *   kv8:  integer dot products over the int8 cache, a fixed-point softmax (esl_attend_kv8 below)
 * Query heads that read the same kv head go two at a time (grouped-query attention), so each key
 * and value load (and int8 unpacking) feeds both; the max is kept while scoring, the exp is
 * esl_expf's for x <= 0, and with head size 8 (each head's outputs fit in registers) p[t] is
 * formed inside the weighted sum. A head's arithmetic is the same in a pair or alone. */
#ifndef ESL_ATTENTION_HEADS_H
#define ESL_ATTENTION_HEADS_H

#include <float.h>

#include "esl_expf_inline.h"
#include "esl_kernels.h"
#if ESL_KERNELS_DSP
#include "esl_arm_dsp.h"
#endif
#if ESL_KERNELS_MVE
#include <arm_mve.h>
#endif

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

/* e[t] = esl_expf(e[t] - m) in place and s = seqsum_t(e[t]) (from 0.0f), for one head or a pair. */
__attribute__((always_inline)) static inline void esl_att_exps(float *ea, float *eb, uint32_t n, float ma, float mb,
                                                               float *sa, float *sb, const uint32_t nh)
{
#if ESL_ATT_VFP
    if (nh == 2u) {
        esl_exps2_vfp(ea, eb, n, ma, mb, sa, sb);
        return;
    }
#endif
    float a_sum = 0.0f, b_sum = 0.0f;
    for (uint32_t t = 0; t < n; t++) {
        const float a = esl_expf_nonpos_inline(ea[t] - ma);
        ea[t] = a;
        a_sum = a_sum + a;
        if (nh == 2u) {
            const float b = esl_expf_nonpos_inline(eb[t] - mb);
            eb[t] = b;
            b_sum = b_sum + b;
        }
    }
    *sa = a_sum;
    *sb = b_sum;
}

/* nh (1 or 2) query heads from q (hs apart) over the n cached fp32 positions of one kv head: keys k,
 * values v (rows kv_dim apart); outputs to o (hs apart); att: float[2 * n]. hs and nh are
 * constants where this is inlined. */
__attribute__((always_inline)) static inline void esl_attend(
    float *restrict o, const float *restrict q, const float *k, const float *v, uint32_t kv_dim, uint32_t n,
    float inv_sqrt_hs, const uint32_t hs, const uint32_t nh, float *restrict att)
{
    float *const ea = att, *const eb = att + n;
    float ma = -FLT_MAX, mb = -FLT_MAX;
#if ESL_ATT_VFP
    if (hs == 8u && nh == 2u)
        esl_scores8x2_vfp(ea, eb, q, k, kv_dim * 4u, n, inv_sqrt_hs, &ma, &mb);
    else
#endif
    for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
        const float k0 = k[r];
        float da = q[0] * k0, db = 0.0f;
        if (nh == 2u) db = q[hs] * k0;
        ESL_ATT_UNROLL(GCC unroll 16)
        for (uint32_t i = 1; i < hs; i++) {
            const float ki = k[r + i];
            da = da + q[i] * ki;
            if (nh == 2u) db = db + q[hs + i] * ki;
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
    esl_att_exps(ea, eb, n, ma, mb, &sa, &sb, nh);
    const float inva = 1.0f / sa, invb = (nh == 2u) ? 1.0f / sb : 0.0f;
#if ESL_ATT_VFP
    if (hs == 8u && nh == 2u) {
        esl_values8x2_vfp(o, ea, eb, v, kv_dim * 4u, n, inva, invb);
        return;
    }
#endif
    if (ESL_ATT_SPECIALIZE && hs == 8u) {   /* every output of both heads in a register, one pass over t */
        float oa[8] = { 0.0f }, ob[8] = { 0.0f };
        for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
            const float pa = ea[t] * inva, pb = (nh == 2u) ? eb[t] * invb : 0.0f;
            ESL_ATT_UNROLL(GCC unroll 8)
            for (uint32_t i = 0; i < 8u; i++) {
                oa[i] = oa[i] + pa * v[r + i];
                if (nh == 2u) ob[i] = ob[i] + pb * v[r + i];
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
        if (nh == 2u) eb[t] = eb[t] * invb;
    }
    for (uint32_t h = 0; h < nh; h++) {
        const float *p = att + h * n;
        float *oh = o + h * hs;
        uint32_t i = 0;
        for (; i + 4u <= hs; i += 4u) {
            float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
            for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
                const float pt = p[t];
                a0 = a0 + pt * v[r + i];
                a1 = a1 + pt * v[r + i + 1u];
                a2 = a2 + pt * v[r + i + 2u];
                a3 = a3 + pt * v[r + i + 3u];
            }
            oh[i] = a0;
            oh[i + 1u] = a1;
            oh[i + 2u] = a2;
            oh[i + 3u] = a3;
        }
        for (; i < hs; i++) {
            float acc = 0.0f;
            for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) acc = acc + p[t] * v[r + i];
            oh[i] = acc;
        }
    }
}

/* kv8, per query head over the int8 cache (keys kq, values vq, one scale ks[t], vs[t] per position):
 *   (qq, qs) = esl_quantize_i16(q, hs, hs);  c = qs * inv_sqrt_hs
 *   score[t] = (float)isum_i(qq[i] * kq[t][i]) * (ks[t] * c)           isum: exact int32
 *   mx = max score;  e[t] = esl_exp8(min((mx - score[t]) * ESL_EXP8_SCALE, 8191.0f))   Q15, below
 *   sum = isum_t(e[t]) (uint32);  vmax = max_t vs[t];  below ESL_KV8_VMIN: out[i] = 0
 *   g = (1.0f / (float)sum) * (32767.0f / vmax)
 *   w[t] = min((int32)(((float)e[t] * vs[t]) * g + 0.5f), 32767)        p[t] * vs[t] / vmax in Q15
 *   out[i] = (float)isum_t(w[t] * vq[t][i]) * (vmax / 32767.0f)
 * No sum overflows: |qq| <= 32767, |kq| <= 127 and hs <= 512 keep |isum_i| < 2^31; e <= 2^15 keeps
 * the uint32 sum exact for n < 2^17; the w[t] add up to at most 32767 (1 + 2^-20) + n/2, so with
 * |vq| <= 127 isum_t is exact for any n < 2^24 (the planner caps head size and context).
 * The heads' w[t] (each < 2^15) are packed into one word per position, stored over e_a[t] once it is
 * read (esl_att_slot_t), so DSP builds multiply both heads by one unpacked value (SMLAxy). */
#define ESL_KV8_VMIN 0x1p-100f

/* Helium builds take head sizes that are multiples of 8 in whole int16x8 vectors (q in its own
 * order); the others go the DSP way. */
#if ESL_KERNELS_MVE
#define ESL_KV8_MVE(hs) ((hs) % 8u == 0u)
#else
#define ESL_KV8_MVE(hs) 0
#endif

/* q of one head as qq (int16) for esl_kv8_dot: DSP builds lay each 4 out as q0 q2 q1 q3 (SXTB16's
 * split of 4 keys into the even and odd bytes). Returns qs. */
static inline float esl_kv8_prepare_q(int16_t *qq, const float *q, uint32_t hs)
{
    float qs;
    esl_quantize_i16(qq, &qs, q, hs, hs);
#if ESL_KERNELS_DSP
    for (uint32_t i = 0; i + 4u <= hs && !ESL_KV8_MVE(hs); i += 4u) {
        const int16_t q1 = qq[i + 1u];
        qq[i + 1u] = qq[i + 2u];
        qq[i + 2u] = q1;
    }
#endif
    return qs;
}

/* A score slot of the scratch: score[t] (float), then e[t] (Q15), then for head a the pair of heads'
 * Q15 weights packed in a word (head a's in the low half). A union, so the views of one slot are not
 * an aliasing hazard. */
typedef union {
    float f;
    uint32_t w;
} esl_att_slot_t;

/* 2^(-d/256) in Q15 for d >= 0: the whole part of d / 256 shifts a table entry (0 from d >= 4096:
 * 2^-16 is below Q15's half unit; d is capped so the cast is defined). Mirrored by golden.exp8_q15. */
static inline uint32_t esl_exp8(float d)
{
    if (d > 8191.0f) d = 8191.0f;
    const uint32_t k = (uint32_t)(int32_t)d;
    return (uint32_t)esl_exp8_q15[k & 255u] >> (k >> 8);
}

/* min(x, 32767) for x >= 0 (USAT #15 on DSP builds). */
static inline uint32_t esl_kv8_q15(int32_t x)
{
#if ESL_KERNELS_DSP
    return (uint32_t)__usat(x, 15);
#else
    return (uint32_t)(x > 32767 ? 32767 : x);
#endif
}

/* The exact sums of both heads' qq (qa, qb: nh == 1 leaves *db alone) against one int8 key. */
__attribute__((always_inline)) static inline void esl_kv8_dot(int32_t *da, int32_t *db, const int16_t *qa,
                                                              const int16_t *qb, const int8_t *k, uint32_t hs,
                                                              const uint32_t nh)
{
    int32_t a = 0, b = 0;
    uint32_t i = 0;
#if ESL_KERNELS_MVE
    if (ESL_KV8_MVE(hs)) {     /* 8 keys widened by one VLDRB.S16, one VMLADAVA a head */
        ESL_ATT_UNROLL(GCC unroll 8)
        for (; i < hs; i += 8u) {
            const int16x8_t kv = vldrbq_s16(k + i);
            a = vmladavaq_s16(a, kv, vld1q_s16(qa + i));
            if (nh == 2u) b = vmladavaq_s16(b, kv, vld1q_s16(qb + i));
        }
    }
#endif
#if ESL_KERNELS_DSP
    ESL_ATT_UNROLL(GCC unroll 16)
    for (; i + 4u <= hs; i += 4u) {
        const uint32_t k4 = esl_ld32(k + i), k02 = __sxtb16(k4), k13 = esl_sxtb16_ror8(k4);
        a = __smlad(k02, esl_ld32(qa + i), a);            /* q0*k0 + q2*k2 */
        a = __smlad(k13, esl_ld32(qa + i + 2u), a);       /* q1*k1 + q3*k3 */
        if (nh == 2u) {
            b = __smlad(k02, esl_ld32(qb + i), b);
            b = __smlad(k13, esl_ld32(qb + i + 2u), b);
        }
    }
#endif
    ESL_ATT_UNROLL(GCC unroll 16)
    for (; i < hs; i++) {
        a += qa[i] * k[i];
        if (nh == 2u) b += qb[i] * k[i];
    }
    *da = a;
    if (nh == 2u) *db = b;
}

/* acc[j] += w * vq[j], j < 4, for both heads (w: head a's weight in the low half, head b's high). */
__attribute__((always_inline)) static inline void esl_kv8_mac4(int32_t *oa, int32_t *ob, uint32_t w,
                                                               const int8_t *vq, const uint32_t nh)
{
#if ESL_KERNELS_DSP
    const uint32_t v4 = esl_ld32(vq), v02 = __sxtb16(v4), v13 = esl_sxtb16_ror8(v4);
    oa[0] = __smlabb((int32_t)w, (int32_t)v02, oa[0]);
    oa[2] = __smlabt((int32_t)w, (int32_t)v02, oa[2]);
    oa[1] = __smlabb((int32_t)w, (int32_t)v13, oa[1]);
    oa[3] = __smlabt((int32_t)w, (int32_t)v13, oa[3]);
    if (nh == 2u) {
        ob[0] = __smlatb((int32_t)w, (int32_t)v02, ob[0]);
        ob[2] = __smlatt((int32_t)w, (int32_t)v02, ob[2]);
        ob[1] = __smlatb((int32_t)w, (int32_t)v13, ob[1]);
        ob[3] = __smlatt((int32_t)w, (int32_t)v13, ob[3]);
    }
#else
    const int32_t wa = (int32_t)(w & 0xffffu), wb = (int32_t)(w >> 16);
    ESL_ATT_UNROLL(GCC unroll 4)
    for (uint32_t j = 0; j < 4u; j++) {
        oa[j] += wa * vq[j];
        if (nh == 2u) ob[j] += wb * vq[j];
    }
#endif
}

#if ESL_KERNELS_DSP && defined(__thumb2__) && defined(__ARM_FEATURE_DSP)
#define ESL_KV8_ASM 1
typedef struct {
    int32_t *acc;                /* out: head a's 4 sums, then head b's */
    const uint32_t *w, *w_end;   /* the packed weights of positions 0..n-1 (n >= 1) */
    const int8_t *v;             /* v[0][d], rows stride bytes apart */
    uint32_t stride;
} esl_kv8_sum4x2_t;

/* The weighted sums of a pair of heads over 4 value dims d..d+3:  acc[j] = isum_t(wa[t] * v[t][d+j]),
 * acc[4 + j] = isum_t(wb[t] * v[t][d+j]). The eight sums stay in r4-r11 for the whole loop (gcc's C
 * kept half of them on the stack); per position 16 instructions: the two loads, the row step, two
 * SXTB16, eight SMLAxy (wa, wb the halves of w), and the end test (w_end is on the stack). */
__attribute__((naked, noinline)) static void esl_kv8_sum4x2(__attribute__((unused)) const esl_kv8_sum4x2_t *a)
{
    __asm__ volatile(
        "push    {r4-r11, lr}\n\t"
        "ldr     r12, [r0, #8]\n\t"         /* w_end */
        "push    {r0, r12}\n\t"             /* [sp]: a, [sp, #4]: w_end */
        "ldr     r1, [r0, #4]\n\t"          /* w */
        "ldr     r2, [r0, #12]\n\t"         /* v */
        "ldr     r3, [r0, #16]\n\t"         /* stride */
        "movs    r4, #0\n\t"
        "movs    r5, #0\n\t"
        "movs    r6, #0\n\t"
        "movs    r7, #0\n\t"
        "movs    r8, #0\n\t"
        "movs    r9, #0\n\t"
        "movs    r10, #0\n\t"
        "movs    r11, #0\n\t"
        "1:\n\t"
        "ldr     r12, [r1], #4\n\t"         /* wa | wb << 16 */
        "ldr     lr, [r2]\n\t"              /* v[t][d..d+3] */
        "add     r2, r2, r3\n\t"
        "sxtb16  r0, lr\n\t"                /* v0, v2 */
        "sxtb16  lr, lr, ror #8\n\t"        /* v1, v3 */
        "smlabb  r4, r12, r0, r4\n\t"       /* a0 += wa * v0 */
        "smlabt  r6, r12, r0, r6\n\t"       /* a2 += wa * v2 */
        "smlatb  r8, r12, r0, r8\n\t"       /* b0 += wb * v0 */
        "smlatt  r10, r12, r0, r10\n\t"     /* b2 += wb * v2 */
        "smlabb  r5, r12, lr, r5\n\t"       /* a1 */
        "smlabt  r7, r12, lr, r7\n\t"       /* a3 */
        "smlatb  r9, r12, lr, r9\n\t"       /* b1 */
        "smlatt  r11, r12, lr, r11\n\t"     /* b3 */
        "ldr     r0, [sp, #4]\n\t"
        "cmp     r1, r0\n\t"
        "bne     1b\n\t"
        "ldr     r0, [sp]\n\t"
        "ldr     r0, [r0]\n\t"              /* acc */
        "stmia   r0, {r4-r11}\n\t"
        "add     sp, sp, #8\n\t"
        "pop     {r4-r11, pc}\n\t");
}
#else
#define ESL_KV8_ASM 0
#endif

/* nh (1 or 2) query heads over the n cached int8 positions of one kv head: keys k, values v (rows
 * kv_dim apart), scales ks, vs (n_kv apart); outputs to o (hs apart); att: float[2 * n], then
 * int16[2 * hs] for the heads' qq. hs and nh are constants where this is inlined. */
__attribute__((always_inline)) static inline void esl_attend_kv8(
    float *restrict o, const float *restrict q, const int8_t *k, const int8_t *v, const float *ks, const float *vs,
    uint32_t kv_dim, uint32_t n_kv, uint32_t n, float inv_sqrt_hs, const uint32_t hs, const uint32_t nh,
    float *restrict att)
{
    float *const ea = att, *const eb = att + n;
    /* A head size of at most 8 keeps q in a local array (in registers once unrolled), else q goes to
     * the scratch after the scores. */
    int16_t q_local[16];
    int16_t *const qa = (hs <= 8u) ? q_local : (int16_t *)(void *)(att + 2u * n), *const qb = qa + hs;
    const float ca = esl_kv8_prepare_q(qa, q, hs) * inv_sqrt_hs;
    const float cb = (nh == 2u) ? esl_kv8_prepare_q(qb, q + hs, hs) * inv_sqrt_hs : 0.0f;
    float ma = -FLT_MAX, mb = -FLT_MAX, vmax = 0.0f;
    for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
        int32_t da, db = 0;
        esl_kv8_dot(&da, &db, qa, qb, k + r, hs, nh);
        const float kt = ks[t * n_kv], vt = vs[t * n_kv];
        const float sa = (float)da * (kt * ca);
        ea[t] = sa;
        if (sa > ma) ma = sa;
        if (nh == 2u) {
            const float sb = (float)db * (kt * cb);
            eb[t] = sb;
            if (sb > mb) mb = sb;
        }
        if (vt > vmax) vmax = vt;
    }
    if (!(vmax >= ESL_KV8_VMIN)) {
        for (uint32_t i = 0; i < nh * hs; i++) o[i] = 0.0f;
        return;
    }
    esl_att_slot_t *const slot = (esl_att_slot_t *)(void *)ea, *const slot_b = (esl_att_slot_t *)(void *)eb;
    uint32_t sa = 0u, sb = 0u;              /* e[t] replaces score[t] */
    for (uint32_t t = 0; t < n; t++) {
        const uint32_t a = esl_exp8((ma - slot[t].f) * ESL_EXP8_SCALE);
        slot[t].w = a;
        sa += a;
        if (nh == 2u) {
            const uint32_t b = esl_exp8((mb - slot_b[t].f) * ESL_EXP8_SCALE);
            slot_b[t].w = b;
            sb += b;
        }
    }
    const float vq_max = 32767.0f / vmax;
    const float ga = (1.0f / (float)sa) * vq_max, gb = (nh == 2u) ? (1.0f / (float)sb) * vq_max : 0.0f;
    for (uint32_t t = 0; t < n; t++) {      /* w[t] replaces e_a[t] once it is read */
        const float vt = vs[t * n_kv];      /* (e * vt) * g + 0.5f >= 0.5f: only the top needs a clamp */
        const uint32_t wa = esl_kv8_q15((int32_t)(((float)slot[t].w * vt) * ga + 0.5f));
        const uint32_t wb = (nh == 2u) ? esl_kv8_q15((int32_t)(((float)slot_b[t].w * vt) * gb + 0.5f)) : 0u;
        slot[t].w = wa | (wb << 16);
    }
    const float oscale = vmax / 32767.0f;
#if ESL_KERNELS_MVE
    if (hs == 8u) {     /* both heads' 8 sums in four int32x4 vectors: per position 2 VLDRB.S32, 4 VMLA */
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, b0 = a0, b1 = a0;
        for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
            const uint32_t w = slot[t].w;
            const int32_t wa = (int32_t)(w & 0xffffu), wb = (int32_t)(w >> 16);
            const int32x4_t v0 = vldrbq_s32(v + r), v1 = vldrbq_s32(v + r + 4u);
            a0 = vmlaq_n_s32(a0, v0, wa);
            a1 = vmlaq_n_s32(a1, v1, wa);
            if (nh == 2u) {
                b0 = vmlaq_n_s32(b0, v0, wb);
                b1 = vmlaq_n_s32(b1, v1, wb);
            }
        }
        int32_t acc[16];
        vst1q_s32(acc, a0);
        vst1q_s32(acc + 4, a1);
        vst1q_s32(acc + 8, b0);
        vst1q_s32(acc + 12, b1);
        for (uint32_t i = 0; i < 8u; i++) {
            o[i] = (float)acc[i] * oscale;
            if (nh == 2u) o[hs + i] = (float)acc[8u + i] * oscale;
        }
        return;
    }
#endif
#if ESL_KV8_ASM
    if (nh == 2u && hs % 4u == 0u) {
        int32_t acc[8];
        for (uint32_t i = 0; i < hs; i += 4u) {
            const esl_kv8_sum4x2_t job = { acc, &slot[0].w, &slot[n].w, v + i, kv_dim };
            esl_kv8_sum4x2(&job);
            for (uint32_t j = 0; j < 4u; j++) {
                o[i + j] = (float)acc[j] * oscale;
                o[hs + i + j] = (float)acc[4u + j] * oscale;
            }
        }
        return;
    }
#endif
    if (ESL_ATT_SPECIALIZE && hs == 8u) {   /* every sum of both heads in a register, one pass over t */
        int32_t oa[8] = { 0 }, ob[8] = { 0 };
        for (uint32_t t = 0, r = 0; t < n; t++, r += kv_dim) {
            const uint32_t w = slot[t].w;
            const int32_t wa = (int32_t)(w & 0xffffu), wb = (int32_t)(w >> 16);
            ESL_ATT_UNROLL(GCC unroll 8)
            for (uint32_t i = 0; i < 8u; i++) {
                oa[i] += wa * v[r + i];
                if (nh == 2u) ob[i] += wb * v[r + i];
            }
        }
        ESL_ATT_UNROLL(GCC unroll 8)
        for (uint32_t i = 0; i < 8u; i++) {
            o[i] = (float)oa[i] * oscale;
            if (nh == 2u) o[hs + i] = (float)ob[i] * oscale;
        }
        return;
    }
    uint32_t i = 0;
    for (; i + 4u <= hs; i += 4u) {
        int32_t oa[4] = { 0, 0, 0, 0 }, ob[4] = { 0, 0, 0, 0 };
        for (uint32_t t = 0, r = i; t < n; t++, r += kv_dim) esl_kv8_mac4(oa, ob, slot[t].w, v + r, nh);
        for (uint32_t j = 0; j < 4u; j++) {
            o[i + j] = (float)oa[j] * oscale;
            if (nh == 2u) o[hs + i + j] = (float)ob[j] * oscale;
        }
    }
    for (; i < hs; i++) {
        int32_t a = 0, b = 0;
        for (uint32_t t = 0, r = i; t < n; t++, r += kv_dim) {
            a += (int32_t)(slot[t].w & 0xffffu) * v[r];
            if (nh == 2u) b += (int32_t)(slot[t].w >> 16) * v[r];
        }
        o[i] = (float)a * oscale;
        if (nh == 2u) o[hs + i] = (float)b * oscale;
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
        float *o = out + h * hs;
        const float *qh = q + h * hs;
        if (kv8) {
            const int8_t *k = m->kv.key_i8 + row0 + kvh * hs, *v = m->kv.value_i8 + row0 + kvh * hs;
            const float *ks = m->kv.key_scale + layer * m->max_seq * n_kv + kvh;
            const float *vs = m->kv.value_scale + layer * m->max_seq * n_kv + kvh;
            if (!ESL_ATT_SPECIALIZE)
                esl_attend_kv8(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, nh, att);
            else if (hs == 8u && nh == 2u)
                esl_attend_kv8(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, 8u, 2u, att);
            else if (hs == 8u)
                esl_attend_kv8(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, 8u, 1u, att);
            else if (nh == 2u)
                esl_attend_kv8(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, 2u, att);
            else
                esl_attend_kv8(o, qh, k, v, ks, vs, kv_dim, n_kv, n, scale, hs, 1u, att);
        } else {
            const float *k = m->kv.key_f32 + row0 + kvh * hs, *v = m->kv.value_f32 + row0 + kvh * hs;
            if (!ESL_ATT_SPECIALIZE)
                esl_attend(o, qh, k, v, kv_dim, n, scale, hs, nh, att);
            else if (hs == 8u && nh == 2u)
                esl_attend(o, qh, k, v, kv_dim, n, scale, 8u, 2u, att);
            else if (hs == 8u)
                esl_attend(o, qh, k, v, kv_dim, n, scale, 8u, 1u, att);
            else if (nh == 2u)
                esl_attend(o, qh, k, v, kv_dim, n, scale, hs, 2u, att);
            else
                esl_attend(o, qh, k, v, kv_dim, n, scale, hs, 1u, att);
        }
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
