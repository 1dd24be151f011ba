/* matmul_w4f: int4 weights in [-7, 7] (two per byte, element 2j in the low nibble, rows padded to
 * a whole byte), float activations; the arithmetic of matmul_w8f: x quantized by esl_quantize_i8,
 * isum per group exact in int32, y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order.
 * scratch: xq int8[round_up(cols, 4)], then xs float[n_groups]; (DSP) then xsum int32[n_groups],
 * then x16 int16[cols] (the fast path for groups of 32 or 16 lays x out again as one stream of
 * groups over xs, xsum and x16). */
#include "esl_kernels.h"

/* Two's complement nibble -> int32. */
static inline int32_t nibble(uint32_t v)
{
    return (int32_t)(v & 0x0Fu) - (int32_t)((v & 0x08u) << 1);
}

#if ESL_KERNELS_DSP
/* Cortex-M DSP extension, any group size (groups of 32 or 16 with an FPU take the fast path
 * further down): 8 weights per 32-bit load. With u = nibble ^ 8 (0..15), w = u - 8, so
 * sum(w * x) = sum(u * x) - 8 * sum(x), exact in int32. v ^ 0x88888888 gives the u nibbles; AND with
 * 0x0F0F0F0F gives (u0, u2, u4, u6) as bytes, the same after LSR #4 (u1, u3, u5, u7); UXTB16 (and
 * UXTB16 ROR #8) makes int16 pairs (u0, u4), (u2, u6), (u1, u5), (u3, u7), and x is laid out once
 * per call in that order, per 8-chunk of a group, so four SMLADs do 8 MACs. sum(x) over the
 * chunked part of each group is computed once per call too. Tail elements (n % 8) go by nibble(). */
#include "esl_arm_dsp.h"

/* x16 per group: each 8-chunk as (x0, x4, x2, x6, x1, x5, x3, x7), the tail as is; xsum[g] = sum of
 * the chunked elements of group g. */
static void prepare_x(const int8_t *xq, int16_t *x16, int32_t *xsum, uint32_t cols, uint32_t gs)
{
    for (uint32_t g = 0, start = 0; start < cols; g++, start += gs) {
        const uint32_t n = (start + gs < cols) ? gs : cols - start;
        const int8_t *x = xq + start;
        int16_t *o = x16 + start;
        int32_t sum = 0;
        uint32_t j = 0;
        for (; j + 8u <= n; j += 8u) {
            o[j] = x[j];
            o[j + 1u] = x[j + 4u];
            o[j + 2u] = x[j + 2u];
            o[j + 3u] = x[j + 6u];
            o[j + 4u] = x[j + 1u];
            o[j + 5u] = x[j + 5u];
            o[j + 6u] = x[j + 3u];
            o[j + 7u] = x[j + 7u];
            for (uint32_t k = 0; k < 8u; k++) sum += x[j + k];
        }
        for (; j < n; j++) o[j] = x[j];
        xsum[g] = sum;
    }
}

/* The packed-nibble tail of one row's group: elements [j, n) of the group at b (bytes) and x. */
static int32_t tail_i4(const uint8_t *b, const int16_t *x, uint32_t j, uint32_t n)
{
    int32_t acc = 0;
    for (; j + 2u <= n; j += 2u) {
        const uint32_t v = b[j >> 1];
        acc += nibble(v) * (int32_t)x[j] + nibble(v >> 4) * (int32_t)x[j + 1u];
    }
    if (j < n) acc += nibble(b[j >> 1]) * (int32_t)x[j];
    return acc;
}

/* 4 MACs of sum(u * x): a word of 8 nibbles (already ^ 0x88888888) against 4 words of x16. */
#define W4F_CHUNK(acc, u, xp)                                              \
    do {                                                                   \
        const uint32_t lo_ = (u) & 0x0F0F0F0Fu, hi_ = ((u) >> 4) & 0x0F0F0F0Fu; \
        acc = __smlad(__uxtb16(lo_), (xp)[0], acc);      /* u0*x0 + u4*x4 */  \
        acc = __smlad(esl_uxtb16_ror8(lo_), (xp)[1], acc);   /* u2*x2 + u6*x6 */  \
        acc = __smlad(__uxtb16(hi_), (xp)[2], acc);      /* u1*x1 + u5*x5 */  \
        acc = __smlad(esl_uxtb16_ror8(hi_), (xp)[3], acc);   /* u3*x3 + u7*x7 */  \
    } while (0)

