/* rmsnorm_s8, integer RMSNorm (edgeslm's own; TFLM has no such op): xc = x - in_zp;
 * T = max(1, sum xc^2 + n_eps) with n_eps = round(n * eps / s_x^2); a = (62 - bitlen(T)) / 2;
 * inv = 2^60 / isqrt(T << 2a) (so inv / 2^(30 - a) = 1 / sqrt(T));
 * o[j] = clamp(rdbp64(xc[j] * srdhm(inv, mult[j]), min(60 - a - shift[j], 40)) + out_zp), where
 * (mult, shift)[j] = QuantizeMultiplier(w[j] * sqrt(n) / s_o). The exponent is >= 0 (a <= 30,
 * shift <= 30) and every exponent >= 40 rounds to 0 (|xc * srdhm| < 2^39), as 40 does.
 * in_bits 16 (--int16 residual): x int16 (in_zp 0), T summed in int64, the exponent capped at 47
 * (|xc * srdhm| < 2^46) and the rounded value clamped in int64; out_bits 16 (--int16 norms): o
 * int16, clamp16 (out_zp 0). Every exponent >= 40 gives 0 for an int8 x too, so the cap of 47
 * serves every width but the int8-to-int8 path's. */
#include "esl_fixedpoint.h"
#include "esl_kernels.h"

