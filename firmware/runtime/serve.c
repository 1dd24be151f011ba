/* The device: answer HELLO and GENERATE requests on the port (protocol in esl_protocol.h). */
#include <math.h>
#include <string.h>
#include "esl_config.h"   /* generated: buffer sizes of this model */
#include "esl_port.h"
#include "esl_protocol.h"
#include "esl_runtime.h"

/* ---- frame receiver: bytes in, complete checked payloads out ---------------------------- */
typedef struct {
    uint8_t wire[ESL_MAX_WIRE];
    uint32_t len;
    uint8_t overflow;          /* the current frame outgrew `wire`: drop it at its delimiter */
} rx_t;

static rx_t rx;
static uint8_t payload[ESL_MAX_WIRE];
static uint8_t tx_payload[ESL_MAX_PAYLOAD + 4];
static uint8_t tx_wire[ESL_MAX_WIRE];
static uint16_t prompt_tokens[ESL_MAX_PAYLOAD];   /* never more tokens than prompt bytes + 2 */
static uint32_t profile_forwards;                  /* forward passes in esl_model.step_cycles */

static void put_u16(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put_u32(uint8_t *p, uint32_t v) { put_u16(p, v); put_u16(p + 2, v >> 16); }
static void put_u64(uint8_t *p, uint64_t v) { put_u32(p, (uint32_t)v); put_u32(p + 4, (uint32_t)(v >> 32)); }
static uint32_t get_u16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }
static uint32_t get_u32(const uint8_t *p) { return get_u16(p) | (get_u16(p + 2) << 16); }
static uint64_t get_u64(const uint8_t *p) { return (uint64_t)get_u32(p) | ((uint64_t)get_u32(p + 4) << 32); }

/* ---- sampling: float (run.c's sampler) or, in an integer-only build, fixed point ------------ */
#if ESL_INTEGER_ONLY
/* No float arithmetic here: temperature and top-p arrive as float32 bits and are read as Q16.16
 * by integer code, so the build links no soft-float helper. */
typedef esl_sampler_s8_t sampler_t;

static const char *sampler_init(sampler_t *s, uint32_t temp_bits, uint32_t topp_bits, uint64_t seed)
{
    uint32_t temp_q16, topp_q16;
    if (esl_q16_from_f32_bits(temp_bits, &temp_q16) != 0) return "temperature must be finite and >= 0";
    if (esl_q16_from_f32_bits(topp_bits, &topp_q16) != 0 || topp_q16 > 65536u) return "top-p must be in [0, 1]";
    if (topp_q16 == 0u && (topp_bits & 0x7FFFFFFFu) != 0u) topp_q16 = 1u;   /* a tiny top-p stays top-p */
    esl_sampler_s8_init(s, temp_q16, topp_q16, ESL_LOGIT_K, seed);
    return 0;
}

static uint32_t sampler_next(sampler_t *s, void *logits)
{
    return esl_sample_s8(s, (const int8_t *)logits, esl_model.vocab_size);
}
#else
typedef esl_sampler_t sampler_t;

static float f32_from_bits(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }

static const char *sampler_init(sampler_t *s, uint32_t temp_bits, uint32_t topp_bits, uint64_t seed)
{
    const float temperature = f32_from_bits(temp_bits), topp = f32_from_bits(topp_bits);
    if (!(temperature >= 0.0f) || isinf(temperature)) return "temperature must be finite and >= 0";
    if (!(topp >= 0.0f && topp <= 1.0f)) return "top-p must be in [0, 1]";
    const esl_sampler_t init = { temperature, topp, seed, esl_probindex, esl_model.vocab_size };
    *s = init;
    return 0;
}

static uint32_t sampler_next(sampler_t *s, void *logits)
{
    return esl_sample(s, (float *)logits);
}
#endif
static sampler_t sampler;

/* Send tx_payload[0 .. n) (type and id already in place) as one frame. */
static void send(uint32_t n)
{
    put_u32(tx_payload + n, esl_crc32(tx_payload, n, 0));
    const uint32_t w = esl_cobs_encode(tx_wire, tx_payload, n + 4);
    tx_wire[w] = 0;
    esl_port_write(tx_wire, w + 1);
}

static void send_error(uint8_t id, uint8_t code, const char *msg)
{
    const uint32_t len = (uint32_t)strlen(msg);
    tx_payload[0] = ESL_MSG_ERROR;
    tx_payload[1] = id;
    tx_payload[2] = code;
    memcpy(tx_payload + 3, msg, len);
    send(3 + len);
}

