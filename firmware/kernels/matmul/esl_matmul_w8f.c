/* matmul_w8f: int8 weights, float activations. x is quantized by esl_quantize_i8 with W's group
 * size (the scheme's int16 activations, ESL_MATMUL_X16: by esl_quantize_i16, groups of at most 512);
 * per row i and group g: isum = sum((int32_t)Wq * (int32_t)xq) (exact),
 * y[i] = y[i] + (float)isum * (ws[i][g] * xs[g]), groups in order, y[i] starting at 0.0f.
 * scratch: xq int8[cols] (int16 with ESL_MATMUL_X16) padded to 4 bytes, xs float[n_groups], then
 * (DSP only) x16 int16[cols]; the Cortex-M fast path for groups of 32 or 16 (below) lays xs and
 * x16 out again as one stream of groups.
 * On a cluster (ESL_CLUSTER_CORES, esl_cluster.h) two forks: the workers quantize x by ranges of
 * whole groups, or with fewer groups than workers by parts of groups (each group's max and scale
 * are its own; skipped when the step before left this x quantized in the scratch), then take
 * contiguous ranges of rows (shares differing by one row at most: a share's last rows % 4 go as a
 * pair and one, cheaper than a busiest worker with 3 rows more), each streaming its rows through
 * its L1 by DMA in tiles (double-buffered; the first tile prefetched by the matmul before; x from
 * the scratch, unless the matmul before left it in the worker's L1): the planner's tiling is in
 * the step's n. Every group's and every row's arithmetic is the same whichever core runs it, so
 * the result is bit for bit the single-core one. The rows' RV32 branch (the stand-in's cores) is
 * below; an ISA branch for the cluster's own cores (Xpulp, ESL_KERNELS_XPULP: pv.sdotsp.b, 4 int8
 * MACs per instruction; pv.sdotsp.h, 2, for int16 x) would go in esl_dot_i8.h before the RV32 one;
 * QEMU cannot run it. */
#include "esl_kernels.h"

/* The int8 dot products (portable, DSP, Helium and RV32 branches) are shared with matmul_s8; with
 * ESL_MATMUL_X16 their x is int16 (xq_t). */
#ifndef ESL_MATMUL_X16
#define ESL_MATMUL_X16 0
#endif
#define ESL_DOT_X16 ESL_MATMUL_X16
#include "esl_dot_i8.h"

static void quantize_x(xq_t *q, float *s, const float *x, uint32_t n, uint32_t gs)
{
#if ESL_MATMUL_X16
    esl_quantize_i16(q, s, x, n, gs);
#else
    esl_quantize_i8(q, s, x, n, gs);
#endif
}

#if defined(ESL_CLUSTER_CORES)
/* Elements [lo, hi) of one group of len, and its scale unless s is NULL (esl_quantize_*_part). */
static void quantize_x_part(xq_t *q, float *s, const float *x, uint32_t len, uint32_t lo, uint32_t hi)
{
#if ESL_MATMUL_X16
    esl_quantize_i16_part(q, s, x, len, lo, hi);
#else
    esl_quantize_i8_part(q, s, x, len, lo, hi);
#endif
}
#endif

/* x's scales in the scratch, after xq padded to 4 bytes. */
static float *x_scales(void *scratch, uint32_t cols)
{
    return (float *)(void *)((uint8_t *)scratch + ((cols * (uint32_t)sizeof(xq_t) + 3u) & ~3u));
}

#if defined(__riscv) && __riscv_xlen == 32 && defined(__riscv_mul) && defined(__riscv_flen) && \
    !ESL_KERNELS_DSP && !ESL_KERNELS_MVE
/* RV32 with an FPU (the GAP9 stand-in's workers): 4, 2 or 1 rows over their whole groups in one
 * assembly loop, each group's float work included, so that a group of 32 and four rows costs its
 * MACs (esl_dot_i8.h's columns: 13 instructions per column; the first column's products start the
 * sums) plus 30: the block's pointer bumps and branch, xs[g], and per row its scale, ws * xs,
 * (float)isum, the product and the sum, in the C's order and rounding (FMUL, FCVT.S.W, FMUL, FADD:
 * no fused multiply-add). The C loop below spends about 60 around the same MACs. Blocks of 32
 * columns (16 when gs is an odd multiple of 16, the sums zeroed per group); another gs takes the
 * C, and so does a short last group (rv_last_group, after the asm's groups: the order stays). */
#define MATMUL_RV32 1

/* One group's float work for row r, its scale at 0(ptr): f<r> += (float)a<r> * (ws * xs[g]), fx = xs[g]. */
#define RV_FLOAT(r, ptr)                                                                           \
    "flw    %[fw], 0(" ptr ")\n\t"                                                                  \
    "fmul.s %[fw], %[fw], %[fx]\n\t"                                                                \
    "fcvt.s.w %[ft], %[a" #r "]\n\t"                                                                \
    "fmul.s %[ft], %[ft], %[fw]\n\t"                                                                \
    "fadd.s %[f" #r "], %[f" #r "], %[ft]\n\t"
/* Row r's scale is w0 + r * wst: t0 steps through them. */
#define RV_FLOAT4 RV_FLOAT(0, "%[w0]") RV_NEXT_WS("%[w0]") RV_FLOAT(1, "%[t0]") RV_NEXT_WS("%[t0]")   \
    RV_FLOAT(2, "%[t0]") RV_NEXT_WS("%[t0]") RV_FLOAT(3, "%[t0]")
#define RV_FLOAT2 RV_FLOAT(0, "%[w0]") RV_NEXT_WS("%[w0]") RV_FLOAT(1, "%[t0]")
#define RV_FLOAT1 RV_FLOAT(0, "%[w0]")
#define RV_NEXT_WS(from) "add    %[t0], " from ", %[wst]\n\t"

#define RV_NEXT2(c) "addi %[p1], %[p1], " #c "\n\t" ESL_RV_NEXT1(c)

/* Column k of four rows as the first of a group: the products start the sums (no zeroing, no ADD). */
#define RV_COL4_FIRST(k)                                                                           \
    ESL_RV_LDX(k)                                             \
    "lb   %[t0], " #k "(%[p0])\n\t"                                                                \
    "lb   %[t1], " #k "(%[p1])\n\t"                                                                \
    "mul  %[a0], %[t0], %[xk]\n\t"                                                                 \
    "mul  %[a1], %[t1], %[xk]\n\t"                                                                 \
    "lb   %[t0], " #k "(%[p2])\n\t"                                                                \
    "lb   %[t1], " #k "(%[p3])\n\t"                                                                \
    "mul  %[a2], %[t0], %[xk]\n\t"                                                                 \
    "mul  %[a3], %[t1], %[xk]\n\t"

