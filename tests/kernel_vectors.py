"""Test vectors for every firmware kernel, as one generated C header plus the golden outputs.

    cases = build_cases()                       # deterministic (numpy RNG, fixed seed)
    write_header(cases, path, scratch_bytes)    # kernel_cases.h, included by tests/c/kernel_check.c
    case.parts                                  # [(label, golden array)], the bytes the case sends

The header holds every input as a static array of exact literals (floats as C99 hex floats, so no
bit is lost; +-infinity as INFINITY), one esl_weight_t / esl_model_t per weight or KV cache, and
the table `kc_cases[]` of kc_case_t (the type is defined in kernel_check.c, which runs the table in
order). Buffers are sized here, at generation time (KC_OUT_BYTES, KC_SCRATCH_BYTES): the target
never allocates. Each case gets exactly the scratch its KernelSpec rule grants (`scratch_bytes`,
from the target), and kernel_check.c reports a write past it or past the case's outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgeslm.lower import cdata
from edgeslm.lower.schedule import Step
from edgeslm.quant import QTensor, quantize_matrix
from edgeslm.quant.golden import (_Matmul, attention, attention_kv8, embed, esl_expf, quantize_i8, rope, rope_tables,
                                  softmax, swiglu)
from edgeslm.quant.golden_s8 import GOLDEN_S8, rope_tables_s8, silu_table, softmax_exp_table
from edgeslm.quant.int8 import rotation_matrices
from edgeslm.quant.tflm_int import (add_params, conv_multiplier, logistic16_params, logistic_int8, logistic_params,
                                    quantize_multiplier, softmax_params)
from edgeslm.reference import rmsnorm

F = np.float32
SEED = 20240611
GUARD_BYTES = 16        # checked after every output and scratch region (kernel_check.c: KC_GUARD)


@dataclass
class Case:
    name: str                                   # for messages: "matmul_w8f 17x33 gs16"
    op: str                                     # KC_<OP> in kernel_check.c, lower case
    fields: dict[str, str]                      # the kc_case_t union member's fields, as C
    parts: list[tuple[str, np.ndarray]]         # golden outputs, in the order the C sends them
    out_bytes: int = 0                          # bytes of the output buffer the case may write
    step: Step | None = None                    # the step its KernelSpec scratch rule is asked about
    max_seq: int = 0                            # (attention) for that rule

    @property
    def expected(self) -> bytes:
        return b"".join(np.ascontiguousarray(a).tobytes() for _, a in self.parts)


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def c_float(v) -> str:
    v = F(v)
    if np.isinf(v):
        return "-INFINITY" if v < 0 else "INFINITY"
    return cdata.f32(v)                          # exact hex literal (rejects NaN)


@dataclass
class _Decls:
    """The header's declarations: arrays, weights, models, each under a fresh name."""
    lines: list[str] = field(default_factory=list)
    n: int = 0

    def _name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def array(self, a: np.ndarray, const: bool = True, align: int = 0) -> str:
        a = np.ascontiguousarray(a).reshape(-1)
        ctype = {np.dtype(F): "float", np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t",
                 np.dtype(np.int16): "int16_t", np.dtype(np.int32): "int32_t"}[a.dtype]
        name = self._name("in")
        if a.dtype == F:
            items = [c_float(v) for v in a.tolist()]
            body = ",\n".join("    " + ", ".join(items[i:i + 6]) for i in range(0, len(items), 6))
        else:
            body = cdata.int_body(a)
        attr = f" __attribute__((aligned({align})))" if align else ""
        self.lines.append(f"static {'const ' if const else ''}{ctype} {name}[{a.size}]{attr} = {{\n{body}\n}};")
        return name

    def weight(self, qt: QTensor) -> str:
        data = self.array(qt.packed(), align=8)  # 8-byte aligned as the generated weights are
        scales = self.array(qt.scales) if qt.bits != 32 else "NULL"
        rows, cols = qt.shape
        name = self._name("w")
        self.lines.append(f"static const esl_weight_t {name} = {{ {data}, {scales}, {rows}u, {cols}u, "
                          f"{qt.group_size}u, {qt.n_groups}u, {qt.bits}u }};")
        return name

    def params(self, ctype: str, p: dict, extra: dict[str, str] | None = None) -> str:
        """A const s8 parameter struct: arrays become arrays of their own, ints literals; `extra`
        fields are C expressions as they are."""
        fields = [f".{k} = {v}" for k, v in (extra or {}).items()]
        for k, v in p.items():
            if k == "w":
                continue
            fields.append(f".{k} = {self.array(v) if isinstance(v, np.ndarray) else cdata.i32(v)}")
        name = self._name("p")
        self.lines.append(f"static const {ctype} {name} = {{ {', '.join(fields)} }};")
        return name

    def weight_s8(self, w: np.ndarray) -> str:
        name = self._name("w")
        rows, cols = w.shape
        # 8-byte aligned as the generated weights are (the DSP matmul's word-aligned fast path)
        self.lines.append(f"static const esl_weight_t {name} = {{ {self.array(w, align=8)}, NULL, {rows}u, {cols}u, "
                          "0u, 0u, 8u };")
        return name

    def model(self, n_heads: int, n_kv: int, hs: int, max_seq: int, n_layers: int, kv: str) -> str:
        name = self._name("m")
        self.lines.append(
            f"static const esl_model_t {name} = {{\n    .n_layers = {n_layers}u, .n_heads = {n_heads}u, "
            f".n_kv_heads = {n_kv}u, .head_size = {hs}u,\n    .kv_dim = {n_kv * hs}u, .max_seq = {max_seq}u, "
            f".inv_sqrt_head_size = {c_float(F(1.0 / np.sqrt(hs)))},\n    .kv = {{ {kv} }},\n}};")
        return name


