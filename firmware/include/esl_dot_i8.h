/* int8 x int8 dot products with ISA branches: the engine of matmul_w8f and matmul_s8 (included by
 * both kernel files, static inline, so each kernel is still one object with its own copy). With
 * ESL_DOT_X16 defined to 1 before the include (matmul_w8f with int16 activations) x is int16:
 * int8 x int16 products, the same exact int32 sums per group (at most 512 elements).
 *
 * Rows go four at a time so each prepared activation load feeds four rows (CMSIS-NN style); the
 * last rows % 4 go one at a time. Each variant supplies the prepared input type (xv_t),
 * prepare_x() (x laid out for the variant, once per matmul, per group of gs; with `ready` it is
 * already, from the matmul before, and only its address is returned), dot_group() (one row)
 * and dot_group4() (four rows, `stride` bytes apart). Every variant gives the same exact int32 sums. */
#ifndef ESL_DOT_I8_H
#define ESL_DOT_I8_H

#include <stdint.h>

#ifndef ESL_DOT_X16
#define ESL_DOT_X16 0
#endif
#if ESL_DOT_X16
typedef int16_t xq_t;                   /* x as quantized */
#else
typedef int8_t xq_t;
#endif

#if ESL_KERNELS_MVE || !ESL_KERNELS_DSP
/* Helium and portable C take x as quantized (the DSP branch widens or reorders it below). */
typedef xq_t xv_t;

static const xv_t *prepare_x(const xq_t *xq, int16_t *x16, uint32_t cols, uint32_t gs, int ready)
{
    (void)ready;
    (void)x16;
    (void)cols;
    (void)gs;
    return xq;
}
#endif

#if ESL_KERNELS_MVE
/* Arm Helium (MVE, v8.1-M: Cortex-M55/M85): per LANES elements one load of x, then per row one load
 * of weights and one VMLADAVA (LANES MACs into a 32-bit scalar). int8 x: 16 lanes, VLDRB of both;
 * int16 x (ESL_DOT_X16): 8 lanes, VLDRH of x and a widening VLDRB.S16 of the weights. A group's last
 * partial chunk is predicated (VCTP): masked lanes load as zero and add nothing, so every sum is exact. */
#include <arm_mve.h>

#if ESL_DOT_X16
#define MVE_LANES 8u
typedef int16x8_t mve_x_t;
#define MVE_LD_W(p) vldrbq_s16(p)
#define MVE_LD_W_Z(p, m) vldrbq_z_s16(p, m)
#define MVE_LD_X(p) vld1q_s16(p)
#define MVE_LD_X_Z(p, m) vldrhq_z_s16(p, m)
#define MVE_DOT(a, w, x) vmladavaq_s16(a, w, x)
#define MVE_DOT_P(a, w, x, m) vmladavaq_p_s16(a, w, x, m)
#define MVE_CTP(n) vctp16q(n)
#else
#define MVE_LANES 16u
typedef int8x16_t mve_x_t;
#define MVE_LD_W(p) vld1q_s8(p)
#define MVE_LD_W_Z(p, m) vldrbq_z_s8(p, m)
#define MVE_LD_X(p) vld1q_s8(p)
#define MVE_LD_X_Z(p, m) vldrbq_z_s8(p, m)
#define MVE_DOT(a, w, x) vmladavaq_s8(a, w, x)
#define MVE_DOT_P(a, w, x, m) vmladavaq_p_s8(a, w, x, m)
#define MVE_CTP(n) vctp8q(n)
#endif

static int32_t dot_group(const int8_t *w, const xv_t *x, uint32_t n)
{
    int32_t acc = 0;
    uint32_t j = 0;
    for (; j + MVE_LANES <= n; j += MVE_LANES) acc = MVE_DOT(acc, MVE_LD_W(w + j), MVE_LD_X(x + j));
    if (j < n) {
        const mve_pred16_t p = MVE_CTP(n - j);
        acc = MVE_DOT_P(acc, MVE_LD_W_Z(w + j, p), MVE_LD_X_Z(x + j, p), p);
    }
    return acc;
}

