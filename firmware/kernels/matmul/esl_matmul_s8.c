/* matmul_s8 (TFLM FULLY_CONNECTED int8, per-channel): acc = bias[i] + sum_j W[i][j] * x[j] with
 * bias[i] = -in_zp * sum_j W[i][j] prepared on the host (= sum_j W[i][j] * (x[j] - in_zp), exact);
 * y[i] = clamp(mbqm(acc, mult[i], shift[i]) + out_zp, -128, 127); with out_bits 16, y is int16 and
 * y[i] = clamp(mbqm(acc, mult[i], shift[i]), -32768, 32767) (out_zp 0: an --int16 part's input).
 * scratch (DSP only): x widened to int16[cols] (esl_dot_i8.h).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of rows
 * (shares differing by one row at most), each streaming its rows through its L1 by DMA in tiles
 * (double-buffered; the first tile prefetched by the matmul before; the planner's tiling is in
 * the step's n), each row's arithmetic unchanged: bit for bit the single-core result. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_dot_i8.h"

/* y[i] of the sum acc, at y's width. */
static inline void requantize(void *y, int32_t acc, const esl_matmul_s8_t *p, uint32_t i)
{
    const int32_t r = esl_mbqm(acc, p->mult[i], p->shift[i]);
    if (p->out_bits == 16) ((int16_t *)y)[i] = esl_clamp16(r);
    else ((int8_t *)y)[i] = esl_clamp8(r + p->out_zp);
}

/* Rows [begin, end) of y, x already prepared (xv). */
static void matmul_rows(void *y, const esl_weight_t *w, const xv_t *xv, const esl_matmul_s8_t *p,
                        uint32_t begin, uint32_t end)
{
    const uint32_t cols = w->cols;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols) {
        int32_t s[4];
        dot_group4(row, cols, xv, cols, s);
        for (uint32_t r = 0; r < 4u; r++) requantize(y, p->bias[i + r] + s[r], p, i + r);
    }
    for (; i < end; i++, row += cols) requantize(y, p->bias[i] + dot_group(row, xv, cols), p, i);
}

#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE && !defined(ESL_CLUSTER_CORES)
/* Cortex-M DSP fast path for W word-aligned (data and cols) and a word-aligned scratch: the int32
 * sums of a block of rows go through assembly routines, then each row is requantized in C as
 * above (requantize: the same arithmetic). x is prepare_x's (esl_dot_i8.h: int16, each 4-chunk
 * as x0, x2, x1, x3), so `ready` keeps its meaning. Per 8 elements one LDM of 4 activation
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

/* y = W @ x for s8_fits, x prepared (x16): blocks of rows, sums by assembly, then requantize. */
static void matmul_dsp(void *y, const esl_weight_t *w, const int16_t *x16, const esl_matmul_s8_t *p)
{
    const uint32_t rows = w->rows, cols = w->cols;
    const int8_t *data = (const int8_t *)w->data;
    const int16_t *x16_end = x16 + (cols & ~15u), *x_end = x16 + cols;
    int32_t s[S8_BLOCK];
    for (uint32_t i = 0; i < rows; i += S8_BLOCK) {
        const uint32_t n = rows - i < S8_BLOCK ? rows - i : S8_BLOCK;
        const int8_t *row = data + i * cols;
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
        if (k < n) {                                  /* an odd last row: a pair with itself */
            int32_t s2[2];
            const s8_pairs_t a = { s2, s2 + 2, row + k * cols, 0u, x16, x16_end, x_end };
            s8_pairs(&a);
            s[k] = s2[0];
        }
        const int32_t *bias = p->bias + i, *mult = p->mult + i, out_zp = p->out_zp;
        const int8_t *shift = p->shift + i;            /* requantize's arithmetic, the loads hoisted */
        if (p->out_bits == 16) {
            int16_t *y16 = (int16_t *)y + i;
            for (uint32_t r = 0; r < n; r++) y16[r] = esl_clamp16(esl_mbqm(bias[r] + s[r], mult[r], shift[r]));
        } else {
            int8_t *y8 = (int8_t *)y + i;
            for (uint32_t r = 0; r < n; r++) y8[r] = esl_clamp8(esl_mbqm(bias[r] + s[r], mult[r], shift[r]) + out_zp);
        }
    }
}
#endif

