#include "esl_kernels.h"

void esl_embed(float *o, const esl_weight_t *table, uint32_t token)
{
    if (table->bits == 32) {
        const float *row = (const float *)table->data + token * table->cols;
        for (uint32_t j = 0; j < table->cols; j++) o[j] = row[j];
        return;
    }
    const int8_t *row = (const int8_t *)table->data + token * table->cols;
    const float *s = table->scales + token * table->n_groups;
    for (uint32_t j = 0; j < table->cols; j++) {
        o[j] = (float)row[j] * s[j / table->group_size];
    }
}
