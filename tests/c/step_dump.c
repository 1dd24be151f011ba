/* Runs the generated step table one step at a time and writes the whole activation arena after
 * every step to stdout, so the host can compare each step's output with its golden function at
 * tolerance 0 (tests/test_s8_kernels.py). Arguments: arena bytes, then the token of each position.
 * Built natively with the generated model, the kernels and runtime/forward.c's context rules. */
#include <stdio.h>
#include <stdlib.h>
#include "esl_runtime.h"

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ARENA_BYTES TOKEN...\n", argv[0]);
        return 2;
    }
    const esl_model_t *m = &esl_model;
    const size_t arena_bytes = (size_t)strtoul(argv[1], NULL, 10);
    const uint32_t half = m->head_size / 2u;
    for (int a = 2; a < argc; a++) {
        const uint32_t pos = (uint32_t)(a - 2), token = (uint32_t)strtoul(argv[a], NULL, 10);
        const float *cos = m->rope_cos ? m->rope_cos + pos * half : NULL;
        const float *sin = m->rope_sin ? m->rope_sin + pos * half : NULL;
        const esl_ctx_t c = { m, m->arena, m->scratch, token, pos, cos, sin };
        for (uint32_t i = 0; i < m->n_steps; i++) {
            m->steps[i].run(&m->steps[i], &c);
            if (fwrite(m->arena, 1, arena_bytes, stdout) != arena_bytes) return 1;
        }
    }
    return 0;
}