/* Sums of rows r0 and r1 over the group at [start, start + n), start even; two rows share each
 * load of x. */
static inline void dot_group2(const uint8_t *r0, const uint8_t *r1, const int16_t *x16, int32_t xsum,
                              uint32_t start, uint32_t n, int32_t s[2])
{
    const uint8_t *b0 = r0 + start / 2u, *b1 = r1 + start / 2u;
    const int16_t *x = x16 + start;
    const uint32_t chunked = n & ~7u;
    int32_t a0 = 0, a1 = 0;
    for (uint32_t j = 0; j < chunked; j += 8u) {
        uint32_t xw[4];
        memcpy(xw, x + j, 16);
        W4F_CHUNK(a0, esl_ld32(b0 + j / 2u) ^ 0x88888888u, xw);
        W4F_CHUNK(a1, esl_ld32(b1 + j / 2u) ^ 0x88888888u, xw);
    }
    s[0] = a0 - 8 * xsum + tail_i4(b0, x, chunked, n);
    s[1] = a1 - 8 * xsum + tail_i4(b1, x, chunked, n);
}

#if ESL_DSP_VFP
/* ---- fast path: groups of 32 or 16 ----------------------------------------------------------
 * Four nibbles sign-extend for free at the top of a halfword: with v a word of 8 weights
 * (e0 in bits 0-3 ... e7 in bits 28-31), v & 0xF000F000 holds 4096*e3 and 4096*e7 as two int16,
 * and (v << 4), (v << 8), (v << 12) masked the same hold (e2, e6), (e1, e5), (e0, e4). So one
 * AND (with a shifted operand) and one SMLAD per 2 MACs: per 8 weights of a row LDR, 4 AND,
 * 4 SMLAD, against x laid out per 8-chunk as (x3, x7), (x2, x6), (x1, x5), (x0, x4). The sums are
 * 4096 * isum, exact in int32 for groups of 32 (|isum| <= 32 * 7 * 127); VCVT.F32.S32 with 12
 * fraction bits gives (float)isum exactly (a power-of-two scaling, one rounding).
 *
 * The rest is as in esl_matmul_w8f.c's fast path: x as a stream of groups (xs[g], then the
 * chunks; 4 + 2 * gs bytes a full group; a last 4-chunk as (x3, 0), (x2, 0), (x1, 0), (x0, 0)
 * against a halfword of weights), in place of xs, xsum and x16 in the scratch (4 * n_groups +
 * 2 * cols, plus 8 bytes for a 4-chunk: it fits, xsum being 4 * n_groups and n_groups >= 2 when
 * a group is short); the float work in the same routine (VMLA.F32 is the chained multiply-add:
 * y + (float)isum * (ws * xs) rounded twice, as in C); rows of 64 four at a time from one pointer
 * (w4x4_32, w4x4_16: 37 instructions per 32 MACs of integer work), any other width two at a time
 * (w4_rows32, w4_rows16), an odd last row as a pair with itself. Groups of 16 are the same
 * routines with 2 8-chunks a group instead of 4: the per-group float work comes twice as often. */
#define W4_BYTES(gs) (4u + 2u * (gs))   /* a full group in the stream: float xs[g], int16[gs] */

/* The stream from xq and xs (xs lies at the stream's start), from the last group back to the
 * first (group g's bytes start at or after xs[g], so only xs[g] itself, read first, is
 * overwritten). gs 16 or 32, cols % 4 == 0, xq word-aligned. Per 8 elements: LDRD, 4 SXTB16,
 * 4 PKH, 2 STRD. */
