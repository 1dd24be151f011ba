/* matmul_s16: an int16 x (zero point 0: the gated SwiGLU output of --int16 ffn) times int8
 * per-channel W, to int8: acc = sum_j W[i][j] * x[j], exact in int32 for cols <= 516
 * (516 * 127 * 32768 < 2^31; the quantizer refuses wider); y[i] = clamp(mbqm(acc, mult[i], shift[i])
 * + out_zp) (matmul_s8's requantization); out_bits 16 (--int16 residual): y int16, clamp16 of the
 * same mbqm (out_zp 0). TFLM's 16x8 FULLY_CONNECTED sums in int64 and requantizes with its int64
 * form, so neither output is its twin (golden: quant/golden_s8.matmul_s16).
 * scratch (dsp): x reordered for SMLAD, int16[round_up(cols, 2)] (esl_dot_i8.h with ESL_DOT_X16), the
 * layout matmul_s8 prepares from int8, so its assembly forms the sums (esl_matmul_s8_dsp.h).
 * On a cluster (ESL_CLUSTER_CORES) the workers take contiguous ranges of rows, W read where it is
 * (no DMA tiles: w2 is one matrix of five per layer), each row's arithmetic unchanged. */
#include <string.h>
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#define ESL_DOT_X16 1
#include "esl_dot_i8.h"
#include "esl_matmul_s8_dsp.h"

/* y[i] of the sum acc, at y's width. */
static inline void requantize(void *y, int32_t acc, const esl_matmul_s16_t *p, uint32_t i)
{
    const int32_t r = esl_mbqm(acc, p->mult[i], p->shift[i]);
    if (p->out_bits == 16) ((int16_t *)y)[i] = esl_clamp16(r);
    else ((int8_t *)y)[i] = esl_clamp8(r + p->out_zp);
}

/* Rows [begin, end) of y, x prepared (xv). */
static void matmul_rows(void *y, const esl_weight_t *w, const xv_t *xv, const esl_matmul_s16_t *p,
                        uint32_t begin, uint32_t end)
{
    const uint32_t cols = w->cols;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols) {
        int32_t s[4];
        dot_group4(row, cols, xv, cols, s);
        for (uint32_t r = 0; r < 4u; r++) requantize(y, s[r], p, i + r);
    }
    for (; i < end; i++, row += cols) requantize(y, dot_group(row, xv, cols), p, i);
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    void *y;
    const esl_weight_t *w;
    const xv_t *xv;
    const esl_matmul_s16_t *p;
} matmul_job_t;

static void matmul_job(void *arg)
{
    const matmul_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->w->rows, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    matmul_rows(j->y, j->w, j->xv, j->p, begin, end);
}
#endif

#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE && !defined(ESL_CLUSTER_CORES)
/* y = W @ x for s8_fits: blocks of rows, sums by matmul_s8's assembly, then requantize. */
static void matmul_dsp(void *y, const esl_weight_t *w, const int16_t *x16, const esl_matmul_s16_t *p)
{
    int32_t s[S8_BLOCK];
    for (uint32_t i = 0; i < w->rows; i += S8_BLOCK) {
        const uint32_t n = w->rows - i < S8_BLOCK ? w->rows - i : S8_BLOCK;
        dsp_block_sums(s, w, x16, i, n);
        for (uint32_t r = 0; r < n; r++) requantize(y, s[r], p, i + r);
    }
}
#endif

void esl_matmul_s16(void *y, const esl_weight_t *w, const int16_t *x, const esl_matmul_s16_t *p, void *scratch)
{
    const xv_t *xv = prepare_x(x, (int16_t *)scratch, w->cols, w->cols, 0);
#if defined(ESL_CLUSTER_CORES)
    matmul_job_t j = { y, w, xv, p };
    esl_cl_team_fork(matmul_job, &j);
#else
#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE
    if (s8_fits(w, scratch)) {
        matmul_dsp(y, w, xv, p);
        return;
    }
#endif
    matmul_rows(y, w, xv, p, 0u, w->rows);
#endif
}

/* Step: arena[out] (int8, or int16 with out_bits 16) = s->w @ arena[in] (int16). */
void esl_step_matmul_s16(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_matmul_s16(a + s->out, s->w, (const int16_t *)(const void *)(a + s->in), (const esl_matmul_s16_t *)s->p,
                   c->scratch);
}
