/* Test driver: runs one firmware kernel on inputs read from stdin and writes its outputs to
 * stdout, all raw little-endian, so tests/test_kernels_native.py can compare them with the golden
 * model bit for bit. Usage: kernel_driver OP < inputs > outputs. Test code: malloc is fine here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "esl_kernels.h"

static void *rd(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p || fread(p, 1, bytes, stdin) != bytes) { fprintf(stderr, "short input\n"); exit(2); }
    return p;
}
static uint32_t rd_u32(void) { uint32_t v; memcpy(&v, rd(4), 4); return v; }
static float rd_f32(void) { float v; memcpy(&v, rd(4), 4); return v; }
static void wr(const void *p, size_t bytes) { fwrite(p, 1, bytes, stdout); }

static esl_weight_t rd_weight(uint32_t bits)
{
    esl_weight_t w = {0};
    w.bits = (uint8_t)bits;
    w.rows = rd_u32();
    w.cols = rd_u32();
    w.group_size = (uint16_t)rd_u32();
    w.n_groups = bits == 32 ? 0 : (uint16_t)((w.cols + w.group_size - 1) / w.group_size);
    const size_t row_bytes = bits == 32 ? 4u * w.cols : bits == 8 ? w.cols : (w.cols + 1u) / 2u;
    w.data = rd(row_bytes * w.rows);
    w.scales = bits == 32 ? NULL : rd(4u * w.rows * w.n_groups);
    return w;
}

int main(int argc, char **argv)
{
    if (argc != 2) return 2;
    const char *op = argv[1];
    if (!strcmp(op, "expf")) {
        uint32_t n = rd_u32(); float *x = rd(4u * n);
        for (uint32_t i = 0; i < n; i++) x[i] = esl_expf(x[i]);
        wr(x, 4u * n);
    } else if (!strcmp(op, "rmsnorm")) {
        uint32_t n = rd_u32(); float eps = rd_f32(); float *x = rd(4u * n), *w = rd(4u * n);
        float *o = malloc(4u * n);
        esl_rmsnorm_f32(o, x, w, n, eps);
        wr(o, 4u * n);
    } else if (!strcmp(op, "quantize")) {
        uint32_t n = rd_u32(), gs = rd_u32(); float *x = rd(4u * n);
        int8_t *q = malloc(n); float *s = malloc(4u * ((n + gs - 1) / gs));
        esl_quantize_i8(q, s, x, n, gs);
        wr(q, n); wr(s, 4u * ((n + gs - 1) / gs));
    } else if (!strcmp(op, "quantize_parts")) {        /* each group in `parts` parts of 8-element blocks */
        uint32_t n = rd_u32(), gs = rd_u32(), parts = rd_u32(), wide = rd_u32(); float *x = rd(4u * n);
        const uint32_t ng = (n + gs - 1) / gs, size = wide ? 2u : 1u;
        uint8_t *q = malloc(size * n); float *s = malloc(4u * ng);
        for (uint32_t g = 0; g < ng; g++) {
            const uint32_t start = g * gs, len = n - start < gs ? n - start : gs, blocks = (len + 7u) / 8u;
            for (uint32_t p = 0; p < parts; p++) {
                const uint32_t lo = 8u * (blocks * p / parts), hi = 8u * (blocks * (p + 1u) / parts);
                const uint32_t l = lo < len ? lo : len, h = hi < len ? hi : len;
                if (wide) esl_quantize_i16_part((int16_t *)(void *)q + start, p ? NULL : s + g, x + start, len, l, h);
                else esl_quantize_i8_part((int8_t *)q + start, p ? NULL : s + g, x + start, len, l, h);
            }
        }
        wr(q, size * n); wr(s, 4u * ng);
    } else if (!strcmp(op, "matmul_f32") || !strcmp(op, "matmul_w8f") || !strcmp(op, "matmul_w4f")
               || !strcmp(op, "embed_f32") || !strcmp(op, "embed_w8f")) {
        const uint32_t bits = strstr(op, "w8f") ? 8 : strstr(op, "w4f") ? 4 : 32;
        esl_weight_t w = rd_weight(bits);
        if (!strncmp(op, "embed", 5)) {
            uint32_t token = rd_u32(); float *o = malloc(4u * w.cols);
            if (bits == 32) esl_embed_f32(o, &w, token); else esl_embed_w8f(o, &w, token);
            wr(o, 4u * w.cols);
        } else {
            float *x = rd(4u * w.cols), *y = malloc(4u * w.rows);
            void *scratch = malloc(4u * w.cols + 4u * (w.n_groups + 1u) + 8u);   /* >= every rule */
            if (bits == 32) esl_matmul_f32(y, &w, x);
            else if (bits == 8) esl_matmul_w8f(y, &w, x, scratch);
            else esl_matmul_w4f(y, &w, x, scratch);
            wr(y, 4u * w.rows);
        }
    } else if (!strcmp(op, "rope")) {
        uint32_t heads = rd_u32(), hs = rd_u32();
        float *v = rd(4u * heads * hs), *c = rd(2u * hs), *s = rd(2u * hs);
        esl_rope_f32(v, c, s, heads, hs);
        wr(v, 4u * heads * hs);
    } else if (!strcmp(op, "softmax")) {
        uint32_t n = rd_u32(); float *x = rd(4u * n);
        esl_softmax_f32(x, n);
        wr(x, 4u * n);
    } else if (!strcmp(op, "kvstore_kv8")) {
        uint32_t n = rd_u32(), hs = rd_u32(); float *k = rd(4u * n), *v = rd(4u * n);
        int8_t *kq = malloc(n), *vq = malloc(n); float *ks = malloc(4u * (n / hs)), *vs = malloc(4u * (n / hs));
        esl_kvstore_kv8(kq, ks, vq, vs, k, v, n, hs);
        wr(kq, n); wr(ks, 4u * (n / hs)); wr(vq, n); wr(vs, 4u * (n / hs));
    } else if (!strcmp(op, "swiglu") || !strcmp(op, "add")) {
        uint32_t n = rd_u32(); float *a = rd(4u * n), *b = rd(4u * n);
        if (op[0] == 's') esl_swiglu_f32(a, b, n); else esl_add_f32(a, b, n);
        wr(a, 4u * n);
    } else if (!strcmp(op, "attention_f32") || !strcmp(op, "attention_kv8")) {
        const int i8 = !strcmp(op, "attention_kv8");
        esl_model_t m = {0};
        m.n_heads = rd_u32(); m.n_kv_heads = rd_u32(); m.head_size = rd_u32(); m.max_seq = rd_u32();
        uint32_t pos = rd_u32();
        m.kv_dim = m.n_kv_heads * m.head_size;
        m.inv_sqrt_head_size = rd_f32();
        float *q = rd(4u * m.n_heads * m.head_size);
        const size_t kv = (size_t)m.max_seq * m.kv_dim, ns = (size_t)m.max_seq * m.n_kv_heads;
        if (i8) {
            m.kv.key_i8 = rd(kv); m.kv.value_i8 = rd(kv);
            m.kv.key_scale = rd(4u * ns); m.kv.value_scale = rd(4u * ns); m.kv.kv_bits = 8;
        } else {
            m.kv.key_f32 = rd(4u * kv); m.kv.value_f32 = rd(4u * kv); m.kv.kv_bits = 32;
        }
        /* two heads' scores, then (kv8) their quantized q */
        float *att = malloc(8u * m.max_seq + 4u * m.head_size), *out = malloc(4u * m.n_heads * m.head_size);
        if (i8) esl_attention_kv8(out, q, &m, 0, pos, att); else esl_attention_f32(out, q, &m, 0, pos, att);
        wr(out, 4u * m.n_heads * m.head_size);
    } else {
        fprintf(stderr, "unknown op %s\n", op);
        return 2;
    }
    return 0;
}