/* floor(sqrt(v)) for v < 2^62, bit by bit (no divide, no float). */
static uint32_t isqrt64(uint64_t v)
{
    uint64_t root = 0, bit = (uint64_t)1 << 62;
    while (bit > v) bit >>= 2;
    while (bit != 0) {
        if (v >= root + bit) {
            v -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (uint32_t)root;
}

static uint32_t bit_length64(uint64_t v)
{
    uint32_t n = 0;
    while (v != 0) {
        n++;
        v >>= 1;
    }
    return n;
}

/* (int32_t)rdbp64(v, e) for |v| < 2^39 (v = xc * srdhm(...): |xc| <= 255) and e in [0, 40]. The
 * DSP builds use rdbp64's rule as one sum: for e >= 1, rdbp64(v, e) = floor((v + 2^(e-1) - (v < 0))
 * / 2^e) (the sum cannot overflow int64 here); only its low 32 bits are kept, as the cast keeps.
 * For e >= 10 (the usual case) that is floor((floor((v - (v < 0)) / 2^9) + 2^(e-10)) / 2^(e-9)),
 * all in int32 after one 64-bit shift by a constant (|v| < 2^39: the quotient is below 2^30). */
static inline int32_t scale_round(int64_t v, int32_t e)
{
#if ESL_FX_ARM
    if (e >= 10) {
        const int32_t t = (int32_t)((v - (v < 0)) >> 9) + (INT32_C(1) << (e - 10));
        return t >> (e - 9);
    }
    if (e == 0) return (int32_t)v;
    return (int32_t)((v + ((INT64_C(1) << (e - 1)) - (v < 0))) >> e);
#else
    return (int32_t)esl_rdbp64(v, e);
#endif
}

/* a and inv of T = sum xc^2 + n_eps: the sum of squares is a reduction (never split). */
static inline void rms_inv(int64_t t, int32_t *a, int32_t *inv)
{
    if (t < 1) t = 1;
    *a = (62 - (int32_t)bit_length64((uint64_t)t)) / 2;
    const uint32_t sq = isqrt64((uint64_t)t << (2 * *a));
    *inv = (int32_t)(((uint64_t)1 << 60) / sq);
}

static void rms_factor(const int8_t *x, uint32_t n, const esl_rmsnorm_s8_t *p, int32_t *a, int32_t *inv)
{
    int64_t t = p->n_eps;
    for (uint32_t j = 0; j < n; j++) {
        const int32_t xc = x[j] - p->in_zp;
        t += xc * xc;
    }
    rms_inv(t, a, inv);
}

static void rms_factor16(const int16_t *x, uint32_t n, const esl_rmsnorm_s8_t *p, int32_t *a, int32_t *inv)
{
    int64_t t = p->n_eps;
    for (uint32_t j = 0; j < n; j++) t += (int32_t)x[j] * (int32_t)x[j];     /* each <= 2^30 */
    rms_inv(t, a, inv);
}

/* o[j] for j in [begin, end) given a and inv, where x or o is int16 (in_bits / out_bits 16). */
static void rms_scale_wide(void *o, const void *x, const esl_rmsnorm_s8_t *p, int32_t a, int32_t inv,
                           uint32_t begin, uint32_t end)
{
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, *const mult = p->mult;
    const int8_t *const shift = p->shift;
    const int in16 = p->in_bits == 16, out16 = p->out_bits == 16;
    const int64_t lo = out16 ? -32768 : -128, hi = out16 ? 32767 : 127;
    for (uint32_t j = begin; j < end; j++) {
        const int32_t xc = in16 ? ((const int16_t *)x)[j] : ((const int8_t *)x)[j] - in_zp;
        const int64_t scaled = (int64_t)xc * esl_srdhm(inv, mult[j]);
        int32_t e = 60 - a - shift[j];
        if (e > 47) e = 47;
        int64_t r = esl_rdbp64(scaled, e) + out_zp;
        r = r < lo ? lo : (r > hi ? hi : r);
        if (out16) ((int16_t *)o)[j] = (int16_t)r;
        else ((int8_t *)o)[j] = (int8_t)r;
    }
}

/* o[j] for j in [begin, end), given a and inv. */
static void rms_scale(int8_t *o, const int8_t *x, const esl_rmsnorm_s8_t *p, int32_t a, int32_t inv,
                      uint32_t begin, uint32_t end)
{
    /* the parameters in locals: the int8 stores to o may alias *p, so the loop would reload them */
    const int32_t in_zp = p->in_zp, out_zp = p->out_zp, *const mult = p->mult;
    const int8_t *const shift = p->shift;
    for (uint32_t j = begin; j < end; j++) {
        const int64_t scaled = (int64_t)(x[j] - in_zp) * esl_srdhm(inv, mult[j]);
        int32_t e = 60 - a - shift[j];
        if (e > 40) e = 40;
        o[j] = esl_clamp8(scale_round(scaled, e) + out_zp);
    }
}

/* The two halves at x's and o's widths (the int8-to-int8 path keeps its own code). */
static inline void rms_factor_any(const void *x, uint32_t n, const esl_rmsnorm_s8_t *p, int32_t *a, int32_t *inv)
{
    if (p->in_bits == 16) rms_factor16(x, n, p, a, inv);
    else rms_factor(x, n, p, a, inv);
}

static inline void rms_scale_any(void *o, const void *x, const esl_rmsnorm_s8_t *p, int32_t a, int32_t inv,
                                 uint32_t begin, uint32_t end)
{
    if (p->in_bits == 16 || p->out_bits == 16) rms_scale_wide(o, x, p, a, inv, begin, end);
    else rms_scale(o, x, p, a, inv, begin, end);
}

void esl_rmsnorm_s8(void *o, const void *x, uint32_t n, const esl_rmsnorm_s8_t *p)
{
    int32_t a, inv;
    rms_factor_any(x, n, p, &a, &inv);
    rms_scale_any(o, x, p, a, inv, 0u, n);
}

#if defined(ESL_CLUSTER_CORES)
/* On a cluster (esl_cluster.h): the fabric controller forms a and inv, then the workers scale
 * contiguous ranges of j, each o[j] the same integers whichever core forms it. */
#include "esl_cluster.h"

typedef struct {
    void *o;
    const void *x;
    uint32_t n;
    const esl_rmsnorm_s8_t *p;
    int32_t a, inv;
} rmsnorm_job_t;

static void rmsnorm_job(void *arg)
{
    const rmsnorm_job_t *j = arg;
    uint32_t begin, end;
    esl_cl_split(j->n, 1u, esl_cl_core_id(), esl_cl_cores(), &begin, &end);
    rms_scale_any(j->o, j->x, j->p, j->a, j->inv, begin, end);
}

static void rmsnorm_cluster(void *o, const void *x, uint32_t n, const esl_rmsnorm_s8_t *p)
{
    rmsnorm_job_t job = { o, x, n, p, 0, 0 };
    rms_factor_any(x, n, p, &job.a, &job.inv);
    esl_cl_team_fork(rmsnorm_job, &job);
}
#endif

/* Step: arena[out] = rmsnorm(arena[in]) over n (the norm weights are in the multipliers). */
void esl_step_rmsnorm_s8(const esl_step_t *s, const esl_ctx_t *c)
{
    int8_t *a = (int8_t *)c->arena;
#if defined(ESL_CLUSTER_CORES)
    rmsnorm_cluster(a + s->out, a + s->in, s->n, (const esl_rmsnorm_s8_t *)s->p);
#else
    esl_rmsnorm_s8(a + s->out, a + s->in, s->n, (const esl_rmsnorm_s8_t *)s->p);
#endif
}
