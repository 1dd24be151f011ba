/* matmul_s8 (TFLM FULLY_CONNECTED int8, per-channel): acc = bias[i] + sum_j W[i][j] * x[j] with
 * bias[i] = -in_zp * sum_j W[i][j] prepared on the host (= sum_j W[i][j] * (x[j] - in_zp), exact);
 * y[i] = clamp(mbqm(acc, mult[i], shift[i]) + out_zp, -128, 127).
 * scratch (DSP only): x widened to int16[cols] (esl_dot_i8.h). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_dot_i8.h"

static inline int8_t requantize(int32_t acc, const esl_matmul_s8_t *p, uint32_t i)
{
    return esl_clamp8(esl_mbqm(acc, p->mult[i], p->shift[i]) + p->out_zp);
}

void esl_matmul_s8(int8_t *y, const esl_weight_t *w, const int8_t *x, const esl_matmul_s8_t *p, void *scratch)
{
    const uint32_t cols = w->cols;
    const xv_t *xv = prepare_x(x, (int16_t *)scratch, cols, cols);
    const int8_t *row = (const int8_t *)w->data;
    uint32_t i = 0;
    for (; i + 4u <= w->rows; i += 4u, row += 4u * cols) {
        int32_t s[4];
        dot_group4(row, cols, xv, cols, s);
        for (uint32_t r = 0; r < 4u; r++) y[i + r] = requantize(p->bias[i + r] + s[r], p, i + r);
    }
    for (; i < w->rows; i++, row += cols) y[i] = requantize(p->bias[i] + dot_group(row, xv, cols), p, i);
}

/* Step: arena[out] = s->w @ arena[in] (int8 arena). */
void esl_step_matmul_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_matmul_s8(a + s->out, s->w, a + s->in, (const esl_matmul_s8_t *)s->p, c->scratch);
}
