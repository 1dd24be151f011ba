#include "esl_kernels.h"

/* Two's complement nibble -> int32. */
static inline int32_t nibble(uint8_t v)
{
    return (int32_t)(v & 0x0F) - (int32_t)((v & 0x08) << 1);
}

void esl_matmul_q4(float *y, const esl_weight_t *w, const float *x, int8_t *xq, float *xs)
{
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const uint32_t row_bytes = (w->cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += row_bytes, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            int32_t isum = 0;
            for (uint32_t j = start; j < end; j++) {
                const uint8_t b = row[j >> 1];
                isum += nibble((j & 1u) ? (uint8_t)(b >> 4) : b) * (int32_t)xq[j];
            }
            acc = acc + (float)isum * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}
