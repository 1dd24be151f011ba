/* The Cortex-M DSP fast path of the int8-weight integer matmuls (matmul_s8, matmul_s16): int32 sums
 * of rows of int8 W with a prepared int16 x by assembly. Included by both kernel files (static: each
 * object keeps its copy); each kernel requantizes the sums itself. */
#ifndef ESL_MATMUL_S8_DSP_H
#define ESL_MATMUL_S8_DSP_H

#include <stdint.h>

#include "esl_kernels.h"

#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE && !defined(ESL_CLUSTER_CORES)
#include "esl_arm_dsp.h"
/* For W word-aligned (data and cols) and a word-aligned scratch (s8_fits): the int32 sums of a block
 * of rows go through assembly routines (dsp_block_sums). x is prepare_x's (esl_dot_i8.h: int16, each
 * 4-chunk as x0, x2, x1, x3, from int8 or int16 alike). Per 8 elements one LDM of 4 activation
 * words, then per row one LDRD of 8 weights, 4 SXTB16 and 4 SMLAD:
 *   s8x4_64  rows of 64, four rows a pass: one pointer reaches the four rows by immediate
 *            offsets; fully unrolled, 37 instructions per 32 MACs and 10 more per 4 rows.
 *   s8_pairs any width (cols % 4 == 0, cols >= 4), two rows a pass (19 instructions per 16 MACs,
 *            a loop of 16 elements, then 8 and 4 as the width leaves them); also the rows s8x4_64
 *            leaves, and an odd last row as a pair with itself. */

/* What s8_pairs reads; the first four words after w are copied to its stack. */
typedef struct {
    int32_t *s;               /* the first pair's sums */
    int32_t *s_end;           /* s + 2 * pairs */
    const int8_t *w;          /* the first pair's first row (the second follows it) */
    uint32_t cols;            /* bytes from a pair's first row to its second; 0: a row with itself */
    const int16_t *x;         /* the prepared x */
    const int16_t *x16_end;   /* x + 16 * (cols / 16) */
    const int16_t *x_end;     /* x + cols */
} s8_pairs_t;

/* s[2k], s[2k + 1] = the dot products of rows 2k and 2k + 1 with x. Registers: r0 x, r1 r2 the two
 * rows, r3 r4 their sums, r5-r8 activation words, r9 r10 weights, r11 a temporary, r12 x16_end,
 * lr x_end; on the stack s, s_end, cols, x. */
__attribute__((naked, noinline)) static void s8_pairs(__attribute__((unused)) const s8_pairs_t *a)
{
    __asm__ volatile(
        ESL_ASM_ROW8                              /* 8 weights (r9, r10) x r5-r8 */
        ".macro S8P_STEP\n\t"                     /* 8 elements of both rows */
        "ldmia   r0!, {r5, r6, r7, r8}\n\t"
        "ldrd    r9, r10, [r1], #8\n\t"
        "ESL_ROW8 r3, r9, r10, r11, r5, r6, r7, r8, 0\n\t"
        "ldrd    r9, r10, [r2], #8\n\t"
        "ESL_ROW8 r4, r9, r10, r11, r5, r6, r7, r8, 0\n\t"
        ".endm\n\t"
        "push    {r4-r11, lr}\n\t"
        "sub     sp, sp, #16\n\t"
        "ldmia   r0, {r1-r7}\n\t"                 /* s, s_end, w, cols, x, x16_end, x_end */
        "stmia   sp, {r1, r2, r4, r5}\n\t"        /* [sp]: s, s_end, cols, x */
        "mov     r1, r3\n\t"
        "mov     r12, r6\n\t"
        "mov     lr, r7\n\t"
        "1:\n\t"                                  /* a pair of rows */
        "ldr     r0, [sp, #12]\n\t"
        "ldr     r2, [sp, #8]\n\t"
        "add     r2, r1, r2\n\t"
        "movs    r3, #0\n\t"
        "movs    r4, #0\n\t"
        "cmp     r0, r12\n\t"
        "beq     3f\n\t"
        "2:\n\t"                                  /* 16 elements */
        "S8P_STEP\n\t"
        "S8P_STEP\n\t"
        "cmp     r0, r12\n\t"
        "bne     2b\n\t"
        "3:\n\t"
        "sub     r11, lr, r0\n\t"                 /* bytes of x left: 0, 8, 16 or 24 */
        "cmp     r11, #16\n\t"
        "blo     4f\n\t"
        "S8P_STEP\n\t"                            /* 8 elements */
        "sub     r11, lr, r0\n\t"
        "4:\n\t"
        "cmp     r11, #0\n\t"
        "beq     5f\n\t"
        "ldrd    r5, r6, [r0], #8\n\t"            /* 4 elements */
        "ldr     r9, [r1], #4\n\t"
        "sxtb16  r11, r9\n\t"
        "smlad   r3, r11, r5, r3\n\t"
        "sxtb16  r9, r9, ror #8\n\t"
        "smlad   r3, r9, r6, r3\n\t"
        "ldr     r9, [r2], #4\n\t"
        "sxtb16  r11, r9\n\t"
        "smlad   r4, r11, r5, r4\n\t"
        "sxtb16  r9, r9, ror #8\n\t"
        "smlad   r4, r9, r6, r4\n\t"
        "5:\n\t"
        "ldmia   sp, {r5, r6}\n\t"                /* s, s_end */
        "stmia   r5!, {r3, r4}\n\t"
        "str     r5, [sp]\n\t"
        "mov     r1, r2\n\t"                      /* the next pair: the row after the second */
        "cmp     r5, r6\n\t"
        "bne     1b\n\t"
        "add     sp, sp, #16\n\t"
        "pop     {r4-r11, pc}\n\t"
        ".purgem S8P_STEP\n\t"
        ESL_ASM_ROW8_END);
}

