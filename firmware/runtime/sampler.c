/* Sampling exactly as llama2.c run.c does it, with the firmware's softmax (esl_softmax_f32).
 *
 * Total for any input (host/edgeslm/sampler.py has the same rules, in the same words):
 * 1. argmax is run.c's strict `>` scan from index 0: the first maximum; a NaN never becomes the
 *    maximum, and a NaN at index 0 stays the answer.
 * 2. With a temperature > 0 the coin is drawn for every token. If any logit / temperature is not
 *    finite (a temperature so small the division overflows, or logits that are already inf/NaN),
 *    the token is the argmax of the logits as they came: greedy, the limit of temperature -> 0.
 * 3. Top-p keeps the tokens whose probability is at least (1 - topp) / (n - 1); when that keeps
 *    none (a near-uniform distribution with a tiny topp), the token is the first most probable one.
 * So the answer is always an index in [0, n), for every float32 input, on the host and the device. */
#include <math.h>
#include "esl_kernels.h"
#include "esl_runtime.h"

uint32_t esl_random_u32(uint64_t *state)
{
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    return (uint32_t)((*state * 0x2545F4914F6CDD1Dull) >> 32);
}

static float random_f32(uint64_t *state)
{
    return (float)(esl_random_u32(state) >> 8) / 16777216.0f;
}

static uint32_t argmax(const float *x, uint32_t n)
{
    uint32_t best = 0;
    for (uint32_t i = 1; i < n; i++) {
        if (x[i] > x[best]) best = i;
    }
    return best;
}

static uint32_t sample_mult(const float *p, uint32_t n, float coin)
{
    float cdf = 0.0f;
    for (uint32_t i = 0; i < n; i++) {
        cdf += p[i];
        if (coin < cdf) return i;
    }
    return n - 1;
}

/* Descending probability, then ascending index: a total order, so the sort is deterministic. */
static int before(const esl_probindex_t *a, const esl_probindex_t *b)
{
    return a->prob > b->prob || (a->prob == b->prob && a->index < b->index);
}

static void sift_down(esl_probindex_t *h, uint32_t root, uint32_t n)
{
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) return;
        /* a min-heap under `before` puts the last element in order at the root */
        if (child + 1 < n && before(&h[child + 1], &h[child])) child++;
        if (!before(&h[child], &h[root])) return;
        const esl_probindex_t t = h[root]; h[root] = h[child]; h[child] = t;
        root = child;
    }
}

/* Heapsort into `before` order: no recursion, no allocation, O(n log n). */
static void sort_probindex(esl_probindex_t *a, uint32_t n)
{
    for (uint32_t i = n / 2; i-- > 0;) sift_down(a, i, n);
    for (uint32_t end = n; end > 1; end--) {
        const esl_probindex_t t = a[0]; a[0] = a[end - 1]; a[end - 1] = t;
        sift_down(a, 0, end - 1);
    }
    /* the heap leaves the order reversed */
    for (uint32_t i = 0; i < n / 2; i++) {
        const esl_probindex_t t = a[i]; a[i] = a[n - 1 - i]; a[n - 1 - i] = t;
    }
}

static uint32_t sample_topp(const float *p, uint32_t n, float topp, esl_probindex_t *pi, float coin)
{
    const float cutoff = (1.0f - topp) / (float)(n - 1);
    uint32_t n0 = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (p[i] >= cutoff) {
            pi[n0].index = (uint16_t)i;
            pi[n0].prob = p[i];
            n0++;
        }
    }
    if (n0 == 0) return argmax(p, n);      /* rule 3: nothing reaches the cutoff */
    sort_probindex(pi, n0);
    float cum = 0.0f;
    uint32_t last = n0 - 1;
    for (uint32_t i = 0; i < n0; i++) {
        cum += pi[i].prob;
        if (cum > topp) { last = i; break; }
    }
    const float r = coin * cum;
    float cdf = 0.0f;
    for (uint32_t i = 0; i <= last; i++) {
        cdf += pi[i].prob;
        if (r < cdf) return pi[i].index;
    }
    return pi[last].index;
}

uint32_t esl_sample(esl_sampler_t *s, float *logits)
{
    if (s->temperature == 0.0f) return argmax(logits, s->vocab_size);
    uint32_t best = 0;                     /* argmax of the logits as they came (rule 1) */
    float best_logit = logits[0];
    int finite = 1;
    for (uint32_t i = 0; i < s->vocab_size; i++) {
        if (logits[i] > best_logit) { best = i; best_logit = logits[i]; }
        logits[i] = logits[i] / s->temperature;
        finite &= isfinite(logits[i]) != 0;
    }
    const float coin = random_f32(&s->rng_state);
    if (!finite) return best;              /* rule 2: overflow or non-finite logits -> greedy */
    esl_softmax_f32(logits, s->vocab_size);
    if (s->topp <= 0.0f || s->topp >= 1.0f) return sample_mult(logits, s->vocab_size, coin);
    return sample_topp(logits, s->vocab_size, s->topp, s->probindex, coin);
}