/* Blocks of 16 or 32 columns of `col` (offsets spelled out: they are stringified into the asm). */
#define RV_COLS_1_15(col)                                                                          \
    col(1) col(2) col(3) col(4) col(5) col(6) col(7) col(8) col(9) col(10) col(11) col(12) col(13) \
    col(14) col(15)
#define RV_COLS_16_31(col)                                                                         \
    col(16) col(17) col(18) col(19) col(20) col(21) col(22) col(23) col(24) col(25) col(26)       \
    col(27) col(28) col(29) col(30) col(31)
#define RV_COLS16(col) col(0) RV_COLS_1_15(col)
#define RV_COLS32(col) col(0) RV_COLS_1_15(col) RV_COLS_16_31(col)

/* The group loop: `setup` once (rows 1.. from p0 and st, the float sums to +0.0f), then per group
 * `start` (zeroing the int sums, or with `first` a whole first block that starts them, then `2f`
 * if the group has no more), the blocks to x + gb (`body`, `bump`), xs[g] and `flt`; ends at xse.
 * The outputs (at most 30 operands with these 4 inputs: what can be derived is) follow. */
#define RV_GROUPS(setup, start, body, bump, flt, ...)                                              \
    __asm__ volatile(setup "1:\n\t"                                                                 \
                     "add    %[end], %[x], %[gb]\n\t" start                                         \
                     "2:\n\t" body bump                                                             \
                     "bne    %[x], %[end], 2b\n"                                                    \
                     "3:\n\t"                                                                       \
                     "flw    %[fx], 0(%[xs])\n\t"                                                   \
                     "addi   %[xs], %[xs], 4\n\t" flt                                               \
                     "addi   %[w0], %[w0], 4\n\t"                                                   \
                     "bne    %[xs], %[xse], 1b\n\t"                                                 \
                     : __VA_ARGS__                                                                  \
                     : [st] "r"(cols), [wst] "r"(wst), [gb] "r"(gb), [xse] "r"(xse)                 \
                     : "memory")

#define RV_SETUP4                                                                                  \
    "add    %[p1], %[p0], %[st]\n\t"                                                                \
    "add    %[p2], %[p1], %[st]\n\t"                                                                \
    "add    %[p3], %[p2], %[st]\n\t"                                                                \
    "fmv.w.x %[f0], zero\n\t"                                                                       \
    "fmv.s  %[f1], %[f0]\n\t"                                                                       \
    "fmv.s  %[f2], %[f0]\n\t"                                                                       \
    "fmv.s  %[f3], %[f0]\n"
#define RV_ZERO4 "li %[a0], 0\n\tli %[a1], 0\n\tli %[a2], 0\n\tli %[a3], 0\n\t"
#define RV_OUT4                                                                                    \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [p0] "+r"(p0), [p1] "=&r"(p1),  \
    [p2] "=&r"(p2), [p3] "=&r"(p3), [x] "+r"(xp), [xs] "+r"(xsp), [w0] "+r"(w0), [end] "=&r"(e),    \
    [xk] "=&r"(xk), [t0] "=&r"(t0), [t1] "=&r"(t1), [f0] "=&f"(f0), [f1] "=&f"(f1), [f2] "=&f"(f2), \
    [f3] "=&f"(f3), [fx] "=&f"(fx), [fw] "=&f"(fw), [ft] "=&f"(ft)
#define RV_SETUP2 "add %[p1], %[p0], %[st]\n\tfmv.w.x %[f0], zero\n\tfmv.s %[f1], %[f0]\n"
#define RV_ZERO2 "li %[a0], 0\n\tli %[a1], 0\n\t"
#define RV_OUT2                                                                                    \
    [a0] "=&r"(a0), [a1] "=&r"(a1), [p0] "+r"(p0), [p1] "=&r"(p1), [x] "+r"(xp), [xs] "+r"(xsp),   \
    [w0] "+r"(w0), [end] "=&r"(e), [xk] "=&r"(xk), [t0] "=&r"(t0), [t1] "=&r"(t1), [f0] "=&f"(f0), \
    [f1] "=&f"(f1), [fx] "=&f"(fx), [fw] "=&f"(fw), [ft] "=&f"(ft)
#define RV_SETUP1 "fmv.w.x %[f0], zero\n"
#define RV_ZERO1 "li %[a0], 0\n\t"
#define RV_OUT1                                                                                    \
    [a0] "=&r"(a0), [p0] "+r"(p0), [x] "+r"(xp), [xs] "+r"(xsp), [w0] "+r"(w0), [end] "=&r"(e),     \
    [xk] "=&r"(xk), [t0] "=&r"(t0), [f0] "=&f"(f0), [fx] "=&f"(fx), [fw] "=&f"(fw), [ft] "=&f"(ft)

/* What the three share: the operands. */
#define RV_ROWS_VARS                                                                               \
    const int8_t *p0 = row;                                                                         \
    const float *w0 = ws, *xsp = xs;                                                                \
    const float *const xse = xs + full;                                                             \
    const xv_t *xp = xv, *e;                                                                        \
    const uint32_t gb = gs * (uint32_t)sizeof(xv_t), wst = ng * 4u;                                 \
    int32_t xk, t0;                                                                                 \
    float fx, fw, ft

/* y[0..3] = rows row + r * cols of W @ x over the groups [0, full) (full >= 1, gs % 16 == 0). */
static void rv_rows4(float *y, const int8_t *row, uint32_t cols, const xv_t *xv, const float *xs, const float *ws,
                     uint32_t ng, uint32_t gs, uint32_t full)
{
    RV_ROWS_VARS;
    const int8_t *p1, *p2, *p3;
    int32_t a0, a1, a2, a3, t1;
    float f0, f1, f2, f3;
    if (gs % 32u == 0u)
        RV_GROUPS(RV_SETUP4,
                  RV_COL4_FIRST(0) RV_COLS_1_15(ESL_RV_COL4) RV_COLS_16_31(ESL_RV_COL4) ESL_RV_NEXT4(32)
                  "beq    %[x], %[end], 3f\n",
                  RV_COLS32(ESL_RV_COL4), ESL_RV_NEXT4(32), RV_FLOAT4, RV_OUT4);
    else
        RV_GROUPS(RV_SETUP4, RV_ZERO4, RV_COLS16(ESL_RV_COL4), ESL_RV_NEXT4(16), RV_FLOAT4, RV_OUT4);
    y[0] = f0;
    y[1] = f1;
    y[2] = f2;
    y[3] = f3;
}

