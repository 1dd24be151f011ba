/* matmul_w4f: int4 weights in [-7, 7] (two per byte, element 2j in the low nibble, rows padded to
 * a whole byte), float activations; the arithmetic of matmul_w8f: x quantized by esl_quantize_i8,
 * isum per group exact in int32, y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order.
 * scratch: xq int8[round_up(cols, 4)], then xs float[n_groups]; (DSP) then xsum int32[n_groups],
 * then x16 int16[cols]. */
#include "esl_kernels.h"

/* Two's complement nibble -> int32. */
static inline int32_t nibble(uint32_t v)
{
    return (int32_t)(v & 0x0Fu) - (int32_t)((v & 0x08u) << 1);
}

#if ESL_KERNELS_DSP
/* Cortex-M DSP extension: 8 weights per 32-bit load. With u = nibble ^ 8 (0..15), w = u - 8, so
 * sum(w * x) = sum(u * x) - 8 * sum(x), exact in int32. v ^ 0x88888888 gives the u nibbles; AND with
 * 0x0F0F0F0F gives (u0, u2, u4, u6) as bytes, the same after LSR #4 (u1, u3, u5, u7); UXTB16 (and
 * UXTB16 ROR #8) makes int16 pairs (u0, u4), (u2, u6), (u1, u5), (u3, u7), and x is laid out once
 * per call in that order, per 8-chunk of a group, so four SMLADs do 8 MACs. sum(x) over the
 * chunked part of each group is computed once per call too. Tail elements (n % 8) go by nibble(). */
#include "esl_arm_dsp.h"

/* x16 per group: each 8-chunk as (x0, x4, x2, x6, x1, x5, x3, x7), the tail as is; xsum[g] = sum of
 * the chunked elements of group g. */
static void prepare_x(const int8_t *xq, int16_t *x16, int32_t *xsum, uint32_t cols, uint32_t gs)
{
    for (uint32_t g = 0, start = 0; start < cols; g++, start += gs) {
        const uint32_t n = (start + gs < cols) ? gs : cols - start;
        const int8_t *x = xq + start;
        int16_t *o = x16 + start;
        int32_t sum = 0;
        uint32_t j = 0;
        for (; j + 8u <= n; j += 8u) {
            o[j] = x[j];
            o[j + 1u] = x[j + 4u];
            o[j + 2u] = x[j + 2u];
            o[j + 3u] = x[j + 6u];
            o[j + 4u] = x[j + 1u];
            o[j + 5u] = x[j + 5u];
            o[j + 6u] = x[j + 3u];
            o[j + 7u] = x[j + 7u];
            for (uint32_t k = 0; k < 8u; k++) sum += x[j + k];
        }
        for (; j < n; j++) o[j] = x[j];
        xsum[g] = sum;
    }
}

/* The packed-nibble tail of one row's group: elements [j, n) of the group at b (bytes) and x. */
static int32_t tail_i4(const uint8_t *b, const int16_t *x, uint32_t j, uint32_t n)
{
    int32_t acc = 0;
    for (; j + 2u <= n; j += 2u) {
        const uint32_t v = b[j >> 1];
        acc += nibble(v) * (int32_t)x[j] + nibble(v >> 4) * (int32_t)x[j + 1u];
    }
    if (j < n) acc += nibble(b[j >> 1]) * (int32_t)x[j];
    return acc;
}

/* 4 MACs of sum(u * x): a word of 8 nibbles (already ^ 0x88888888) against 4 words of x16. */
#define W4F_CHUNK(acc, u, xp)                                              \
    do {                                                                   \
        const uint32_t lo_ = (u) & 0x0F0F0F0Fu, hi_ = ((u) >> 4) & 0x0F0F0F0Fu; \
        acc = __smlad(__uxtb16(lo_), (xp)[0], acc);      /* u0*x0 + u4*x4 */  \
        acc = __smlad(esl_uxtb16_ror8(lo_), (xp)[1], acc);   /* u2*x2 + u6*x6 */  \
        acc = __smlad(__uxtb16(hi_), (xp)[2], acc);      /* u1*x1 + u5*x5 */  \
        acc = __smlad(esl_uxtb16_ror8(hi_), (xp)[3], acc);   /* u3*x3 + u7*x7 */  \
    } while (0)

/* Sums of rows r0 and r1 over the group at [start, start + n), start even; two rows share each
 * load of x. */
static inline void dot_group2(const uint8_t *r0, const uint8_t *r1, const int16_t *x16, int32_t xsum,
                              uint32_t start, uint32_t n, int32_t s[2])
{
    const uint8_t *b0 = r0 + start / 2u, *b1 = r1 + start / 2u;
    const int16_t *x = x16 + start;
    const uint32_t chunked = n & ~7u;
    int32_t a0 = 0, a1 = 0;
    for (uint32_t j = 0; j < chunked; j += 8u) {
        uint32_t xw[4];
        memcpy(xw, x + j, 16);
        W4F_CHUNK(a0, esl_ld32(b0 + j / 2u) ^ 0x88888888u, xw);
        W4F_CHUNK(a1, esl_ld32(b1 + j / 2u) ^ 0x88888888u, xw);
    }
    s[0] = a0 - 8 * xsum + tail_i4(b0, x, chunked, n);
    s[1] = a1 - 8 * xsum + tail_i4(b1, x, chunked, n);
}

void esl_matmul_w4f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
    int8_t *xq = (int8_t *)scratch;
    float *xs = (float *)(void *)(xq + ((w->cols + 3u) & ~3u));
    int32_t *xsum = (int32_t *)(void *)(xs + w->n_groups);
    int16_t *x16 = (int16_t *)(void *)(xsum + w->n_groups);
    esl_quantize_i8(xq, xs, x, w->cols, w->group_size);
    prepare_x(xq, x16, xsum, w->cols, w->group_size);
    const uint32_t row_bytes = (w->cols + 1u) / 2u;
    const uint8_t *row = (const uint8_t *)w->data;
    const float *ws = w->scales;
    const uint32_t ng = w->n_groups;
    uint32_t i = 0;
    for (; i < w->rows; i += 2u, row += 2u * row_bytes, ws += 2u * ng) {
        const int pair = i + 1u < w->rows;       /* an odd last row runs as its own pair, once used */
        const uint8_t *row1 = pair ? row + row_bytes : row;
        const float *ws1 = pair ? ws + ng : ws;
        float acc0 = 0.0f, acc1 = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += w->group_size) {
            const uint32_t n = (start + w->group_size < w->cols) ? w->group_size : w->cols - start;
            int32_t s[2];
            dot_group2(row, row1, x16, xsum[g], start, n, s);
            acc0 = acc0 + (float)s[0] * (ws[g] * xs[g]);
            acc1 = acc1 + (float)s[1] * (ws1[g] * xs[g]);
        }
        y[i] = acc0;
        if (pair) y[i + 1u] = acc1;
    }
}

#else
/* Portable C: the reference every variant must equal. */
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
#endif

/* Step: arena[out] = s->w @ arena[in]. */
void esl_step_matmul_w4f(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_matmul_w4f(c->arena + s->out, s->w, c->arena + s->in, c->scratch);
}
