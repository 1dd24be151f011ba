/* edgeslm runtime: the forward pass over the generated schedule, sampling, the tokenizer and the
 * serial protocol. No allocation: every buffer is declared by the generated code or here, with a
 * size known at build time. */
#ifndef ESL_RUNTIME_H
#define ESL_RUNTIME_H

#include <stdint.h>
#include "esl_types.h"

/* ---- forward pass ------------------------------------------------------------------------- */
/* Run every step of m->steps for `token` at `pos`; returns the logits in the arena (vocab_size
 * floats, or int8 in an integer-only build). Adds each step's counter ticks to m->step_cycles[step]. */
void *esl_forward(const esl_model_t *m, uint32_t token, uint32_t pos);
/* Zero m->step_cycles (at the start of every generation). */
void esl_profile_reset(const esl_model_t *m);

/* ---- sampling (llama2.c run.c's sampler, with esl_softmax_f32) -------------------------- */
typedef esl_probindex_storage_t esl_probindex_t;

typedef struct {
    float temperature, topp;
    uint64_t rng_state;            /* xorshift64* state, seeded with the request's seed */
    esl_probindex_t *probindex;    /* vocab_size entries of scratch */
    uint32_t vocab_size;
} esl_sampler_t;

uint32_t esl_random_u32(uint64_t *state);
/* temperature 0: argmax (first maximum). Else softmax(logits / T) then top-p if 0 < topp < 1,
 * else multinomial; logits are overwritten. */
uint32_t esl_sample(esl_sampler_t *s, float *logits);

/* ---- tokenizer (llama2.c run.c's encode/decode) ----------------------------------------- */
#define ESL_BOS 1u
#define ESL_EOS 2u
/* BOS, dummy space, codepoints with byte fallback, best-score merges. Returns the token count,
 * or -1 if more than max_tokens would be needed. */
int32_t esl_encode(const esl_vocab_t *v, const uint8_t *text, uint32_t len, uint16_t *tokens,
                   uint32_t max_tokens, uint8_t *scratch /* 2 * max_token_length + 1 bytes */);
/* The piece for `token` after `prev`: leading space dropped after BOS, byte tokens as the byte. */
const uint8_t *esl_decode(const esl_vocab_t *v, uint32_t prev, uint32_t token, uint32_t *len,
                          uint8_t *byte_out);

/* ---- protocol --------------------------------------------------------------------------- */
uint32_t esl_crc32(const uint8_t *data, uint32_t n, uint32_t crc);
/* COBS: encode n bytes into out (room for n + n/254 + 1); returns the encoded length. */
uint32_t esl_cobs_encode(uint8_t *out, const uint8_t *in, uint32_t n);
/* Decode in place-safe into out; returns the length, or -1 if malformed. */
int32_t esl_cobs_decode(uint8_t *out, const uint8_t *in, uint32_t n);

/* The device main loop: answers requests on the port forever. */
void esl_serve(void);

/* ---- faults ------------------------------------------------------------------------------ */
/* What the core's fault handler (firmware/arch/<arch>/) read: the stacked PC and LR, the fault
 * status registers (0 where the core has none) and the exception number (IPSR). */
typedef struct {
    uint32_t pc, lr, cfsr, hfsr;
    uint8_t exception;
} esl_fault_t;

/* Send ERROR FAULT (request id 0; esl_protocol.h item 5) on the port: a 0x00 first, since the
 * fault may have cut a frame short, then the frame, built in buffers of its own. Safe to call
 * from a fault handler: no allocation, no interrupts, nothing of the interrupted code's state. */
void esl_report_fault(const esl_fault_t *f);

/* ---- integer sampling (integer-only builds; firmware/runtime/sampler_s8.c) --------------------
 * Integer arithmetic only: no float type, constant or helper. The rules are at the top of
 * sampler_s8.c and in sample_s8 of host/edgeslm/sampler.py, in the same words. */
#define ESL_SAMPLER_S8_MAX_N 65536u       /* logits read per token; more are ignored */

typedef struct {
    uint32_t temp_q16;         /* temperature, unsigned Q16.16; 0 = greedy (argmax) */
    uint32_t topp_q16;         /* top-p, unsigned Q16.16; 0 or >= 65536 (1.0) = no top-p */
    uint64_t logit_k;          /* K = round(s_l * 2^42), s_l the logits' scale (host: sampler.logit_k) */
    uint64_t rng_state;        /* xorshift64* state (esl_random_u32), seeded with the request's seed */
    uint32_t e16[256];         /* e16[d]: weight of a logit d below the maximum, Q16 (e16[0] = 65536);
                                * filled by esl_sampler_s8_init, all 0 when temp_q16 == 0 */
    uint32_t count[256];       /* scratch of esl_sample_s8: tokens per d */
} esl_sampler_s8_t;

/* Set the request's parameters and seed, and compute the weight table (256 exps, once per
 * request). */
void esl_sampler_s8_init(esl_sampler_s8_t *s, uint32_t temp_q16, uint32_t topp_q16, uint64_t logit_k,
                         uint64_t seed);
/* The next token for int8 logits[0 .. n); advances s->rng_state by one draw unless temp_q16 == 0.
 * O(n + 256), no sort, no allocation. */
uint32_t esl_sample_s8(esl_sampler_s8_t *s, const int8_t *logits, uint32_t n);
/* An IEEE-754 single, given as its bits, as unsigned Q16.16: round(value * 65536) half up,
 * saturated at UINT32_MAX (-0.0 gives 0). Returns 0, or nonzero (and leaves *q16 alone) for a
 * negative value, NaN or infinity. Integer operations only. */
int esl_q16_from_f32_bits(uint32_t bits, uint32_t *q16);

#endif