static inline void dot_group4(const int8_t *w, uint32_t stride, const xv_t *x, uint32_t n, int32_t s[4])
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2u * stride, *w3 = w + 3u * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    uint32_t j = 0;
    for (; j + MVE_LANES <= n; j += MVE_LANES) {
        const mve_x_t xv = MVE_LD_X(x + j);
        a0 = MVE_DOT(a0, MVE_LD_W(w0 + j), xv);
        a1 = MVE_DOT(a1, MVE_LD_W(w1 + j), xv);
        a2 = MVE_DOT(a2, MVE_LD_W(w2 + j), xv);
        a3 = MVE_DOT(a3, MVE_LD_W(w3 + j), xv);
    }
    if (j < n) {                               /* the predicated tail: masked lanes are zero */
        const mve_pred16_t p = MVE_CTP(n - j);
        const mve_x_t xv = MVE_LD_X_Z(x + j, p);
        a0 = MVE_DOT_P(a0, MVE_LD_W_Z(w0 + j, p), xv, p);
        a1 = MVE_DOT_P(a1, MVE_LD_W_Z(w1 + j, p), xv, p);
        a2 = MVE_DOT_P(a2, MVE_LD_W_Z(w2 + j, p), xv, p);
        a3 = MVE_DOT_P(a3, MVE_LD_W_Z(w3 + j, p), xv, p);
    }
    s[0] = a0;
    s[1] = a1;
    s[2] = a2;
    s[3] = a3;
}

#elif ESL_KERNELS_DSP
/* Cortex-M DSP extension (M4/M7/M33): x is widened to int16 once per call, each 4-chunk of a group
 * stored as (x0, x2, x1, x3) to match SXTB16's split of 4 weights into (w0, w2) and (w1, w3); then
 * per row an LDR of 4 weights, SXTB16, SXTB16 with ROR #8 and two SMLADs do 4 MACs, the two
 * activation words loaded once for four rows. */
#include "esl_arm_dsp.h"

typedef int16_t xv_t;

static const xv_t *prepare_x(const xq_t *xq, int16_t *x16, uint32_t cols, uint32_t gs, int ready)
{
    for (uint32_t start = 0; start < cols && !ready; start += gs) {
        const uint32_t n = (start + gs < cols) ? gs : cols - start;
        const xq_t *x = xq + start;
        int16_t *o = x16 + start;
        uint32_t j = 0;
#if ESL_DOT_X16
        for (; j + 4u <= n; j += 4u) {                  /* (x0, x2, x1, x3): PKHBT, PKHTB */
            uint32_t a, b;
            memcpy(&a, x + j, 4);                       /* x1:x0 */
            memcpy(&b, x + j + 2, 4);                   /* x3:x2 */
            const uint32_t even = (a & 0xFFFFu) | (b << 16), odd = (a >> 16) | (b & 0xFFFF0000u);
            memcpy(o + j, &even, 4);
            memcpy(o + j + 2, &odd, 4);
        }
#else
        for (; j + 4u <= n; j += 4u) {                  /* SXTB16 writes exactly that order */
            const uint32_t v = esl_ld32(x + j), even = __sxtb16(v), odd = esl_sxtb16_ror8(v);
            memcpy(o + j, &even, 4);                    /* x0, x2 */
            memcpy(o + j + 2, &odd, 4);                 /* x1, x3 */
        }
#endif
        for (; j < n; j++) o[j] = x[j];
    }
    return x16;
}

static int32_t dot_group(const int8_t *w, const xv_t *x16, uint32_t n)
{
    int32_t acc = 0;
    uint32_t j = 0;
    for (; j + 4u <= n; j += 4u) {
        const uint32_t w4 = esl_ld32(w + j);
        acc = __smlad(__sxtb16(w4), esl_ld32(x16 + j), acc);              /* w0*x0 + w2*x2 */
        acc = __smlad(esl_sxtb16_ror8(w4), esl_ld32(x16 + j + 2), acc);       /* w1*x1 + w3*x3 */
    }
    for (; j < n; j++) acc += (int32_t)w[j] * (int32_t)x16[j];
    return acc;
}

