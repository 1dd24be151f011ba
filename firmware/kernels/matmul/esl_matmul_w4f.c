/* matmul_w4f: int4 weights in [-7, 7] (two per byte, element 2j in the low nibble, rows padded to
 * a whole byte), float activations; the arithmetic of matmul_w8f: x quantized by esl_quantize_i8,
 * isum per group exact in int32, y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order.
 * scratch: xq int8[round_up(cols, 4)], then xs float[n_groups]. */
#include "esl_kernels.h"

/* Two's complement nibble -> int32. */
static inline int32_t nibble(uint32_t v)
{
    return (int32_t)(v & 0x0Fu) - (int32_t)((v & 0x08u) << 1);
}

/* Sum over elements [start, end) of a packed row; start is even (groups are even-sized). */
static int32_t dot_i4(const uint8_t *row, const int8_t *x, uint32_t start, uint32_t end)
{
    int32_t acc = 0;
    uint32_t j = start;
    for (; j + 2u <= end; j += 2u) {            /* one byte: elements j (low) and j+1 (high) */
        const uint32_t b = row[j >> 1];
        acc += nibble(b) * (int32_t)x[j] + nibble(b >> 4) * (int32_t)x[j + 1];
    }
    if (j < end) acc += nibble(row[j >> 1]) * (int32_t)x[j];     /* odd row length: last one */
    return acc;
}

void esl_matmul_w4f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    const uint32_t row_bytes = (w->cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data;
    const float *ws = w->scales;
    for (uint32_t i = 0; i < w->rows; i++, row += row_bytes, ws += w->n_groups) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < w->n_groups; g++, start += w->group_size) {
            const uint32_t end = (start + w->group_size < w->cols) ? start + w->group_size : w->cols;
            acc = acc + (float)dot_i4(row, xq, start, end) * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

/* Step: arena[out] = s->w @ arena[in]. */
void esl_step_matmul_w4f(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_matmul_w4f(c->arena + s->out, s->w, c->arena + s->in, c->scratch);
}
