#include "esl_kernels.h"

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
