/* matmul_s8 (TFLM FULLY_CONNECTED int8, per-channel): acc = bias[i] + sum_j W[i][j] * x[j] with
 * bias[i] = -in_zp * sum_j W[i][j] prepared on the host (= sum_j W[i][j] * (x[j] - in_zp), exact);
 * y[i] = clamp(mbqm(acc, mult[i], shift[i]) + out_zp, -128, 127).
 * scratch (DSP only): x widened to int16[cols] (esl_dot_i8.h).
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the workers take contiguous ranges of rows
 * (boundaries at multiples of 4), each row's arithmetic unchanged: bit for bit the single-core result. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_dot_i8.h"

static inline int8_t requantize(int32_t acc, const esl_matmul_s8_t *p, uint32_t i)
{
    return esl_clamp8(esl_mbqm(acc, p->mult[i], p->shift[i]) + p->out_zp);
}

/* Rows [begin, end) of y, x already prepared (xv). */
static void matmul_rows(int8_t *y, const esl_weight_t *w, const xv_t *xv, const esl_matmul_s8_t *p,
                        uint32_t begin, uint32_t end)
{
    const uint32_t cols = w->cols;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols) {
        int32_t s[4];
        dot_group4(row, cols, xv, cols, s);
        for (uint32_t r = 0; r < 4u; r++) y[i + r] = requantize(p->bias[i + r] + s[r], p, i + r);
    }
    for (; i < end; i++, row += cols) y[i] = requantize(p->bias[i] + dot_group(row, xv, cols), p, i);
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    int8_t *y;
    const esl_weight_t *w;
    const xv_t *xv;
    const esl_matmul_s8_t *p;
} matmul_job_t;

/* One worker's share: its contiguous range of rows. */
static void matmul_job(void *arg)
{
    const matmul_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->w->rows, 4u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    matmul_rows(j->y, j->w, j->xv, j->p, begin, end);
}
#endif

void esl_matmul_s8(int8_t *y, const esl_weight_t *w, const int8_t *x, const esl_matmul_s8_t *p, void *scratch)
{
    const xv_t *xv = prepare_x(x, (int16_t *)scratch, w->cols, w->cols);
#if defined(ESL_CLUSTER_CORES)
    matmul_job_t j = { y, w, xv, p };
    esl_cl_team_fork(matmul_job, &j);
#else
    matmul_rows(y, w, xv, p, 0u, w->rows);
#endif
}

/* Step: arena[out] = s->w @ arena[in] (int8 arena). */
void esl_step_matmul_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_matmul_s8(a + s->out, s->w, a + s->in, (const esl_matmul_s8_t *)s->p, c->scratch);
}