static inline __attribute__((always_inline)) void prepare_w4(uint8_t *stream, const int8_t *xq, uint32_t cols,
                                                             uint32_t ng, uint32_t gs)
{
    for (uint32_t g = ng; g-- > 0u;) {
        const uint32_t start = gs * g, n = (cols - start < gs) ? cols - start : gs;
        uint32_t *o = (uint32_t *)(void *)(stream + W4_BYTES(gs) * g);
        const uint32_t xsg = ((const uint32_t *)(const void *)stream)[g];
        const uint32_t *q = (const uint32_t *)(const void *)(xq + start), *const q8 = q + (n / 8u) * 2u;
        uint32_t *p = o + 1;
        if (q != q8) {
            uint32_t a, b, c, d, e;
            __asm__ volatile(
                "1:\n\t"
                "ldrd    %[a], %[b], [%[q]], #8\n\t"
                "sxtb16  %[c], %[a]\n\t"                      /* x0, x2 */
                "sxtb16  %[a], %[a], ror #8\n\t"              /* x1, x3 */
                "sxtb16  %[d], %[b]\n\t"                      /* x4, x6 */
                "sxtb16  %[b], %[b], ror #8\n\t"              /* x5, x7 */
                "pkhbt   %[e], %[c], %[d], lsl #16\n\t"       /* x0, x4 */
                "pkhtb   %[d], %[d], %[c], asr #16\n\t"       /* x2, x6 */
                "pkhbt   %[c], %[a], %[b], lsl #16\n\t"       /* x1, x5 */
                "pkhtb   %[b], %[b], %[a], asr #16\n\t"       /* x3, x7 */
                "strd    %[b], %[d], [%[p]], #8\n\t"
                "strd    %[c], %[e], [%[p]], #8\n\t"
                "cmp     %[q], %[q8]\n\t"
                "bne     1b\n\t"
                : [q] "+r"(q), [p] "+r"(p), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d),
                  [e] "=&r"(e)
                : [q8] "r"(q8)
                : "cc", "memory");
        }
        if (n & 4u) {                                   /* a last 4-chunk, zero in the high lanes */
            const uint32_t v = *q, even = __sxtb16(v), odd = esl_sxtb16_ror8(v);
            p[0] = odd >> 16;                           /* x3, 0 */
            p[1] = even >> 16;                          /* x2, 0 */
            p[2] = odd & 0xFFFFu;                       /* x1, 0 */
            p[3] = even & 0xFFFFu;                      /* x0, 0 */
        }
        o[0] = xsg;
    }
}

/* 8 weights of a row (r9 for w4_rows*, r10 for w4x4_*, loaded by the caller) against the
 * activation words \x0-\x3 into \acc; \t a temporary, \m the mask 0xF000F000. */
#define W4_MACROS                                                                      \
    ".macro W4_ROW acc, w, t, m, x0, x1, x2, x3, first\n\t"                            \
    "and     \\t, \\w, #0xF000F000\n\t"       /* e3, e7 */                            \
    ".if \\first\n\t"                                                                  \
    "smuad   \\acc, \\t, \\x0\n\t"                                                    \
    ".else\n\t"                                                                        \
    "smlad   \\acc, \\t, \\x0, \\acc\n\t"                                             \
    ".endif\n\t"                                                                       \
    "and     \\t, \\m, \\w, lsl #4\n\t"       /* e2, e6 */                            \
    "smlad   \\acc, \\t, \\x1, \\acc\n\t"                                             \
    "and     \\t, \\m, \\w, lsl #8\n\t"       /* e1, e5 */                            \
    "smlad   \\acc, \\t, \\x2, \\acc\n\t"                                             \
    "and     \\w, \\m, \\w, lsl #12\n\t"      /* e0, e4 */                            \
    "smlad   \\acc, \\w, \\x3, \\acc\n\t"                                             \
    ".endm\n\t"

/* What w4_rows32 / w4_rows16 read; the first eight words are copied to their stack (they
 * advance y there). */
typedef struct {
    float *y;                 /* the first pair's outputs */
    float *y_end;             /* y + 2 * pairs */
    uint32_t ws_skip;         /* bytes from a row's scales after its groups to those 2 rows below */
    uint32_t w_skip;          /* the same for the weights */
    const uint8_t *x;         /* the stream */
    const uint8_t *x_full;    /* x + W4_BYTES(gs) * (full groups) */
    const uint8_t *x_end8;    /* the end of the short group's 8-chunks (x_full: no short group) */
    const uint8_t *x_end;     /* the end of the stream */
    const uint8_t *w0, *w1;   /* the first pair's rows */
    const float *ws0, *ws1;   /* and their scales */
} w4_rows_t;

