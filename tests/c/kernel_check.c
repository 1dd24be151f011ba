/* Kernel check firmware: runs every case of a generated table (kernel_cases.h, written by
 * tests/kernel_vectors.py) through the typed kernel API and sends each case's outputs, raw
 * little-endian, on the port's console, so tests/test_kernels_emulated.py can compare them with the
 * golden model bit for bit. Built for an emulated board (ports/mps2: UART0; returning from main ends
 * QEMU through semihosting) or natively (ports/host: stdout).
 *
 * Per case the stream holds a header of three uint32: the case index, the number of output bytes
 * that follow, and a guard word (bit 0: the kernel wrote past its outputs, bit 1: past the scratch
 * its KernelSpec rule grants); then the outputs. No heap: every buffer is static, sized by the
 * generator. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "esl_kernels.h"
#include "esl_port.h"

typedef enum {
    KC_MATMUL_F32, KC_MATMUL_W8F, KC_MATMUL_W4F, KC_EMBED_F32, KC_EMBED_W8F, KC_RMSNORM_F32,
    KC_ROPE_F32, KC_SOFTMAX, KC_EXPF, KC_QUANTIZE_I8, KC_QUANTIZE_I16, KC_SWIGLU_F32, KC_ADD_F32, KC_KVSTORE_KV8,
    KC_ATTENTION_F32, KC_ATTENTION_KV8,
    KC_MATMUL_S8, KC_EMBED_S8, KC_RMSNORM_S8, KC_ROPE_S8, KC_ROPE_S16, KC_ATTENTION_S8, KC_ADD_S8, KC_SWIGLU_S8,
    KC_MATMUL_S16, KC_SWIGLU_S16
} kc_op_t;

/* One call: the op, the bytes of the output buffer it may write, the scratch it is granted, and
 * its operands (the union member named after the op's shape). */
typedef struct {
    kc_op_t op;
    uint32_t out_bytes;
    uint32_t scratch_bytes;
    union {
        struct { const esl_weight_t *w; const float *x; } matmul;
        struct { const esl_weight_t *table; uint32_t token; } embed;
        struct { const float *x, *w; uint32_t n; float eps; } rmsnorm;
        struct { const float *v, *cos, *sin; uint32_t heads, head_size; } rope;
        struct { const float *x; uint32_t n; } vec;                      /* softmax, expf */
        struct { const float *x; uint32_t n, gs; } quantize;
        struct { const float *a, *b; uint32_t n; } binary;               /* swiglu, add: a op= b */
        struct { const float *k, *v; uint32_t n, head_size; } kvstore;
        struct { const float *q; const esl_model_t *m; uint32_t layer, pos; } attention;
        /* the integer-only (s8) kernels: int8 operands, the step's host-made parameters */
        struct { const esl_weight_t *w; const int8_t *x; const esl_matmul_s8_t *p; } matmul_s8;
        struct { const esl_weight_t *table; uint32_t token; const esl_embed_s8_t *p; } embed_s8;
        struct { const void *x; uint32_t n; const esl_rmsnorm_s8_t *p; } rmsnorm_s8;    /* x int8 or int16 */
        struct { const int8_t *v; uint32_t heads, head_size, pos; const esl_rope_s8_t *p; } rope_s8;
        struct { const int16_t *v; uint32_t heads, head_size, pos; const esl_rope_s16_t *p; } rope_s16;
        struct { const int8_t *q; const esl_model_t *m; uint32_t layer, pos; const esl_attention_s8_t *p; } attention_s8;
        struct { const void *a, *b; uint32_t n; const void *p; } binary_s8;       /* add, swiglu: a op= b */
        struct { const esl_weight_t *w; const int16_t *x; const esl_matmul_s16_t *p; } matmul_s16;
        struct { const int16_t *a, *b; uint32_t n; const void *p; } binary_s16;   /* swiglu_s16: a op= b */
    };
} kc_case_t;

#include "kernel_cases.h"

#define GUARD_BYTE 0xA5u

static uint64_t out_buf[(KC_OUT_BYTES + KC_GUARD + 7u) / 8u];
static uint64_t scratch_buf[(KC_SCRATCH_BYTES + KC_GUARD + 7u) / 8u];

/* Where a case's outputs are in out_buf: up to four parts, sent in order. */
typedef struct {
    const void *ptr[4];
    uint32_t bytes[4];
    uint32_t count;
} kc_parts_t;

static void part(kc_parts_t *p, const void *ptr, uint32_t bytes)
{
    p->ptr[p->count] = ptr;
    p->bytes[p->count] = bytes;
    p->count++;
}

static uint32_t round4(uint32_t n) { return (n + 3u) & ~3u; }

static void copy_f32(float *dst, const float *src, uint32_t n)
{
    memcpy(dst, src, 4u * n);
}

