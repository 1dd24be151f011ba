#include "esl_kernels.h"

void esl_swiglu_f32(float *h1, const float *h3, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        h1[i] = (h1[i] * (1.0f / (1.0f + esl_expf(-h1[i])))) * h3[i];
    }
}
