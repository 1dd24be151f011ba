#include "esl_kernels.h"

void esl_add_f32(float *x, const float *y, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        x[i] = x[i] + y[i];
    }
}