/* Feed one byte; returns the payload length (CRC stripped) when a good frame completes, else -1.
 * Bad frames are answered with ERROR here. */
static int32_t rx_byte(uint8_t b)
{
    if (b != 0) {
        if (rx.len < sizeof rx.wire) rx.wire[rx.len++] = b;
        else rx.overflow = 1;
        return -1;
    }
    const uint32_t len = rx.len;
    const uint8_t overflow = rx.overflow;
    rx.len = 0;
    rx.overflow = 0;
    if (overflow) {
        send_error(0, ESL_ERR_TOO_LONG, "frame longer than the maximum payload");
        return -1;
    }
    if (len == 0) return -1;                      /* idle delimiters are fine */
    const int32_t n = esl_cobs_decode(payload, rx.wire, len);
    if (n < 6) {
        send_error(0, ESL_ERR_BAD_FRAME, "malformed frame (COBS or too short)");
        return -1;
    }
    if ((uint32_t)n - 4 > ESL_MAX_PAYLOAD) {
        send_error(0, ESL_ERR_TOO_LONG, "frame longer than the maximum payload");
        return -1;
    }
    if (esl_crc32(payload, (uint32_t)n - 4, 0) != get_u32(payload + n - 4)) {
        send_error(payload[1], ESL_ERR_BAD_CRC, "CRC mismatch");
        return -1;
    }
    return n - 4;
}

static void send_info(uint8_t id)
{
    const esl_build_info_t *b = &esl_build;
    uint32_t crc = 0;
    for (uint32_t i = 0; i < b->n_weight_spans; i++) {
        crc = esl_crc32((const uint8_t *)b->weights[i].data, b->weights[i].bytes, crc);
    }
    uint8_t *p = tx_payload;
    p[0] = ESL_MSG_INFO;
    p[1] = id;
    p[2] = ESL_PROTOCOL_VERSION;
    p[3] = esl_port_cycle_unit();
    p[4] = (uint8_t)(crc == b->weights_crc32);
    p[5] = esl_model.kv.kv_bits;
    put_u16(p + 6, esl_model.vocab_size);
    put_u16(p + 8, esl_model.max_seq);
    memcpy(p + 10, b->model_hash, 8);
    put_u32(p + 18, b->build_id);
    put_u32(p + 22, b->weights_crc32);
    memset(p + 26, 0, 8);
    memcpy(p + 26, b->scheme, strlen(b->scheme) < 8 ? strlen(b->scheme) : 8);
    const uint32_t blen = (uint32_t)strlen(b->board);
    memcpy(p + 34, b->board, blen);
    send(34 + blen);
}

/* Between tokens: handle whatever arrived. Returns 1 if an ABORT came. */
static int poll_abort(void)
{
    int32_t c;
    while ((c = esl_port_getc()) >= 0) {
        if (rx_byte((uint8_t)c) < 0) continue;
        if (payload[0] == ESL_MSG_ABORT) return 1;
        send_error(payload[1], ESL_ERR_BUSY, "busy generating; send ABORT first");
    }
    return 0;
}

/* PROFILE: the per-step ticks of the last generation, as many frames as they need. */
static void send_profile(uint8_t id)
{
    const esl_model_t *m = &esl_model;
    const uint32_t per_frame = (ESL_MAX_PAYLOAD - 12u) / 8u;
    uint32_t first = 0;
    do {
        const uint32_t count = (m->n_steps - first < per_frame) ? m->n_steps - first : per_frame;
        uint8_t *p = tx_payload;
        p[0] = ESL_MSG_PROFILE_DATA;
        p[1] = id;
        put_u32(p + 2, profile_forwards);
        put_u16(p + 6, m->n_steps);
        put_u16(p + 8, first);
        put_u16(p + 10, count);
        for (uint32_t i = 0; i < count; i++) put_u64(p + 12 + 8 * i, m->step_cycles[first + i]);
        send(12 + 8 * count);
        first += count;
    } while (first < m->n_steps);
}