/* s[r] = dot of row r (rows `stride` bytes apart) with x over n elements, r = 0..3. The loop over
 * whole 4-chunks is written in assembly because the compiler spills two of its thirteen live
 * values: per 16 MACs it is two activation loads, then per row one weight load, SXTB16,
 * SXTB16 ROR #8 and two SMLADs; rows 1 and 3 are register-offset loads from rows 0 and 2 (24
 * instructions per 16 MACs). The C tail handles the last n % 4 elements. */
static inline void dot_group4(const int8_t *w, uint32_t stride, const xv_t *x16, uint32_t n, int32_t s[4])
{
    const int8_t *p0 = w, *p2 = w + 2u * stride;
    const int16_t *x = x16;
    const int16_t *const x_end = x16 + (n & ~3u);
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    if (x != x_end) {
        uint32_t x02, x13, v, t;
        __asm__ volatile(
            "1:\n\t"
            "ldr    %[x02], [%[x]], #4\n\t"
            "ldr    %[x13], [%[x]], #4\n\t"
            "ldr    %[v], [%[p0], %[st]]\n\t"          /* row 1 */
            "sxtb16 %[t], %[v]\n\t"
            "smlad  %[a1], %[t], %[x02], %[a1]\n\t"
            "sxtb16 %[v], %[v], ror #8\n\t"
            "smlad  %[a1], %[v], %[x13], %[a1]\n\t"
            "ldr    %[v], [%[p0]], #4\n\t"             /* row 0 */
            "sxtb16 %[t], %[v]\n\t"
            "smlad  %[a0], %[t], %[x02], %[a0]\n\t"
            "sxtb16 %[v], %[v], ror #8\n\t"
            "smlad  %[a0], %[v], %[x13], %[a0]\n\t"
            "ldr    %[v], [%[p2], %[st]]\n\t"          /* row 3 */
            "sxtb16 %[t], %[v]\n\t"
            "smlad  %[a3], %[t], %[x02], %[a3]\n\t"
            "sxtb16 %[v], %[v], ror #8\n\t"
            "smlad  %[a3], %[v], %[x13], %[a3]\n\t"
            "ldr    %[v], [%[p2]], #4\n\t"             /* row 2 */
            "sxtb16 %[t], %[v]\n\t"
            "smlad  %[a2], %[t], %[x02], %[a2]\n\t"
            "sxtb16 %[v], %[v], ror #8\n\t"
            "smlad  %[a2], %[v], %[x13], %[a2]\n\t"
            "cmp    %[x], %[xe]\n\t"
            "bne    1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p0] "+r"(p0), [p2] "+r"(p2),
              [x] "+r"(x), [x02] "=&r"(x02), [x13] "=&r"(x13), [v] "=&r"(v), [t] "=&r"(t)
            : [st] "r"(stride), [xe] "r"(x_end)
            : "cc", "memory");
    }
    for (uint32_t j = n & ~3u; j < n; j++) {
        const int32_t xj = x16[j];
        a0 += (int32_t)w[j] * xj;
        a1 += (int32_t)w[stride + j] * xj;
        a2 += (int32_t)w[2u * stride + j] * xj;
        a3 += (int32_t)w[3u * stride + j] * xj;
    }
    s[0] = a0;
    s[1] = a1;
    s[2] = a2;
    s[3] = a3;
}

#elif defined(__riscv) && __riscv_xlen == 32 && defined(__riscv_mul)
/* RV32IM without Xpulp (the GAP9 stand-in's rv32imfc harts), x as quantized (int8: LB, int16: LH).
 * RV32 has neither register-offset loads nor a multiply-accumulate, so each row has its own pointer
 * and every load is an immediate offset from it: per column k one load of x[k], then per row LB
 * w[k], MUL, ADD. Four rows: 13 instructions per column; a loop over 16 columns (208, then five
 * pointer bumps and the branch: 214 per 64 MACs, 3.34 per MAC), then one over 4 columns (58 per 16
 * MACs, 3.6), the last n % 4 columns in C. One row: a loop over 8 columns (35 per 8 MACs, 4.4 per
 * MAC), then a block of 4, the last n % 4 in C. In assembly because gcc 12 hoists the unrolled
 * loads and spills them. Per row the products (int8 x int8 or int16, exact in 32 bits) are added in
 * the portable C's order, ADD being its int32 addition (the sums do not overflow): the same exact
 * int32 sums. */
