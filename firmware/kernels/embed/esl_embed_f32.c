/* embed_f32: o[j] = E[token][j], a copy of one row of the fp32 table. */
#include "esl_kernels.h"

void esl_embed_f32(float *o, const esl_weight_t *table, uint32_t token)
{
    const float *row = (const float *)table->data + token * table->cols;
    for (uint32_t j = 0; j < table->cols; j++) o[j] = row[j];
}

/* Step: arena[out] = row `token` of s->w. */
void esl_step_embed_f32(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_embed_f32(c->arena + s->out, s->w, c->token);
}