/* Run one case; its outputs are left in out_buf and listed in *p. */
static void run_case(const kc_case_t *c, kc_parts_t *p)
{
    uint8_t *out = (uint8_t *)out_buf;
    float *y = (float *)out_buf;
    void *scratch = scratch_buf;
    switch (c->op) {
    case KC_MATMUL_F32:
        esl_matmul_f32(y, c->matmul.w, c->matmul.x);
        part(p, y, 4u * c->matmul.w->rows);
        break;
    case KC_MATMUL_W8F:
        esl_matmul_w8f(y, c->matmul.w, c->matmul.x, scratch);
        part(p, y, 4u * c->matmul.w->rows);
        break;
    case KC_MATMUL_W4F:
        esl_matmul_w4f(y, c->matmul.w, c->matmul.x, scratch);
        part(p, y, 4u * c->matmul.w->rows);
        break;
    case KC_EMBED_F32:
        esl_embed_f32(y, c->embed.table, c->embed.token);
        part(p, y, 4u * c->embed.table->cols);
        break;
    case KC_EMBED_W8F:
        esl_embed_w8f(y, c->embed.table, c->embed.token);
        part(p, y, 4u * c->embed.table->cols);
        break;
    case KC_RMSNORM_F32:
        esl_rmsnorm_f32(y, c->rmsnorm.x, c->rmsnorm.w, c->rmsnorm.n, c->rmsnorm.eps);
        part(p, y, 4u * c->rmsnorm.n);
        break;
    case KC_ROPE_F32: {                                  /* in place: rotate a copy */
        const uint32_t n = c->rope.heads * c->rope.head_size;
        copy_f32(y, c->rope.v, n);
        esl_rope_f32(y, c->rope.cos, c->rope.sin, c->rope.heads, c->rope.head_size);
        part(p, y, 4u * n);
        break;
    }
    case KC_SOFTMAX:
        copy_f32(y, c->vec.x, c->vec.n);
        esl_softmax_f32(y, c->vec.n);
        part(p, y, 4u * c->vec.n);
        break;
    case KC_EXPF:
        for (uint32_t i = 0; i < c->vec.n; i++) y[i] = esl_expf(c->vec.x[i]);
        part(p, y, 4u * c->vec.n);
        break;
    case KC_QUANTIZE_I8: {                               /* q int8[n], then the scales */
        const uint32_t n = c->quantize.n, gs = c->quantize.gs, groups = (n + gs - 1u) / gs;
        int8_t *q = (int8_t *)out;
        float *s = (float *)(void *)(out + round4(n));
        esl_quantize_i8(q, s, c->quantize.x, n, gs);
        part(p, q, n);
        part(p, s, 4u * groups);
        break;
    }
    case KC_QUANTIZE_I16: {                              /* q int16[n], then the scales */
        const uint32_t n = c->quantize.n, gs = c->quantize.gs, groups = (n + gs - 1u) / gs;
        int16_t *q = (int16_t *)(void *)out;
        float *s = (float *)(void *)(out + round4(2u * n));
        esl_quantize_i16(q, s, c->quantize.x, n, gs);
        part(p, q, 2u * n);
        part(p, s, 4u * groups);
        break;
    }
    case KC_SWIGLU_F32:
        copy_f32(y, c->binary.a, c->binary.n);
        esl_swiglu_f32(y, c->binary.b, c->binary.n);
        part(p, y, 4u * c->binary.n);
        break;
    case KC_ADD_F32:
        copy_f32(y, c->binary.a, c->binary.n);
        esl_add_f32(y, c->binary.b, c->binary.n);
        part(p, y, 4u * c->binary.n);
        break;
    case KC_KVSTORE_KV8: {                               /* key, key scales, value, value scales */
        const uint32_t n = c->kvstore.n, heads = n / c->kvstore.head_size;
        int8_t *kq = (int8_t *)out;
        float *ks = (float *)(void *)(out + round4(n));
        int8_t *vq = (int8_t *)(ks + heads);
        float *vs = (float *)(void *)((uint8_t *)vq + round4(n));
        esl_kvstore_kv8(kq, ks, vq, vs, c->kvstore.k, c->kvstore.v, n, c->kvstore.head_size);
        part(p, kq, n);
        part(p, ks, 4u * heads);
        part(p, vq, n);
        part(p, vs, 4u * heads);
        break;
    }
    case KC_ATTENTION_F32:
    case KC_ATTENTION_KV8: {
        const esl_model_t *m = c->attention.m;
        if (c->op == KC_ATTENTION_F32) {
            esl_attention_f32(y, c->attention.q, m, c->attention.layer, c->attention.pos, scratch);
        } else {
            esl_attention_kv8(y, c->attention.q, m, c->attention.layer, c->attention.pos, scratch);
        }
        part(p, y, 4u * m->n_heads * m->head_size);
        break;
    }
    case KC_MATMUL_S8:
        esl_matmul_s8(out, c->matmul_s8.w, c->matmul_s8.x, c->matmul_s8.p, scratch);
        part(p, out, c->matmul_s8.w->rows * (uint32_t)c->matmul_s8.p->out_bits / 8u);
        break;
    case KC_EMBED_S8:
        esl_embed_s8(out, c->embed_s8.table, c->embed_s8.token, c->embed_s8.p);
        part(p, out, c->embed_s8.table->cols * (uint32_t)c->embed_s8.p->out_bits / 8u);
        break;
    case KC_RMSNORM_S8:
        esl_rmsnorm_s8(out, c->rmsnorm_s8.x, c->rmsnorm_s8.n, c->rmsnorm_s8.p);
        part(p, out, c->rmsnorm_s8.n * (uint32_t)c->rmsnorm_s8.p->out_bits / 8u);
        break;
    case KC_ROPE_S8: {                                   /* in place: rotate a copy */
        const uint32_t n = c->rope_s8.heads * c->rope_s8.head_size;
        memcpy(out, c->rope_s8.v, n);
        esl_rope_s8((int8_t *)out, c->rope_s8.heads, c->rope_s8.head_size, c->rope_s8.pos, c->rope_s8.p);
        part(p, out, n);
        break;
    }
    case KC_ROPE_S16: {                                  /* in place: rotate a copy */
        const uint32_t n = c->rope_s16.heads * c->rope_s16.head_size;
        memcpy(out, c->rope_s16.v, 2u * n);
        esl_rope_s16((int16_t *)out, c->rope_s16.heads, c->rope_s16.head_size, c->rope_s16.pos, c->rope_s16.p);
        part(p, out, 2u * n);
        break;
    }
    case KC_ATTENTION_S8: {
        const esl_model_t *m = c->attention_s8.m;
        esl_attention_s8((int8_t *)out, c->attention_s8.q, m, c->attention_s8.layer, c->attention_s8.pos,
                         c->attention_s8.p, scratch);
        part(p, out, m->n_heads * m->head_size);
        break;
    }
    case KC_ADD_S8: {
        const esl_add_s8_t *a = (const esl_add_s8_t *)c->binary_s8.p;
        const uint32_t bytes = c->binary_s8.n * (uint32_t)a->bits / 8u;
        memcpy(out, c->binary_s8.a, bytes);
        esl_add_s8(out, c->binary_s8.b, c->binary_s8.n, a);
        part(p, out, bytes);
        break;
    }
    case KC_MATMUL_S16:
        esl_matmul_s16(out, c->matmul_s16.w, c->matmul_s16.x, c->matmul_s16.p, scratch);
        part(p, out, c->matmul_s16.w->rows * (uint32_t)c->matmul_s16.p->out_bits / 8u);
        break;
    case KC_SWIGLU_S16:
        memcpy(out, c->binary_s16.a, 2u * c->binary_s16.n);
        esl_swiglu_s16((int16_t *)out, c->binary_s16.b, c->binary_s16.n, (const esl_swiglu_s16_t *)c->binary_s16.p);
        part(p, out, 2u * c->binary_s16.n);
        break;
    case KC_SWIGLU_S8:
        memcpy(out, c->binary_s8.a, c->binary_s8.n);
        esl_swiglu_s8((int8_t *)out, c->binary_s8.b, c->binary_s8.n, (const esl_swiglu_s8_t *)c->binary_s8.p);
        part(p, out, c->binary_s8.n);
        break;
    }
}