/* The same for two rows. */
static void rv_rows2(float *y, const int8_t *row, uint32_t cols, const xv_t *xv, const float *xs, const float *ws,
                     uint32_t ng, uint32_t gs, uint32_t full)
{
    RV_ROWS_VARS;
    const int8_t *p1;
    int32_t a0, a1, t1;
    float f0, f1;
    if (gs % 32u == 0u)
        RV_GROUPS(RV_SETUP2, RV_ZERO2, RV_COLS32(ESL_RV_COL2), RV_NEXT2(32), RV_FLOAT2, RV_OUT2);
    else
        RV_GROUPS(RV_SETUP2, RV_ZERO2, RV_COLS16(ESL_RV_COL2), RV_NEXT2(16), RV_FLOAT2, RV_OUT2);
    y[0] = f0;
    y[1] = f1;
}

/* The same for one row. */
static void rv_rows1(float *y, const int8_t *row, uint32_t cols, const xv_t *xv, const float *xs, const float *ws,
                     uint32_t ng, uint32_t gs, uint32_t full)
{
    RV_ROWS_VARS;
    int32_t a0;
    float f0;
    if (gs % 32u == 0u)
        RV_GROUPS(RV_SETUP1, RV_ZERO1, RV_COLS32(ESL_RV_COL1), ESL_RV_NEXT1(32), RV_FLOAT1, RV_OUT1);
    else
        RV_GROUPS(RV_SETUP1, RV_ZERO1, RV_COLS16(ESL_RV_COL1), ESL_RV_NEXT1(16), RV_FLOAT1, RV_OUT1);
    y[0] = f0;
}

/* The short last group of rows [begin, end) (full < ng), added to what rv_rows* left in y: the
 * stored float is the sum so far, so the order and the bits are the C loop's. */
__attribute__((noinline)) static void rv_last_group(float *y, const esl_weight_t *w, const xv_t *xv, const float *xs,
                                                    uint32_t begin, uint32_t end, uint32_t full)
{
    const uint32_t cols = w->cols, ng = w->n_groups, start = full * w->group_size, n = cols - start;
    const int8_t *row = (const int8_t *)w->data + begin * cols + start;
    const float *ws = w->scales + begin * ng + full;
    const float xsg = xs[full];
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols, ws += 4u * ng) {
        int32_t s[4];
        dot_group4(row, cols, xv + start, n, s);
        y[i] = y[i] + (float)s[0] * (ws[0] * xsg);
        y[i + 1u] = y[i + 1u] + (float)s[1] * (ws[ng] * xsg);
        y[i + 2u] = y[i + 2u] + (float)s[2] * (ws[2u * ng] * xsg);
        y[i + 3u] = y[i + 3u] + (float)s[3] * (ws[3u * ng] * xsg);
    }
    for (; i < end; i++, row += cols, ws += ng) y[i] = y[i] + (float)dot_group(row, xv + start, n) * (ws[0] * xsg);
}

/* matmul_rows' rows on RV32 (gs % 16 == 0, at least one whole group): fours, then a pair, then
 * one; then the short last group, if any. */
__attribute__((noinline)) static void rv_matmul_rows(float *y, const esl_weight_t *w, const xv_t *xv,
                                                     const float *xs, uint32_t begin, uint32_t end)
{
    const uint32_t cols = w->cols, ng = w->n_groups, gs = w->group_size, full = cols / gs;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    const float *ws = w->scales + begin * ng;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols, ws += 4u * ng)
        rv_rows4(y + i, row, cols, xv, xs, ws, ng, gs, full);
    if (i + 2u <= end) {
        rv_rows2(y + i, row, cols, xv, xs, ws, ng, gs, full);
        i += 2u, row += 2u * cols, ws += 2u * ng;
    }
    if (i < end) rv_rows1(y + i, row, cols, xv, xs, ws, ng, gs, full);
    if (full < ng) rv_last_group(y, w, xv, xs, begin, end, full);
}
#endif

/* Rows [begin, end) of y = W @ x, x already quantized and prepared (xv, xs). On a cluster each
 * worker runs it on its own rows, out of line: inlined into the worker's job, gcc 12 (rv32) spilled
 * the four row sums of the C loop. */
#if defined(ESL_CLUSTER_CORES)
__attribute__((noinline))
#endif
static void matmul_rows_c(float *y, const esl_weight_t *w, const xv_t *xv, const float *xs, uint32_t begin,
                          uint32_t end)
{
    const uint32_t cols = w->cols, ng = w->n_groups, gs = w->group_size;
    const int8_t *row = (const int8_t *)w->data + begin * cols;
    const float *ws = w->scales + begin * ng;
    uint32_t i = begin;
    for (; i + 4u <= end; i += 4u, row += 4u * cols, ws += 4u * ng) {
        float acc0 = 0.0f, acc1 = 0.0f, acc2 = 0.0f, acc3 = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += gs) {
            const uint32_t n = (start + gs < cols) ? gs : cols - start;
            int32_t s[4];
            dot_group4(row + start, cols, xv + start, n, s);
            const float xsg = xs[g];
            acc0 = acc0 + (float)s[0] * (ws[g] * xsg);
            acc1 = acc1 + (float)s[1] * (ws[ng + g] * xsg);
            acc2 = acc2 + (float)s[2] * (ws[2u * ng + g] * xsg);
            acc3 = acc3 + (float)s[3] * (ws[3u * ng + g] * xsg);
        }
        y[i] = acc0;
        y[i + 1u] = acc1;
        y[i + 2u] = acc2;
        y[i + 3u] = acc3;
    }
    for (; i < end; i++, row += cols, ws += ng) {
        float acc = 0.0f;
        for (uint32_t g = 0, start = 0; g < ng; g++, start += gs) {
            const uint32_t n = (start + gs < cols) ? gs : cols - start;
            acc = acc + (float)dot_group(row + start, xv + start, n) * (ws[g] * xs[g]);
        }
        y[i] = acc;
    }
}

/* matmul_rows_c, or on RV32 the assembly rows where they fit (a check, then a call). */
static inline void matmul_rows(float *y, const esl_weight_t *w, const xv_t *xv, const float *xs, uint32_t begin,
                               uint32_t end)
{
#if MATMUL_RV32
    if (w->group_size % 16u == 0u && w->cols >= w->group_size) {
        rv_matmul_rows(y, w, xv, xs, begin, end);
        return;
    }
#endif
    matmul_rows_c(y, w, xv, xs, begin, end);
}

