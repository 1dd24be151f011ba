#include "esl_kernels.h"

#if ESL_KERNELS_DSP
/* Cortex-M DSP extension (M4/M7/M33), CMSIS-NN style: x is widened to int16 once per call, each
 * 4-chunk of a group stored as (x0, x2, x1, x3) to match SXTB16's split of 4 weights into (w0, w2)
 * and (w1, w3); then two SMLADs do 4 MACs. The integer sums are exact, so y is the portable
 * kernel's, bit for bit. */
#include <arm_acle.h>
#include <string.h>

static void widen_group(int16_t *x16, const int8_t *xq, uint32_t n)
{
    uint32_t j = 0;
    for (; j + 4u <= n; j += 4u) {
        x16[j] = xq[j];
        x16[j + 1] = xq[j + 2];
        x16[j + 2] = xq[j + 1];
        x16[j + 3] = xq[j + 3];
    }
    for (; j < n; j++) x16[j] = xq[j];
}

static int32_t dot_group(const int8_t *w, const int16_t *x16, uint32_t n)
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

void esl_matmul_q8(float *y, const esl_weight_t *w, const float *x, int8_t *xq, float *xs)
{
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    int16_t *x16 = (int16_t *)(void *)(xq + ((w->cols + 3u) & ~3u));   /* see ESL_QACT_BYTES */
    for (uint32_t start = 0; start < w->cols; start += w->group_size) {
        const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
        widen_group(x16 + start, xq + start, end - start);
    }
    const int8_t *row = (const int8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += w->cols, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            const int32_t isum = dot_group(row + start, x16 + start, end - start);
            acc = acc + (float)isum * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

#else

void esl_matmul_q8(float *y, const esl_weight_t *w, const float *x, int8_t *xq, float *xs)
{
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const int8_t *row = (const int8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += w->cols, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            int32_t isum = 0;
            for (uint32_t j = start; j < end; j++) {
                isum += (int32_t)row[j] * (int32_t)xq[j];
            }
            acc = acc + (float)isum * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

#endif
