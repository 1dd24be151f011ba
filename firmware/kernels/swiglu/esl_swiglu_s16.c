/* swiglu_s16: SwiGLU on int16 h1, h3 (zero points 0: --int16 ffn) in TFLM's int16 ops, per element:
 *   sig  = LOGISTIC(h1): v = (h1 * sig_mult + round) >> sig_shift (input in units of 1/(3 * 4096);
 *          sig_mult 0 means 3 << sig_shift, shift 0), a = |v|, u = a >> 9:
 *          r = u >= 255 ? 0x7FFF << 10 : (T[u] << 9) + (a & 511) * (T[u + 1] - T[u]),
 *          T = TFLM's sigmoid(i / 24) in Q0.16 (esl_sigmoid_u16); sig = (v >= 0 ? r + 512 :
 *          2^25 - r + 511) >> 10, Q0.15
 *   silu = clamp16(mbqm(h1 * sig, silu_mult, silu_shift))       MUL int16
 *   h1   = clamp16(mbqm(silu * h3, gate_mult, gate_shift))      MUL int16 (in place: the gated value)
 * Every product is at most 2^30 in magnitude (int32). */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"
#include "esl_step_range.h"

static inline int32_t logistic16(int32_t h, int32_t mult, int32_t shift)
{
    const int32_t rnd = shift > 0 ? INT32_C(1) << (shift - 1) : 0;
    const int32_t v = (h * mult + rnd) >> shift;
    const uint32_t a = (uint32_t)(v >= 0 ? v : -v), u = a >> 9;
    uint32_t r;
    if (u >= 255u) {
        r = UINT32_C(0x7FFF) << 10;
    } else {
        const uint32_t ta = esl_sigmoid_u16[u], tb = esl_sigmoid_u16[u + 1u];
        r = (ta << 9) + (a & 511u) * (tb - ta);
    }
    r = v >= 0 ? r + 512u : (UINT32_C(1) << 25) - r + 511u;
    return (int32_t)(r >> 10);
}

void esl_swiglu_s16(int16_t *h1, const int16_t *h3, uint32_t n, const esl_swiglu_s16_t *p)
{
    int32_t sig_mult = p->sig_mult, sig_shift = p->sig_shift;
    if (sig_mult == 0) {                         /* TFLM's power-of-two case */
        sig_mult = 3 << sig_shift;
        sig_shift = 0;
    }
    const int32_t silu_mult = p->silu_mult, silu_shift = p->silu_shift;
    const int32_t gate_mult = p->gate_mult, gate_shift = p->gate_shift;
    for (uint32_t i = 0; i < n; i++) {
        const int32_t h = h1[i];
        const int32_t silu = esl_clamp16(esl_mbqm(h * logistic16(h, sig_mult, sig_shift), silu_mult, silu_shift));
        h1[i] = esl_clamp16(esl_mbqm(silu * h3[i], gate_mult, gate_shift));
    }
}

/* Step: arena[out] = swiglu(arena[out], arena[in]) over elements [begin, end). */
static void swiglu_range(const esl_step_t *s, const esl_ctx_t *c, uint32_t begin, uint32_t end)
{
    int8_t *a = (int8_t *)c->arena;
    esl_swiglu_s16((int16_t *)(void *)(a + s->out) + begin, (const int16_t *)(const void *)(a + s->in) + begin,
                   end - begin, (const esl_swiglu_s16_t *)s->p);
}

void esl_step_swiglu_s16(const esl_step_t *s, const esl_ctx_t *c)
{
    esl_step_over_range(s, c, s->n, swiglu_range);
}
