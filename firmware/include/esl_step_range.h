/* Step entries of element-wise kernels (add, SwiGLU, RoPE, the fp32 KV store): the step's work over
 * items [begin, end) is one range function, run over all n items on one core, or on a cluster
 * (ESL_CLUSTER_CORES, esl_cluster.h) by each worker over its contiguous share (esl_cl_split). Every
 * item's arithmetic is the same whichever core does it, so the results are the single core's.
 * Static inline: on one core the range function is called directly. */
#ifndef ESL_STEP_RANGE_H
#define ESL_STEP_RANGE_H

#include <stdint.h>

#include "esl_types.h"

typedef void (*esl_range_fn_t)(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end);

#if defined(ESL_CLUSTER_CORES)
#include "esl_cluster.h"

typedef struct {
    const esl_step_t *s;
    const esl_ctx_t *c;
    uint32_t n;
    esl_range_fn_t fn;
} esl_range_job_t;

static inline void esl_range_job(void *arg)
{
    const esl_range_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    j->fn(j->s, j->c, begin, end);
}
#endif

static inline void esl_step_over_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t n, esl_range_fn_t fn)
{
#if defined(ESL_CLUSTER_CORES)
    esl_range_job_t j = { s, c, n, fn };
    esl_cl_team_fork(esl_range_job, &j);
#else
    fn(s, c, 0u, n);
#endif
}

#endif
