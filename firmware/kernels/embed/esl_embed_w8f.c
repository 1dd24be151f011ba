/* embed_w8f: o[j] = (float)Eq[token][j] * Es[token][j / gs], one row dequantized (never a full
 * fp32 copy of the table). */
#include "esl_kernels.h"

void esl_embed_w8f(float *o, const esl_weight_t *table, uint32_t token)
{
    const uint32_t cols = table->cols, gs = table->group_size;
    const int8_t *row = (const int8_t *)table->data + token * cols;
    const float *s = table->scales + token * table->n_groups;
    for (uint32_t j = 0; j < cols; s++) {               /* group by group: no division per element */
        const float sg = *s;
        const uint32_t end = cols - j < gs ? cols : j + gs;
        for (; j < end; j++) o[j] = (float)row[j] * sg;
    }
}

/* Step: arena[out] = row `token` of s->w, dequantized. */
void esl_step_embed_w8f(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_embed_w8f(c->arena + s->out, s->w, c->token);
}
