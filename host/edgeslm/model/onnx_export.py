"""Export the IR as an ONNX decode step: one token in, logits and the updated KV cache out.

Inputs   input_ids [1, 1] int64, position [1] int64,
         past_key.{l} / past_value.{l} [n_kv_heads, max_seq, head_size] float32 for every layer l
Outputs  logits [1, vocab], present_key.{l} / present_value.{l} (past with row `position` written)

Every weight is an initializer under its IR name (layers.0.attention.wq, stored (out, in) and used
by Gemm with transB=1); RoPE's cos/sin tables are initializers too. metadata_props carry the format
(edgeslm.format), the config (edgeslm.config, JSON), the model fingerprint and the tokenizer's
identity. The arithmetic is llama2.c's: RMSNorm, interleaved-pair RoPE, GQA, SwiGLU.
"""

from __future__ import annotations

import json
from dataclasses import asdict

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from .. import __version__
from .ir import Model
from .tokenizer import Tokenizer

FORMAT = "edgeslm-decode-step/1"
OPSET = 18


class _Builder:
    """Nodes with unique, readable names; constants as initializers."""

    def __init__(self):
        self.nodes, self.inits, self._n = [], [], 0

    def const(self, name: str, value, dtype=np.float32) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, n_out: int = 1, **attrs) -> str | list[str]:
        self._n += 1
        outs = [f"{name}" if n_out == 1 else f"{name}.{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=f"{name}#{self._n}", **attrs))
        return outs[0] if n_out == 1 else outs


def _rmsnorm(b: _Builder, x: str, weight: str, eps: str, axes: str, name: str) -> str:
    ss = b.op("ReduceMean", [b.op("Mul", [x, x], f"{name}.sq"), axes], f"{name}.mean", keepdims=1)
    inv = b.op("Reciprocal", [b.op("Sqrt", [b.op("Add", [ss, eps], f"{name}.eps")], f"{name}.sqrt")],
               f"{name}.inv")
    return b.op("Mul", [b.op("Mul", [x, inv], f"{name}.normed"), weight], name)


def _rope(b: _Builder, v: str, heads: int, hs: int, cos: str, sin: str, name: str) -> str:
    """v [1, heads*hs] -> pairs (2p, 2p+1) rotated by the position's angles."""
    pairs = b.op("Reshape", [v, b.const(f"{name}.shape", [heads, hs // 2, 2], np.int64)], f"{name}.pairs")
    a, c = b.op("Split", [pairs, b.const(f"{name}.split", [1, 1], np.int64)], f"{name}.ab", n_out=2, axis=2)
    a_cos, c_sin = b.op("Mul", [a, cos], f"{name}.a_cos"), b.op("Mul", [c, sin], f"{name}.b_sin")
    a_sin, c_cos = b.op("Mul", [a, sin], f"{name}.a_sin"), b.op("Mul", [c, cos], f"{name}.b_cos")
    out = b.op("Concat", [b.op("Sub", [a_cos, c_sin], f"{name}.re"), b.op("Add", [a_sin, c_cos], f"{name}.im")],
               f"{name}.rot", axis=2)
    return b.op("Reshape", [out, b.const(f"{name}.back", [1, heads * hs], np.int64)], name)


def export_decode_step(model: Model, tokenizer: Tokenizer | None = None) -> onnx.ModelProto:
    c, t = model.config, model.tensors
    hs, L = c.head_size, c.n_layers
    rep = c.n_heads // c.n_kv_heads
    b = _Builder()
    for name, w in t.items():
        b.inits.append(numpy_helper.from_array(w, name))
    hd = np.arange(0, hs, 2, dtype=np.float32)
    freq = np.float32(1.0) / np.power(np.float32(c.rope_theta), hd / np.float32(hs))
    ang = np.arange(c.max_seq_len, dtype=np.float32)[:, None] * freq[None, :]
    b.const("rope.cos", np.cos(ang))
    b.const("rope.sin", np.sin(ang))
    eps = b.const("norm_eps", np.float32(c.norm_eps))
    axes = b.const("axes_last", [-1], np.int64)
    scale = b.const("attention.scale", np.float32(1.0) / np.sqrt(np.float32(hs)))

    x = b.op("Gather", ["tok_embeddings", "input_ids"], "embed", axis=0)           # [1, 1, dim]
    x = b.op("Reshape", [x, b.const("shape_row", [1, c.dim], np.int64)], "x0")
    # this position's angles, shaped to broadcast over (heads, pairs, 1)
    cos = b.op("Reshape", [b.op("Gather", ["rope.cos", "position"], "cos_row", axis=0),
                           b.const("rope.row_shape", [1, hs // 2, 1], np.int64)], "cos")
    sin = b.op("Reshape", [b.op("Gather", ["rope.sin", "position"], "sin_row", axis=0), "rope.row_shape"], "sin")
    # attention mask over the cache: positions <= position are visible
    t_idx = b.const("cache_positions", np.arange(c.max_seq_len), np.int64)
    visible = b.op("LessOrEqual", [t_idx, "position"], "visible")
    neg_inf = b.const("neg_inf", np.float32(-np.inf))
    kv_index = b.op("Concat", [b.const("kv_heads_col", np.arange(c.n_kv_heads)[:, None], np.int64),
                               b.op("Expand", [b.op("Reshape", ["position", b.const("one_one", [1, 1], np.int64)],
                                                    "pos_11"), b.const("kv_col_shape", [c.n_kv_heads, 1], np.int64)],
                                    "pos_col")], "kv_index", axis=1)               # [(h, position)] x kv heads
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, 1]),
              helper.make_tensor_value_info("position", TensorProto.INT64, [1])]
    outputs = []
    cache_shape = [c.n_kv_heads, c.max_seq_len, hs]
    for l in range(L):
        p = f"layers.{l}."
        xn = _rmsnorm(b, x, p + "attention_norm", eps, axes, p + "attention_norm.out")
        q = b.op("Gemm", [xn, p + "attention.wq"], p + "q", transB=1)
        k = b.op("Gemm", [xn, p + "attention.wk"], p + "k", transB=1)
        v = b.op("Gemm", [xn, p + "attention.wv"], p + "v", transB=1)
        q = _rope(b, q, c.n_heads, hs, cos, sin, p + "q_rot")
        k = _rope(b, k, c.n_kv_heads, hs, cos, sin, p + "k_rot")
        kv_rows = b.const(p + "kv_rows", [c.n_kv_heads, hs], np.int64)
        for kind, vec in (("key", k), ("value", v)):
            inputs.append(helper.make_tensor_value_info(f"past_{kind}.{l}", TensorProto.FLOAT, cache_shape))
            b.op("ScatterND", [f"past_{kind}.{l}", kv_index, b.op("Reshape", [vec, kv_rows], f"{p}{kind}_rows")],
                 f"present_{kind}.{l}")
            outputs.append(helper.make_tensor_value_info(f"present_{kind}.{l}", TensorProto.FLOAT, cache_shape))
        # grouped-query attention: kv head j serves query heads j*rep .. j*rep+rep-1
        def heads(name: str) -> str:
            e = b.op("Expand", [b.op("Unsqueeze", [f"present_{name}.{l}", b.const(f"{p}{name}_ax", [1], np.int64)],
                                     f"{p}{name}_u"),
                                b.const(f"{p}{name}_rep", [c.n_kv_heads, rep, c.max_seq_len, hs], np.int64)],
                     f"{p}{name}_e")
            return b.op("Reshape", [e, b.const(f"{p}{name}_hs", [c.n_heads, c.max_seq_len, hs], np.int64)],
                        f"{p}{name}_heads")
        qh = b.op("Reshape", [q, b.const(p + "q_heads", [c.n_heads, 1, hs], np.int64)], p + "q_h")
        kt = b.op("Transpose", [heads("key")], p + "k_t", perm=[0, 2, 1])
        scores = b.op("Mul", [b.op("MatMul", [qh, kt], p + "qk"), scale], p + "scores")
        scores = b.op("Where", [visible, scores, neg_inf], p + "masked")
        att = b.op("Softmax", [scores], p + "att", axis=-1)
        o = b.op("Reshape", [b.op("MatMul", [att, heads("value")], p + "av"), "shape_row"], p + "att_out")
        x = b.op("Add", [x, b.op("Gemm", [o, p + "attention.wo"], p + "wo", transB=1)], p + "x_att")
        xn = _rmsnorm(b, x, p + "ffn_norm", eps, axes, p + "ffn_norm.out")
        h1 = b.op("Gemm", [xn, p + "feed_forward.w1"], p + "h1", transB=1)
        h3 = b.op("Gemm", [xn, p + "feed_forward.w3"], p + "h3", transB=1)
        g = b.op("Mul", [b.op("Mul", [h1, b.op("Sigmoid", [h1], p + "sig")], p + "silu"), h3], p + "gated")
        x = b.op("Add", [x, b.op("Gemm", [g, p + "feed_forward.w2"], p + "w2", transB=1)], p + "x_ffn")
    xn = _rmsnorm(b, x, "norm", eps, axes, "norm.out")
    b.op("Gemm", [xn, "tok_embeddings" if c.shared_classifier else "output"], "logits", transB=1)
    outputs.insert(0, helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, c.vocab_size]))
    graph = helper.make_graph(b.nodes, "edgeslm_decode_step", inputs, outputs, b.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                          producer_name="edgeslm", producer_version=__version__)
    meta = {"edgeslm.format": FORMAT, "edgeslm.config": json.dumps(asdict(c)),
            "edgeslm.fingerprint": model.fingerprint()}
    if tokenizer is not None:
        meta["edgeslm.tokenizer_sha256"] = tokenizer.identity()
        meta["edgeslm.tokenizer_vocab_size"] = str(tokenizer.vocab_size)
    helper.set_model_props(m, meta)
    onnx.checker.check_model(m)
    return m
