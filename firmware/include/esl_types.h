/* edgeslm runtime types: weights, the schedule, the model. The generated code fills these in;
 * the runtime only reads them. All sizes are fixed at build time. */
#ifndef ESL_TYPES_H
#define ESL_TYPES_H

#include <stdint.h>

/* A weight matrix (rows, cols), row-major, (out, in). */
typedef struct {
    const void *data;      /* float (bits 32), int8 (bits 8), packed int4 (bits 4, low nibble first) */
    const float *scales;   /* (rows, n_groups) for bits 8/4; NULL for bits 32 */
    uint32_t rows;
    uint32_t cols;
    uint16_t group_size;   /* quantization group along cols; the last group may be shorter */
    uint16_t n_groups;     /* ceil(cols / group_size) */
    uint8_t bits;          /* 32, 8 or 4 */
} esl_weight_t;

/* One kernel call of the forward pass. Offsets are float indices into the activation arena. */
typedef enum {
    ESL_OP_EMBED = 1,      /* arena[out..] = row `token` of w                                */
    ESL_OP_RMSNORM,        /* arena[out..] = rmsnorm(arena[in..], norm) over n               */
    ESL_OP_MATMUL,         /* arena[out..] = w @ arena[in..]                                 */
    ESL_OP_ROPE,           /* rotate arena[out..] (n heads) by position                      */
    ESL_OP_KV_STORE,       /* kv cache[layer][pos] = arena[in..] (keys), arena[in2..] (values) */
    ESL_OP_ATTENTION,      /* arena[out..] = attention(q = arena[in..], layer, pos), scores in arena[in2..] */
    ESL_OP_ADD,            /* arena[out..] += arena[in..] over n                              */
    ESL_OP_SWIGLU          /* arena[out..] = silu(arena[out..]) * arena[in..] over n          */
} esl_op_t;

typedef struct {
    uint8_t op;            /* esl_op_t */
    uint8_t layer;
    uint32_t out, in, in2; /* arena offsets (floats) */
    uint32_t n;            /* vector length (or head count for ROPE) */
    const esl_weight_t *w; /* MATMUL, EMBED */
    const float *norm;     /* RMSNORM */
} esl_step_t;

/* The KV cache: fp32, or int8 with one scale per (layer, position, kv head). */
typedef struct {
    float *key_f32, *value_f32;        /* (layers, max_seq, kv_dim) when kv_bits == 32 */
    int8_t *key_i8, *value_i8;         /* (layers, max_seq, kv_dim) when kv_bits == 8  */
    float *key_scale, *value_scale;    /* (layers, max_seq, n_kv_heads) when kv_bits == 8 */
    uint8_t kv_bits;
} esl_kv_t;

typedef struct {
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_size, kv_dim;
    uint32_t vocab_size, max_seq, max_token_length;
    float norm_eps, inv_sqrt_head_size;
    const esl_step_t *steps;
    uint32_t n_steps;
    uint32_t logits;               /* arena offset of the logits after the last step */
    float *arena;                  /* the activation arena */
    int8_t *qact;                  /* quantized matmul inputs: int8 x (widest input, rounded up to 4
                                      bytes), then room for x widened to int16 (DSP kernels) */
    float *qscale;                 /* their group scales */
    esl_kv_t kv;
    const float *rope_cos, *rope_sin;  /* (max_seq, head_size / 2) */
} esl_model_t;

/* Scratch for top-p sampling: one entry per vocabulary token. */
typedef struct {
    float prob;
    uint16_t index;
} esl_probindex_storage_t;

/* Tokenizer tables (llama2.c vocabulary). */
typedef struct {
    uint32_t vocab_size, max_token_length;
    const uint8_t *blob;           /* every token's bytes, concatenated */
    const uint32_t *offset;        /* token i is blob[offset[i] .. offset[i+1]) */
    const float *score;            /* merge scores */
    const uint16_t *sorted;        /* token ids sorted by their bytes (memcmp, shorter first) */
    uint32_t n_sorted;             /* distinct strings (first id wins for duplicates) */
} esl_vocab_t;

/* A span of weight bytes covered by the build's checksum. */
typedef struct {
    const void *data;
    uint32_t bytes;
} esl_span_t;

/* What the firmware reports in INFO; generated. */
typedef struct {
    const char *board;
    const char *scheme;            /* "q8", "q4", "f32" */
    uint8_t model_hash[8];         /* first 8 bytes of the model fingerprint (sha256) */
    uint32_t build_id;             /* crc32 of the generated sources */
    const esl_span_t *weights;     /* spans covered by weights_crc32 */
    uint32_t n_weight_spans;
    uint32_t weights_crc32;
} esl_build_info_t;

/* The generated model (build/<board>/gen/esl_model.c). */
extern const esl_model_t esl_model;
extern const esl_vocab_t esl_vocab;
extern const esl_build_info_t esl_build;
extern esl_probindex_storage_t esl_probindex[];

#endif
