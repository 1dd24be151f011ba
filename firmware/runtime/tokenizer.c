/* llama2.c run.c's tokenizer over the generated vocabulary tables. */
#include <string.h>
#include "esl_runtime.h"

/* memcmp order, a prefix before its extensions: the order the host sorted v->sorted in. */
static int compare(const uint8_t *a, uint32_t alen, const uint8_t *b, uint32_t blen)
{
    const uint32_t n = alen < blen ? alen : blen;
    const int c = memcmp(a, b, n);
    if (c != 0) return c;
    return (alen > blen) - (alen < blen);
}

static int32_t lookup(const esl_vocab_t *v, const uint8_t *s, uint32_t len)
{
    uint32_t lo = 0, hi = v->n_sorted;
    while (lo < hi) {
        const uint32_t mid = lo + (hi - lo) / 2;
        const uint16_t id = v->sorted[mid];
        const int c = compare(s, len, v->blob + v->offset[id], v->offset[id + 1] - v->offset[id]);
        if (c == 0) return id;
        if (c < 0) hi = mid; else lo = mid + 1;
    }
    return -1;
}

static uint32_t piece_len(const esl_vocab_t *v, uint32_t id)
{
    return v->offset[id + 1] - v->offset[id];
}

int32_t esl_encode(const esl_vocab_t *v, const uint8_t *text, uint32_t len, uint16_t *tokens,
                   uint32_t max_tokens, uint8_t *scratch)
{
    uint32_t n = 0;
    if (max_tokens < 2) return -1;
    tokens[n++] = (uint16_t)ESL_BOS;
    if (len > 0) {
        const int32_t space = lookup(v, (const uint8_t *)" ", 1);
        tokens[n++] = (uint16_t)(space < 0 ? 0 : space);
    }
    for (uint32_t i = 0; i < len;) {
        /* one UTF-8 codepoint: a lead byte and up to 3 continuation bytes */
        uint32_t j = i + 1;
        while (j < len && (text[j] & 0xC0u) == 0x80u && j - i < 4) j++;
        const int32_t id = lookup(v, text + i, j - i);
        if (id >= 0) {
            if (n >= max_tokens) return -1;
            tokens[n++] = (uint16_t)id;
        } else {
            for (uint32_t b = i; b < j; b++) {     /* byte fallback: <0xXX> is token XX + 3 */
                if (n >= max_tokens) return -1;
                tokens[n++] = (uint16_t)(text[b] + 3u);
            }
        }
        i = j;
    }
    for (;;) {   /* merge the adjacent pair with the best-scoring merged string, until none */
        int32_t best_rank = -1;          /* ranks order the merge scores (codegen: vocab_tables) */
        int32_t best_id = -1;
        uint32_t best_idx = 0;
        for (uint32_t i = 0; i + 1 < n; i++) {
            const uint32_t la = piece_len(v, tokens[i]), lb = piece_len(v, tokens[i + 1]);
            if (la + lb > 2 * v->max_token_length) continue;
            memcpy(scratch, v->blob + v->offset[tokens[i]], la);
            memcpy(scratch + la, v->blob + v->offset[tokens[i + 1]], lb);
            const int32_t id = lookup(v, scratch, la + lb);
            if (id >= 0 && v->rank[id] > best_rank) {
                best_rank = v->rank[id];
                best_id = id;
                best_idx = i;
            }
        }
        if (best_id < 0) break;
        tokens[best_idx] = (uint16_t)best_id;
        for (uint32_t i = best_idx + 1; i + 1 < n; i++) tokens[i] = tokens[i + 1];
        n--;
    }
    return (int32_t)n;
}

const uint8_t *esl_decode(const esl_vocab_t *v, uint32_t prev, uint32_t token, uint32_t *len,
                          uint8_t *byte_out)
{
    if (token >= 3 && token < 259) {       /* <0xXX>: the raw byte (the host checked the layout) */
        *byte_out = (uint8_t)(token - 3);
        *len = 1;
        return byte_out;
    }
    const uint8_t *p = v->blob + v->offset[token];
    uint32_t n = piece_len(v, token);
    if (prev == ESL_BOS && n > 0 && p[0] == ' ') { p++; n--; }
    *len = n;
    return p;
}
