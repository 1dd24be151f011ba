#include "esl_expf_inline.h"
#include "esl_kernels.h"

void esl_softmax_f32(float *x, uint32_t n)
{
    float m = x[0];
    for (uint32_t t = 1; t < n; t++) {
        if (x[t] > m) m = x[t];
    }
    float sum = 0.0f;
    for (uint32_t t = 0; t < n; t++) {
        x[t] = esl_expf_nonpos_inline(x[t] - m);   /* x[t] - m <= 0 */
        sum += x[t];
    }
    const float inv = 1.0f / sum;
    for (uint32_t t = 0; t < n; t++) {
        x[t] = x[t] * inv;
    }
}
