"""ONNX interchange, checked against onnxruntime (an oracle nobody here wrote): our decode-step
export, the exact round trip, and import of graphs torch's own exporters produce."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeslm.errors import ModelFormatError, ModelMismatchError
from edgeslm.model import load_model, load_tokenizer
from edgeslm.model.onnx_export import export_decode_step
from edgeslm.model.onnx_import import _structural
from edgeslm.quant import get_scheme, quantize
from edgeslm.quant.golden import GoldenEngine
from edgeslm.reference import FloatEngine

from conftest import shared


def _session(m: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("which", ["stories", "aidreams"])
def test_export_runs_in_onnxruntime_and_matches_float(request, which):
    model, tok = request.getfixturevalue(which)
    c = model.config
    sess = _session(export_decode_step(model, tok))
    names = [o.name for o in sess.get_outputs()]
    past = {f"past_{k}.{l}": np.zeros((c.n_kv_heads, c.max_seq_len, c.head_size), np.float32)
            for l in range(c.n_layers) for k in ("key", "value")}
    eng, token = FloatEngine(model), 1
    for pos in range(min(80, c.max_seq_len)):
        out = dict(zip(names, sess.run(None, {"input_ids": np.array([[token]], np.int64),
                                              "position": np.array([pos], np.int64), **past})))
        ref = eng.forward(token, pos)
        np.testing.assert_allclose(out["logits"][0], ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
        assert int(np.argmax(out["logits"][0])) == int(np.argmax(ref))       # same greedy token
        past = {k.replace("present", "past"): v for k, v in out.items() if k != "logits"}
        token = int(np.argmax(ref))


def test_export_names_and_metadata(stories):
    model, tok = stories
    m = export_decode_step(model, tok)
    inits = {t.name for t in m.graph.initializer}
    assert {"tok_embeddings", "layers.0.attention.wq", "layers.4.feed_forward.w2", "norm"} <= inits
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["edgeslm.fingerprint"] == model.fingerprint()
    assert meta["edgeslm.tokenizer_sha256"] == tok.identity()


def test_round_trip_is_exact_both_ways_in(stories, tmp_path):
    model, tok = stories
    p = tmp_path / "s.onnx"
    onnx.save(export_decode_step(model, tok), str(p))
    for m in (load_model(p), _structural(onnx.load(str(p)), str(p))):   # by metadata, by structure
        assert m.config.dim == model.config.dim and m.config.n_kv_heads == 4
        for name, t in model.tensors.items():
            assert np.array_equal(m.tensors[name], t), name
    assert load_model(p).fingerprint() == model.fingerprint()
    with pytest.raises(ModelMismatchError, match="exported with"):
        load_tokenizer(shared("aidreams260K/tok512.bin"), load_model(p))


def test_onnx_model_flows_through_quantization_and_golden(stories, tmp_path):
    model, tok = stories
    p = tmp_path / "s.onnx"
    onnx.save(export_decode_step(model, tok), str(p))
    from edgeslm.generate import generate
    from edgeslm.sampler import engine_sampler
    outs = [generate(GoldenEngine(quantize(m, get_scheme("q8"))), tok, "Tom and Lily", 80,
                     engine_sampler("golden", 0.8, 0.9, 3)).tokens for m in (model, load_model(p))]
    assert outs[0] == outs[1]


@pytest.fixture(scope="module")
def torch_llama():
    pytest.importorskip("torch", reason="torch is a dev dependency: pip install -e '.[dev]'")
    import torch_llama
    return torch_llama


GRAPHS = {  # different head / kv-head counts, one tied and one untied classifier
    "gqa8x4-tied": dict(dim=64, hidden=172, n_layers=2, n_heads=8, n_kv_heads=4, tied=True, seed=0),
    "gqa6x2-untied": dict(dim=48, hidden=128, n_layers=3, n_heads=6, n_kv_heads=2, tied=False, seed=1,
                          theta=500000.0),
}


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
@pytest.mark.parametrize("name", list(GRAPHS))
def test_torch_exported_graph_imports_and_matches_onnxruntime(torch_llama, tmp_path, name, dynamo):
    kw = GRAPHS[name]
    net = torch_llama.Llama(**kw)
    p = tmp_path / f"{name}.onnx"
    torch_llama.export(net, p, dynamo)
    m = load_model(p)
    c = m.config
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads) == (kw["dim"], kw["n_layers"], kw["n_heads"], kw["n_kv_heads"])
    assert c.shared_classifier == kw["tied"] and c.rope_theta == kw.get("theta", 10000.0)
    tokens = np.random.default_rng(7).integers(0, c.vocab_size, (1, c.max_seq_len))
    ref = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(
        None, {"input_ids": tokens.astype(np.int64)})[0][0]
    eng = FloatEngine(m)
    got = np.stack([eng.forward(int(t), i) for i, t in enumerate(tokens[0])])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_unsupported_operator_is_named(torch_llama, tmp_path):
    import torch.nn.functional as F
    net = torch_llama.Llama(n_layers=1)
    ff = net.layers[0].feed_forward
    ff.forward = lambda x: ff.w2(F.gelu(ff.w1(x)) * ff.w3(x))        # GELU: an Erf the IR lacks
    p = tmp_path / "gelu.onnx"
    torch_llama.export(net, p, dynamo=False)
    with pytest.raises(ModelFormatError, match=r"node '.*' uses operator Erf.*SwiGLU"):
        load_model(p)


def test_corrupt_onnx_file_is_refused(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_bytes(b"\x08\x07garbage that is not a protobuf" * 10)
    with pytest.raises(ModelFormatError, match="not a readable ONNX file"):
        load_model(p)


def test_altered_weights_fail_the_fingerprint(stories, tmp_path):
    model, tok = stories
    m = export_decode_step(model, tok)
    t = next(t for t in m.graph.initializer if t.name == "norm")
    arr = onnx.numpy_helper.to_array(t).copy()
    arr[0] += 1.0
    t.CopyFrom(onnx.numpy_helper.from_array(arr, "norm"))
    p = tmp_path / "altered.onnx"
    onnx.save(m, str(p))
    with pytest.raises(ModelFormatError, match="fingerprint"):
        load_model(p)
