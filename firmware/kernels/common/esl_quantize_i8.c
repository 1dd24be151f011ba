#include "esl_kernels.h"

void esl_quantize_i8(int8_t *q, float *s, const float *x, uint32_t n, uint32_t gs)
{
    for (uint32_t g = 0, start = 0; start < n; g++, start += gs) {
        const uint32_t end = (start + gs < n) ? start + gs : n;
        float amax = 0.0f;
        for (uint32_t j = start; j < end; j++) {
            const float a = x[j] >= 0.0f ? x[j] : -x[j];
            if (a > amax) amax = a;
        }
        if (amax == 0.0f) {
            s[g] = 0.0f;
            for (uint32_t j = start; j < end; j++) q[j] = 0;
            continue;
        }
        s[g] = amax / 127.0f;
        const float inv = 127.0f / amax;
        for (uint32_t j = start; j < end; j++) {
            int32_t v = (int32_t)(x[j] * inv + (x[j] >= 0.0f ? 0.5f : -0.5f));
            if (v > 127) v = 127;
            if (v < -127) v = -127;
            q[j] = (int8_t)v;
        }
    }
}