/* What s8x4_64 reads. */
typedef struct {
    int32_t *s;
    int32_t *s_end;           /* s + 4 * quads */
    const int8_t *w;          /* row 0 (64 weights a row) */
    const int16_t *x;         /* the prepared x (64) */
} s8x4_64_t;

/* Rows of 64, four at a time. Registers: r0 x, r1 row 0 (rows 1-3 at +64, +128, +192), r2-r5
 * the sums, r6-r9 activation words, r10 r11 weights, r12 a temporary, lr s; on the stack s_end. */
__attribute__((naked, noinline)) static void s8x4_64(__attribute__((unused)) const s8x4_64_t *a)
{
    __asm__ volatile(
        ESL_ASM_ROW8                              /* 8 weights (r10, r11) x r6-r9 */
        "push    {r4-r11, lr}\n\t"
        "sub     sp, sp, #4\n\t"
        "ldmia   r0, {r1, r2, r3, r4}\n\t"        /* s, s_end, w, x */
        "str     r2, [sp]\n\t"
        "mov     lr, r1\n\t"
        "mov     r1, r3\n\t"
        "mov     r0, r4\n\t"
        "1:\n\t"                                  /* four rows */
        ".irp first, 1, 0, 0, 0, 0, 0, 0, 0\n\t"
        "ldmia   r0!, {r6, r7, r8, r9}\n\t"
        "ldrd    r10, r11, [r1, #64]\n\t"
        "ESL_ROW8 r3, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"
        "ldrd    r10, r11, [r1, #128]\n\t"
        "ESL_ROW8 r4, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"
        "ldrd    r10, r11, [r1, #192]\n\t"
        "ESL_ROW8 r5, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"
        "ldrd    r10, r11, [r1], #8\n\t"          /* row 0 last: it moves the pointer */
        "ESL_ROW8 r2, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"
        ".endr\n\t"
        "stmia   lr!, {r2, r3, r4, r5}\n\t"
        "sub     r0, r0, #128\n\t"                /* x again */
        "add     r1, r1, #192\n\t"                /* row 0 + 64 -> row 4 */
        "ldr     r12, [sp]\n\t"
        "cmp     lr, r12\n\t"
        "bne     1b\n\t"
        "add     sp, sp, #4\n\t"
        "pop     {r4-r11, pc}\n\t"
        ESL_ASM_ROW8_END);
}

/* Whether W and the scratch suit the fast path: rows and the prepared x word-aligned. */
static int s8_fits(const esl_weight_t *w, const void *scratch)
{
    return w->cols >= 4u && (((uintptr_t)w->data | (uintptr_t)scratch | w->cols) & 3u) == 0u;
}

#define S8_BLOCK 16u               /* rows whose sums are formed before they are requantized */

/* s[0..n) = the sums of rows [i, i + n) of W (n <= S8_BLOCK) with x prepared (x16), for s8_fits. */
static void dsp_block_sums(int32_t *s, const esl_weight_t *w, const int16_t *x16, uint32_t i, uint32_t n)
{
    const uint32_t cols = w->cols;
    const int8_t *row = (const int8_t *)w->data + i * cols;
    const int16_t *x16_end = x16 + (cols & ~15u), *x_end = x16 + cols;
    uint32_t k = 0;
    if (cols == 64u && n >= 4u) {
        k = n & ~3u;
        const s8x4_64_t a = { s, s + k, row, x16 };
        s8x4_64(&a);
    }
    if (k + 2u <= n) {
        const uint32_t m = (n - k) & ~1u;
        const s8_pairs_t a = { s + k, s + k + m, row + k * cols, cols, x16, x16_end, x_end };
        s8_pairs(&a);
        k += m;
    }
    if (k < n) {                                      /* an odd last row: a pair with itself */
        int32_t s2[2];
        const s8_pairs_t a = { s2, s2 + 2, row + k * cols, 0u, x16, x16_end, x_end };
        s8_pairs(&a);
        s[k] = s2[0];
    }
}
#endif

#endif
