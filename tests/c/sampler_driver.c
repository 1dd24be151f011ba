/* Test driver: the firmware's sampler (firmware/runtime/sampler.c) on requests read from stdin,
 * so tests/test_sampler.py can compare it with host/edgeslm/sampler.py on any input. Test code:
 * malloc is fine here. Request: n u32, temperature f32, topp f32, seed u64, logits f32[n];
 * answer: token u32, the sampler's state afterwards u64. Ends at EOF. */
#include <stdio.h>
#include <stdlib.h>
#include "esl_runtime.h"

int main(void)
{
    for (;;) {
        uint32_t n;
        float temperature, topp;
        uint64_t seed;
        if (fread(&n, 4, 1, stdin) != 1) return 0;
        if (fread(&temperature, 4, 1, stdin) != 1 || fread(&topp, 4, 1, stdin) != 1 ||
            fread(&seed, 8, 1, stdin) != 1) return 2;
        float *logits = malloc(4u * n);
        esl_probindex_t *pi = malloc(sizeof *pi * n);
        if (!logits || !pi || fread(logits, 4, n, stdin) != n) return 2;
        esl_sampler_t s = { temperature, topp, seed, pi, n };
        const uint32_t token = esl_sample(&s, logits);
        fwrite(&token, 4, 1, stdout);
        fwrite(&s.rng_state, 8, 1, stdout);
        fflush(stdout);
        free(logits);
        free(pi);
    }
}
