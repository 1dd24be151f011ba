/* matmul_w8f: int8 weights, float activations. x is quantized by esl_quantize_i8 with W's group
 * size; per row i and group g: isum = sum((int32_t)Wq * (int32_t)xq) (exact),
 * y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order, y[i] starting at 0.0f.
 * scratch: xq int8[round_up(cols, 4)], xs float[n_groups], then (DSP) x16 int16[cols]. */
#include "esl_kernels.h"

/* Each variant supplies the type of the prepared input (xv_t), prepare_x() and dot_group();
 * the matmul below is shared. Both give the same bits: the integer sums are exact. */
#if ESL_KERNELS_DSP
/* Cortex-M DSP extension (M4/M7/M33), CMSIS-NN style: x is widened to int16 once per call, each
 * 4-chunk of a group stored as (x0, x2, x1, x3) to match SXTB16's split of 4 weights into (w0, w2)
 * and (w1, w3); then two SMLADs do 4 MACs. */
#include <arm_acle.h>
#include <string.h>

typedef int16_t xv_t;

static const xv_t *prepare_x(int8_t *xq, int16_t *x16, uint32_t cols, uint32_t gs)
{
    for (uint32_t start = 0; start < cols; start += gs) {
        const uint32_t n = (start + gs < cols) ? gs : cols - start;
        const int8_t *x = xq + start;
        int16_t *o = x16 + start;
        uint32_t j = 0;
        for (; j + 4u <= n; j += 4u) {
            o[j] = x[j];
            o[j + 1] = x[j + 2];
            o[j + 2] = x[j + 1];
            o[j + 3] = x[j + 3];
        }
        for (; j < n; j++) o[j] = x[j];
    }
    return x16;
}

static int32_t dot_group(const int8_t *w, const xv_t *x16, uint32_t n)
{
    int32_t acc = 0;
    uint32_t j = 0;
    for (; j + 4u <= n; j += 4u) {
        uint32_t w4, x02, x13;
        memcpy(&w4, w + j, 4);                 /* LDR: unaligned access is fine on v7-M */
        memcpy(&x02, x16 + j, 4);
        memcpy(&x13, x16 + j + 2, 4);
        acc = __smlad(__sxtb16(w4), x02, acc);                 /* w0*x0 + w2*x2 */
        acc = __smlad(__sxtb16(w4 >> 8), x13, acc);            /* w1*x1 + w3*x3 */
    }
    for (; j < n; j++) acc += (int32_t)w[j] * (int32_t)x16[j];
    return acc;
}

#else
/* Portable C: the reference every variant must equal. */
typedef int8_t xv_t;

static const xv_t *prepare_x(int8_t *xq, int16_t *x16, uint32_t cols, uint32_t gs)
{
    (void)x16;
    (void)cols;
    (void)gs;
    return xq;
}

static int32_t dot_group(const int8_t *w, const xv_t *x, uint32_t n)
{
    int32_t acc = 0;
    for (uint32_t j = 0; j < n; j++) acc += (int32_t)w[j] * (int32_t)x[j];
    return acc;
}
#endif

void esl_matmul_w8f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    int16_t *x16 = (int16_t *)(void *)(xs + w->n_groups);
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const xv_t *xv = prepare_x(xq, x16, w->cols, w->group_size);
    const int8_t *row = (const int8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += w->cols, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            const int32_t isum = dot_group(row + start, xv + start, end - start);
            acc = acc + (float)isum * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

/* Step: arena[out] = s->w @ arena[in]. */
void esl_step_matmul_w8f(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_matmul_w8f(c->arena + s->out, s->w, c->arena + s->in, c->scratch);
}
