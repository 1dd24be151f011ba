/* embed_s8: o[j] = clamp(mbqm(E[token][j], mult[token], shift[token]) + out_zp): the int8 row,
 * requantized from its own scale (per row, symmetric) to the residual stream's; with out_bits 16
 * (--int16 residual) o is int16: o[j] = clamp16(mbqm(E[token][j], mult[token], shift[token])). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

void esl_embed_s8(void *o, const esl_weight_t *table, uint32_t token, const esl_embed_s8_t *p)
{
    const int8_t *row = (const int8_t *)table->data + token * table->cols;
    const int32_t mult = p->mult[token], shift = p->shift[token];
    if (p->out_bits == 16) {
        int16_t *o16 = o;
        for (uint32_t j = 0; j < table->cols; j++) o16[j] = esl_clamp16(esl_mbqm(row[j], mult, shift));
        return;
    }
    int8_t *o8 = o;
    for (uint32_t j = 0; j < table->cols; j++) o8[j] = esl_clamp8(esl_mbqm(row[j], mult, shift) + p->out_zp);
}

/* Step: arena[out] = row `token` of s->w, requantized. */
void esl_step_embed_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_embed_s8((int8_t *)c->arena + s->out, s->w, c->token, (const esl_embed_s8_t *)s->p);
}
