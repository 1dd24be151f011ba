/* The forward pass: run the generated schedule, one kernel per step. */
#include "esl_kernels.h"
#include "esl_runtime.h"

static void matmul(const esl_model_t *m, float *y, const esl_weight_t *w, const float *x)
{
    switch (w->bits) {
    case 32: esl_matmul_f32(y, w, x); break;
    case 8:  esl_matmul_q8(y, w, x, m->qact, m->qscale); break;
    default: esl_matmul_q4(y, w, x, m->qact, m->qscale); break;
    }
}

/* kv[layer][pos] = vec, with per-head int8 quantization for an int8 cache. */
static void kv_store(const esl_model_t *m, uint32_t layer, uint32_t pos, const float *k, const float *v)
{
    const uint32_t row = (layer * m->max_seq + pos) * m->kv_dim;
    if (m->kv.kv_bits == 32) {
        for (uint32_t i = 0; i < m->kv_dim; i++) {
            m->kv.key_f32[row + i] = k[i];
            m->kv.value_f32[row + i] = v[i];
        }
        return;
    }
    const uint32_t srow = (layer * m->max_seq + pos) * m->n_kv_heads;
    esl_quantize_i8(m->kv.key_i8 + row, m->kv.key_scale + srow, k, m->kv_dim, m->head_size);
    esl_quantize_i8(m->kv.value_i8 + row, m->kv.value_scale + srow, v, m->kv_dim, m->head_size);
}

float *esl_forward(const esl_model_t *m, uint32_t token, uint32_t pos)
{
    float *a = m->arena;
    const float *cos = m->rope_cos + pos * (m->head_size / 2);
    const float *sin = m->rope_sin + pos * (m->head_size / 2);
    for (uint32_t i = 0; i < m->n_steps; i++) {
        const esl_step_t *s = &m->steps[i];
        switch ((esl_op_t)s->op) {
        case ESL_OP_EMBED:     esl_embed(a + s->out, s->w, token); break;
        case ESL_OP_RMSNORM:   esl_rmsnorm_f32(a + s->out, a + s->in, s->norm, s->n, m->norm_eps); break;
        case ESL_OP_MATMUL:    matmul(m, a + s->out, s->w, a + s->in); break;
        case ESL_OP_ROPE:      esl_rope_f32(a + s->out, cos, sin, s->n, m->head_size); break;
        case ESL_OP_KV_STORE:  kv_store(m, s->layer, pos, a + s->in, a + s->in2); break;
        case ESL_OP_ATTENTION:
            if (m->kv.kv_bits == 32) esl_attention_f32(a + s->out, a + s->in, a + s->in2, m, s->layer, pos);
            else esl_attention_i8(a + s->out, a + s->in, a + s->in2, m, s->layer, pos);
            break;
        case ESL_OP_ADD:       esl_add_f32(a + s->out, a + s->in, s->n); break;
        case ESL_OP_SWIGLU:    esl_swiglu_f32(a + s->out, a + s->in, s->n); break;
        }
    }
    return a + m->logits;
}