#if defined(ESL_CLUSTER_CORES)
#include <stddef.h>
#include "esl_cluster.h"

/* A worker's L1 tiles (esl_cl_l1_tiles, sized by the planner: edgeslm.lower.plan_cluster.matmul_l1_bytes):
 *     x as prepared  xv_t[cols], padded to 4 bytes
 *     tiles A, B     from there, tiles 1, 3, 5, ... in A and 2, 4, ... in B
 *     tile 0         in its slot at the end (esl_cl_l1_first_tile), where the matmul before prefetched it
 * a tile: int8[tile_rows * cols] padded to 4 bytes (the rows' bias, mult and shift stay in L2). */
static uint32_t tile_bytes(const esl_weight_t *w, uint32_t tile_rows)
{
    return (tile_rows * w->cols + 3u) & ~3u;
}

static void fetch_tile(int8_t *tile, const esl_weight_t *w, uint32_t t, uint32_t n, esl_cl_dma_t *cmd)
{
    esl_cl_dma_memcpy(tile, (const int8_t *)w->data + t * w->cols, n * w->cols, cmd);
}

/* Each worker's first tile of the next matmul, fetched while this one finishes (by core). */
typedef struct {
    const esl_weight_t *w;     /* NULL: nothing in flight */
    uint32_t row, rows;
    esl_cl_dma_t cmd;
} prefetch_t;
static prefetch_t prefetched[ESL_CLUSTER_CORES];

/* Start worker `core`'s first tile of the matmul step s (the planner's next one) into the end of
 * its L1 tiles, where that matmul will look for it. */
static void prefetch(const esl_step_t *s, uint32_t core)
{
    const esl_weight_t *w = s->w;
    const uint32_t tile_rows = ESL_CL_TILE_ROWS(s->n);
    uint32_t begin, end;
    esl_cl_split(w->rows, 1u, core, esl_cl_cores(), &begin, &end);
    if (begin == end || tile_rows == 0u) return;
    prefetch_t *p = &prefetched[core];
    p->w = w;
    p->row = begin;
    p->rows = end - begin < tile_rows ? end - begin : tile_rows;
    int8_t *first = esl_cl_l1_first_tile(core, ESL_CL_SLOT(s->n), tile_bytes(w, tile_rows));
    fetch_tile(first, w, begin, p->rows, &p->cmd);
}

typedef struct {
    void *y;
    const esl_weight_t *w;
    const xv_t *xv;
    const esl_matmul_s8_t *p;
    uint32_t tile_rows;        /* rows per DMA tile (the planner's, a multiple of 4); 0: W read in L2 */
    uint32_t slot;             /* the L1 slot of its first tiles */
    const esl_step_t *next;    /* the matmul step whose first tiles this one prefetches, or NULL */
} matmul_job_t;

/* One worker's share: its contiguous range of rows, tile by tile through its L1 tiles, the DMA
 * fetching tile k + 1 while the core computes tile k, and, while it computes the last, the next
 * matmul's first tile into the other slot (tile 0 of this one is that prefetch, if it was made). */
