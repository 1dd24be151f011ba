/* esl_quantize_i8 (esl_kernels.h): per group, amax = max|x|, s = amax / 127.0f, inv = 127.0f / amax,
 * q[j] = clamp((int32_t)(x[j]*inv + (x[j] >= 0 ? .5f : -.5f)), -127, 127); an all-zero group gives
 * s = 0, q = 0. esl_quantize_i16: the same with 32767 for 127 and int16 q (QMAX below). The same
 * arithmetic, written for fewer instructions:
 *   - amax compares IEEE bit patterns with the sign shifted out: for numbers, the unsigned order of
 *     (bits << 1) is the order of |x|, so the largest pattern is max|x|. A NaN (a pattern above
 *     infinity's) is never max|x| in the float loop, so a group holding one is scanned by that loop.
 *   - With amax finite and inv = 127.0f / amax finite, |x[j]*inv| <= amax * inv <= 127 * (1 + 2^-24)
 *     rounds to at most 127 + 2^-17 (32767 + 2^-9), so the sum with +-.5f truncates to [-QMAX, QMAX]: the clamp never
 *     acts and the Cortex-M and RV32 branches leave it out. The rounding term is .5f with the sign bit of x
 *     (BFI of x's bits over 0x3F000000; RV32: FSGNJ.S): -.5f instead of .5f only for x = -0, where t = -0 and both
 *     sums truncate to 0. Every other group (and every element of a group's last len % 4) takes the
 *     C expression as written. */
#include <string.h>

#include "esl_kernels.h"

#if defined(__thumb2__) && defined(__ARM_FP) && (__ARM_FP & 4)
#define QUANTIZE_ASM 1        /* v7-M / v8-M Mainline with a single-precision FPU (M4F, M7, M33, M55) */
#else
#define QUANTIZE_ASM 0
#endif
/* RV32 with single-precision floats (the GAP9 stand-in's cores): the same two loops, 8 elements a
 * pass. amax: LW, SLLI, BGEU (and MV when it grows); q: FLW, FMUL, FSGNJ.S (.5f with x's sign
 * bit: the BFI above), FADD, FCVT.W.S RTZ (the C cast), SH/SB: 6 instructions an element where the
 * compiled C takes about 17 (the comparison for the rounding term, the clamp's branches). */
#if defined(__riscv) && __riscv_xlen == 32 && defined(__riscv_flen) && !QUANTIZE_ASM
#define QUANTIZE_RV32 1
#else
#define QUANTIZE_RV32 0
#endif

/* The largest |x[j]|, j < n, as its bit pattern shifted left by one (a NaN: above 0xFF000000). */
static uint32_t amax_bits2(const float *x, uint32_t n)
{
    uint32_t m = 0, j = 0;
#if QUANTIZE_ASM
    if (n >= 8u) {                        /* 8 at a time: LDM, then CMP, IT, LSL per element */
        const float *p = x, *const end = x + (n & ~7u);
        __asm__ volatile(
            "1:\n\t"
            "ldmia  %[p]!, {r4, r5, r6, r7, r8, r9, r10, r11}\n\t"
            ".irp r, r4, r5, r6, r7, r8, r9, r10, r11\n\t"
            "cmp    %[m], \\r, lsl #1\n\t"
            "it     lo\n\t"
            "lsllo  %[m], \\r, #1\n\t"
            ".endr\n\t"
            "cmp    %[p], %[end]\n\t"
            "bne    1b\n\t"
            : [m] "+r"(m), [p] "+r"(p)
            : [end] "r"(end)
            : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "cc", "memory");
        j = n & ~7u;
    }
    if (n - j >= 4u) {                    /* then 4 */
        const float *p = x + j;
        __asm__ volatile(
            "ldmia  %[p], {r4, r5, r6, r7}\n\t"
            ".irp r, r4, r5, r6, r7\n\t"
            "cmp    %[m], \\r, lsl #1\n\t"
            "it     lo\n\t"
            "lsllo  %[m], \\r, #1\n\t"
            ".endr\n\t"
            : [m] "+r"(m)
            : [p] "r"(p)
            : "r4", "r5", "r6", "r7", "cc", "memory");
        j += 4u;
    }
#endif
#if QUANTIZE_RV32
    if (n >= 8u) {
        const float *p = x, *const end = x + (n & ~7u);
        uint32_t b;
        __asm__ volatile(
            "1:\n\t"
            ".irp k, 0, 4, 8, 12, 16, 20, 24, 28\n\t"
            "lw     %[b], \\k(%[p])\n\t"
            "slli   %[b], %[b], 1\n\t"
            "bgeu   %[m], %[b], 2f\n\t"
            "mv     %[m], %[b]\n"
            "2:\n\t"
            ".endr\n\t"
            "addi   %[p], %[p], 32\n\t"
            "bne    %[p], %[end], 1b\n\t"
            : [m] "+r"(m), [p] "+r"(p), [b] "=&r"(b)
            : [end] "r"(end)
            : "memory");
        j = n & ~7u;
    }
#endif
    for (; j < n; j++) {
        const uint32_t b = esl_f32_bits(x[j]) << 1;
        if (b > m) m = b;
    }
    return m;
}

