/* matmul_w8f: int8 weights, float activations. x is quantized by esl_quantize_i8 with W's group
 * size; per row i and group g: isum = sum((int32_t)Wq * (int32_t)xq) (exact),
 * y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order, y[i] starting at 0.0f.
 * scratch: xq int8[round_up(cols, 4)], xs float[n_groups], then (DSP only) x16 int16[cols].
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) the fabric controller quantizes x once, then the
 * workers take contiguous ranges of rows (boundaries at multiples of 4): every row's arithmetic is
 * the same whichever core runs it, so the result is bit for bit the single-core one. An ISA branch
 * for the cluster's own cores (Xpulp, ESL_KERNELS_XPULP: pv.sdotsp.b, 4 int8 MACs per instruction)
 * would go in esl_dot_i8.h beside the DSP and Helium ones; QEMU cannot run it. */
#include "esl_kernels.h"

/* The int8 dot products (portable, DSP and Helium branches) are shared with matmul_s8. */
#include "esl_dot_i8.h"

/* Rows [begin, end) of y = W @ x, x already quantized and prepared (xv, xs). On a cluster each
 * worker runs it on its own rows and it is not inlined: in the worker's job gcc 12 (rv32) would
 * spill the four row sums in the inner loop (9.2 instead of 4.25 instructions per MAC). */
#if defined(ESL_CLUSTER_CORES)
__attribute__((noinline))
#endif
static void matmul_rows(float *y, const esl_weight_t *w, const xv_t *xv, const float *xs, uint32_t begin,
                        uint32_t end)
{
    const uint32_t cols = w->cols, ng = w->n_groups, gs = w->group_size;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    const float *ws = w->scales + begin * ng;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols, ws += 4u * ng) {
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += gs) {
            const uint32_t n = (start + gs < cols) ? gs : cols - start;
            int32_t s[4];
            dot_group4(row + start, cols, xv + start, n, s);
            const float xsg = xs[g];
            acc0 = acc0 + (float)s[0] * (ws[g] * xsg);
            acc1 = acc1 + (float)s[1] * (ws[ng + g] * xsg);
            acc2 = acc2 + (float)s[2] * (ws[2u * ng + g] * xsg);
            acc3 = acc3 + (float)s[3] * (ws[3u * ng + g] * xsg);
        }
        y[i] = acc0;
        y[i + 1u] = acc1;
        y[i + 2u] = acc2;
        y[i + 3u] = acc3;
    }
    for (; i < end; i++, row += cols, ws += ng) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += gs) {
            const uint32_t n = (start + gs < cols) ? gs : cols - start;
            acc = acc + (float)dot_group(row + start, xv + start, n) * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

/* What the fabric controller hands the workers: the output, W and the prepared x. */
typedef struct {
    float *y;
    const esl_weight_t *w;
    const xv_t *xv;
    const float *xs;
} matmul_job_t;

/* One worker's share: its contiguous range of rows. */
static void matmul_job(void *arg)
{
    const matmul_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->w->rows, 4u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    matmul_rows(j->y, j->w, j->xv, j->xs, begin, end);
}
#endif

void esl_matmul_w8f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    int16_t *x16 = (int16_t *)(void *)(xs + w->n_groups);
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const xv_t *xv = prepare_x(xq, x16, w->cols, w->group_size);
#if defined(ESL_CLUSTER_CORES)
    matmul_job_t j = { y, w, xv, xs };
    esl_cl_team_fork(matmul_job, &j);
#else
    matmul_rows(y, w, xv, xs, 0u, w->rows);
#endif
}

/* Step: arena[out] = s->w @ arena[in]. */
void esl_step_matmul_w8f(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_matmul_w8f(c->arena + s->out, s->w, c->arena + s->in, c->scratch);
}