#if ESL_DOT_X16
#define ESL_RV_LX "lh"
#define ESL_RV_XB "2"                   /* bytes per x element */
#else
#define ESL_RV_LX "lb"
#define ESL_RV_XB "1"
#endif

/* x[k] into xk. */
#define ESL_RV_LDX(k) ESL_RV_LX " %[xk], " ESL_RV_XB "*" #k "(%[x])\n\t"
/* Column k of two rows (pa, pb into aa, ab), x[k] in xk, the products in t0, t1. */
#define ESL_RV_PAIR(k, pa, pb, aa, ab)                                                             \
    "lb   %[t0], " #k "(%[" #pa "])\n\t"                                                           \
    "lb   %[t1], " #k "(%[" #pb "])\n\t"                                                           \
    "mul  %[t0], %[t0], %[xk]\n\t"                                                                 \
    "mul  %[t1], %[t1], %[xk]\n\t"                                                                 \
    "add  %[" #aa "], %[" #aa "], %[t0]\n\t"                                                       \
    "add  %[" #ab "], %[" #ab "], %[t1]\n\t"
/* Column k of two rows (p0, p1 into a0, a1) and of four (p0..p3 into a0..a3). */
#define ESL_RV_COL2(k) ESL_RV_LDX(k) ESL_RV_PAIR(k, p0, p1, a0, a1)
#define ESL_RV_COL4(k) ESL_RV_LDX(k) ESL_RV_PAIR(k, p0, p1, a0, a1) ESL_RV_PAIR(k, p2, p3, a2, a3)

/* Column k of one row (p0 into a0). */
#define ESL_RV_COL1(k)                                                                             \
    ESL_RV_LDX(k)                                                                                  \
    "lb   %[t0], " #k "(%[p0])\n\t"                                                                \
    "mul  %[t0], %[t0], %[xk]\n\t"                                                                 \
    "add  %[a0], %[a0], %[t0]\n\t"

/* The bumps after a block of c columns (a string literal). */
#define ESL_RV_NEXT1(c)                                                                            \
    "addi %[p0], %[p0], " #c "\n\t"                                                                \
    "addi %[x], %[x], " #c "*" ESL_RV_XB "\n\t"
#define ESL_RV_NEXT4(c)                                                                            \
    "addi %[p1], %[p1], " #c "\n\t"                                                                \
    "addi %[p2], %[p2], " #c "\n\t"                                                                \
    "addi %[p3], %[p3], " #c "\n\t" ESL_RV_NEXT1(c)

/* end = x + (n & mask) elements (a string literal; end, n, x: the operands' names). */
#if ESL_DOT_X16
#define ESL_RV_END(mask)                                                                           \
    "andi %[end], %[n], " #mask "\n\t"                                                             \
    "slli %[end], %[end], 1\n\t"                                                                   \
    "add  %[end], %[end], %[x]\n\t"
#else
#define ESL_RV_END(mask)                                                                           \
    "andi %[end], %[n], " #mask "\n\t"                                                             \
    "add  %[end], %[end], %[x]\n\t"
#endif

static int32_t dot_group(const int8_t *w, const xv_t *x, uint32_t n)
{
    const int8_t *p0 = w;
    const xv_t *xp = x, *end;
    int32_t a0 = 0, xk, t0;
    __asm__ volatile(
        ESL_RV_END(-8)                  /* whole 8-column blocks */
        "beq  %[x], %[end], 2f\n"
        "1:\n\t"
        ESL_RV_COL1(0) ESL_RV_COL1(1) ESL_RV_COL1(2) ESL_RV_COL1(3)
        ESL_RV_COL1(4) ESL_RV_COL1(5) ESL_RV_COL1(6) ESL_RV_COL1(7)
        ESL_RV_NEXT1(8)
        "bne  %[x], %[end], 1b\n"
        "2:\n\t"
        "andi %[end], %[n], 4\n\t"      /* then one 4-column block, if any */
        "beqz %[end], 3f\n\t"
        ESL_RV_COL1(0) ESL_RV_COL1(1) ESL_RV_COL1(2) ESL_RV_COL1(3)
        ESL_RV_NEXT1(4)
        "3:\n\t"
        : [a0] "+r"(a0), [p0] "+r"(p0), [x] "+r"(xp), [end] "=&r"(end), [xk] "=&r"(xk), [t0] "=&r"(t0)
        : [n] "r"(n)
        : "memory");
    for (uint32_t j = 0; j < (n & 3u); j++) a0 += (int32_t)p0[j] * (int32_t)xp[j];
    return a0;
}

