/* The forward pass: run the generated step table, one kernel per step, and add each step's
 * counter ticks to its profile entry. Every kernel choice was made on the host. On a cluster the
 * step loop runs where forks are issued from (esl_cluster_run: under PMSIS the cluster controller). */
#include "esl_port.h"
#include "esl_runtime.h"
#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"
#endif

typedef struct {
    const esl_model_t *m;
    const esl_ctx_t *c;
} pass_t;

static void run_steps(void *arg)
{
    const pass_t *p = arg;
    const esl_model_t *m = p->m;
    uint64_t t = esl_port_cycles();
    for (uint32_t i = 0; i < m->n_steps; i++) {
        const esl_step_t *s = &m->steps[i];
        s->run(s, p->c);
        const uint64_t now = esl_port_cycles();
        m->step_cycles[i] += now - t;
        t = now;
    }
}

void *esl_forward(const esl_model_t *m, uint32_t token, uint32_t pos)
{
    const uint32_t half = m->head_size / 2u;
    /* the float RoPE tables (the s8 kernels carry their own, in their step parameters) */
    const float *cos = m->rope_cos ? m->rope_cos + pos * half : 0;
    const float *sin = m->rope_sin ? m->rope_sin + pos * half : 0;
    const esl_ctx_t c = { m, m->arena, m->scratch, token, pos, cos, sin };
    pass_t p = { m, &c };
#if defined(ESL_CLUSTER_CORES)
    esl_cluster_run(run_steps, &p);
#else
    run_steps(&p);
#endif
    return (uint8_t *)m->arena + m->logits_byte;
}

void esl_profile_reset(const esl_model_t *m)
{
    for (uint32_t i = 0; i < m->n_steps; i++) m->step_cycles[i] = 0;
}