#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE && ESL_DSP_VFP && !defined(ESL_CLUSTER_CORES)
/* Cortex-M DSP fast path for groups of 32 (the default) or 16 with W word-aligned (data and cols):
 * the rows go through assembly routines that also do each group's float work, so per group a row
 * costs its integer MACs plus VCVT, a share of VMOV and of the scale loads, VMUL (ws * xs) and
 * VMLA. VMLA.F32 on FPv4/FPv5 is the chained (not fused) multiply-add: the product is rounded,
 * then the sum, as y + (float)isum * (ws * xs) is written in C (VFMA, the fused one, is not used).
 *
 * x is laid out once per call as a stream of groups: xs[g], then the group's int16 in the order of
 * esl_dot_i8.h (each 4-chunk as x0, x2, x1, x3); 4 + 2 * gs bytes a full group. It takes the place
 * of xs and x16 in the scratch (4 * n_groups + 2 * cols bytes, the same total).
 *   w8x4_32, w8x4_16  rows of 64 (two groups of 32, four of 16), four rows a pass: one pointer
 *            reaches the four rows by immediate offsets, which leaves registers for four sums. Per
 *            8 elements one LDM of 4 activation words, then per row one LDRD of 8 weights, 4 SXTB16
 *            and 4 SMLAD (37 instructions per 32 MACs); per 4 rows 296 of those, then the float
 *            work and the loop: 336 instructions for 256 MACs with groups of 32, 366 with 16.
 *   w8_rows32, w8_rows16  any width, two rows a pass (19 instructions per 16 MACs; per full group
 *            and pair 13 more: 89 for 64 MACs with groups of 32, 51 for 32 with 16), then the short
 *            last group by 4-chunks; also the rows w8x4_* leave, and an odd last row as a pair with
 *            itself. Groups of 16 are the same routines with 2 8-chunks a group instead of 4. */
#define W8_BYTES(gs) (4u + 2u * (gs))   /* a full group in the stream: float xs[g], int16[gs] */

/* The stream from xq and xs (xs lies at the stream's start): built from the last group back to
 * the first, each group's scale read before the group is written over it (group g's bytes start
 * at or after xs[g]). gs 16 or 32, cols % 4 == 0, xq word-aligned. Per 8 elements: LDRD,
 * 4 SXTB16, 2 STRD (int16 xq: per 4, LDRD, PKHBT, PKHTB, STRD). */
#if ESL_MATMUL_X16
static inline __attribute__((always_inline)) void prepare_w8(uint8_t *stream, const int16_t *xq, uint32_t cols,
                                                             uint32_t ng, uint32_t gs)
{
    for (uint32_t g = ng; g-- > 0u;) {
        const uint32_t start = gs * g, n = (cols - start < gs) ? cols - start : gs;
        uint32_t *o = (uint32_t *)(void *)(stream + W8_BYTES(gs) * g);
        const uint32_t xsg = ((const uint32_t *)(const void *)stream)[g];
        const uint32_t *q = (const uint32_t *)(const void *)(xq + start), *const q_end = q + n / 2u;
        uint32_t *p = o + 1;
        uint32_t a, b, c, d;
        __asm__ volatile(
            "1:\n\t"
            "ldrd    %[a], %[b], [%[q]], #8\n\t"         /* x1:x0, x3:x2 */
            "pkhbt   %[c], %[a], %[b], lsl #16\n\t"     /* x0, x2 */
            "pkhtb   %[d], %[b], %[a], asr #16\n\t"     /* x1, x3 */
            "strd    %[c], %[d], [%[p]], #8\n\t"
            "cmp     %[q], %[qe]\n\t"
            "bne     1b\n\t"
            : [q] "+r"(q), [p] "+r"(p), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d)
            : [qe] "r"(q_end)
            : "cc", "memory");
        o[0] = xsg;
    }
}
#else
static inline __attribute__((always_inline)) void prepare_w8(uint8_t *stream, const int8_t *xq, uint32_t cols,
                                                             uint32_t ng, uint32_t gs)
{
    for (uint32_t g = ng; g-- > 0u;) {
        const uint32_t start = gs * g, n = (cols - start < gs) ? cols - start : gs;
        uint32_t *o = (uint32_t *)(void *)(stream + W8_BYTES(gs) * g);
        const uint32_t xsg = ((const uint32_t *)(const void *)stream)[g];
        const uint32_t *q = (const uint32_t *)(const void *)(xq + start), *const q8 = q + (n / 8u) * 2u;
        uint32_t *p = o + 1;
        if (q != q8) {
            uint32_t a, b, c, d;
            __asm__ volatile(
                "1:\n\t"
                "ldrd    %[a], %[b], [%[q]], #8\n\t"
                "sxtb16  %[c], %[a]\n\t"                    /* x0, x2 */
                "sxtb16  %[a], %[a], ror #8\n\t"            /* x1, x3 */
                "sxtb16  %[d], %[b]\n\t"
                "sxtb16  %[b], %[b], ror #8\n\t"
                "strd    %[c], %[a], [%[p]], #8\n\t"
                "strd    %[d], %[b], [%[p]], #8\n\t"
                "cmp     %[q], %[q8]\n\t"
                "bne     1b\n\t"
                : [q] "+r"(q), [p] "+r"(p), [a] "=&r"(a), [b] "=&r"(b), [c] "=&r"(c), [d] "=&r"(d)
                : [q8] "r"(q8)
                : "cc", "memory");
        }
        if (n & 4u) {                                   /* a last 4-chunk */
            const uint32_t v = *q;
            p[0] = __sxtb16(v);
            p[1] = esl_sxtb16_ror8(v);
        }
        o[0] = xsg;
    }
}
#endif

/* What w8_rows32 / w8_rows16 read; the first seven words are copied to their stack (they advance
 * y there). */
typedef struct {
    float *y;                 /* the first pair's outputs */
    float *y_end;             /* y + 2 * pairs */
    uint32_t ws_skip;         /* bytes from a row's scales after its groups to those 2 rows below */
    uint32_t w_skip;          /* the same for the weights */
    const uint8_t *x;         /* the stream */
    const uint8_t *x_full;    /* x + W8_BYTES(gs) * (full groups) */
    const uint8_t *x_end;     /* the end of the stream (x_full if there is no short group) */
    const int8_t *w0, *w1;    /* the first pair's rows */
    const float *ws0, *ws1;   /* and their scales */
} w8_rows_t;

/* The body of w8_rows32 and w8_rows16: y[i] = seqsum over the groups of (float)isum *
 * (ws[i][g] * xs[g]) for pairs of rows, at least one full group, `steps` 8-chunks (a string: "4",
 * "2") a full group. Registers: r0 x, r1 r2 the two rows' weights, r3 r4 their int sums, r5-r8
 * activation words, r9 r10 weights, r11 a temporary, r12 lr the two rows' scales; s4 xs[g], s8 s9
 * the float sums. Per 8 elements one LDM, then per row LDRD, 4 SXTB16, 4 SMLAD. */