/* The body of w4_rows32 and w4_rows16: pairs of rows, `steps` 8-chunks (a string: "4", "2") a full
 * group. Registers: r0 x, r1 r2 the rows' weights, r3 r4 their sums (4096 * isum), r5-r8
 * activation words, r9 weights, r10 a temporary, r11 the mask, r12 lr the rows' scales; s4 xs[g],
 * s8 s9 the float sums. Per pair of rows and full group: VLDM of xs, `steps` times 19 (an LDM of
 * x, then per row an LDR and 8), 9 of float work (VMOV, 2 VCVT, 2 VLDM, 2 VMUL, 2 VMLA), 3 of loop. */
#define W4_ROWS_ASM(steps)                                                             \
    W4_MACROS                                                                          \
    ".macro W4R_PAIR first, load, inc\n\t"     /* both rows' weights by \load, x by LDM */ \
    "ldmia   r0!, {r5, r6, r7, r8}\n\t"                                                \
    "\\load  r9, [r1], #\\inc\n\t"                                                     \
    "W4_ROW  r3, r9, r10, r11, r5, r6, r7, r8, \\first\n\t"                            \
    "\\load  r9, [r2], #\\inc\n\t"                                                     \
    "W4_ROW  r4, r9, r10, r11, r5, r6, r7, r8, \\first\n\t"                            \
    ".endm\n\t"                                                                        \
    ".macro W4R_FLOAT\n\t"                     /* s8, s9 += (float)(r3, r4) * (ws * s4) */ \
    "vmov    s0, s1, r3, r4\n\t"                                                       \
    "vcvt.f32.s32 s0, s0, #12\n\t"             /* (float)isum */                       \
    "vcvt.f32.s32 s1, s1, #12\n\t"                                                     \
    "vldmia  r12!, {s2}\n\t"                   /* ws[i][g] */                          \
    "vldmia  lr!, {s3}\n\t"                    /* ws[i + 1][g] */                      \
    "vmul.f32 s2, s2, s4\n\t"                                                          \
    "vmul.f32 s3, s3, s4\n\t"                                                          \
    "vmla.f32 s8, s0, s2\n\t"                                                          \
    "vmla.f32 s9, s1, s3\n\t"                                                          \
    ".endm\n\t"                                                                        \
    "push    {r4-r11, lr}\n\t"                                                         \
    "sub     sp, sp, #36\n\t"                                                          \
    "ldmia   r0!, {r1-r8}\n\t"                                                         \
    "stmia   sp, {r1-r8}\n\t"                  /* y, y_end, ws_skip, w_skip, x, x_full, x_end8, x_end */ \
    "ldmia   r0, {r1, r2, r12, lr}\n\t"        /* w0, w1, ws0, ws1 */                  \
    "mov     r0, r5\n\t"                                                               \
    "mov     r11, #0xF000F000\n\t"                                                     \
    "1:\n\t"                                   /* a pair of rows */                    \
    "movs    r10, #0\n\t"                                                              \
    "vmov    s8, s9, r10, r10\n\t"             /* the float sums start at 0.0f */      \
    "2:\n\t"                                   /* a full group */                      \
    "vldmia  r0!, {s4}\n\t"                    /* xs[g] */                             \
    "W4R_PAIR 1, ldr, 4\n\t"                                                           \
    ".rept   " steps " - 1\n\t"                                                        \
    "W4R_PAIR 0, ldr, 4\n\t"                                                           \
    ".endr\n\t"                                                                        \
    "W4R_FLOAT\n\t"                                                                    \
    "ldr     r10, [sp, #20]\n\t"                                                       \
    "cmp     r0, r10\n\t"                                                              \
    "bne     2b\n\t"                                                                   \
    "ldr     r10, [sp, #28]\n\t"                                                       \
    "cmp     r0, r10\n\t"                                                              \
    "beq     6f\n\t"                                                                   \
    "vldmia  r0!, {s4}\n\t"                    /* the short group */                   \
    "movs    r3, #0\n\t"                                                               \
    "movs    r4, #0\n\t"                                                               \
    "ldr     r10, [sp, #24]\n\t"                                                       \
    "cmp     r0, r10\n\t"                                                              \
    "beq     4f\n\t"                                                                   \
    "3:\n\t"                                   /* its 8-chunks */                      \
    "W4R_PAIR 0, ldr, 4\n\t"                                                           \
    "ldr     r10, [sp, #24]\n\t"                                                       \
    "cmp     r0, r10\n\t"                                                              \
    "bne     3b\n\t"                                                                   \
    "4:\n\t"                                                                           \
    "ldr     r10, [sp, #28]\n\t"                                                       \
    "cmp     r0, r10\n\t"                                                              \
    "beq     5f\n\t"                                                                   \
    "W4R_PAIR 0, ldrh, 2\n\t"                  /* a last 4-chunk: a halfword of weights */ \
    "5:\n\t"                                                                           \
    "W4R_FLOAT\n\t"                                                                    \
    "6:\n\t"                                                                           \
    "ldmia   sp, {r5-r9}\n\t"                  /* y, y_end, ws_skip, w_skip, x */      \
    "vstmia  r5!, {s8, s9}\n\t"                                                        \
    "str     r5, [sp]\n\t"                                                             \
    "add     r12, r12, r7\n\t"                                                         \
    "add     lr, lr, r7\n\t"                                                           \
    "add     r1, r1, r8\n\t"                                                           \
    "add     r2, r2, r8\n\t"                                                           \
    "mov     r0, r9\n\t"                                                               \
    "cmp     r5, r6\n\t"                                                               \
    "bne     1b\n\t"                                                                   \
    "add     sp, sp, #36\n\t"                                                          \
    "pop     {r4-r11, pc}\n\t"                                                         \
    ".purgem W4R_FLOAT\n\t"                                                            \
    ".purgem W4R_PAIR\n\t"                                                             \
    ".purgem W4_ROW\n\t"

