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
#include "esl_matmul_s8_dsp.h"

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
/* y = W @ x for s8_fits, x prepared (x16): blocks of rows, sums by assembly (esl_matmul_s8_dsp.h),
 * then requantize. */
static void matmul_dsp(void *y, const esl_weight_t *w, const int16_t *x16, const esl_matmul_s8_t *p)
{
    const uint32_t rows = w->rows;
    int32_t s[S8_BLOCK];
    for (uint32_t i = 0; i < rows; i += S8_BLOCK) {
        const uint32_t n = rows - i < S8_BLOCK ? rows - i : S8_BLOCK;
        dsp_block_sums(s, w, x16, i, n);
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