def build_cases(seed: int = SEED) -> tuple[list[Case], list[str]]:
    """Every kernel on inputs that reach its corners. Returns (cases, header declarations)."""
    rng = np.random.default_rng(seed)
    d = _Decls()
    cases: list[Case] = []

    def normal(*shape, scale=1.0):
        return (rng.normal(size=shape) * scale).astype(F)

    # ---- matmul: every contract, square, ragged last group, tiny groups, groups not a multiple of 4
    shapes = [(64, 64, 32), (17, 33, 16), (5, 7, 4), (64, 172, 32), (9, 20, 6), (3, 10, 2)]
    for rows, cols, gs in shapes:
        w = normal(rows, cols)
        x = normal(cols)
        if (rows, cols) == (17, 33):
            w[0] = 0.0                   # an all-zero row: scale 0 in every group
            x[:gs] = 0.0                 # an all-zero input group: xs = 0
        for bits, contract in ((32, "f32"), (8, "w8f"), (4, "w4f")):
            qt = quantize_matrix(w, bits, gs)
            y = _Matmul(qt)(x)
            cases.append(Case(f"matmul_{contract} {rows}x{cols}" + (f" gs{gs}" if bits != 32 else ""),
                              f"matmul_{contract}", {"w": f"&{d.weight(qt)}", "x": d.array(x)},
                              [("y", y)], 4 * rows,
                              Step("matmul", contract, rows=rows, cols=cols, group_size=qt.group_size)))

    # ---- the DSP fast paths of matmul_w4f (groups of 32 and 16) and matmul_w8f (groups of 16; int8
    # activations here, q8's int16 ones differ only in how x is laid out, tested by the q8 runs): rows
    # of 64 four at a time with 1-3 rows after the quads (a pair, an odd row), other widths in pairs
    # with a short last group (172 = 5 * 32 + 12 = 10 * 16 + 12; 8 + 4, 8 or 4 elements), a single
    # group, an all-zero row and input group, the largest sums (weights at +-qmax against +-127, all of
    # one sign), products that underflow (subnormal ws * xs)
    for bits, contract, sizes in ((4, "w4f", (32, 16)), (8, "w8f", (16,))):
        for gs in sizes:
            for rows, cols, kind in ((23, 64, "zero"), (6, 64, ""), (5, 172, ""), (3, 40, ""), (4, 36, ""),
                                     (3, gs, ""), (5, 64, "extreme"), (7, 44, "extreme"), (6, 64, "tiny")):
                w = normal(rows, cols)
                x = normal(cols)
                if kind == "zero":
                    w[0] = 0.0
                    x[gs:2 * gs] = 0.0
                elif kind == "extreme":
                    sign = np.where(rng.random(cols) < 0.5, F(-1.0), F(1.0))
                    x = sign.copy()
                    w = np.where(rng.random((rows, cols)) < 0.5, F(-1.0), F(1.0))
                    w[0], w[1] = sign, -sign
                elif kind == "tiny":
                    w, x = w * F(1e-17), x * F(1e-22)
                qt = quantize_matrix(w, bits, gs)
                cases.append(Case(f"matmul_{contract} {rows}x{cols} gs{gs}" + (f" {kind}" if kind else ""),
                                  f"matmul_{contract}", {"w": f"&{d.weight(qt)}", "x": d.array(x)},
                                  [("y", _Matmul(qt)(x))], 4 * rows,
                                  Step("matmul", contract, rows=rows, cols=cols, group_size=gs)))

    # ---- embed: a ragged last group (70 = 32 + 32 + 6), first, middle and last token
    table = normal(20, 70)
    for bits, contract in ((32, "f32"), (8, "w8f")):
        qt = quantize_matrix(table, bits, 32)
        w = d.weight(qt)
        for token in (0, 13, 19):
            cases.append(Case(f"embed_{contract} token {token}", f"embed_{contract}",
                              {"table": f"&{w}", "token": f"{token}u"}, [("o", embed(qt, token))], 4 * 70,
                              Step("embed", contract, rows=20, cols=70, group_size=qt.group_size)))

    # ---- rmsnorm
    eps = F(1e-5)
    for n, scale in ((1, 1.0), (64, 3.0), (172, 3.0), (48, 1e-3)):
        x, wn = normal(n, scale=scale), normal(n)
        cases.append(Case(f"rmsnorm n={n}", "rmsnorm_f32",
                          {"x": d.array(x), "w": d.array(wn), "n": f"{n}u", "eps": c_float(eps)},
                          [("o", rmsnorm(x, wn, eps))], 4 * n, Step("rmsnorm", "f32", n=n)))

    # ---- rope: host-made tables, several positions and head sizes
    for heads, hs, pos in ((6, 8, 77), (4, 16, 0), (2, 32, 511)):
        cos, sin = rope_tables(hs, pos + 1, 10000.0)
        v = normal(heads, hs, scale=2.0)
        cases.append(Case(f"rope {heads}x{hs} pos {pos}", "rope_f32",
                          {"v": d.array(v), "cos": d.array(cos[pos]), "sin": d.array(sin[pos]),
                           "heads": f"{heads}u", "head_size": f"{hs}u"},
                          [("v", rope(v, cos[pos], sin[pos]))], 4 * heads * hs, Step("rope", "f32", n=heads)))

    # ---- softmax (a helper of attention): one element, two, long, and a wide spread (clamped exps)
    for n, scale in ((1, 1.0), (2, 1.0), (100, 6.0), (512, 6.0), (64, 40.0)):
        x = normal(n, scale=scale)
        cases.append(Case(f"softmax n={n} scale {scale:g}", "softmax", {"x": d.array(x), "n": f"{n}u"},
                          [("x", softmax(x))], 4 * n))

    # ---- expf: random, the clamps, signed zeros, subnormals, infinities, rounding ties of k
    ties = np.array([(k + 0.5) * np.log(2.0) for k in range(-125, 127, 6)], F)    # x*log2(e) near k+.5
    edges = np.array([0.0, -0.0, 88.0, -87.0, 88.5, -87.5, 89.0, -100.0, 100.0, 1e-30, -1e-30, 1e-40,
                      -1e-40, 1e-45, -1e-45, 3.4028235e38, -3.4028235e38, np.inf, -np.inf], F)
    x = np.concatenate([rng.uniform(-100, 100, 300).astype(F), normal(300), ties,
                        np.nextafter(ties, F(np.inf)), np.nextafter(ties, F(-np.inf)), edges])
    cases.append(Case(f"expf n={x.size}", "expf", {"x": d.array(x), "n": f"{x.size}u"},
                      [("y", esl_expf(x))], 4 * x.size))

    # ---- quantize_i8 (a helper of matmul and kvstore): ragged groups, an all-zero group, ties
    for n, gs in ((64, 32), (40, 16), (7, 4), (172, 32), (33, 33)):
        x = normal(n, scale=5.0)
        if n >= 2 * gs:
            x[gs:2 * gs] = 0.0           # an all-zero group: scale 0, values 0
        if n == 7:
            x[:] = [1.0, -1.0, 0.5, -0.25, 2.0, 2.0, -0.0]    # exact ties of the rounding, and -0
        q, s = quantize_i8(x, gs)
        cases.append(Case(f"quantize_i8 n={n} gs={gs}", "quantize_i8",
                          {"x": d.array(x), "n": f"{n}u", "gs": f"{gs}u"},
                          [("q", q), ("scale", s)], _round4(n) + 4 * len(s)))
        q, s = quantize_i8(x, gs, 32767)          # esl_quantize_i16: q8's int16 activations
        cases.append(Case(f"quantize_i16 n={n} gs={gs}", "quantize_i16",
                          {"x": d.array(x), "n": f"{n}u", "gs": f"{gs}u"},
                          [("q", q), ("scale", s)], _round4(2 * n) + 4 * len(s)))

    # ---- swiglu (h1 <= -87.4: 1/(1 + esl_expf(-h1)) is subnormal) and add
    for n, scale in ((172, 4.0), (16, 60.0)):
        a, b = normal(n, scale=scale), normal(n)
        if n == 16:
            a[:6] = [-100.0, -87.5, -87.0, 100.0, -0.0, 1e-40]     # subnormal 1/(1+e^x), clamps, zeros
        cases.append(Case(f"swiglu n={n} scale {scale:g}", "swiglu_f32",
                          {"a": d.array(a), "b": d.array(b), "n": f"{n}u"}, [("h1", swiglu(a, b))], 4 * n,
                          Step("swiglu", "f32", n=n)))
        cases.append(Case(f"add n={n}", "add_f32", {"a": d.array(a), "b": d.array(b), "n": f"{n}u"},
                          [("x", a + b)], 4 * n, Step("add", "f32", n=n)))

    # ---- kvstore_kv8: one scale per kv head; an all-zero head
    for n, hs in ((32, 8), (64, 16)):
        k, v = normal(n, scale=3.0), normal(n)
        k[:hs] = 0.0
        (kq, ks), (vq, vs) = quantize_i8(k, hs), quantize_i8(v, hs)
        cases.append(Case(f"kvstore_kv8 n={n} hs={hs}", "kvstore_kv8",
                          {"k": d.array(k), "v": d.array(v), "n": f"{n}u", "head_size": f"{hs}u"},
                          [("key", kq), ("key_scale", ks), ("value", vq), ("value_scale", vs)],
                          2 * (_round4(n) + 4 * (n // hs)), Step("kvstore", "kv8", n=n)))

    # ---- attention f32 / kv8: MHA and GQA, first, middle and last position, a second layer; head
    # size 8 (the register path), 12 (kv8's pair in 4-dim chunks) and 6 (the general path, with a
    # tail of two outputs)
    max_seq = 64
    for hs, heads, n_kv, layers, layer, positions in ((8, 8, 4, 1, 0, (0, 37)), (8, 4, 4, 1, 0, (63,)),
                                                      (8, 6, 2, 2, 1, (0, 20, 63)), (12, 4, 2, 1, 0, (0, 30)),
                                                      (6, 6, 2, 1, 0, (0, 21))):
        kf = normal(layers, max_seq, n_kv, hs)
        vf = normal(layers, max_seq, n_kv, hs)
        kf[layer, 3, 0] = 0.0            # an all-zero key head (kv8: scale 0)
        qk = [quantize_i8(t.reshape(-1), hs) for t in kf.reshape(-1, n_kv, hs)]
        qv = [quantize_i8(t.reshape(-1), hs) for t in vf.reshape(-1, n_kv, hs)]
        kq = np.stack([a for a, _ in qk]).reshape(kf.shape)
        ks = np.stack([s for _, s in qk]).reshape(layers, max_seq, n_kv)
        vq = np.stack([a for a, _ in qv]).reshape(vf.shape)
        vs = np.stack([s for _, s in qv]).reshape(layers, max_seq, n_kv)
        # the KV cache is RAM in the firmware (esl_kv_t's pointers are not const): not const here either
        m32 = d.model(heads, n_kv, hs, max_seq, layers,
                      f".key_f32 = {d.array(kf, False)}, .value_f32 = {d.array(vf, False)}, .kv_bits = 32")
        m8 = d.model(heads, n_kv, hs, max_seq, layers,
                     f".key_i8 = {d.array(kq, False)}, .value_i8 = {d.array(vq, False)},\n"
                     f"             .key_scale = {d.array(ks, False)}, .value_scale = {d.array(vs, False)}, "
                     ".kv_bits = 8")
        inv = F(1.0 / np.sqrt(hs))
        for pos in positions:
            q = normal(heads, hs)
            qa = d.array(q)
            t = slice(0, pos + 1)
            for kv, m, want in (
                    ("f32", m32, attention(q, kf[layer, t], vf[layer, t], inv)),
                    ("kv8", m8, attention_kv8(q, kq[layer, t], vq[layer, t], ks[layer, t], vs[layer, t], inv))):
                cases.append(Case(f"attention_{kv} hs {hs} heads {heads}/{n_kv} layer {layer} pos {pos}",
                                  f"attention_{kv}", {"q": qa, "m": f"&{m}", "layer": f"{layer}u",
                                                      "pos": f"{pos}u"},
                                  [("out", want)], 4 * heads * hs, Step("attention", kv, n=heads, cols=hs),
                                  max_seq))
    _s8_cases(rng, d, cases)
    return cases, d.lines


class _Engine:
    """What quant/golden_s8's kernel functions read of an engine, for one step."""

    def __init__(self, step: Step, params: dict, val: dict, token=0, pos=0, heads=0, kv_heads=0, head_size=0,
                 keys=None, values=None, rope=None):
        self.params, self.val, self.token, self.pos = {step: params}, val, token, pos
        self.keys, self.values, self.rope_s8 = keys, values, rope
        cfg = type("Cfg", (), {"n_heads": heads, "n_kv_heads": kv_heads, "head_size": head_size})
        self.qm = type("Qm", (), {"model": type("M", (), {"config": cfg})})


def _s8_run(op: str, step: Step, params: dict, val: dict, **kw) -> np.ndarray:
    e = _Engine(step, params, val, **kw)
    GOLDEN_S8[op](e, step)
    return e.val[step.out]


def _multipliers(rng, n: int, real: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mult, shift) of real multipliers spread around `real` (TFLM QuantizeMultiplier)."""
    mq = [quantize_multiplier(float(real * rng.uniform(0.5, 2.0))) for _ in range(n)]
    return np.array([m for m, _ in mq], np.int32), np.array([s for _, s in mq], np.int8)


def _s8_cases(rng, d: "_Decls", cases: list) -> None:
    """The integer-only kernels on random int8 data with parameters like a calibrated model's
    (zero points anywhere in int8, multipliers that keep most outputs in range, some saturating)."""
    i8 = lambda *shape: rng.integers(-128, 128, size=shape).astype(np.int8)     # noqa: E731
    zp = lambda: int(rng.integers(-128, 128))                                     # noqa: E731
    # matmul: rows not a multiple of 4, odd and tiny widths, an all-zero row, saturating outputs
    # (the DSP fast path: widths 64 and 172, rows % 4 = 1..3 after whole blocks of 16, widths whose
    # 16-element loop leaves 8 and/or 4, and extreme weights and activations)
    # (out_bits 16: int16 outputs, an --int16 part's input; real x 256 keeps them about as full)
    for rows, cols, real, bits in ((64, 64, 1e-3, 8), (17, 33, 2e-3, 8), (5, 7, 1e-2, 8), (64, 172, 5e-4, 8),
                                   (3, 1, 0.1, 8), (6, 20, 3e-2, 8), (23, 64, 1e-3, 8), (18, 172, 5e-4, 8),
                                   (13, 24, 3e-2, 8), (7, 12, 3e-2, 8), (3, 4, 0.1, 8), (2, 8, 0.1, 8),
                                   (9, 44, 1e-2, 8), (21, 64, 1e-1, 8), (32, 64, 0.25, 16), (19, 33, 0.5, 16),
                                   (21, 64, 25.6, 16)):
        w = rng.integers(-127, 128, size=(rows, cols)).astype(np.int8)
        w[0] = 0
        x = i8(cols)
        if real in (1e-1, 25.6):                      # saturating: extreme weights and activations
            w[1:] = np.where(rng.random((rows - 1, cols)) < 0.5, -128, 127).astype(np.int8)
            x = np.where(rng.random(cols) < 0.5, -128, 127).astype(np.int8)
        mult, shift = _multipliers(rng, rows, real)
        in_zp, out_zp = zp(), (zp() if bits == 8 else 0)
        p = {"mult": mult, "shift": shift, "in_zp": in_zp, "out_zp": out_zp,
             "bias": (-in_zp * w.astype(np.int64).sum(axis=1)).astype(np.int32), "out_bits": bits, "w": w}
        st = Step("matmul", "s8", out="y", inp="x", rows=rows, cols=cols)
        y = _s8_run("matmul_s8", st, p, {"x": x})
        cases.append(Case(f"matmul_s8 {rows}x{cols}" + (" out int16" if bits == 16 else ""), "matmul_s8",
                          {"w": f"&{d.weight_s8(w)}", "x": d.array(x), "p": f"&{d.params('esl_matmul_s8_t', p)}"},
                          [("y", y)], rows * bits // 8, st))
    # matmul_s16 (--int16 ffn's w2): int16 x, zero point 0; widths of the DSP reorder's 4-chunks and
    # tails, a saturating case with extreme weights and activations
    # (out_bits 16, --int16 residual: int16 y, multipliers x 256)
    for rows, cols, real, bits in ((64, 172, 2e-6, 8), (17, 33, 4e-6, 8), (5, 7, 4e-5, 8), (3, 1, 1e-3, 8),
                                   (9, 64, 1e-3, 8), (64, 172, 5e-4, 16), (7, 33, 1e-3, 16)):
        w = rng.integers(-127, 128, size=(rows, cols)).astype(np.int8)
        x = rng.integers(-32768, 32768, size=cols).astype(np.int16)
        if real == 1e-3:
            w = np.where(rng.random((rows, cols)) < 0.5, -127, 127).astype(np.int8)
            x = np.where(rng.random(cols) < 0.5, -32768, 32767).astype(np.int16)
        mult, shift = _multipliers(rng, rows, real)
        p = {"mult": mult, "shift": shift, "out_zp": zp() if bits == 8 else 0, "out_bits": bits, "w": w}
        st = Step("matmul", "s16", out="y", inp="x", rows=rows, cols=cols)
        cases.append(Case(f"matmul_s16 {rows}x{cols} out int{bits}", "matmul_s16",
                          {"w": f"&{d.weight_s8(w)}", "x": d.array(x), "p": f"&{d.params('esl_matmul_s16_t', p)}"},
                          [("y", _s8_run("matmul_s16", st, p, {"x": x}))], rows * bits // 8, st))
    # embed: the first, a middle and the last row; int16 rows (--int16 residual), some saturating
    table = rng.integers(-127, 128, size=(20, 70)).astype(np.int8)
    for bits, real in ((8, 0.3), (16, 300.0)):
        mult, shift = _multipliers(rng, 20, real)
        p = {"mult": mult, "shift": shift, "out_zp": zp() if bits == 8 else 0, "out_bits": bits, "w": table}
        tw, tp = d.weight_s8(table), d.params("esl_embed_s8_t", p)
        for token in (0, 13, 19):
            st = Step("embed", "s8", out="o", rows=20, cols=70)
            cases.append(Case(f"embed_s8 token {token} out int{bits}", "embed_s8",
                              {"table": f"&{tw}", "token": f"{token}u", "p": f"&{tp}"},
                              [("o", _s8_run("embed_s8", st, p, {}, token=token))], 70 * bits // 8, st))
    # rmsnorm: a constant input (T = n_eps only), n = 1, wide, a zero weight (multiplier 0); int16 x
    # (--int16 residual: sums of squares past 2^32, full-scale and tiny inputs, its exponent cap) and
    # int16 outputs (--int16 norms: multipliers x 256), from either width
    for n, const, bits, obits in ((1, False, 8, 8), (64, False, 8, 8), (172, False, 8, 8), (48, True, 8, 8),
                                  (64, False, 16, 8), (172, False, 16, 8), (1, False, 16, 8), (48, True, 16, 8),
                                  (64, False, 16, 16), (48, True, 16, 16), (64, False, 8, 16)):
        if bits == 16:
            x = np.full(n, 3, np.int16) if const else rng.integers(-32768, 32768, size=n).astype(np.int16)
        else:
            x = np.full(n, 5, np.int8) if const else i8(n)
        mult, shift = _multipliers(rng, n, 3.0 * (256 if obits == 16 else 1))
        mult[n // 2], shift[n // 2] = 0, 0
        p = {"mult": mult, "shift": shift, "in_zp": (5 if const else zp()) if bits == 8 else 0,
             "out_zp": zp() if obits == 8 else 0,
             "n_eps": int(rng.integers(0, 50)) if bits == 8 else int(rng.integers(0, 1 << 30)), "in_bits": bits,
             "out_bits": obits}
        st = Step("rmsnorm", "s8", out="o", inp="x", n=n)
        cases.append(Case(f"rmsnorm_s8 n={n} int{bits} -> int{obits}" + (" constant" if const else ""), "rmsnorm_s8",
                          {"x": d.array(x), "n": f"{n}u", "p": f"&{d.params('esl_rmsnorm_s8_t', p)}"},
                          [("o", _s8_run("rmsnorm_s8", st, p, {"x": x}))], n * obits // 8, st))
    # rope: int8 rotation tables of several positions
    for heads, hs, pos in ((6, 8, 77), (4, 16, 0), (2, 32, 127)):
        cos, sin = rope_tables_s8(rotation_matrices(hs, pos + 1, 10000.0))
        v = i8(heads * hs)
        mult, shift = quantize_multiplier(float(rng.uniform(0.3, 1.5)) / 127.0)
        p = {"mult": mult, "shift": shift, "in_zp": zp(), "out_zp": zp()}
        st = Step("rope", "s8", out="v", inp="v", n=heads)
        want = _s8_run("rope_s8", st, p, {"v": v}, pos=pos, head_size=hs, rope=(cos, sin))
        pc = d.params("esl_rope_s8_t", p, {"cos": d.array(cos), "sin": d.array(sin)})
        cases.append(Case(f"rope_s8 {heads}x{hs} pos {pos}", "rope_s8",
                          {"v": d.array(v), "heads": f"{heads}u", "head_size": f"{hs}u", "pos": f"{pos}u",
                           "p": f"&{pc}"}, [("v", want)], heads * hs, st))
    # rope_s16: int16 heads (the keys of --int16 keys), full-scale values, saturating multipliers too
    for heads, hs, pos, real in ((4, 8, 77, 1.0), (2, 16, 0, 0.7), (1, 32, 127, 1.6)):
        cos, sin = rope_tables_s8(rotation_matrices(hs, pos + 1, 10000.0))
        v = rng.integers(-32768, 32768, size=heads * hs).astype(np.int16)
        mult, shift = quantize_multiplier(real / 127.0)
        p = {"mult": mult, "shift": shift}
        st = Step("rope", "s16", out="v", inp="v", n=heads)
        want = _s8_run("rope_s16", st, p, {"v": v}, pos=pos, head_size=hs, rope=(cos, sin))
        pc = d.params("esl_rope_s16_t", p, {"cos": d.array(cos), "sin": d.array(sin)})
        cases.append(Case(f"rope_s16 {heads}x{hs} pos {pos}", "rope_s16",
                          {"v": d.array(v), "heads": f"{heads}u", "head_size": f"{hs}u", "pos": f"{pos}u",
                           "p": f"&{pc}"}, [("v", want)], 2 * heads * hs, st))
    # add and swiglu: TFLM ADD / LOGISTIC + MUL parameters as Prepare makes them
    for n in (172, 16):
        a, b = i8(n), i8(n)
        s1, s2, sy = (float(rng.uniform(0.01, 0.2)) for _ in range(3))
        p = {**add_params(s1, s2, sy), "a_zp": zp(), "b_zp": zp(), "out_zp": zp(), "bits": 8}
        st = Step("add", "s8", out="x", inp="y", n=n)
        cases.append(Case(f"add_s8 n={n}", "add_s8", {"a": d.array(a), "b": d.array(b), "n": f"{n}u",
                                                     "p": f"&{d.params('esl_add_s8_t', p)}"},
                          [("x", _s8_run("add_s8", st, p, {"x": a, "y": b}))], n, st))
        # TFLM's int16 ADD (--int16 residual), saturating some sums
        a16, b16 = (rng.integers(-32768, 32768, size=n).astype(np.int16) for _ in range(2))
        s1, s2, sy = (float(rng.uniform(1e-4, 1e-3)) for _ in range(3))
        p = {**add_params(s1, s2, sy, bits=16), "a_zp": 0, "b_zp": 0, "out_zp": 0, "bits": 16}
        cases.append(Case(f"add_s8 n={n} int16", "add_s8", {"a": d.array(a16), "b": d.array(b16), "n": f"{n}u",
                                                           "p": f"&{d.params('esl_add_s8_t', p)}"},
                          [("x", _s8_run("add_s8", st, p, {"x": a16, "y": b16}))], 2 * n, st))
        h1_scale, h1_zp = float(rng.uniform(0.02, 0.1)), zp()
        sig = logistic_int8(np.arange(-128, 128).astype(np.int8), logistic_params(h1_scale, h1_zp))
        silu_m, silu_s = conv_multiplier(h1_scale, 1 / 256, float(rng.uniform(0.01, 0.05)))
        gate_m, gate_s = conv_multiplier(0.03, float(rng.uniform(0.01, 0.1)), float(rng.uniform(0.01, 0.05)))
        silu_zp = zp()
        p = {"silu": silu_table(sig, h1_zp, silu_m, silu_s, silu_zp), "gate_mult": gate_m, "gate_shift": gate_s,
             "silu_zp": silu_zp, "h3_zp": zp(), "out_zp": zp()}
        st = Step("swiglu", "s8", out="h1", inp="h3", n=n)
        cases.append(Case(f"swiglu_s8 n={n}", "swiglu_s8", {"a": d.array(a), "b": d.array(b), "n": f"{n}u",
                                                           "p": f"&{d.params('esl_swiglu_s8_t', p)}"},
                          [("h1", _s8_run("swiglu_s8", st, p, {"h1": a, "h3": b}))], n, st))
    # swiglu_s16 (--int16 ffn): int16 h1, h3 over the whole range; TFLM Prepare's parameters for a
    # general scale and for 2^-12 (its multiplier-0 branch)
    # general scale and for 2^-12 (its multiplier-0 branch); one sweep of h1 over its whole range
    for n, h1_scale in ((172, 3e-4), (16, 2.0 ** -12), (7, 1e-3), (512, 4.1e-4)):
        h1 = rng.integers(-32768, 32768, size=n).astype(np.int16) if n != 512 else \
            (np.arange(-32768, 32768, 128) + rng.integers(0, 128, 512)).astype(np.int16)
        h3 = rng.integers(-32768, 32768, size=n).astype(np.int16)
        sm, ss = logistic16_params(h1_scale)
        silu_m, silu_s = conv_multiplier(h1_scale, 1 / 32768, h1_scale * float(rng.uniform(0.5, 1.0)))
        gate_m, gate_s = conv_multiplier(h1_scale, float(rng.uniform(1e-4, 1e-3)), float(rng.uniform(1e-4, 1e-3)))
        p = {"sig_mult": sm, "sig_shift": ss, "silu_mult": silu_m, "silu_shift": silu_s, "gate_mult": gate_m,
             "gate_shift": gate_s}
        st = Step("swiglu", "s16", out="h1", inp="h3", n=n)
        cases.append(Case(f"swiglu_s16 n={n} scale {h1_scale:.3g}", "swiglu_s16",
                          {"a": d.array(h1), "b": d.array(h3), "n": f"{n}u", "p": f"&{d.params('esl_swiglu_s16_t', p)}"},
                          [("h1", _s8_run("swiglu_s16", st, p, {"h1": h1, "h3": h3}))], 2 * n, st))
    # attention: MHA and GQA, first, middle and last position, a second layer, a flat softmax; and
    # int16 keys (--int16 keys: k_zp 0, full-scale keys, the score multipliers 256 times smaller),
    # an odd head size among them
    max_seq = 64
    for heads, n_kv, hs, layers, layer, positions, k16 in (
            (8, 4, 8, 1, 0, (0, 37), False), (4, 4, 8, 1, 0, (63,), False), (6, 2, 8, 2, 1, (0, 20, 63), False),
            (4, 2, 6, 1, 0, (5, 63), False), (2, 1, 12, 1, 0, (40,), False), (8, 4, 8, 2, 1, (0, 63), True),
            (3, 3, 5, 1, 0, (30,), True), (2, 1, 16, 1, 0, (17,), True)):
        values = i8(layers, max_seq, n_kv, hs)
        if k16:
            keys = rng.integers(-32768, 32768, size=(layers, max_seq, n_kv, hs)).astype(np.int16)
            kv = f".key_i16 = {d.array(keys, False)}, .value_i8 = {d.array(values, False)}, .kv_bits = 8"
        else:
            keys = i8(layers, max_seq, n_kv, hs)
            kv = f".key_i8 = {d.array(keys, False)}, .value_i8 = {d.array(values, False)}, .kv_bits = 8"
        m = d.model(heads, n_kv, hs, max_seq, layers, kv)
        for pos in positions:
            q = i8(heads * hs)
            score_real = float(rng.choice([2e-4, 2e-3, 2e-2])) / (256 if k16 else 1)   # small: a flat softmax
            sm = softmax_params(float(rng.uniform(0.05, 0.3)))
            sm_m, sm_s = quantize_multiplier(score_real)
            av_m, av_s = quantize_multiplier(float(rng.uniform(1e-4, 1e-3)))
            p = {"score_mult": sm_m, "score_shift": sm_s, "q_zp": zp(), "k_zp": 0 if k16 else zp(), "score_zp": zp(),
                 "exp_table": softmax_exp_table(sm), "d_valid": min(255, -sm["diff_min"]),
                 "av_mult": av_m, "av_shift": av_s, "v_zp": zp(), "out_zp": zp()}
            st = Step("attention", "s8", layer=layer, out="o", inp="q", n=heads, cols=hs)
            want = _s8_run("attention_s8", st, p, {"q": q}, pos=pos, heads=heads, kv_heads=n_kv, head_size=hs,
                           keys=keys, values=values)
            cases.append(Case(f"attention_s8 heads {heads}/{n_kv} hs {hs} layer {layer} pos {pos}"
                              + (" int16 keys" if k16 else ""), "attention_s8",
                              {"q": d.array(q), "m": f"&{m}", "layer": f"{layer}u", "pos": f"{pos}u",
                               "p": f"&{d.params('esl_attention_s8_t', p)}"},
                              [("out", want)], heads * hs, st, max_seq))


# kc_case_t's union member for each op (kernel_check.c)
_MEMBER = {"matmul_f32": "matmul", "matmul_w8f": "matmul", "matmul_w4f": "matmul",
           "embed_f32": "embed", "embed_w8f": "embed", "rmsnorm_f32": "rmsnorm", "rope_f32": "rope",
           "softmax": "vec", "expf": "vec", "quantize_i8": "quantize", "quantize_i16": "quantize", "swiglu_f32": "binary",
           "add_f32": "binary", "kvstore_kv8": "kvstore", "attention_f32": "attention",
           "attention_kv8": "attention", "matmul_s8": "matmul_s8", "embed_s8": "embed_s8",
           "rmsnorm_s8": "rmsnorm_s8", "rope_s8": "rope_s8", "rope_s16": "rope_s16", "attention_s8": "attention_s8",
           "add_s8": "binary_s8", "swiglu_s8": "binary_s8", "matmul_s16": "matmul_s16", "swiglu_s16": "binary_s16"}


def write_header(cases: list[Case], decls: list[str], path: Path,
                 scratch_bytes: Callable[[Case], int]) -> list[int]:
    """Write kernel_cases.h; returns the scratch bytes each case was granted."""
    grants = [scratch_bytes(c) for c in cases]
    rows = []
    for i, (c, s) in enumerate(zip(cases, grants)):
        fields = ", ".join(f".{k} = {v}" for k, v in c.fields.items())
        rows.append(f"    /* {i}: {c.name} */\n"
                    f"    {{ KC_{c.op.upper()}, {c.out_bytes}u, {s}u, .{_MEMBER[c.op]} = {{ {fields} }} }},")
    out_max = max(c.out_bytes for c in cases)
    scratch_max = max(grants)
    text = (f"/* Generated by tests/kernel_vectors.py (seed {SEED}): do not edit. Included once, by\n"
            " * tests/c/kernel_check.c, after its kc_case_t. Inputs are exact literals. */\n\n"
            f"#define KC_N_CASES {len(cases)}u\n"
            f"#define KC_OUT_BYTES {_round4(out_max)}u\n"
            f"#define KC_SCRATCH_BYTES {(scratch_max + 7) // 8 * 8}u\n"
            f"#define KC_GUARD {GUARD_BYTES}u\n\n" + "\n".join(decls) +
            "\n\nstatic const kc_case_t kc_cases[KC_N_CASES] = {\n" + "\n".join(rows) + "\n};\n")
    path.write_text(text)
    return grants
