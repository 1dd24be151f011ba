#include <math.h>
#include "esl_kernels.h"

void esl_rmsnorm_f32(float *o, const float *x, const float *w, uint32_t n, float eps)
{
    float ss = 0.0f;
    for (uint32_t j = 0; j < n; j++) {
        ss += x[j] * x[j];
    }
    ss = ss / (float)n;
    ss = ss + eps;
    const float r = 1.0f / sqrtf(ss);
    for (uint32_t j = 0; j < n; j++) {
        o[j] = w[j] * (r * x[j]);
    }
}
