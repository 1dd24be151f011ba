"""Export the i8 model as one decode step in TFLite, with TFLite-Micro builtin ops only, so that
tflite-micro runs the same model on the host (and, later, on the board as the peer baseline).

Inputs   token int32 [1]; rope int8 [head_size, head_size] (the position's rotation matrix, scale
         1/127); mask bool [1, 1, S+1] (true for cache slots 0..pos-1 and for the new slot S);
         past_key.{l} / past_value.{l} int8 [kv_heads, S, head_size] (S = the context length)
Outputs  logits int8 [1, vocab]; key.{l} / value.{l} int8 [kv_heads, head_size] (this position's
         rotated key and value: the host writes them into slot pos of the caches)

Every op is the i8 scheme's own TFLM twin (quant/int8.py), except:
  RMSNorm    MUL(x, x) -> MEAN -> RSQRT -> MUL(x, r) -> MUL(w): TFLM has no RMSNorm, and this
             int8 composite is not edgeslm's integer RMSNorm (which keeps sum(x^2) exact)
  attention  the .tflite attends over all S+1 slots, masked ones set to int8 min by SELECT_V2;
             TFLM's softmax drops them only when they sit more than its diff_min below the row max
tests/test_tflite_export.py measures what these two change in the logits.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import EdgeslmError
from . import tflm_int as T
from .int8 import ROT_SCALE, I8Model, embedding_rows

I8_MIN = -128


def _schema():
    try:
        import flatbuffers
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as S
    except ImportError:
        raise EdgeslmError("export-tflite needs the TFLite schema bindings of the tflite-micro wheel",
                           "pip install tflite-micro flatbuffers (or pip install -e '.[dev]')") from None
    return S, flatbuffers


class _Graph:
    """Tensors and operators of one subgraph; constants live in buffers."""

    def __init__(self):
        self.S, self.fb = _schema()
        self.tensors, self.buffers, self.ops, self.codes = [], [self.S.BufferT()], [], {}
        self.index: dict[str, int] = {}

    def tensor(self, name: str, shape, dtype: str, q: tuple[float, int] | None = None,
               data: np.ndarray | None = None, per_channel: np.ndarray | None = None) -> int:
        S = self.S
        t = S.TensorT()
        t.name, t.shape = name, [int(d) for d in shape]
        t.type = {"int8": S.TensorType.INT8, "int32": S.TensorType.INT32, "bool": S.TensorType.BOOL}[dtype]
        if q is not None or per_channel is not None:
            qp = S.QuantizationParametersT()
            if per_channel is not None:
                qp.scale, qp.zeroPoint = [float(v) for v in per_channel], [0] * len(per_channel)
            else:
                qp.scale, qp.zeroPoint = [float(q[0])], [int(q[1])]
            t.quantization = qp
        b = S.BufferT()
        if data is not None:
            b.data = np.ascontiguousarray(data).tobytes()
        self.buffers.append(b)
        t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        self.index[name] = len(self.tensors) - 1
        return len(self.tensors) - 1

    def op(self, code: int, inputs: list[int], outputs: list[int], opt_type: int = 0, opt=None) -> None:
        S = self.S
        if code not in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
            self.codes[code] = (len(self.codes), oc)
        o = S.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = self.codes[code][0], inputs, outputs
        o.builtinOptionsType, o.builtinOptions = opt_type, opt
        self.ops.append(o)

    def finish(self, inputs: list[int], outputs: list[int]) -> bytes:
        S = self.S
        m = S.ModelT()
        m.version = 3
        m.operatorCodes = [oc for _, oc in sorted(self.codes.values(), key=lambda v: v[0])]
        sg = S.SubGraphT()
        sg.tensors, sg.inputs, sg.outputs, sg.operators = self.tensors, inputs, outputs, self.ops
        m.subgraphs, m.buffers = [sg], self.buffers
        b = self.fb.Builder(1 << 20)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        return bytes(b.Output())


def probe_names(n_layers: int) -> list[str]:
    """Intermediate tensors that export_tflite(probes=True) adds as outputs, after the K/V rows."""
    per_layer = ["att_norm", "q_rot", "att_out", "x_att", "ffn_norm", "x_ffn"]
    return ["x0"] + [f"{l}.{n}" for l in range(n_layers) for n in per_layer] + ["final_norm"]


def export_tflite(qm: I8Model, probes: bool = False) -> bytes:
    """The decode-step .tflite for a quantized (i8) model; `probes` also outputs the tensors of
    probe_names() (for checking the graph block by block against the golden model)."""
    S = _schema()[0]
    B, O = S.BuiltinOperator, S.BuiltinOptions
    c, P = qm.model.config, qm.params
    missing = [n for n in ("final_norm.sq", "0.att_norm.sq") if n not in qm.calib.ranges]
    if missing:
        raise EdgeslmError("the calibration file has no RMSNorm component ranges (made by an older edgeslm)",
                           "calibrate again: edgeslm calibrate MODEL -o calib.json")
    g = _Graph()
    hs, kv, rep, seq = c.head_size, c.n_kv_heads, c.n_heads // c.n_kv_heads, c.max_seq_len

    def fc(name, x, lin, out_q, n_out, rows=1):
        w = g.tensor(name + ".w", lin.w.shape, "int8", data=lin.w, per_channel=lin.w_scale)
        y = g.tensor(name, [rows, n_out], "int8", out_q)
        g.op(B.FULLY_CONNECTED, [x, w, -1], [y], O.FullyConnectedOptions, S.FullyConnectedOptionsT())
        return y

    def binary(code, name, a, b, out_q, shape, opt_type=0, opt=None):
        y = g.tensor(name, shape, "int8", out_q)
        g.op(code, [a, b], [y], opt_type, opt)
        return y

    def reshape(name, x, shape, q):
        y = g.tensor(name, shape, "int8", q)
        g.op(B.RESHAPE, [x, g.tensor(name + ".shape", [len(shape)], "int32", data=np.array(shape, np.int32))], [y])
        return y

    def rmsnorm(name, x, weight, out_q):
        sq = binary(B.MUL, name + ".sq", x, x, P[name + ".sq"], [1, c.dim], O.MulOptions, S.MulOptionsT())
        opts = S.ReducerOptionsT()
        opts.keepDims = True
        ms = g.tensor(name + ".ms", [1, 1], "int8", P[name + ".ms"])
        g.op(B.MEAN, [sq, g.tensor(name + ".axis", [1], "int32", data=np.array([1], np.int32))], [ms],
             O.ReducerOptions, opts)
        r = g.tensor(name + ".r", [1, 1], "int8", P[name + ".r"])
        g.op(B.RSQRT, [ms], [r])
        n = binary(B.MUL, name + ".n", x, r, P[name + ".n"], [1, c.dim], O.MulOptions, S.MulOptionsT())
        ws = float(np.abs(weight).max()) / 127 or 1.0
        wq = np.clip(np.rint(weight / ws), -127, 127).astype(np.int8)
        w = g.tensor(name + ".weight", [1, c.dim], "int8", (ws, 0), data=wq)
        return binary(B.MUL, name, n, w, out_q, [1, c.dim], O.MulOptions, S.MulOptionsT())

    # the embedding table holds exactly what the i8 embedding computes for each token
    table = embedding_rows(qm, np.arange(c.vocab_size))
    token = g.tensor("token", [1], "int32")
    rope = g.tensor("rope", [hs, hs], "int8", (ROT_SCALE, 0))
    mask = g.tensor("mask", [1, 1, seq + 1], "bool")
    inputs, outputs = [token, rope, mask], []
    x = g.tensor("x0", [1, c.dim], "int8", P["x0"])
    g.op(B.GATHER, [g.tensor("tok_embeddings", table.shape, "int8", P["x0"], data=table), token],
         [x], O.GatherOptions, S.GatherOptionsT())
    for l, Ly in enumerate(qm.layers):
        L = lambda n: P[f"{l}.{n}"]      # noqa: E731
        p = f"layers.{l}."
        xn = rmsnorm(f"{l}.att_norm", x, qm.model.tensors[p + "attention_norm"], L("att_norm"))
        q = fc(f"{l}.q", xn, Ly["wq"], L("q"), c.dim)
        k = fc(f"{l}.k", xn, Ly["wk"], L("k"), c.kv_dim)
        v = fc(f"{l}.v", xn, Ly["wv"], L("v"), c.kv_dim)
        qh = reshape(f"{l}.q_heads", q, [c.n_heads, hs], L("q"))
        kh = reshape(f"{l}.k_heads", k, [kv, hs], L("k"))
        q_rot = g.tensor(f"{l}.q_rot", [c.n_heads, hs], "int8", L("q_rot"))
        g.op(B.FULLY_CONNECTED, [qh, rope, -1], [q_rot], O.FullyConnectedOptions, S.FullyConnectedOptionsT())
        k_rot = g.tensor(f"key.{l}", [kv, hs], "int8", L("k_rot"))
        g.op(B.FULLY_CONNECTED, [kh, rope, -1], [k_rot], O.FullyConnectedOptions, S.FullyConnectedOptionsT())
        v_new = reshape(f"value.{l}", v, [kv, hs], L("v"))
        outputs += [k_rot, v_new]
        caches = []
        for kind, new, qp in (("key", k_rot, L("k_rot")), ("value", v_new, L("v"))):
            past = g.tensor(f"past_{kind}.{l}", [kv, seq, hs], "int8", qp)
            inputs.append(past)
            new3 = reshape(f"{l}.{kind}_new3", new, [kv, 1, hs], qp)
            full = g.tensor(f"{l}.{kind}_all", [kv, seq + 1, hs], "int8", qp)
            opts = S.ConcatenationOptionsT()
            opts.axis = 1
            g.op(B.CONCATENATION, [past, new3], [full], O.ConcatenationOptions, opts)
            caches.append(full)
        q3 = reshape(f"{l}.q_groups", q_rot, [kv, rep, hs], L("q_rot"))
        s_eff = T.f32(L("scores")[0] * math.sqrt(hs))            # 1/sqrt(hd) folded, as in int8.py
        scores = g.tensor(f"{l}.scores", [kv, rep, seq + 1], "int8", (s_eff, L("scores")[1]))
        bmm = S.BatchMatMulOptionsT()
        bmm.adjY = True
        g.op(B.BATCH_MATMUL, [q3, caches[0]], [scores], O.BatchMatMulOptions, bmm)
        # reinterpret at the softmax's input scale (same bits), then mask with int8 min
        scores_s = reshape(f"{l}.scores_scaled", scores, [kv, rep, seq + 1], L("scores"))
        lowest = g.tensor(f"{l}.masked_value", [1, 1, 1], "int8", L("scores"), data=np.array([[[I8_MIN]]], np.int8))
        masked = g.tensor(f"{l}.masked", [kv, rep, seq + 1], "int8", L("scores"))
        g.op(B.SELECT_V2, [mask, scores_s, lowest], [masked])
        probs = g.tensor(f"{l}.probs", [kv, rep, seq + 1], "int8", (1.0 / 256.0, -128))
        sm = S.SoftmaxOptionsT()
        sm.beta = 1.0
        g.op(B.SOFTMAX, [masked], [probs], O.SoftmaxOptions, sm)
        att = g.tensor(f"{l}.att", [kv, rep, hs], "int8", L("att_out"))
        g.op(B.BATCH_MATMUL, [probs, caches[1]], [att], O.BatchMatMulOptions, S.BatchMatMulOptionsT())
        att = reshape(f"{l}.att_out", att, [1, c.dim], L("att_out"))
        o = fc(f"{l}.o", att, Ly["wo"], L("o"), c.dim)
        x = binary(B.ADD, f"{l}.x_att", x, o, L("x_att"), [1, c.dim], O.AddOptions, S.AddOptionsT())
        xn = rmsnorm(f"{l}.ffn_norm", x, qm.model.tensors[p + "ffn_norm"], L("ffn_norm"))
        h1 = fc(f"{l}.h1", xn, Ly["w1"], L("h1"), c.hidden_dim)
        h3 = fc(f"{l}.h3", xn, Ly["w3"], L("h3"), c.hidden_dim)
        sig = g.tensor(f"{l}.sigmoid", [1, c.hidden_dim], "int8", (1.0 / 256.0, -128))
        g.op(B.LOGISTIC, [h1], [sig])
        silu = binary(B.MUL, f"{l}.silu", h1, sig, L("silu"), [1, c.hidden_dim], O.MulOptions, S.MulOptionsT())
        gated = binary(B.MUL, f"{l}.gated", silu, h3, L("gated"), [1, c.hidden_dim], O.MulOptions, S.MulOptionsT())
        f = fc(f"{l}.f", gated, Ly["w2"], L("f"), c.dim)
        x = binary(B.ADD, f"{l}.x_ffn", x, f, L("x_ffn"), [1, c.dim], O.AddOptions, S.AddOptionsT())
    xn = rmsnorm("final_norm", x, qm.model.tensors["norm"], P["final_norm"])
    logits = fc("logits", xn, qm.classifier, P["logits"], c.vocab_size)
    if probes:
        outputs += [g.index[n] for n in probe_names(c.n_layers)]
    return g.finish(inputs, [logits] + outputs)


class TfliteStepper:
    """Runs an exported decode step in tflite-micro, keeping the KV caches on the host."""

    def __init__(self, qm: I8Model, model_bytes: bytes, probes: bool = False):
        from tflite_micro import runtime
        self.with_probes, self.probes = probes, {}
        self.qm, c = qm, qm.model.config
        self.interp = runtime.Interpreter.from_bytes(model_bytes, arena_size=4 << 20)
        self.seq = c.max_seq_len
        zk = [qm.params[f"{l}.k_rot"][1] for l in range(c.n_layers)]
        zv = [qm.params[f"{l}.v"][1] for l in range(c.n_layers)]
        shape = (c.n_kv_heads, self.seq, c.head_size)
        # unused slots hold each cache's zero point: real zero, so they add nothing
        self.keys = [np.full(shape, z, np.int8) for z in zk]
        self.values = [np.full(shape, z, np.int8) for z in zv]

    def forward(self, token: int, pos: int) -> np.ndarray:
        """Logits (int8) for `token` at `pos`; self.probes holds any probe outputs by name."""
        c = self.qm.model.config
        mask = np.zeros((1, 1, self.seq + 1), bool)
        mask[0, 0, :pos] = True
        mask[0, 0, self.seq] = True
        feeds = [np.array([token], np.int32), self.qm.rope[pos], mask]
        for l in range(c.n_layers):
            feeds += [self.keys[l], self.values[l]]
        for i, f in enumerate(feeds):
            self.interp.set_input(f, i)
        self.interp.invoke()
        for l in range(c.n_layers):
            self.keys[l][:, pos] = self.interp.get_output(1 + 2 * l)
            self.values[l][:, pos] = self.interp.get_output(2 + 2 * l)
        self.probes = {}
        if self.with_probes:
            first = 1 + 2 * c.n_layers
            self.probes = {n: self.interp.get_output(first + i).copy()
                           for i, n in enumerate(probe_names(c.n_layers))}
        return self.interp.get_output(0).reshape(-1)
