/* matmul_f32: y[i] = seqsum_j(W[i][j] * x[j]), W (rows, cols) fp32. */
#include "esl_kernels.h"

void esl_matmul_f32(float *y, const esl_weight_t *w, const float *x)
{
    const float *row = (const float *)w->data;
    for (uint32_t i = 0; i < w->rows; i++, row += w->cols) {
        float acc = 0.0f;
        for (uint32_t j = 0; j < w->cols; j++) {
            acc += row[j] * x[j];
        }
        y[i] = acc;
    }
}

/* Step: arena[out] = s->w @ arena[in]. */
void esl_step_matmul_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_matmul_f32(c->arena + s->out, s->w, c->arena + s->in);
}