/* Groups of 32, y[i] = seqsum over the groups of (float)isum * (ws[i][g] * xs[g]) for pairs of
 * rows, at least one full group: 89 instructions per 64 MACs a full group and pair (1.39 a MAC). */
__attribute__((naked, noinline)) static void w4_rows32(__attribute__((unused)) const w4_rows_t *a)
{
    __asm__ volatile(W4_ROWS_ASM("4"));
}

/* Groups of 16, y[i] = seqsum over the groups of (float)isum * (ws[i][g] * xs[g]) for pairs of
 * rows, at least one full group: 51 instructions per 32 MACs a full group and pair (1.59 a MAC;
 * the 13 of xs, float work and loop come every 32 MACs). */
__attribute__((naked, noinline)) static void w4_rows16(__attribute__((unused)) const w4_rows_t *a)
{
    __asm__ volatile(W4_ROWS_ASM("2"));
}

/* What w4x4_32 / w4x4_16 read. */
typedef struct {
    float *y;
    float *y_end;             /* y + 4 * quads */
    const uint8_t *w;         /* row 0 (64 weights, 32 bytes a row) */
    const float *ws;          /* row 0's scales (2 or 4 a row) */
    const uint8_t *x;         /* the stream (2 or 4 full groups) */
} w4x4_t;

/* The macros of w4x4_32 and w4x4_16 (rows of 64, four at a time). Registers: r0 x, r1 row 0
 * (rows 1-3 at +32, +64, +96), r2-r5 the sums (4096 * isum), r6-r9 activation words, r10 weights,
 * r11 a temporary, r12 the mask; s8-s11 the float sums, s14 s15 temporaries. W4X4_GROUP steps: a
 * group of the four rows into r2-r5, 37 instructions an 8-chunk (LDM of x, per row LDR and 8);
 * W4X4_FLOAT: s8-s11 += (float)r2-r5 * \s0-\s3 (ws * xs of the group), 10 instructions. */