/* 8 elements (4 with ".irp i, 0, 1, 2, 3"): x in s0-s7 (and its bits in r4-r11 for the rounding
 * term); q stored by `st` (strb, strh) through o, post-incremented by `size`. */
#define QUANTIZE_STORE(st, size) ".irp r, r4, r5, r6, r7, r8, r9, r10, r11\n\t" st " \\r, [%[o]], #" size "\n\t.endr\n\t"
#define QUANTIZE_STORE4(st, size) ".irp r, r4, r5, r6, r7\n\t" st " \\r, [%[o]], #" size "\n\t.endr\n\t"

#define QUANTIZE_8(st, size)                                                                       \
    __asm__ volatile(              /* 8 at a time, x in s0-s7 and r4-r11 */                         \
        "1:\n\t"                                                                                    \
        "vldmia  %[p], {s0-s7}\n\t"                                                                 \
        "ldmia   %[p]!, {r4, r5, r6, r7, r8, r9, r10, r11}\n\t"                                     \
        ".irp r, r4, r5, r6, r7, r8, r9, r10, r11\n\t"                                              \
        "bfi     \\r, %[half], #0, #31\n\t"    /* (x >= 0 ? .5f : -.5f) by x's sign bit */          \
        ".endr\n\t"                                                                                 \
        "vmov    s8, s9, r4, r5\n\t"                                                                \
        "vmov    s10, s11, r6, r7\n\t"                                                              \
        "vmov    s12, s13, r8, r9\n\t"                                                              \
        "vmov    s14, s15, r10, r11\n\t"                                                            \
        ".irp i, 0, 1, 2, 3, 4, 5, 6, 7\n\t"                                                        \
        "vmul.f32 s\\i, s\\i, %[inv]\n\t"       /* x * inv */                                       \
        ".endr\n\t"                                                                                 \
        "vadd.f32 s0, s0, s8\n\t"              /* + the rounding term */                            \
        "vadd.f32 s1, s1, s9\n\t"                                                                   \
        "vadd.f32 s2, s2, s10\n\t"                                                                  \
        "vadd.f32 s3, s3, s11\n\t"                                                                  \
        "vadd.f32 s4, s4, s12\n\t"                                                                  \
        "vadd.f32 s5, s5, s13\n\t"                                                                  \
        "vadd.f32 s6, s6, s14\n\t"                                                                  \
        "vadd.f32 s7, s7, s15\n\t"                                                                  \
        ".irp i, 0, 1, 2, 3, 4, 5, 6, 7\n\t"                                                        \
        "vcvt.s32.f32 s\\i, s\\i\n\t"          /* truncation, as the C cast */                     \
        ".endr\n\t"                                                                                 \
        "vmov    r4, r5, s0, s1\n\t"                                                                \
        "vmov    r6, r7, s2, s3\n\t"                                                                \
        "vmov    r8, r9, s4, s5\n\t"                                                                \
        "vmov    r10, r11, s6, s7\n\t"                                                              \
        QUANTIZE_STORE(st, size)                                                                   \
        "cmp     %[p], %[end]\n\t"                                                                  \
        "bne     1b\n\t"                                                                            \
        : [p] "+r"(p), [o] "+r"(o)                                                                 \
        : [end] "r"(end), [inv] "t"(inv), [half] "r"(0x3F000000u)                                  \
        : "r4", "r5", "r6", "r7", "r8", "r9", "r10", "r11", "s0", "s1", "s2", "s3", "s4", "s5",     \
          "s6", "s7", "s8", "s9", "s10", "s11", "s12", "s13", "s14", "s15", "cc", "memory")