#define W8_ROWS_ASM(steps)                                                                         \
    ESL_ASM_ROW8                               /* 8 weights (r9, r10) x r5-r8 */                   \
    ".macro W8R_STEP first\n\t"                /* 8 elements of both rows */                       \
    "ldmia   r0!, {r5, r6, r7, r8}\n\t"                                                            \
    "ldrd    r9, r10, [r1], #8\n\t"                                                                \
    "ESL_ROW8 r3, r9, r10, r11, r5, r6, r7, r8, \\first\n\t"                                       \
    "ldrd    r9, r10, [r2], #8\n\t"                                                                \
    "ESL_ROW8 r4, r9, r10, r11, r5, r6, r7, r8, \\first\n\t"                                       \
    ".endm\n\t"                                                                                    \
    ".macro W8R_FLOAT\n\t"                     /* s8, s9 += (float)(r3, r4) * (ws * s4) */         \
    "vmov    s0, s1, r3, r4\n\t"                                                                   \
    "vcvt.f32.s32 s0, s0\n\t"                                                                      \
    "vcvt.f32.s32 s1, s1\n\t"                                                                      \
    "vldmia  r12!, {s2}\n\t"                   /* ws[i][g] */                                      \
    "vldmia  lr!, {s3}\n\t"                    /* ws[i + 1][g] */                                  \
    "vmul.f32 s2, s2, s4\n\t"                                                                      \
    "vmul.f32 s3, s3, s4\n\t"                                                                      \
    "vmla.f32 s8, s0, s2\n\t"                                                                      \
    "vmla.f32 s9, s1, s3\n\t"                                                                      \
    ".endm\n\t"                                                                                    \
    "push    {r4-r11, lr}\n\t"                                                                     \
    "sub     sp, sp, #28\n\t"                                                                      \
    "ldmia   r0, {r1-r11}\n\t"                                                                     \
    "stmia   sp, {r1-r7}\n\t"                  /* y, y_end, ws_skip, w_skip, x, x_full, x_end */   \
    "mov     r0, r5\n\t"                                                                           \
    "mov     r1, r8\n\t"                                                                           \
    "mov     r2, r9\n\t"                                                                           \
    "mov     r12, r10\n\t"                                                                         \
    "mov     lr, r11\n\t"                                                                          \
    "1:\n\t"                                   /* a pair of rows */                                \
    "movs    r11, #0\n\t"                                                                          \
    "vmov    s8, s9, r11, r11\n\t"             /* the float sums start at 0.0f */                  \
    "2:\n\t"                                   /* a full group */                                  \
    "vldmia  r0!, {s4}\n\t"                    /* xs[g] */                                         \
    "W8R_STEP 1\n\t"                                                                               \
    ".rept   " steps " - 1\n\t"                                                                    \
    "W8R_STEP 0\n\t"                                                                               \
    ".endr\n\t"                                                                                    \
    "W8R_FLOAT\n\t"                                                                                \
    "ldr     r11, [sp, #20]\n\t"                                                                   \
    "cmp     r0, r11\n\t"                                                                          \
    "bne     2b\n\t"                                                                               \
    "ldr     r10, [sp, #24]\n\t"                                                                   \
    "cmp     r0, r10\n\t"                                                                          \
    "beq     4f\n\t"                                                                               \
    "vldmia  r0!, {s4}\n\t"                    /* the short group, 4 elements at a time */         \
    "movs    r3, #0\n\t"                                                                           \
    "movs    r4, #0\n\t"                                                                           \
    "3:\n\t"                                                                                       \
    "ldrd    r5, r6, [r0], #8\n\t"                                                                 \
    "ldr     r9, [r1], #4\n\t"                                                                     \
    "sxtb16  r11, r9\n\t"                                                                          \
    "smlad   r3, r11, r5, r3\n\t"                                                                  \
    "sxtb16  r9, r9, ror #8\n\t"                                                                   \
    "smlad   r3, r9, r6, r3\n\t"                                                                   \
    "ldr     r9, [r2], #4\n\t"                                                                     \
    "sxtb16  r11, r9\n\t"                                                                          \
    "smlad   r4, r11, r5, r4\n\t"                                                                  \
    "sxtb16  r9, r9, ror #8\n\t"                                                                   \
    "smlad   r4, r9, r6, r4\n\t"                                                                   \
    "cmp     r0, r10\n\t"                                                                          \
    "bne     3b\n\t"                                                                               \
    "W8R_FLOAT\n\t"                                                                                \
    "4:\n\t"                                                                                       \
    "ldmia   sp, {r5-r9}\n\t"                  /* y, y_end, ws_skip, w_skip, x */                  \
    "vstmia  r5!, {s8, s9}\n\t"                                                                    \
    "str     r5, [sp]\n\t"                                                                         \
    "add     r12, r12, r7\n\t"                                                                     \
    "add     lr, lr, r7\n\t"                                                                       \
    "add     r1, r1, r8\n\t"                                                                       \
    "add     r2, r2, r8\n\t"                                                                       \
    "mov     r0, r9\n\t"                                                                           \
    "cmp     r5, r6\n\t"                                                                           \
    "bne     1b\n\t"                                                                               \
    "add     sp, sp, #28\n\t"                                                                      \
    "pop     {r4-r11, pc}\n\t"                                                                     \
    ".purgem W8R_FLOAT\n\t"                                                                        \
    ".purgem W8R_STEP\n\t"                                                                         \
    ESL_ASM_ROW8_END

/* Groups of 32: 89 instructions per 64 MACs a full group and pair (1.39 a MAC). */
__attribute__((naked, noinline)) static void w8_rows32(__attribute__((unused)) const w8_rows_t *a)
{
    __asm__ volatile(W8_ROWS_ASM("4"));
}

/* Groups of 16: 51 instructions per 32 MACs a full group and pair (1.59 a MAC; the 13 of xs,
 * float work and loop come every 32 MACs). */
__attribute__((naked, noinline)) static void w8_rows16(__attribute__((unused)) const w8_rows_t *a)
{
    __asm__ volatile(W8_ROWS_ASM("2"));
}

/* What w8x4_32 / w8x4_16 read. */
typedef struct {
    float *y;
    float *y_end;             /* y + 4 * quads */
    const int8_t *w;          /* row 0 (64 weights a row) */
    const float *ws;          /* row 0's scales (2 or 4 a row) */
    const uint8_t *x;         /* the stream (2 or 4 full groups) */
} w8x4_t;