/* s[r] = dot of row r (rows `stride` bytes apart) with x over n elements, r = 0..3. */
static inline void dot_group4(const int8_t *w, uint32_t stride, const xv_t *x, uint32_t n, int32_t s[4])
{
    const int8_t *p0 = w, *p1, *p2, *p3;
    const xv_t *xp = x, *end;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, xk, t0, t1;
    __asm__ volatile(
        "add  %[p1], %[p0], %[st]\n\t"    /* rows 1..3 */
        "add  %[p2], %[p1], %[st]\n\t"
        "add  %[p3], %[p2], %[st]\n\t"
        ESL_RV_END(-16)                 /* whole 16-column blocks */
        "beq  %[x], %[end], 2f\n"
        "1:\n\t"
        ESL_RV_COL4(0) ESL_RV_COL4(1) ESL_RV_COL4(2) ESL_RV_COL4(3)
        ESL_RV_COL4(4) ESL_RV_COL4(5) ESL_RV_COL4(6) ESL_RV_COL4(7)
        ESL_RV_COL4(8) ESL_RV_COL4(9) ESL_RV_COL4(10) ESL_RV_COL4(11)
        ESL_RV_COL4(12) ESL_RV_COL4(13) ESL_RV_COL4(14) ESL_RV_COL4(15)
        ESL_RV_NEXT4(16)
        "bne  %[x], %[end], 1b\n"
        "2:\n\t"
        ESL_RV_END(12)                  /* then 4-column blocks, up to three */
        "beq  %[x], %[end], 4f\n"
        "3:\n\t"
        ESL_RV_COL4(0) ESL_RV_COL4(1) ESL_RV_COL4(2) ESL_RV_COL4(3)
        ESL_RV_NEXT4(4)
        "bne  %[x], %[end], 3b\n"
        "4:\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [p0] "+r"(p0), [p1] "=&r"(p1),
          [p2] "=&r"(p2), [p3] "=&r"(p3), [x] "+r"(xp), [end] "=&r"(end), [xk] "=&r"(xk), [t0] "=&r"(t0),
          [t1] "=&r"(t1)
        : [n] "r"(n), [st] "r"(stride)
        : "memory");
    for (uint32_t j = 0; j < (n & 3u); j++) {
        const int32_t xj = xp[j];
        a0 += (int32_t)p0[j] * xj;
        a1 += (int32_t)p1[j] * xj;
        a2 += (int32_t)p2[j] * xj;
        a3 += (int32_t)p3[j] * xj;
    }
    s[0] = a0;
    s[1] = a1;
    s[2] = a2;
    s[3] = a3;
}

#else
/* Portable C: the reference every variant must equal. */
static int32_t dot_group(const int8_t *w, const xv_t *x, uint32_t n)
{
    int32_t acc = 0;
    for (uint32_t j = 0; j < n; j++) acc += (int32_t)w[j] * (int32_t)x[j];
    return acc;
}

static inline void dot_group4(const int8_t *w, uint32_t stride, const xv_t *x, uint32_t n, int32_t s[4])
{
    const int8_t *w0 = w, *w1 = w + stride, *w2 = w + 2u * stride, *w3 = w + 3u * stride;
    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (uint32_t j = 0; j < n; j++) {
        const int32_t xj = x[j];
        a0 += (int32_t)w0[j] * xj;
        a1 += (int32_t)w1[j] * xj;
        a2 += (int32_t)w2[j] * xj;
        a3 += (int32_t)w3[j] * xj;
    }
    s[0] = a0;
    s[1] = a1;
    s[2] = a2;
    s[3] = a3;
}
#endif

#endif