#define QUANTIZE_4(st, size)                                                                       \
    __asm__ volatile(                                                                              \
        "vldmia  %[p], {s0-s3}\n\t"                                                                 \
        "ldmia   %[p], {r4, r5, r6, r7}\n\t"                                                        \
        ".irp r, r4, r5, r6, r7\n\t"                                                                \
        "bfi     \\r, %[half], #0, #31\n\t"                                                          \
        ".endr\n\t"                                                                                 \
        "vmov    s4, s5, r4, r5\n\t"                                                                \
        "vmov    s6, s7, r6, r7\n\t"                                                                \
        ".irp i, 0, 1, 2, 3\n\t"                                                                    \
        "vmul.f32 s\\i, s\\i, %[inv]\n\t"                                                           \
        ".endr\n\t"                                                                                 \
        "vadd.f32 s0, s0, s4\n\t"                                                                   \
        "vadd.f32 s1, s1, s5\n\t"                                                                   \
        "vadd.f32 s2, s2, s6\n\t"                                                                   \
        "vadd.f32 s3, s3, s7\n\t"                                                                   \
        ".irp i, 0, 1, 2, 3\n\t"                                                                    \
        "vcvt.s32.f32 s\\i, s\\i\n\t"                                                               \
        ".endr\n\t"                                                                                 \
        "vmov    r4, r5, s0, s1\n\t"                                                                \
        "vmov    r6, r7, s2, s3\n\t"                                                                \
        QUANTIZE_STORE4(st, size)                                                                  \
        : [o] "+r"(o)                                                                              \
        : [p] "r"(p), [inv] "t"(inv), [half] "r"(0x3F000000u)                                      \
        : "r4", "r5", "r6", "r7", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "memory")

#if QUANTIZE_RV32
/* 8 elements a pass from p to end, q stored by `st` (sh, sb) of `size` bytes through o. */
#define RV32_QUANTIZE_8(st, size)                                                                  \
    __asm__ volatile(                                                                              \
        "1:\n\t"                                                                                    \
        ".irp k, 0, 1, 2, 3, 4, 5, 6, 7\n\t"                                                        \
        "flw    %[h], 4*\\k(%[p])\n\t"                                                              \
        "fmul.s %[t], %[h], %[inv]\n\t"           /* x * inv */                                    \
        "fsgnj.s %[h], %[half], %[h]\n\t"         /* (x >= 0 ? .5f : -.5f) by x's sign bit */       \
        "fadd.s %[t], %[t], %[h]\n\t"                                                               \
        "fcvt.w.s %[b], %[t], rtz\n\t"            /* truncation, as the C cast */                  \
        st "     %[b], " size "*\\k(%[o])\n\t"                                                        \
        ".endr\n\t"                                                                                 \
        "addi   %[p], %[p], 32\n\t"                                                                 \
        "addi   %[o], %[o], 8*" size "\n\t"                                                          \
        "bne    %[p], %[end], 1b\n\t"                                                               \
        : [p] "+r"(p), [o] "+r"(o), [b] "=&r"(b), [t] "=&f"(t), [h] "=&f"(h)                      \
        : [end] "r"(end), [inv] "f"(inv), [half] "f"(0.5f)                                        \
        : "memory")
#endif

/* One group of len: q[j] for j in [lo, hi) (int8, or int16 with wide), and its scale *s unless s
 * is NULL; amax is always the whole group's, so parts of a group quantized apart (cluster workers
 * sharing it) give the whole group's q and s. Out of line, so that the loop over the groups keeps
 * its few values in registers around the assembly (which takes r4-r11). */
