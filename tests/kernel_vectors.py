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
from edgeslm.quant.golden import (_Matmul, attention, embed, esl_expf, quantize_i8, rope, rope_tables, softmax,
                                  swiglu)
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

    def array(self, a: np.ndarray, const: bool = True) -> str:
        a = np.ascontiguousarray(a).reshape(-1)
        ctype = {np.dtype(F): "float", np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t"}[a.dtype]
        name = self._name("in")
        if a.dtype == F:
            items = [c_float(v) for v in a.tolist()]
            body = ",\n".join("    " + ", ".join(items[i:i + 6]) for i in range(0, len(items), 6))
        else:
            body = cdata.int_body(a)
        self.lines.append(f"static {'const ' if const else ''}{ctype} {name}[{a.size}] = {{\n{body}\n}};")
        return name

    def weight(self, qt: QTensor) -> str:
        data = self.array(qt.packed())
        scales = self.array(qt.scales) if qt.bits != 32 else "NULL"
        rows, cols = qt.shape
        name = self._name("w")
        self.lines.append(f"static const esl_weight_t {name} = {{ {data}, {scales}, {rows}u, {cols}u, "
                          f"{qt.group_size}u, {qt.n_groups}u, {qt.bits}u }};")
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

    # ---- attention f32 / kv8: MHA and GQA, first, middle and last position, a second layer
    hs, max_seq = 8, 64
    for heads, n_kv, layers, layer, positions in ((8, 4, 1, 0, (0, 37)), (4, 4, 1, 0, (63,)),
                                                  (6, 2, 2, 1, (0, 20, 63))):
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
                    ("f32", m32, attention(q, kf[layer, t], vf[layer, t], None, None, inv)),
                    ("kv8", m8, attention(q, kq[layer, t], vq[layer, t], ks[layer, t], vs[layer, t], inv))):
                cases.append(Case(f"attention_{kv} heads {heads}/{n_kv} layer {layer} pos {pos}",
                                  f"attention_{kv}", {"q": qa, "m": f"&{m}", "layer": f"{layer}u",
                                                      "pos": f"{pos}u"},
                                  [("out", want)], 4 * heads * hs, Step("attention", kv, n=heads),
                                  max_seq))
    return cases, d.lines


# kc_case_t's union member for each op (kernel_check.c)
_MEMBER = {"matmul_f32": "matmul", "matmul_w8f": "matmul", "matmul_w4f": "matmul",
           "embed_f32": "embed", "embed_w8f": "embed", "rmsnorm_f32": "rmsnorm", "rope_f32": "rope",
           "softmax": "vec", "expf": "vec", "quantize_i8": "quantize", "swiglu_f32": "binary",
           "add_f32": "binary", "kvstore_kv8": "kvstore", "attention_f32": "attention",
           "attention_kv8": "attention"}


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