static void generate(uint8_t id, const uint8_t *body, uint32_t n)
{
    const esl_model_t *m = &esl_model;
    if (esl_stack_paint) esl_stack_paint();      /* DONE reports this request's stack peak */
    if (n < 19) { send_error(id, ESL_ERR_BAD_REQUEST, "GENERATE body too short"); return; }
    uint32_t steps = get_u16(body);
    const uint32_t temp_bits = get_u32(body + 2), topp_bits = get_u32(body + 6);
    const uint64_t seed = get_u64(body + 10);
    const uint8_t kind = body[18] & 0x7Fu;
    const uint8_t profile_each = (body[18] & 0x80u) != 0;   /* PROFILE_DATA after every TOKEN */
    const uint8_t *prompt = body + 19;
    const uint32_t plen = n - 19;
    const char *bad = sampler_init(&sampler, temp_bits, topp_bits, seed);
    if (bad) {
        send_error(id, ESL_ERR_BAD_REQUEST, bad);
        return;
    }
    int32_t n_prompt;
    if (kind == 0) {
        static uint8_t scratch[2 * ESL_MAX_TOKEN_LENGTH + 1];
        n_prompt = esl_encode(&esl_vocab, prompt, plen, prompt_tokens, ESL_MAX_PAYLOAD, scratch);
    } else if (kind == 1) {
        if (plen % 2 != 0) {
            send_error(id, ESL_ERR_BAD_REQUEST, "a token-id prompt must be whole u16 ids (an even byte count)");
            return;
        }
        if (plen == 0 || get_u16(prompt) != ESL_BOS) {
            send_error(id, ESL_ERR_BAD_REQUEST, "a token-id prompt must start with BOS (1)");
            return;
        }
        n_prompt = (int32_t)(plen / 2);
        for (int32_t i = 0; i < n_prompt; i++) {
            prompt_tokens[i] = (uint16_t)get_u16(prompt + 2 * i);
            if (prompt_tokens[i] >= m->vocab_size) {
                send_error(id, ESL_ERR_BAD_REQUEST, "prompt token id out of range");
                return;
            }
        }
    } else {
        send_error(id, ESL_ERR_BAD_REQUEST, "prompt kind must be 0 (text) or 1 (u16 token ids)");
        return;
    }
    if (n_prompt < 1 || (uint32_t)n_prompt > m->max_seq) {
        send_error(id, ESL_ERR_PROMPT_TOO_LONG, "prompt longer than the context");
        return;
    }
    if (steps == 0 || steps > m->max_seq) steps = m->max_seq;      /* run.c's -n rule */
    uint32_t token = prompt_tokens[0], pos = 0, sent = 0, reason = ESL_DONE_STEPS;
    uint64_t total = 0;
    esl_profile_reset(m);
    profile_forwards = 0;
    while (pos < steps) {
        if (profile_each) esl_profile_reset(m);
        esl_port_cycles_start();
        void *logits = esl_forward(m, token, pos);
        profile_forwards++;
        uint32_t next = (pos + 1 < (uint32_t)n_prompt) ? prompt_tokens[pos + 1] : sampler_next(&sampler, logits);
        const uint64_t cycles = esl_port_cycles();
        total += cycles;
        pos++;
        if (next == ESL_BOS) { reason = ESL_DONE_BOS; break; }
        uint8_t byte;
        uint32_t plen_out;
        const uint8_t *piece = esl_decode(&esl_vocab, token, next, &plen_out, &byte);
        uint8_t *p = tx_payload;
        p[0] = ESL_MSG_TOKEN;
        p[1] = id;
        put_u16(p + 2, pos - 1);
        put_u16(p + 4, next);
        put_u64(p + 6, cycles);
        memcpy(p + 14, piece, plen_out);
        send(14 + plen_out);
        if (profile_each) send_profile(id);
        sent++;
        token = next;
        if (poll_abort()) { reason = ESL_DONE_ABORTED; break; }
    }
    uint8_t *p = tx_payload;
    p[0] = ESL_MSG_DONE;
    p[1] = id;
    put_u16(p + 2, sent);
    p[4] = (uint8_t)reason;
    put_u64(p + 5, total);
    put_u32(p + 13, esl_stack_peak_bytes ? esl_stack_peak_bytes() : 0u);
    send(17);
}

void esl_serve(void)
{
    for (;;) {
        const int32_t c = esl_port_getc_blocking();
        if (c < 0) return;                        /* the link closed (host build) */
        const int32_t n = rx_byte((uint8_t)c);
        if (n < 0) continue;
        const uint8_t type = payload[0], id = payload[1];
        switch (type) {
        case ESL_MSG_HELLO: send_info(id); break;
        case ESL_MSG_GENERATE: generate(id, payload + 2, (uint32_t)n - 2); break;
        case ESL_MSG_ABORT: break;                /* nothing running: nothing to stop */
        case ESL_MSG_PROFILE: send_profile(id); break;
        default: send_error(id, ESL_ERR_UNKNOWN_TYPE, "unknown message type"); break;
        }
    }
}