__attribute__((noinline)) static void quantize_group(void *qg, float *s, const float *xg, uint32_t len, uint32_t lo,
                                                     uint32_t hi, int wide)
{
    const float qmax = wide ? 32767.0f : 127.0f;
    const int32_t qi = wide ? 32767 : 127;
    int8_t *const q8 = qg;
    int16_t *const q16 = qg;
    const uint32_t m = amax_bits2(xg, len);
    float amax = 0.0f;
    if (m > 0xFF000000u) {                            /* a NaN: max|x| of the numbers only */
        for (uint32_t j = 0; j < len; j++) {
            const float a = xg[j] >= 0.0f ? xg[j] : -xg[j];
            if (a > amax) amax = a;
        }
    } else {
        const uint32_t b = m >> 1;
        memcpy(&amax, &b, 4);
    }
    if (amax == 0.0f) {
        if (s) *s = 0.0f;
        for (uint32_t j = lo; j < hi; j++) {
            if (wide) q16[j] = 0;
            else q8[j] = 0;
        }
        return;
    }
    if (s) *s = amax / qmax;
    const float inv = qmax / amax;
    uint32_t j = lo;
#if QUANTIZE_ASM
    if (m < 0xFF000000u && esl_f32_bits(inv) < 0x7F800000u) {                     /* amax, inv finite */
        const uint32_t n = hi - lo;
        const float *p = xg + lo, *const end = p + (n & ~7u);
        if (wide) {
            int16_t *o = q16 + lo;
            if (p != end) QUANTIZE_8("strh", "2");
            if (n & 4u) QUANTIZE_4("strh", "2");
        } else {
            int8_t *o = q8 + lo;
            if (p != end) QUANTIZE_8("strb", "1");
            if (n & 4u) QUANTIZE_4("strb", "1");
        }
        j = lo + (n & ~3u);
    }
#endif
#if QUANTIZE_RV32
    if (m < 0xFF000000u && esl_f32_bits(inv) < 0x7F800000u && hi - lo >= 8u) {    /* amax, inv finite */
        const uint32_t n = hi - lo;
        const float *p = xg + lo, *const end = p + (n & ~7u);
        int32_t b;
        float t, h;
        if (wide) {
            int16_t *o = q16 + lo;
            RV32_QUANTIZE_8("sh", "2");
        } else {
            int8_t *o = q8 + lo;
            RV32_QUANTIZE_8("sb", "1");
        }
        j = lo + (n & ~7u);
    }
#endif
    for (; j < hi; j++) {
        int32_t v = (int32_t)(xg[j] * inv + (xg[j] >= 0.0f ? 0.5f : -0.5f));
        if (v > qi) v = qi;
        if (v < -qi) v = -qi;
        if (wide) q16[j] = (int16_t)v;
        else q8[j] = (int8_t)v;
    }
}

void esl_quantize_i8(int8_t *q, float *s, const float *x, uint32_t n, uint32_t gs)
{
    for (uint32_t g = 0, start = 0; start < n; g++, start += gs) {
        const uint32_t len = (start + gs < n) ? gs : n - start;
        quantize_group(q + start, s + g, x + start, len, 0u, len, 0);
    }
}

void esl_quantize_i16(int16_t *q, float *s, const float *x, uint32_t n, uint32_t gs)
{
    for (uint32_t g = 0, start = 0; start < n; g++, start += gs) {
        const uint32_t len = (start + gs < n) ? gs : n - start;
        quantize_group(q + start, s + g, x + start, len, 0u, len, 1);
    }
}

void esl_quantize_i8_part(int8_t *q, float *s, const float *x, uint32_t len, uint32_t lo, uint32_t hi)
{
    quantize_group(q, s, x, len, lo, hi, 0);
}

void esl_quantize_i16_part(int16_t *q, float *s, const float *x, uint32_t len, uint32_t lo, uint32_t hi)
{
    quantize_group(q, s, x, len, lo, hi, 1);
}
