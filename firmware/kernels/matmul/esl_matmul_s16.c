/* matmul_s16: an int16 x (zero point 0: the gated SwiGLU output of --int16 ffn) times int8
 * per-channel W, to int8: acc = sum_j W[i][j] * x[j], exact in int32 for cols <= 516
 * (516 * 127 * 32768 < 2^31; the quantizer refuses wider); y[i] = clamp(mbqm(acc, mult[i], shift[i])
 * + out_zp) (matmul_s8's requantization). TFLM's 16x8 FULLY_CONNECTED writes int16, so this
 * int8 output is edgeslm's own (golden: quant/golden_s8.matmul_s16).
 * scratch (dsp): x reordered for SMLAD, int16[round_up(cols, 2)] (esl_dot_i8.h with ESL_DOT_X16).
 * It runs on one core (on a cluster board, the fabric controller's). */
#include <string.h>
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#define ESL_DOT_X16 1
#include "esl_dot_i8.h"

void esl_matmul_s16(int8_t *y, const esl_weight_t *w, const int16_t *x, const esl_matmul_s16_t *p, void *scratch)
{
    const uint32_t rows = w->rows, cols = w->cols;
    const xv_t *xv = prepare_x(x, (int16_t *)scratch, cols, cols, 0);
    const int8_t *row = (const int8_t *)w->data;
    const int32_t out_zp = p->out_zp;
    uint32_t i = 0;
    for (; i + 4u <= rows; i += 4u, row += 4u * cols) {
        int32_t s[4];
        dot_group4(row, cols, xv, cols, s);
        for (uint32_t r = 0; r < 4u; r++) y[i + r] = esl_clamp8(esl_mbqm(s[r], p->mult[i + r], p->shift[i + r]) + out_zp);
    }
    for (; i < rows; i++, row += cols) y[i] = esl_clamp8(esl_mbqm(dot_group(row, xv, cols), p->mult[i], p->shift[i]) + out_zp);
}

/* Step: arena[out] (int8) = s->w @ arena[in] (int16). */
void esl_step_matmul_s16(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
    esl_matmul_s16(a + s->out, s->w, (const int16_t *)(const void *)(a + s->in), (const esl_matmul_s16_t *)s->p,
                   c->scratch);
}
