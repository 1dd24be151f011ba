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

#endif
