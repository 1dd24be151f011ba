"""Read an ONNX decoder graph into the IR.

Two ways in:
- A graph written by edgeslm's exporter (metadata edgeslm.format): weights by name, config from the
  metadata; the round trip is exact.
- Any Llama-style decoder graph (torch.onnx.export, TorchScript or dynamo): the blocks are
  recognized by the graph's structure, never by names:
    embedding   Gather from a 2-D constant, indexed by a graph input
    linears     MatMul/Gemm against a 2-D constant (transposed as needed), grouped by their input:
                per block 3 (q, k, v), 1 (o), 2 (w1, w3), 1 (w2); then 1 classifier
    roles       v feeds the MatMul after Softmax; q and k feed the one before it (q on the left);
                w1 feeds a Sigmoid (SiLU), w3 does not
    RMSNorm     Mul by a 1-D constant after ReduceMean / Sqrt; eps from the Add in between
    head size   from the score scale between the q.k MatMul and Softmax (1/sqrt(head_size))
    RoPE        the rotary angles, either folded into cos/sin tables (rows = positions; a graph
                exported from T tokens with constants folded holds T rows: export at the full
                context), or computed in the graph from the positions (inv_freq @ positions or an
                Einsum, then Cos/Sin, as transformers' Llama does): that sub-graph depends on no
                activation, so it is evaluated here, with numpy (onnx's reference evaluator), for
                positions 0..7. The angles' layout tells the convention: half-width or pairwise
                repeated = interleaved pairs (llama2.c); halves repeated = rotate_half (HF), whose
                wq/wk rows are then un-permuted per head into interleaved pairs (see hf.py).
                theta from the angles; the context length from a config.json beside the file
                (max_position_embeddings, as optimum writes it), else from a static sequence length.
    masks       causal masks built in the graph (Range/CumSum/comparisons/Where) and the NaN guard
                exporters put after Softmax (Where(IsNaN(p), 0, p)) are accepted as the causal
                attention the IR has; mask-only operators that compute on activations are refused.
  A node whose operator the IR cannot express is refused by name, with why.
  `meta` records where each tensor came from (the initializer's name) and what was decided.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from .hf import unpermute_rotate_half
from .ir import Model, ModelConfig, make_model

# Cos/Sin/Einsum compute rotary angles from positions, the rest build causal masks: none may see
# an activation.
MASK_OR_ROPE_OPS = frozenset({"Cos", "Sin", "Einsum", "CumSum", "GatherND", "Max", "Min", "And", "Or",
                              "Not", "Greater", "GreaterOrEqual"})
# Operators that appear in Llama-style decoder graphs and that the IR can express.
SUPPORTED_OPS = {
    "Gather", "MatMul", "Gemm", "Transpose", "Reshape", "Mul", "Add", "Sub", "Div", "Pow", "Sqrt",
    "Reciprocal", "ReduceMean", "Softmax", "Sigmoid", "Constant", "Shape", "Slice", "Squeeze",
    "Unsqueeze", "Concat", "Split", "Expand", "Where", "Equal", "ConstantOfShape", "Trilu", "Cast",
    "Identity", "Range", "Less", "LessOrEqual", "ScatterND", "Flatten", "Tile", "RMSNormalization",
    "Neg", "IsNaN",
} | MASK_OR_ROPE_OPS
ROPE_PROBE_POSITIONS = 8        # positions at which in-graph rotary angles are evaluated
_WHY_NOT = {"Erf": " (GELU; the IR's feed-forward is SwiGLU)", "Relu": " (the IR's feed-forward is SwiGLU)",
            "LayerNormalization": " (the IR normalizes with RMSNorm)"}


def _fail(path: str, msg: str, hint: str = "") -> ModelFormatError:
    return ModelFormatError(f"{path}: {msg}", hint or "export a Llama-style decoder (RMSNorm, RoPE, "
                            "GQA attention, SwiGLU), as llama2.c's model.py defines it")


class _Graph:
    def __init__(self, model, path: str):
        from onnx import numpy_helper
        self.path = path
        self.nodes = list(model.graph.node)
        self.inputs = {i.name for i in model.graph.input}
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        self.inputs -= set(self.consts)
        self.producer = {}
        self.consumers = defaultdict(list)
        for n in self.nodes:
            for o in n.output:
                self.producer[o] = n
            for i in n.input:
                self.consumers[i].append(n)
            if n.op_type == "Constant":
                for a in n.attribute:
                    if a.name == "value":
                        self.consts[n.output[0]] = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_int"):
                        self.consts[n.output[0]] = np.array(a.f if a.name == "value_float" else a.i)
                    elif a.name in ("value_floats", "value_ints"):
                        self.consts[n.output[0]] = np.array(a.floats if a.name == "value_floats" else a.ints)
        self._anc: dict[str, frozenset] = {}

    def const(self, name: str) -> np.ndarray | None:
        """A constant, seen through Identity and Cast."""
        while name not in self.consts and name in self.producer and \
                self.producer[name].op_type in ("Identity", "Cast"):
            name = self.producer[name].input[0]
        return self.consts.get(name)

    def ancestors(self, name: str) -> frozenset:
        """Every tensor `name` depends on (iteratively, so deep graphs do not recurse)."""
        if name in self._anc:
            return self._anc[name]
        stack, seen = [name], set()
        while stack:
            t = stack.pop()
            if t in seen:
                continue
            seen.add(t)
            if t in self._anc:
                seen |= self._anc[t]
                continue
            n = self.producer.get(t)
            if n is not None:
                stack.extend(i for i in n.input if i)
        self._anc[name] = frozenset(seen)
        return self._anc[name]

    def downstream(self, name: str, op_type: str, limit: int = 64):
        """The first node of `op_type` reached going forward from tensor `name` (breadth first)."""
        frontier, seen = [name], set()
        while frontier and limit:
            limit -= 1
            nxt = []
            for t in frontier:
                for n in self.consumers.get(t, []):
                    if n.op_type == op_type:
                        return n
                    if id(n) not in seen:
                        seen.add(id(n))
                        nxt.extend(n.output)
            frontier = nxt
        return None


def _attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return a.i if a.type == 2 else a.f if a.type == 1 else list(a.ints) if a.ints else default
    return default


def _linear_weight(g: _Graph, n) -> tuple[str, np.ndarray] | None:
    """(input tensor, W as (out, in)) if `n` is x @ constant."""
    if n.op_type == "Gemm":
        w = g.const(n.input[1])
        if w is None or w.ndim != 2 or len(n.input) > 2 and g.const(n.input[2]) is not None and \
                np.any(g.const(n.input[2])):
            return None
        return n.input[0], (w if _attr(n, "transB", 0) else w.T)
    if n.op_type != "MatMul":
        return None
    w = g.const(n.input[1])
    if w is not None and w.ndim == 2:
        return n.input[0], w.T
    p = g.producer.get(n.input[1])
    if p is not None and p.op_type == "Transpose" and _attr(p, "perm", [1, 0]) == [1, 0]:
        w = g.const(p.input[0])
        if w is not None and w.ndim == 2:
            return n.input[0], w
    return None


def _norm(g: _Graph, tensor: str) -> tuple[np.ndarray, float, str]:
    """The RMSNorm that produced `tensor`: (weight, eps, the weight's name)."""
    n = g.producer.get(tensor)
    if n is not None and n.op_type == "RMSNormalization":
        return g.const(n.input[1]), float(_attr(n, "epsilon", 1e-5)), n.input[1]
    if n is None or n.op_type != "Mul":
        raise _fail(g.path, f"the input of a linear layer ({tensor}) is not an RMSNorm's output")
    wname = next((i for i in n.input if g.const(i) is not None and g.const(i).ndim == 1), None)
    weight = g.const(wname) if wname is not None else None
    anc = g.ancestors(tensor)
    ops = {g.producer[t].op_type for t in anc if t in g.producer}
    if weight is None or not {"ReduceMean", "Sqrt"} <= ops:
        raise _fail(g.path, f"no RMSNorm (Mul by a weight after ReduceMean and Sqrt) before {tensor}")
    # eps: the scalar constant added to the mean of squares nearest to this norm
    eps = None
    for t in sorted(anc, key=lambda t: -len(g.ancestors(t))):
        p = g.producer.get(t)
        if p is not None and p.op_type == "Add" and any(g.producer.get(i) is not None and
                                                         g.producer[i].op_type == "ReduceMean" for i in p.input):
            c = [g.const(i) for i in p.input if g.const(i) is not None]
            if c and c[0].size == 1:
                eps = float(c[0].reshape(-1)[0])
                break
    if eps is None:
        raise _fail(g.path, f"RMSNorm before {tensor} has no epsilon constant")
    return weight.astype(np.float32), eps, wname


def _theta(g: _Graph, freq: np.ndarray, half: int) -> float:
    """theta from the per-pair frequencies theta^(-2j/head_size), j = 0..half-1."""
    freq = np.asarray(freq, np.float64)
    j = np.arange(half)
    theta = float(freq[1] ** (-half)) if half > 1 else 10000.0
    if not np.allclose(freq, theta ** (-j / half), rtol=1e-4):
        raise _fail(g.path, "the rotary frequencies are not theta^(-2j/head_size): a scaled RoPE "
                    "(linear, dynamic, llama3, yarn...), which the IR does not have")
    if abs(theta - round(theta)) <= 1e-4 * theta:     # float32 tables blur an integer theta
        theta = float(round(theta))
    return theta


def _layout(a: np.ndarray, half: int) -> tuple[str, np.ndarray] | None:
    """(convention, per-pair columns) of a table of rotary angles or cos/sin values, (rows, width)."""
    if a.shape[1] == half:
        return "interleaved", a
    if a.shape[1] == 2 * half:
        if np.allclose(a[:, :half], a[:, half:], rtol=1e-6, atol=1e-6):
            return "rotate_half", a[:, :half]
        if np.allclose(a[:, 0::2], a[:, 1::2], rtol=1e-6, atol=1e-6):
            return "interleaved", a[:, 0::2]
    return None


def _rope_tables(g: _Graph, half: int) -> tuple[str, float, int]:
    """(convention, theta, rows) from folded cos/sin tables: cos row 0 is all ones, sin row 0 all zeros."""
    cos = sin = None
    for name, v in g.consts.items():
        v = v.reshape([d for d in v.shape if d != 1] or [1])     # (1, T, 1, half) as folded by torch
        if v.ndim == 2 and v.shape[1] in (half, 2 * half) and v.shape[0] >= 2 and \
                np.issubdtype(v.dtype, np.floating) and _layout(v, half) is not None:
            if np.allclose(v[0], 1.0) and np.all(np.abs(v) <= 1.0 + 1e-6):
                cos = v if cos is None or v.shape[0] > cos.shape[0] else cos
            elif np.allclose(v[0], 0.0) and np.all(np.abs(v) <= 1.0 + 1e-6):
                sin = v if sin is None or v.shape[0] > sin.shape[0] else sin
    if cos is None or sin is None:
        raise _fail(g.path, "no rotary embedding tables (cos/sin constants with a row per position, or "
                    "Cos/Sin of angles computed from the positions)",
                    "export with the RoPE tables as buffers, and a sequence of at least 2 tokens")
    (conv, c), (conv_s, s) = _layout(cos, half), _layout(sin, half)
    if conv != conv_s:
        raise _fail(g.path, f"the cos table is laid out {conv}, the sin table {conv_s}")
    freq = np.arctan2(s[1].astype(np.float64), c[1].astype(np.float64))   # theta^(-j/half)
    return conv, _theta(g, freq, half), int(cos.shape[0])


def _evaluate(g: _Graph, model, wanted: list[str], positions: int) -> list[np.ndarray]:
    """Evaluate tensors that depend on no activation (rotary angles) with onnx's reference
    evaluator, for one sequence of `positions` tokens at positions 0.. (no past)."""
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    need = set().union(*(g.ancestors(w) for w in wanted))
    nodes = [n for n in g.nodes if any(o in need for o in n.output)]
    inputs = [i for i in model.graph.input if i.name in need and i.name in g.inputs]
    feeds = {}
    for i in inputs:
        tt = i.type.tensor_type
        dims = [d.dim_value if d.dim_value > 0 else (1 if k == 0 else 0 if "past" in i.name else positions)
                for k, d in enumerate(tt.shape.dim)]
        dtype = helper.tensor_dtype_to_np_dtype(tt.elem_type)
        if "position" in i.name:
            feeds[i.name] = np.broadcast_to(np.arange(dims[-1]), dims).astype(dtype)
        elif "mask" in i.name:
            feeds[i.name] = np.ones(dims, dtype)
        else:
            feeds[i.name] = np.zeros(dims, dtype)
    sub = helper.make_model(
        helper.make_graph(nodes, "rotary_angles", inputs, [helper.make_empty_tensor_value_info(w) for w in wanted],
                          [t for t in model.graph.initializer if t.name in need]),
        opset_imports=list(model.opset_import), functions=list(model.functions), ir_version=model.ir_version)
    try:
        return [np.asarray(v) for v in ReferenceEvaluator(sub).run(wanted, feeds)]
    except Exception as e:          # the evaluator raises whatever its operators raise
        raise _fail(g.path, f"cannot evaluate the rotary angles ({', '.join(wanted[:2])}) at positions "
                    f"0..{positions - 1}: {type(e).__name__}: {e}") from None


def _rope_in_graph(g: _Graph, model, act: set, half: int) -> tuple[str, float] | None:
    """(convention, theta) from the angles that the graph's Cos/Sin nodes take, or None if it has none."""
    trig = [n for n in g.nodes if n.op_type in ("Cos", "Sin")]
    if not trig:
        return None
    T = ROPE_PROBE_POSITIONS
    names = sorted({n.input[0] for n in trig})
    found = set()
    for name, a in zip(names, _evaluate(g, model, names, T)):
        a = a.astype(np.float64).reshape(-1, a.shape[-1]) if a.ndim else a.reshape(1, 1)
        lay = _layout(a, half) if a.shape[0] == T else None
        if lay is None:
            raise _fail(g.path, f"the rotary angles {name} ({a.shape}) are not one row per position of "
                        f"{half} or {2 * half} columns")
        conv, pairs = lay
        freq = pairs[1]
        if not np.allclose(pairs, np.arange(T)[:, None] * freq[None, :], rtol=1e-5, atol=1e-5):
            raise _fail(g.path, f"the rotary angles {name} are not position * frequency",
                        "export with position ids 0, 1, 2, ... (no offset, scaling or packing)")
        found.add((conv, _theta(g, freq, half)))
    for n in trig:          # cos/sin scaled (transformers' attention_scaling for scaled RoPE variants)
        for c in g.consumers.get(n.output[0], []):
            k = [g.const(i) for i in c.input if g.const(i) is not None] if c.op_type in ("Mul", "Div") else []
            if k and not np.allclose(k[0], 1.0):
                raise _fail(g.path, f"node '{c.name or c.output[0]}' scales the rotary {n.op_type.lower()} by "
                            f"{float(np.ravel(k[0])[0]):g}: the IR's RoPE has no attention scaling")
    if len(found) != 1:
        raise _fail(g.path, f"the graph's rotary angles disagree: {sorted(found)}")
    return found.pop()


def _activations(g: _Graph, start: str) -> set:
    """Every tensor whose value is computed from `start` (the token embedding); a Shape ends it."""
    seen, stack = set(), [start]
    while stack:
        t = stack.pop()
        if t in seen:
            continue
        seen.add(t)
        for n in g.consumers.get(t, []):
            if n.op_type not in ("Shape", "Size"):
                stack.extend(o for o in n.output if o)
    return seen


def _check_activation_ops(g: _Graph, act: set) -> list:
    """Refuse mask or rotary operators that compute on activations; return the Neg nodes that do
    (rotate_half's sign flip)."""
    negs = []
    for n in g.nodes:
        name = n.name or n.output[0]
        if not any(i in act for i in n.input):
            continue
        if n.op_type in MASK_OR_ROPE_OPS:
            raise _fail(g.path, f"node '{name}' applies {n.op_type} to activations; the IR has {n.op_type} only "
                        "in causal masks and rotary angles")
        if n.op_type == "IsNaN":
            guard = g.consumers.get(n.output[0], [])
            if not guard or any(c.op_type != "Where" or c.input[2] != n.input[0] or g.const(c.input[1]) is None
                                or np.any(g.const(c.input[1])) for c in guard):
                raise _fail(g.path, f"node '{name}' tests activations for NaN other than as the guard "
                            "Where(IsNaN(p), 0, p) after a Softmax")
        if n.op_type == "Neg":
            negs.append(n)
    return negs


def _scalar_factor(g: _Graph, tensor: str) -> float:
    """The product of the scalar constants that `tensor` was multiplied (or divided) by, walking back
    through layout-only nodes: the share of the score scale applied to q or k before q.k."""
    f = 1.0
    while tensor in g.producer:
        n = g.producer[tensor]
        if n.op_type in ("Transpose", "Reshape", "Cast", "Identity", "Unsqueeze", "Squeeze", "Expand"):
            tensor = n.input[0]
            continue
        if n.op_type in ("Mul", "Div") and len(n.input) == 2:
            k = [g.const(i) for i in n.input]
            if k[1] is not None and k[1].size == 1 and k[0] is None:
                f = f * float(k[1].reshape(-1)[0]) if n.op_type == "Mul" else f / float(k[1].reshape(-1)[0])
                tensor = n.input[0]
                continue
            if n.op_type == "Mul" and k[0] is not None and k[0].size == 1 and k[1] is None:
                f, tensor = f * float(k[0].reshape(-1)[0]), n.input[1]
                continue
        break
    return f


def _weight_name(g: _Graph, n) -> str:
    """The name of the initializer that holds a linear node's weight (for meta's tensor sources)."""
    name = n.input[1]
    while name in g.producer and g.producer[name].op_type in ("Identity", "Cast", "Transpose"):
        name = g.producer[name].input[0]
    return name


def _context(g: _Graph, model, embed) -> tuple[int, str]:
    """(max_seq_len, where it came from) for a graph whose rotary angles are computed in it."""
    cfg = Path(g.path).with_name("config.json")
    if cfg.is_file():
        try:
            n = json.loads(cfg.read_text(encoding="utf-8")).get("max_position_embeddings")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise _fail(g.path, f"{cfg} is not readable JSON ({e})") from None
        if isinstance(n, int) and n > 0:
            return n, f"{cfg.name}: max_position_embeddings"
    ids = next(i for i in model.graph.input if i.name == embed.input[1])
    dims = ids.type.tensor_type.shape.dim
    if dims and dims[-1].dim_value >= 2:
        return dims[-1].dim_value, f"the static sequence length of {ids.name}"
    raise _fail(g.path, "the graph computes its rotary angles for any position and names no context length",
                "put the model's config.json (max_position_embeddings) beside the .onnx file")


def _structural(model, path: str) -> Model:
    g = _Graph(model, path)
    for n in g.nodes:
        if n.op_type == "If":
            raise _fail(path, f"node '{n.name or n.output[0]}' is an If: a merged decoder (with and without "
                        "past) chooses its branch at run time", "export without --monolith's merge: "
                        "optimum's text-generation or text-generation-with-past task, model.onnx")
        if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx"):
            raise _fail(path, f"node '{n.name or n.output[0]}' uses operator {n.domain + '.' if n.domain else ''}"
                        f"{n.op_type}, which edgeslm's IR cannot express{_WHY_NOT.get(n.op_type, '')}")
    embed = next((n for n in g.nodes if n.op_type == "Gather" and g.const(n.input[0]) is not None
                  and g.const(n.input[0]).ndim == 2 and n.input[1] in g.inputs), None)
    if embed is None:
        raise _fail(path, "no token embedding (a Gather from a 2-D constant by the input ids)")
    emb = g.const(embed.input[0]).astype(np.float32)
    act = _activations(g, embed.output[0])
    negs = _check_activation_ops(g, act)
    linears = []
    for n in g.nodes:
        lw = _linear_weight(g, n)
        if lw is not None:
            linears.append((n, lw[0], lw[1].astype(np.float32), _weight_name(g, n)))
    groups: list[list] = []
    for item in linears:
        if groups and groups[-1][0][1] == item[1]:
            groups[-1].append(item)
        else:
            groups.append([item])
    sizes = [len(gr) for gr in groups]
    L = (len(groups) - 1) // 4
    if L < 1 or sizes != [3, 1, 2, 1] * L + [1]:
        raise _fail(path, f"linear layers grouped by input as {sizes}; a Llama decoder has "
                    "[3, 1, 2, 1] per block and a classifier")
    softmaxes = [n for n in g.nodes if n.op_type == "Softmax"]
    tensors: dict[str, np.ndarray] = {"tok_embeddings": emb}
    sources = {"tok_embeddings": embed.input[0]}
    head_size = None
    eps_seen = set()
    for l in range(L):
        qkv, (o,), (fa, fb), (w2,) = groups[4 * l:4 * l + 4]
        p = f"layers.{l}."
        sm = next((s for s in softmaxes if qkv[0][0].output[0] in g.ancestors(s.output[0])), None)
        if sm is None:
            raise _fail(path, f"block {l}: no Softmax after the q/k/v projections")
        # the q.k MatMul: between this block's projections and its Softmax
        score_mm = next((g.producer[t] for t in g.ancestors(sm.input[0])
                         if t in g.producer and g.producer[t].op_type == "MatMul"
                         and _linear_weight(g, g.producer[t]) is None
                         and any(x[0].output[0] in g.ancestors(t) for x in qkv)), None)
        if score_mm is None:
            raise _fail(path, f"block {l}: no q.k MatMul before the Softmax")
        role, src = {}, {}
        for n, _, w, wname in qkv:
            out = n.output[0]
            r = "wq" if out in g.ancestors(score_mm.input[0]) else "wk" if out in g.ancestors(score_mm.input[1]) \
                else "wv"
            role[r], src[p + "attention." + r] = w, wname
        if len(role) != 3:
            raise _fail(path, f"block {l}: cannot tell q, k and v apart from the attention MatMuls")
        # the score scale, 1/sqrt(head_size): between the q.k MatMul and the Softmax, or split
        # between q and k before it (as exporters decompose scaled_dot_product_attention)
        scale = None
        for t in g.ancestors(sm.input[0]) - g.ancestors(score_mm.output[0]) | {score_mm.output[0]}:
            for c in g.consumers.get(t, []):
                if c.op_type in ("Div", "Mul") and c.output[0] in g.ancestors(sm.input[0]) | {sm.input[0]}:
                    k = next((g.const(i) for i in c.input if g.const(i) is not None and g.const(i).size == 1), None)
                    if k is not None:
                        scale = float(k.reshape(-1)[0]) if c.op_type == "Mul" else 1.0 / float(k.reshape(-1)[0])
        pre = _scalar_factor(g, score_mm.input[0]) * _scalar_factor(g, score_mm.input[1])
        if scale is None and pre != 1.0:
            scale = 1.0
        if scale is None:
            raise _fail(path, f"block {l}: no 1/sqrt(head_size) scale between q.k and Softmax")
        scale *= pre
        hs = int(round(1.0 / scale ** 2))
        if head_size not in (None, hs):
            raise _fail(path, f"block {l}: head size {hs} differs from block 0's {head_size}")
        head_size = hs
        # SwiGLU: this block's Sigmoid feeds the down projection and sees exactly one up projection
        down_in = g.ancestors(w2[1])
        sig = next((s for s in reversed(g.nodes) if s.op_type == "Sigmoid" and s.output[0] in down_in), None)
        seen = g.ancestors(sig.input[0]) if sig is not None else frozenset()
        a_gate, b_gate = fa[0].output[0] in seen, fb[0].output[0] in seen
        if a_gate == b_gate:
            raise _fail(path, f"block {l}: no SwiGLU (exactly one of the two up projections must pass a Sigmoid)")
        (w1, s1), (w3, s3) = ((fa[2], fa[3]), (fb[2], fb[3])) if a_gate else ((fb[2], fb[3]), (fa[2], fa[3]))
        sources.update(src)
        sources.update({p + "attention.wo": o[3], p + "feed_forward.w1": s1, p + "feed_forward.w2": w2[3],
                        p + "feed_forward.w3": s3})
        att_w, att_eps, sources[p + "attention_norm"] = _norm(g, qkv[0][1])
        ffn_w, ffn_eps, sources[p + "ffn_norm"] = _norm(g, fa[1])
        eps_seen |= {att_eps, ffn_eps}
        tensors.update({p + "attention_norm": att_w, p + "attention.wq": role["wq"],
                        p + "attention.wk": role["wk"], p + "attention.wv": role["wv"],
                        p + "attention.wo": o[2], p + "ffn_norm": ffn_w, p + "feed_forward.w1": w1,
                        p + "feed_forward.w2": w2[2], p + "feed_forward.w3": w3})
    (cls,) = groups[-1]
    final_w, final_eps, sources["norm"] = _norm(g, cls[1])
    eps_seen.add(final_eps)
    if len(eps_seen) != 1:
        raise _fail(path, f"RMSNorm epsilons differ between layers: {sorted(eps_seen)}")
    tensors["norm"] = final_w
    shared = cls[2].shape == emb.shape and np.array_equal(cls[2], emb)
    if not shared:
        tensors["output"], sources["output"] = cls[2], cls[3]
    dim = emb.shape[1]
    half = head_size // 2
    in_graph = _rope_in_graph(g, model, act, half)
    if in_graph is not None:
        (conv, theta), (rows, context_from) = in_graph, _context(g, model, embed)
    else:
        (conv, theta, rows), context_from = _rope_tables(g, half), "the rows of the folded rotary tables"
    n_heads = tensors["layers.0.attention.wq"].shape[0] // head_size
    n_kv_heads = tensors["layers.0.attention.wk"].shape[0] // head_size
    if conv == "rotate_half":
        if not negs:
            raise _fail(path, "the rotary angles are laid out for rotate_half (halves repeated), but no Neg "
                        "flips the sign of a half")
        for l in range(L):
            for w, heads in (("wq", n_heads), ("wk", n_kv_heads)):
                name = f"layers.{l}.attention.{w}"
                tensors[name] = unpermute_rotate_half(tensors[name], heads)
    elif negs:
        raise _fail(path, f"node '{negs[0].name or negs[0].output[0]}' negates activations, and the rotary "
                    "angles are interleaved: not a rotation the IR has")
    cfg = ModelConfig(dim=dim, hidden_dim=tensors["layers.0.feed_forward.w1"].shape[0], n_layers=L,
                      n_heads=n_heads, n_kv_heads=n_kv_heads,
                      vocab_size=emb.shape[0], max_seq_len=rows, shared_classifier=shared,
                      norm_eps=eps_seen.pop(), rope_theta=theta)
    m = make_model(cfg, tensors, path)
    for name in list(sources):
        if conv == "rotate_half" and name.endswith(("attention.wq", "attention.wk")):
            sources[name] += " (rows un-permuted: rotate_half -> interleaved pairs)"
    m.meta.update({
        "format": "onnx (structural import)",
        "tensor_sources": sources,
        "decisions": {
            "rope": f"{conv}" + (", wq/wk rows un-permuted per head into interleaved pairs" if conv == "rotate_half"
                                 else "") + (", angles computed in the graph" if in_graph else
                                             ", folded cos/sin tables"),
            "context": f"{rows} from {context_from}",
            "classifier": "tied to the embedding" if shared else "its own weight",
            "gqa": f"{n_heads} query heads share {n_kv_heads} kv heads ({n_heads // n_kv_heads} per kv head)",
        },
    })
    return m


def _edgeslm_format(model, meta: dict, path: str) -> Model:
    from onnx import numpy_helper
    try:
        cfg = ModelConfig(**json.loads(meta["edgeslm.config"]))
    except (KeyError, TypeError, ValueError) as e:
        raise _fail(path, f"edgeslm metadata is unreadable ({e})") from None
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    from .ir import tensor_shapes
    missing = [n for n in tensor_shapes(cfg) if n not in inits]
    if missing:
        raise _fail(path, f"edgeslm graph lacks initializers {missing[:3]}")
    m = make_model(cfg, {n: inits[n] for n in tensor_shapes(cfg)}, path)
    want = meta.get("edgeslm.fingerprint")
    if want and m.fingerprint() != want:
        raise _fail(path, "weights do not match the fingerprint in the metadata (the file was altered)")
    if "edgeslm.tokenizer_sha256" in meta:
        m.meta["tokenizer_sha256"] = meta["edgeslm.tokenizer_sha256"]
    return m


def read_onnx(path: str | Path) -> Model:
    import onnx
    path = str(path)
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise ModelFormatError(f"cannot read model file {path}: no such file") from None
    except Exception as e:        # onnx raises protobuf's DecodeError and friends
        raise ModelFormatError(f"{path}: not a readable ONNX file ({type(e).__name__}: {e})",
                               "the file is corrupt or truncated; export it again") from None
    meta = {p.key: p.value for p in model.metadata_props}
    if meta.get("edgeslm.format", "").startswith("edgeslm-decode-step/"):
        return _edgeslm_format(model, meta, path)
    return _structural(model, path)