/* Nonzero if any of the KC_GUARD bytes from `from` was written. */
static uint32_t guard_hit(const uint8_t *from)
{
    for (uint32_t i = 0; i < KC_GUARD; i++) {
        if (from[i] != GUARD_BYTE) return 1u;
    }
    return 0u;
}

static void send_u32(uint32_t v)
{
    const uint8_t b[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };
    esl_port_write(b, 4u);
}

int main(void)
{
    esl_port_init();
    for (uint32_t i = 0; i < KC_N_CASES; i++) {
        const kc_case_t *c = &kc_cases[i];
        kc_parts_t p = { { 0 }, { 0 }, 0u };
        memset(out_buf, GUARD_BYTE, sizeof out_buf);
        memset(scratch_buf, GUARD_BYTE, sizeof scratch_buf);
        run_case(c, &p);
        uint32_t bytes = 0;
        for (uint32_t j = 0; j < p.count; j++) bytes += p.bytes[j];
        const uint32_t guards = guard_hit((const uint8_t *)out_buf + c->out_bytes) |
                                guard_hit((const uint8_t *)scratch_buf + c->scratch_bytes) << 1;
        send_u32(i);
        send_u32(bytes);
        send_u32(guards);
        for (uint32_t j = 0; j < p.count; j++) esl_port_write((const uint8_t *)p.ptr[j], p.bytes[j]);
    }
    return 0;
}
