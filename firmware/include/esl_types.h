/* edgeslm runtime types: weights, the step table, the model. The generated code fills these in;
 * the runtime only reads them. All sizes are fixed at build time. */
#ifndef ESL_TYPES_H
#define ESL_TYPES_H

#include <stdint.h>

/* A weight matrix (rows, cols), row-major, (out, in). Its contract (f32, w8f, w4f) is fixed by the
 * kernel the planner chose for the step that reads it; the bits field is for checks only. */
typedef struct {
    const void *data;      /* float (f32), int8 (w8f), packed int4 (w4f: low nibble first) */
    const float *scales;   /* (rows, n_groups) for w8f/w4f; NULL for f32 */
    uint32_t rows;
    uint32_t cols;
    uint16_t group_size;   /* quantization group along cols; the last group may be shorter */
    uint16_t n_groups;     /* ceil(cols / group_size) */
    uint8_t bits;          /* 32, 8 or 4 */
} esl_weight_t;

/* The KV cache: fp32 (kvstore_f32/attention_f32), or int8 with one scale per (layer, position,
 * kv head) (kvstore_kv8/attention_kv8). Only the pointers of the build's format are set. */
typedef struct {
    float *key_f32, *value_f32;        /* (layers, max_seq, kv_dim), f32 */
    int8_t *key_i8, *value_i8;         /* (layers, max_seq, kv_dim), kv8 */
    int16_t *key_i16;                  /* (layers, max_seq, kv_dim): i8's int16 keys (--int16 keys), or NULL */
    float *key_scale, *value_scale;    /* (layers, max_seq, n_kv_heads), kv8 */
    uint8_t kv_bits;                   /* 32 or 8: reported in INFO */
} esl_kv_t;

typedef struct esl_model esl_model_t;
typedef struct esl_step esl_step_t;
typedef struct esl_ctx esl_ctx_t;

/* A step's kernel entry: esl_step_<op>_<contract>, defined beside the kernel in
 * firmware/kernels/<op>/esl_<op>_<contract>.c and chosen by the host's planner. */
typedef void (*esl_step_fn_t)(const esl_step_t *s, const esl_ctx_t *c);

/* One kernel call of the forward pass. Offsets index the activation arena in elements of the
 * scheme's activations: floats, or int8 for the integer-only scheme (s8 kernels). */
struct esl_step {
    esl_step_fn_t run;
    uint32_t out, in, in2;     /* arena offsets (elements) of the step's output and inputs */
    uint32_t n;                /* vector length (heads for rope); matmul: flags, below */
    uint32_t layer;
    const esl_weight_t *w;     /* matmul, embed */
    const float *norm;         /* rmsnorm (float schemes) */
    const void *p;             /* the kernel's own parameters, prepared on the host (s8 kernels:
                                  esl_<op>_s8_t in esl_kernels.h); NULL for the others */
};

/* A matmul step's n: ESL_MATMUL_X_READY when its input is the previous step's, which left it
 * quantized and laid out in the scratch (q, k, v; w1, w3; the planner's Step.input_prepared), so
 * the kernel skips that; on a cluster the other bits carry its DMA tiling (esl_cluster.h). */
#define ESL_MATMUL_X_READY (1u << 16)

/* What a step sees besides its own operands. */
struct esl_ctx {
    const esl_model_t *m;
    float *arena;
    void *scratch;             /* m->scratch_bytes, 8-byte aligned: the planner sized it with the
                                  scratch rule of every kernel in the step table */
    uint32_t token, pos;
    const float *cos, *sin;    /* RoPE table rows of pos, head_size / 2 each */
};

struct esl_model {
    uint32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_size, kv_dim;
    uint32_t vocab_size, max_seq, max_token_length;
    float norm_eps, inv_sqrt_head_size;
    const esl_step_t *steps;
    uint32_t n_steps;
    uint64_t *step_cycles;         /* (n_steps) counter ticks per step, summed since the last reset */
    uint32_t logits_byte;          /* where the logits are after the last step: arena byte offset */
    float *arena;                  /* the activation arena (8-byte aligned; int8 elements in s8 builds) */
    void *scratch;                 /* kernel scratch, shared by all steps (one runs at a time) */
    uint32_t scratch_bytes;
    esl_kv_t kv;
    const float *rope_cos, *rope_sin;  /* (max_seq, head_size / 2) */
};

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
    const int32_t *rank;           /* merge scores as ranks: the same order, integers only; -1 for
                                      a score run.c's -1e10 start never lets merge */
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
    const char *scheme;            /* "q8", "q4", "f32", "i8" */
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
