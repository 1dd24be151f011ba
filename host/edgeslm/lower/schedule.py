"""The forward pass as a fixed list of steps: written once, run by the firmware (through the
generated step table) and by the golden model (through its kernel functions) alike.

    schedule(cfg, scheme, max_seq) -> (steps, value sizes in arena elements)

A step names its op and its *contract* (the exact arithmetic of its weights and activations:
`f32`, `w8f` int8 weights with float activations, `w4f`, `kv8` an int8 KV cache, `s8` the
integer-only scheme, `s16` the steps of its --int16 parts whose arithmetic is another: the keys'
RoPE, the int16 SwiGLU, matmuls over int16 x; s8 kernels that only read or write int16 take the
width as a parameter), so `<op>_<contract>` names both the C kernel (`esl_<op>_<contract>.c`) and
its golden function.
Which ISA variant of the kernel runs is the board's business (the planner).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..model.ir import ModelConfig, tensor_shapes
from ..quant.schemes import Scheme

OPS = ("embed", "rmsnorm", "matmul", "rope", "kvstore", "attention", "add", "swiglu")


@dataclass(frozen=True)
class Step:
    op: str                      # one of OPS
    contract: str                # f32 | w8f | w4f | kv8 | s8 | s16
    layer: int = 0
    out: str = ""                # value names, resolved to arena offsets by the planner
    inp: str = ""
    in2: str = ""
    n: int = 0                   # vector length (heads for rope)
    weight: str = ""             # tensor name (matmul, embed)
    norm: str = ""               # tensor name (rmsnorm)
    rows: int = 0                # weight shape (matmul, embed)
    cols: int = 0                # (attention: the head size)
    group_size: int = 0          # quantization group along cols (w8f, w4f)
    act_bits: int = 0            # w8f: its input quantized to int8 or int16 (8 | 16)
    input_prepared: bool = False  # matmul: its input is the previous step's, already quantized and
                                  # laid out in scratch by that step (q/k/v, w1/w3): not again

    @property
    def kernel(self) -> str:
        """`<op>_<contract>`: the C kernel esl_<kernel>, its step entry esl_step_<kernel>, its golden."""
        return f"{self.op}_{self.contract}"


_WEIGHT_CONTRACT = {32: "f32", 8: "w8f", 4: "w4f"}


def contracts(scheme: Scheme) -> dict[str, str]:
    """The contract of every op that does not depend on a weight, for this scheme."""
    if scheme.integer:
        return {op: "s8" for op in OPS}
    kv = "f32" if scheme.kv == "f32" else "kv8"
    return {"rmsnorm": "f32", "rope": "f32", "add": "f32", "swiglu": "f32", "kvstore": kv, "attention": kv}


def weight_contract(scheme: Scheme, weight: str, n_layers: int) -> str:
    return "s8" if scheme.integer else _WEIGHT_CONTRACT[scheme.matrix_bits(weight, n_layers)]


def schedule(cfg: ModelConfig, scheme: Scheme, max_seq: int) -> tuple[list[Step], dict[str, int]]:
    """The forward pass as steps over named values; returns (steps, value sizes in arena elements:
    floats, or bytes in the integer scheme, where an int16 value takes two).
    max_seq is part of the signature because a future step's buffers may depend on it."""
    del max_seq
    shapes = tensor_shapes(cfg)
    c = contracts(scheme)
    k_bytes = 2 if "keys" in scheme.int16 else 1          # the --int16 parts' values: int16
    h_bytes = 2 if "ffn" in scheme.int16 else 1
    r_bytes = 2 if "residual" in scheme.int16 else 1
    n_bytes = 2 if "norms" in scheme.int16 else 1
    sizes = {"x": cfg.dim * r_bytes}
    wide = set()                                   # the int16 values a matmul may read

    def val(name: str, n: int, width: int = 1) -> str:
        sizes[name] = n * width
        if width == 2:
            wide.add(name)
        return name

    def matmul(layer: int, out: str, inp: str, weight: str) -> Step:
        rows, cols = shapes[weight]
        contract = "s16" if inp in wide else weight_contract(scheme, weight, cfg.n_layers)   # int16 x
        return Step("matmul", contract, layer, out=out, inp=inp, weight=weight, rows=rows, cols=cols,
                    group_size=0 if contract == "f32" else scheme.kernel_group_size,
                    act_bits=scheme.act_bits if contract == "w8f" else 0)

    def op(name: str, layer: int = 0, **kw) -> Step:
        return Step(name, c[name], layer, **kw)

    emb = shapes["tok_embeddings"]
    steps = [Step("embed", weight_contract(scheme, "tok_embeddings", cfg.n_layers), out="x", weight="tok_embeddings",
                  rows=emb[0], cols=emb[1])]
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        xb, q, k, v = val(f"xb{l}", cfg.dim, n_bytes), val(f"q{l}", cfg.dim), val(f"k{l}", cfg.kv_dim, k_bytes), val(f"v{l}", cfg.kv_dim)
        ao, o = val(f"ao{l}", cfg.dim), val(f"o{l}", cfg.dim, r_bytes)
        xn, f = val(f"xn{l}", cfg.dim, n_bytes), val(f"f{l}", cfg.dim, r_bytes)
        h1, h3 = val(f"h1_{l}", cfg.hidden_dim, h_bytes), val(f"h3_{l}", cfg.hidden_dim, h_bytes)
        steps += [
            op("rmsnorm", l, out=xb, inp="x", n=cfg.dim, norm=p + "attention_norm"),
            matmul(l, q, xb, p + "attention.wq"),
            matmul(l, k, xb, p + "attention.wk"),
            matmul(l, v, xb, p + "attention.wv"),
            op("rope", l, out=q, inp=q, n=cfg.n_heads),
            Step("rope", "s16" if k_bytes == 2 else c["rope"], l, out=k, inp=k, n=cfg.n_kv_heads),
            op("kvstore", l, inp=k, in2=v, n=cfg.kv_dim),
            op("attention", l, out=ao, inp=q, n=cfg.n_heads, cols=cfg.head_size),
            matmul(l, o, ao, p + "attention.wo"),
            op("add", l, out="x", inp=o, n=cfg.dim),
            op("rmsnorm", l, out=xn, inp="x", n=cfg.dim, norm=p + "ffn_norm"),
            matmul(l, h1, xn, p + "feed_forward.w1"),
            matmul(l, h3, xn, p + "feed_forward.w3"),
            Step("swiglu", "s16" if h_bytes == 2 else c["swiglu"], l, out=h1, inp=h3, n=cfg.hidden_dim),
            matmul(l, f, h1, p + "feed_forward.w2"),
            op("add", l, out="x", inp=f, n=cfg.dim),
        ]
    steps += [op("rmsnorm", out=val("xf", cfg.dim, n_bytes), inp="x", n=cfg.dim, norm="norm"),
              matmul(0, val("logits", cfg.vocab_size), "xf",
                     "tok_embeddings" if cfg.shared_classifier else "output")]
    return _share_prepared_inputs(steps), sizes


def _share_prepared_inputs(steps: list[Step]) -> list[Step]:
    """Mark each matmul that reads the same input, with the same contract and group size, as the
    matmul just before it: that one left the input quantized and laid out in scratch."""
    out = steps[:1]
    for prev, s in zip(steps, steps[1:]):
        same = (s.op == prev.op == "matmul" and s.inp == prev.inp and s.contract == prev.contract
                and s.cols == prev.cols and s.group_size == prev.group_size)
        out.append(replace(s, input_prepared=True) if same else s)
    return out