#define W4X4_MACROS                                                                    \
    W4_MACROS                                                                          \
    ".macro W4X4_STEP first\n\t"               /* 8 elements of the four rows */       \
    "ldmia   r0!, {r6, r7, r8, r9}\n\t"                                                \
    "ldr     r10, [r1, #32]\n\t"                                                       \
    "W4_ROW  r3, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                           \
    "ldr     r10, [r1, #64]\n\t"                                                       \
    "W4_ROW  r4, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                           \
    "ldr     r10, [r1, #96]\n\t"                                                       \
    "W4_ROW  r5, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                           \
    "ldr     r10, [r1], #4\n\t"                /* row 0 last: it moves the pointer */  \
    "W4_ROW  r2, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                           \
    ".endm\n\t"                                                                        \
    ".macro W4X4_GROUP steps\n\t"                                                      \
    "W4X4_STEP 1\n\t"                                                                  \
    ".rept   \\steps - 1\n\t"                                                          \
    "W4X4_STEP 0\n\t"                                                                  \
    ".endr\n\t"                                                                        \
    ".endm\n\t"                                                                        \
    ".macro W4X4_FLOAT s0, s1, s2, s3\n\t"                                             \
    "vmov    s14, s15, r2, r3\n\t"                                                     \
    "vcvt.f32.s32 s14, s14, #12\n\t"                                                   \
    "vcvt.f32.s32 s15, s15, #12\n\t"                                                   \
    "vmla.f32 s8, s14, \\s0\n\t"                                                       \
    "vmla.f32 s9, s15, \\s1\n\t"                                                       \
    "vmov    s14, s15, r4, r5\n\t"                                                     \
    "vcvt.f32.s32 s14, s14, #12\n\t"                                                   \
    "vcvt.f32.s32 s15, s15, #12\n\t"                                                   \
    "vmla.f32 s10, s14, \\s2\n\t"                                                      \
    "vmla.f32 s11, s15, \\s3\n\t"                                                      \
    ".endm\n\t"
#define W4X4_MACROS_END ".purgem W4X4_FLOAT\n\t.purgem W4X4_GROUP\n\t.purgem W4X4_STEP\n\t.purgem W4_ROW\n\t"

/* Rows of 64, four a pass, groups of 32: y[i] = seqsum over the groups of (float)isum *
 * (ws[i][g] * xs[g]) in the frame ESL_X4_G32 (esl_arm_dsp.h); 336 instructions per 256 MACs (1.31 a MAC). */
__attribute__((naked, noinline)) static void w4x4_32(__attribute__((unused)) const w4x4_t *a)
{
    __asm__ volatile(W4X4_MACROS
                     ESL_X4_G32("W4X4_GROUP", "W4X4_FLOAT", "mov     r12, #0xF000F000\n\t", "96")
                     W4X4_MACROS_END);
}

/* Rows of 64, four a pass, groups of 16: y[i] = seqsum over the groups of (float)isum *
 * (ws[i][g] * xs[g]) in the frame ESL_X4_G16 (esl_arm_dsp.h); 366 instructions per 256 MACs (1.43 a MAC). */
__attribute__((naked, noinline)) static void w4x4_16(__attribute__((unused)) const w4x4_t *a)
{
    __asm__ volatile(W4X4_MACROS
                     ESL_X4_G16("W4X4_GROUP", "W4X4_FLOAT", "mov     r12, #0xF000F000\n\t", "96")
                     W4X4_MACROS_END);
}

/* Whether W and the scratch suit the fast path: groups of 32 or 16, at least one full group,
 * cols % 4 == 0, W and the scratch word-aligned (a row of cols / 2 bytes may start at a halfword:
 * LDR takes it unaligned). */
static int w4_fits(const esl_weight_t *w, const void *scratch)
{
    return (w->group_size == 32u || w->group_size == 16u) && w->cols >= w->group_size &&
           (((uintptr_t)w->data | (uintptr_t)scratch | w->cols) & 3u) == 0u;
}

/* y = W @ x for w4_fits, gs its group size (a constant: one copy of this per group size); with
 * ready, the stream is already laid out (by the matmul before, which took this path too: the same
 * cols and group size, and the generated weights are 8-byte aligned). */
static inline __attribute__((always_inline)) void matmul_w4(float *y, const esl_weight_t *w, const int8_t *xq,
                                                            uint8_t *stream, int ready, uint32_t gs)
{
    const uint32_t rows = w->rows, cols = w->cols, ng = w->n_groups, rb = cols / 2u;
    const uint8_t *data = (const uint8_t *)w->data;
    const float *ws = w->scales;
    void (*const pairs)(const w4_rows_t *) = (gs == 16u) ? w4_rows16 : w4_rows32;
    if (!ready) prepare_w4(stream, xq, cols, ng, gs);
    uint32_t i = 0;
    if (cols == 64u && rows >= 4u) {
        i = rows & ~3u;
        const w4x4_t a = { y, y + i, data, ws, stream };
        if (gs == 16u) w4x4_16(&a);
        else w4x4_32(&a);
    }
    const uint32_t nf = cols / gs, n8 = (cols % gs) & ~7u;
    const uint8_t *x_full = stream + W4_BYTES(gs) * nf;
    const uint8_t *x_end8 = (nf < ng) ? x_full + 4u + 2u * n8 : x_full;
    const uint8_t *x_end = (cols % 8u) ? x_end8 + 16u : x_end8;
    if (i + 2u <= rows) {
        const uint32_t n = (rows - i) & ~1u;
        const w4_rows_t a = { y + i, y + i + n, 4u * ng, rb, stream, x_full, x_end8, x_end,
                              data + i * rb, data + (i + 1u) * rb, ws + i * ng, ws + (i + 1u) * ng };
        pairs(&a);
        i += n;
    }
    if (i < rows) {                                   /* an odd last row: a pair with itself */
        float y2[2];
        const w4_rows_t a = { y2, y2 + 2, 0u, 0u, stream, x_full, x_end8, x_end,
                              data + i * rb, data + i * rb, ws + i * ng, ws + i * ng };
        pairs(&a);
        y[i] = y2[0];
    }
}
#endif

static void matmul_one_core(float *y, const esl_weight_t *w, const float *x, void *scratch, int ready)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    int32_t *xsum = (int32_t *)(void *)(xs + w->n_groups);
    int16_t *x16 = (int16_t *)(void *)(xsum + w->n_groups);
    if (!ready) esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
#if ESL_DSP_VFP
    if (w4_fits(w, scratch)) {                  /* only the build's group size (esl_arm_dsp.h) */
        if (ESL_FAST_G16 && w->group_size == 16u) {
            matmul_w4(y, w, xq, (uint8_t *)xs, ready, 16u);
            return;
        }
        if (ESL_FAST_G32 && w->group_size == 32u) {
            matmul_w4(y, w, xq, (uint8_t *)xs, ready, 32u);
            return;
        }
    }
#endif
    if (!ready) prepare_x(xq, x16, xsum, w->cols, w->group_size);
    const uint32_t row_bytes = (w->cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data;
    const float *ws = w->scales;
    const uint32_t ng = w->n_groups;
    uint32_t i = 0;
    for (; i < w->rows; i += 2u, row += 2u * row_bytes, ws += 2u * ng) {
        const int pair = i + 1u < w->rows;       /* an odd last row runs as its own pair, once used */
        const uint8_t *row1 = pair ? row + row_bytes : row;
        const float *ws1 = pair ? ws + ng : ws;
        float acc0 = 0.0f, acc1 = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += w->group_size) {
            const uint32_t n = (start + w->group_size < w->cols) ? w->group_size : w->cols - start;
            int32_t s[2];
            dot_group2(row, row1, x16, xsum[g], start, n, s);
            acc0 = acc0 + (float)s[0] * (ws[g] * xs[g]);
            acc1 = acc1 + (float)s[1] * (ws1[g] * xs[g]);
        }
        y[i] = acc0;
        if (pair) y[i + 1u] = acc1;
    }
}

#else
/* Portable C: the reference every variant must equal. */
/* Sum over elements [start, end) of a packed row; start is even (groups are even-sized). */
static int32_t dot_i4(const uint8_t *row, const int8_t *x, uint32_t start, uint32_t end)
{
    int32_t acc = 0;
    uint32_t j = start;
    for (; j + 2u <= end; j += 2u) {            /* one byte: elements j (low) and j+1 (high) */
        const uint32_t b = row[j >> 1];
        acc += nibble(b) * (int32_t)x[j] + nibble(b >> 4) * (int32_t)x[j + 1];
    }
    if (j < end) acc += nibble(row[j >> 1]) * (int32_t)x[j];     /* odd row length: last one */
    return acc;
}

static void matmul_one_core(float *y, const esl_weight_t *w, const float *x, void *scratch, int ready)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    if (!ready) esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const uint32_t row_bytes = (w->cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += row_bytes, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            acc = acc + (float)dot_i4(row, xq, start, end) * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}
#endif

void esl_matmul_w4f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
    matmul_one_core(y, w, x, scratch, 0);
}

/* Step: arena[out] = s->w @ arena[in]; ready (ESL_MATMUL_X_READY in s->n): the matmul before left
 * x quantized and laid out in the scratch. */
void esl_step_matmul_w4f(const esl_step_t *s, const esl_ctx_t *c)
{
    matmul_one_core(c->arena + s->out, s->w, c->arena + s->in, c->scratch, (s->n & ESL_MATMUL_X_READY) != 0u);
}