/* The macros of w8x4_32 and w8x4_16 (rows of 64, four at a time). Registers: r0 x, r1 row 0 (rows
 * 1-3 at +64, +128, +192), r2-r5 the int sums, r6-r9 activation words, r10 r11 weights, r12 a
 * temporary; s8-s11 the float sums, s14 s15 temporaries. W8X4_GROUP steps: a group of the four
 * rows into r2-r5, 37 instructions an 8-chunk (LDM of x, per row LDRD and 8); W8X4_FLOAT:
 * s8-s11 += (float)r2-r5 * \s0-\s3 (ws * xs of the group), 10 instructions. */
#define W8X4_MACROS                                                                                \
    ESL_ASM_ROW8                               /* 8 weights (r10, r11) x r6-r9 */                  \
    ".macro W8X4_STEP first\n\t"               /* 8 elements of the four rows */                   \
    "ldmia   r0!, {r6, r7, r8, r9}\n\t"                                                            \
    "ldrd    r10, r11, [r1, #64]\n\t"                                                              \
    "ESL_ROW8 r3, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                                      \
    "ldrd    r10, r11, [r1, #128]\n\t"                                                             \
    "ESL_ROW8 r4, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                                      \
    "ldrd    r10, r11, [r1, #192]\n\t"                                                             \
    "ESL_ROW8 r5, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                                      \
    "ldrd    r10, r11, [r1], #8\n\t"           /* row 0 last: it moves the pointer */              \
    "ESL_ROW8 r2, r10, r11, r12, r6, r7, r8, r9, \\first\n\t"                                      \
    ".endm\n\t"                                                                                    \
    ".macro W8X4_GROUP steps\n\t"                                                                  \
    "W8X4_STEP 1\n\t"                                                                              \
    ".rept   \\steps - 1\n\t"                                                                      \
    "W8X4_STEP 0\n\t"                                                                              \
    ".endr\n\t"                                                                                    \
    ".endm\n\t"                                                                                    \
    ".macro W8X4_FLOAT s0, s1, s2, s3\n\t"                                                         \
    "vmov    s14, s15, r2, r3\n\t"                                                                 \
    "vcvt.f32.s32 s14, s14\n\t"                                                                    \
    "vcvt.f32.s32 s15, s15\n\t"                                                                    \
    "vmla.f32 s8, s14, \\s0\n\t"                                                                   \
    "vmla.f32 s9, s15, \\s1\n\t"                                                                   \
    "vmov    s14, s15, r4, r5\n\t"                                                                 \
    "vcvt.f32.s32 s14, s14\n\t"                                                                    \
    "vcvt.f32.s32 s15, s15\n\t"                                                                    \
    "vmla.f32 s10, s14, \\s2\n\t"                                                                  \
    "vmla.f32 s11, s15, \\s3\n\t"                                                                  \
    ".endm\n\t"
#define W8X4_MACROS_END                                                                            \
    ".purgem W8X4_FLOAT\n\t.purgem W8X4_GROUP\n\t.purgem W8X4_STEP\n\t" ESL_ASM_ROW8_END

/* Rows of 64, four a pass, groups of 32: y[i] = seqsum over the groups of (float)isum *
 * (ws[i][g] * xs[g]) in the frame ESL_X4_G32 (esl_arm_dsp.h); 336 instructions per 256 MACs (1.31 a MAC). */
__attribute__((naked, noinline)) static void w8x4_32(__attribute__((unused)) const w8x4_t *a)
{
    __asm__ volatile(W8X4_MACROS
                     ESL_X4_G32("W8X4_GROUP", "W8X4_FLOAT", "", "192")
                     W8X4_MACROS_END);
}

/* Rows of 64, four a pass, groups of 16: y[i] = seqsum over the groups of (float)isum *
 * (ws[i][g] * xs[g]) in the frame ESL_X4_G16 (esl_arm_dsp.h); 366 instructions per 256 MACs (1.43 a MAC). */
__attribute__((naked, noinline)) static void w8x4_16(__attribute__((unused)) const w8x4_t *a)
{
    __asm__ volatile(W8X4_MACROS
                     ESL_X4_G16("W8X4_GROUP", "W8X4_FLOAT", "", "192")
                     W8X4_MACROS_END);
}

/* Whether W and the scratch suit the fast path for groups of gs (32 or 16): at least one full
 * group, rows and scratch word-aligned. */
static inline int w8_fits(const esl_weight_t *w, const void *scratch, uint32_t gs)
{
    return w->group_size == gs && w->cols >= gs &&
           (((uintptr_t)w->data | (uintptr_t)scratch | w->cols) & 3u) == 0u;
}

/* y = W @ x for w8_fits, gs its group size (a constant: one copy of this per group size); with
 * ready, the stream is already laid out (by the matmul before, which took this path too: the same
 * cols and group size, and the generated weights are 8-byte aligned). */
static inline __attribute__((always_inline)) void matmul_w8_gs(float *y, const esl_weight_t *w, const xq_t *xq,
                                                               uint8_t *stream, int ready, uint32_t gs)
{
    const uint32_t rows = w->rows, cols = w->cols, ng = w->n_groups;
    const int8_t *data = (const int8_t *)w->data;
    const float *ws = w->scales;
    void (*const pairs)(const w8_rows_t *) = (gs == 16u) ? w8_rows16 : w8_rows32;
    if (!ready) prepare_w8(stream, xq, cols, ng, gs);
    uint32_t i = 0;
    if (cols == 64u && rows >= 4u) {
        i = rows & ~3u;
        const w8x4_t a = { y, y + i, data, ws, stream };
        if (gs == 16u) w8x4_16(&a);
        else w8x4_32(&a);
    }
    const uint8_t *x_full = stream + W8_BYTES(gs) * (cols / gs), *x_end = stream + 4u * ng + 2u * cols;
    if (i + 2u <= rows) {
        const uint32_t n = (rows - i) & ~1u;
        const w8_rows_t a = { y + i, y + i + n, 4u * ng, cols, stream, x_full, x_end,
                              data + i * cols, data + (i + 1u) * cols, ws + i * ng, ws + (i + 1u) * ng };
        pairs(&a);
        i += n;
    }
    if (i < rows) {                                   /* an odd last row: a pair with itself */
        float y2[2];
        const w8_rows_t a = { y2, y2 + 2, 0u, 0u, stream, x_full, x_end,
                              data + i * cols, data + i * cols, ws + i * ng, ws + i * ng };
        pairs(&a);
        y[i] = y2[0];
    }
}

/* matmul_w8_gs for each group size (out of line: matmul_one_core is inlined twice). */
static void matmul_w8_32(float *y, const esl_weight_t *w, const xq_t *xq, uint8_t *stream, int ready)
{
    matmul_w8_gs(y, w, xq, stream, ready, 32u);
}

static void matmul_w8_16(float *y, const esl_weight_t *w, const xq_t *xq, uint8_t *stream, int ready)
{
    matmul_w8_gs(y, w, xq, stream, ready, 16u);
}
#endif

#if defined(ESL_CLUSTER_CORES)
#include <stddef.h>
#include "esl_cluster.h"


/* The quantization of x, by groups: worker k quantizes its contiguous range of whole groups; with
 * fewer groups than workers, cores / n_groups workers share each group (x of 64: 2 groups, 8
 * workers, 4 a group), each forming the group's amax and quantizing its part of 8-element
 * blocks, the first part's worker writing the scale: the same q and s, in a quarter of the time. */
typedef struct {
    xq_t *xq;
    float *xs;
    const float *x;
    uint32_t cols, gs, n_groups;
} quantize_job_t;

static void quantize_job(void *arg)
{
    const quantize_job_t *j = arg;
    const uint32_t core = esl_cl_core_id(), cores = esl_cl_cores(), ng = j->n_groups, gs = j->gs;
    const uint32_t parts = ng < cores ? cores / ng : 1u;          /* workers per group */
    uint32_t b, e;
    esl_cl_split(ng * parts, 1u, core, cores, &b, &e);
    if (b >= e) return;
    if (parts == 1u) {
        const uint32_t start = b * gs, end = (e * gs < j->cols) ? e * gs : j->cols;
        quantize_x(j->xq + start, j->xs + b, j->x + start, end - start, gs);
        return;
    }
    const uint32_t g = b / parts, part = b % parts, start = g * gs;   /* one part each (ng * parts <= cores) */
    const uint32_t len = (start + gs < j->cols) ? gs : j->cols - start;
    uint32_t lo, hi;
    esl_cl_split(len, 8u, part, parts, &lo, &hi);
    if (lo < hi) quantize_x_part(j->xq + start, part == 0u ? j->xs + g : NULL, j->x + start, len, lo, hi);
}

/* A worker's L1 tiles (esl_cl_l1_tiles, sized by the planner: edgeslm.lower.plan_cluster.matmul_l1_bytes):
 *     x as prepared  xv_t[cols], padded to 4 bytes, then x's scales float[n_groups]
 *     tiles A, B     from there, tiles 1, 3, 5, ... in A and 2, 4, ... in B
 *     tile 0         in its slot at the end (esl_cl_l1_first_tile), where the matmul before prefetched it
 * a tile: int8[tile_rows * cols] padded to 4 bytes, then float[tile_rows * n_groups]. */
static uint32_t tile_bytes(const esl_weight_t *w, uint32_t tile_rows)
{
    return ((tile_rows * w->cols + 3u) & ~3u) + tile_rows * w->n_groups * 4u;
}

/* Rows [t, t + n) of W and their scales, L2 -> an L1 tile of tile_rows rows: two DMA commands. */
static void fetch_tile(uint8_t *tile, const esl_weight_t *w, uint32_t tile_rows, uint32_t t, uint32_t n,
                       esl_cl_dma_t cmd[2])
{
    esl_cl_dma_memcpy(tile, (const int8_t *)w->data + t * w->cols, n * w->cols, &cmd[0]);
    esl_cl_dma_memcpy(tile + ((tile_rows * w->cols + 3u) & ~3u), w->scales + t * w->n_groups,
                      n * w->n_groups * 4u, &cmd[1]);
}

/* Each worker's first tile of the next matmul, fetched while this one finishes (by core). */
typedef struct {
    const esl_weight_t *w;     /* NULL: nothing in flight */
    uint32_t row, rows;
    esl_cl_dma_t cmd[2];
} prefetch_t;
static prefetch_t prefetched[ESL_CLUSTER_CORES];

/* Start worker `core`'s first tile of the matmul step s (the planner's next one) into the end of
 * its L1 tiles, where that matmul will look for it. */
static void prefetch(const esl_step_t *s, uint32_t core, uint32_t cores)
{
    const esl_weight_t *w = s->w;
    const uint32_t tile_rows = ESL_CL_TILE_ROWS(s->n);
    uint32_t begin, end;
    esl_cl_split(w->rows, 1u, core, cores, &begin, &end);
    if (begin == end || tile_rows == 0u) return;
    prefetch_t *p = &prefetched[core];
    p->w = w;
    p->row = begin;
    p->rows = end - begin < tile_rows ? end - begin : tile_rows;
    uint8_t *first = esl_cl_l1_first_tile(core, ESL_CL_SLOT(s->n), tile_bytes(w, tile_rows));
    fetch_tile(first, w, tile_rows, begin, p->rows, p->cmd);
}

/* What the fabric controller hands the workers: the output, W, the prepared x and the tiling. */
typedef struct {
    float *y;
    const esl_weight_t *w;
    const xv_t *xv;
    const float *xs;
    uint32_t tile_rows;        /* rows per DMA tile (the planner's, a multiple of 4); 0: W read in L2 */
    uint32_t slot;             /* the L1 slot of its first tiles */
    const esl_step_t *next;    /* the matmul step whose first tiles this one prefetches, or NULL */
    uint32_t x_rows;           /* the rows of the matmul just before, which left this x in the L1 of
                                  each of its workers that had rows (those with core < x_rows); 0: none */
} matmul_job_t;

/* One worker's share: its contiguous range of rows, tile by tile through its L1 tiles, the DMA
 * fetching tile k + 1 while the core computes tile k, and, while it computes the last, the next
 * matmul's first tile into the other slot (tile 0 of this one is that prefetch, if it was made).
 * x and its scales come in one command where they lie together in the scratch as in L1 (RV32:
 * xv is xq), and not at all where the matmul before left them in this worker's L1. */
static void matmul_job(void *arg)
{
    const matmul_job_t *j = arg;
    const esl_weight_t *w = j->w;
    const uint32_t core = esl_cl_core_id(), cores = esl_cl_cores();
    uint32_t begin, end;
    esl_cl_split(w->rows, 1u, core, cores, &begin, &end);
    if (j->tile_rows == 0u) {
        matmul_rows(j->y, w, j->xv, j->xs, begin, end);
        return;
    }
    if (begin == end) {
        if (j->next) prefetch(j->next, core, cores);
        return;
    }
    const uint32_t cols = w->cols, ng = w->n_groups, rows = j->tile_rows, tb = tile_bytes(w, rows);
    const uint32_t x_bytes = (cols * (uint32_t)sizeof(xv_t) + 3u) & ~3u;
    uint8_t *area = esl_cl_l1_tiles(core);
    xv_t *xv = (xv_t *)(void *)area;
    float *xs = (float *)(void *)(area + x_bytes);
    const uint8_t *tile = esl_cl_l1_first_tile(core, j->slot, tb);
    esl_cl_dma_t in[2], own[2], cmd[2][2];
    uint32_t n_in = 0;
    if (core >= j->x_rows) {
        if ((const uint8_t *)j->xs == (const uint8_t *)j->xv + x_bytes) {
            esl_cl_dma_memcpy(xv, j->xv, x_bytes + ng * 4u, &in[n_in++]);
        } else {
            esl_cl_dma_memcpy(xv, j->xv, cols * (uint32_t)sizeof(xv_t), &in[n_in++]);
            esl_cl_dma_memcpy(xs, j->xs, ng * 4u, &in[n_in++]);
        }
    }
    prefetch_t *p = &prefetched[core];
    const uint32_t n0 = end - begin < rows ? end - begin : rows;
    esl_cl_dma_t *first = own;
    if (p->w == w && p->row == begin && p->rows == n0)
        first = p->cmd;
    else
        fetch_tile((uint8_t *)tile, w, rows, begin, n0, own);
    p->w = NULL;
    for (uint32_t k = 0; k < n_in; k++) esl_cl_dma_wait(&in[k]);
    esl_cl_dma_wait(&first[0]);
    esl_cl_dma_wait(&first[1]);
    uint8_t *const buf0 = area + x_bytes + 4u * ng;
    for (uint32_t t = begin, k = 0;; k++) {
        const uint32_t n = end - t < rows ? end - t : rows, next_t = t + n;
        uint8_t *const next_buf = buf0 + (k & 1u) * tb;          /* tiles 1, 3, ... in A, 2, 4, ... in B */
        if (next_t < end)
            fetch_tile(next_buf, w, rows, next_t, end - next_t < rows ? end - next_t : rows, cmd[k & 1u]);
        else if (j->next)
            prefetch(j->next, core, cores);     /* the last tile: the next matmul's first, other slot */
        const esl_weight_t view = { tile, (const float *)(const void *)(tile + ((rows * cols + 3u) & ~3u)), n,
                                    cols, w->group_size, w->n_groups, w->bits };
        matmul_rows(j->y + t, &view, xv, xs, 0u, n);
        if (next_t >= end) return;
        esl_cl_dma_wait(&cmd[k & 1u][0]);
        esl_cl_dma_wait(&cmd[k & 1u][1]);
        tile = next_buf;
        t = next_t;
    }
}

/* y = W @ x on the cluster: the workers quantize x by groups (unless the planner's n says the
 * step before left this x quantized in the scratch), then compute their rows (n: esl_cluster.h);
 * x_rows: matmul_job_t's. */
static void matmul_cluster(float *y, const esl_weight_t *w, const float *x, void *scratch, uint32_t n,
                           const esl_step_t *next, uint32_t x_rows)
{
    xq_t *xq = (xq_t *)scratch;
    float *xs = x_scales(scratch, w->cols);
    int16_t *x16 = (int16_t *)(void *)(xs + w->n_groups);
    if (!(n & ESL_MATMUL_X_READY)) {
        quantize_job_t q = { xq, xs, x, w->cols, w->group_size, w->n_groups };
        esl_cl_team_fork(quantize_job, &q);
    }
    matmul_job_t j = { y, w, prepare_x(xq, x16, w->cols, w->group_size, 0), xs, ESL_CL_TILE_ROWS(n), ESL_CL_SLOT(n),
                       next, x_rows };
    esl_cl_team_fork(matmul_job, &j);
}
#endif

#if !defined(ESL_CLUSTER_CORES)
/* y = W @ x on one core; ready: x is already quantized and laid out in the scratch. */
__attribute__((always_inline)) static inline void matmul_one_core(float *y, const esl_weight_t *w, const float *x,
                                                                void *scratch, int ready)
{
    xq_t *xq = (xq_t *)scratch;
    float *xs = x_scales(scratch, w->cols);
    int16_t *x16 = (int16_t *)(void *)(xs + w->n_groups);
    if (!ready) quantize_x(xq, xs, x, w->cols, w->group_size);
#if ESL_KERNELS_DSP && !ESL_KERNELS_MVE && ESL_DSP_VFP
    /* groups of 32 the likely case: its call keeps its own epilogue (no extra branch to a shared one);
     * only the build's group size (esl_arm_dsp.h) */
    if (ESL_FAST_G32 && __builtin_expect(w8_fits(w, scratch, 32u), 1)) {
        matmul_w8_32(y, w, xq, (uint8_t *)xs, ready);
        return;
    }
    if (ESL_FAST_G16 && w8_fits(w, scratch, 16u)) {
        matmul_w8_16(y, w, xq, (uint8_t *)xs, ready);
        return;
    }
#endif
    const xv_t *xv = prepare_x(xq, x16, w->cols, w->group_size, ready);
    matmul_rows(y, w, xv, xs, 0u, w->rows);
}
#endif

void esl_matmul_w8f(float *y, const esl_weight_t *w, const float *x, void *scratch)
{
#if defined(ESL_CLUSTER_CORES)
    matmul_cluster(y, w, x, scratch, 0u, NULL, 0u);  /* no tiling, x to quantize: W read in L2 */
#else
    matmul_one_core(y, w, x, scratch, 0);
#endif
}

/* Step: arena[out] = s->w @ arena[in]; s->n: ESL_MATMUL_X_READY (esl_types.h), on a cluster also
 * the planner's tiling (esl_cluster.h). */
void esl_step_matmul_w8f(const esl_step_t *s, const esl_ctx_t *c)
{
#if defined(ESL_CLUSTER_CORES)
    const uint32_t next = ESL_CL_NEXT_STEP(s->n);
    /* x prepared by the step before (esl_types.h), a tiled matmul on the same x: its workers keep x in L1 */
    const uint32_t x_rows = (s->n & ESL_MATMUL_X_READY) && ESL_CL_TILE_ROWS(s[-1].n) ? s[-1].w->rows : 0u;
    matmul_cluster(c->arena + s->out, s->w, c->arena + s->in, c->scratch, s->n,
                   next ? &c->m->steps[next - 1u] : NULL, x_rows);
#else
    matmul_one_core(c->arena + s->out, s->w, c->arena + s->in, c->scratch, (s->n & ESL_MATMUL_X_READY) != 0u);
#endif
}