static void matmul_job(void *arg)
{
    const matmul_job_t *j = arg;
    const esl_weight_t *w = j->w;
    const uint32_t core = esl_cl_core_id();
    uint32_t begin, end;
    esl_cl_split(w->rows, 1u, core, esl_cl_cores(), &begin, &end);
    if (j->tile_rows == 0u) {
        matmul_rows(j->y, w, j->xv, j->p, begin, end);
        return;
    }
    if (begin == end) {
        if (j->next) prefetch(j->next, core);
        return;
    }
    const uint32_t cols = w->cols, rows = j->tile_rows, tb = tile_bytes(w, rows);
    const uint32_t x_bytes = (cols * (uint32_t)sizeof(xv_t) + 3u) & ~3u;
    uint8_t *area = esl_cl_l1_tiles(core);
    xv_t *xv = (xv_t *)(void *)area;
    int8_t *const buf[2] = { (int8_t *)(area + x_bytes), (int8_t *)(area + x_bytes + tb) };
    const int8_t *tile = esl_cl_l1_first_tile(core, j->slot, tb);
    esl_cl_dma_t in, own, cmd[2];
    esl_cl_dma_memcpy(xv, j->xv, cols * (uint32_t)sizeof(xv_t), &in);
    prefetch_t *p = &prefetched[core];
    const uint32_t n0 = end - begin < rows ? end - begin : rows;
    esl_cl_dma_t *first = &own;
    if (p->w == w && p->row == begin && p->rows == n0)
        first = &p->cmd;
    else
        fetch_tile((int8_t *)tile, w, begin, n0, &own);
    p->w = NULL;
    esl_cl_dma_wait(&in);
    esl_cl_dma_wait(first);
    for (uint32_t t = begin, k = 0;; k++) {
        const uint32_t n = end - t < rows ? end - t : rows, next_t = t + n;
        if (next_t < end)
            fetch_tile(buf[k & 1u], w, next_t, end - next_t < rows ? end - next_t : rows, &cmd[k & 1u]);
        else if (j->next)
            prefetch(j->next, core);            /* the last tile: the next matmul's first, other slot */
        const esl_weight_t view = { tile, NULL, n, cols, w->group_size, w->n_groups, w->bits };
        esl_matmul_s8_t pt = *j->p;             /* the tile's rows of bias, mult and shift */
        pt.bias += t;
        pt.mult += t;
        pt.shift += t;
        matmul_rows((int8_t *)j->y + t * (uint32_t)(pt.out_bits / 8), &view, xv, &pt, 0u, n);
        if (next_t >= end) return;
        esl_cl_dma_wait(&cmd[k & 1u]);
        tile = buf[k & 1u];
        t = next_t;
    }
}

/* y = W @ x on the cluster (n: the planner's tiling, esl_cluster.h). */
static void matmul_cluster(void *y, const esl_weight_t *w, const int8_t *x, const esl_matmul_s8_t *p,
                           void *scratch, uint32_t n, const esl_step_t *next)
{
    matmul_job_t j = { y, w, prepare_x(x, (int16_t *)scratch, w->cols, w->cols, 0), p, ESL_CL_TILE_ROWS(n),
                       ESL_CL_SLOT(n), next };
    esl_cl_team_fork(matmul_job, &j);
}
#endif

#if !defined(ESL_CLUSTER_CORES)
/* y = W @ x on one core; ready: x is already laid out in the scratch (by the matmul before). */
__attribute__((always_inline)) static inline void matmul_one_core(void *y, const esl_weight_t *w, const int8_t *x,
                                                                const esl_matmul_s8_t *p, void *scratch, int ready)
{
    const xv_t *xv = prepare_x(x, (int16_t *)scratch, w->cols, w->cols, ready);
#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE
    if (s8_fits(w, scratch)) {
        matmul_dsp(y, w, xv, p);
        return;
    }
#endif
    matmul_rows(y, w, xv, p, 0u, w->rows);
}
#endif

void esl_matmul_s8(void *y, const esl_weight_t *w, const int8_t *x, const esl_matmul_s8_t *p, void *scratch)
{
#if defined(ESL_CLUSTER_CORES)
    matmul_cluster(y, w, x, p, scratch, 0u, NULL);   /* no tiling asked: the workers read W in L2 */
#else
    matmul_one_core(y, w, x, p, scratch, 0);
#endif
}

/* Step: arena[out] = s->w @ arena[in] (int8 arena; out int16 with out_bits 16); on a cluster s->n is the planner's tiling (esl_cluster.h). */
void esl_step_matmul_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
#if defined(ESL_CLUSTER_CORES)
    const uint32_t next = ESL_CL_NEXT_STEP(s->n);
    matmul_cluster(a + s->out, s->w, a + s->in, (const esl_matmul_s8_t *)s->p, c->scratch, s->n,
                   next ? &c->m->steps[next - 1u] : NULL);
#else
    matmul_one_core(a + s->out, s->w, a + s->in, (const esl_matmul_s8_t *)s->p, c->scratch,
                    (s->n & ESL_MATMUL_X_READY) != 0u);
#endif
}
