"""ONNX graphs of Hugging Face Llama models as the exporters people use make them, imported by
structure: torch.onnx.export (TorchScript and dynamo) and optimum's exporter (with and without past
key values). Rotary angles are computed in the graph (inv_freq @ positions, Cos/Sin, rotate_half from
Slice/Neg/Concat), masks are built in the graph. Oracles: onnxruntime running the same graph, and
transformers running the checkpoint it was exported from. No downloads."""

import contextlib

import numpy as np
import pytest

from edgeslm.errors import ModelFormatError
from edgeslm.model import load_model
from edgeslm.reference import FloatEngine

torch = pytest.importorskip("torch", reason="torch is a dev dependency: pip install -e '.[dev]'")
transformers = pytest.importorskip("transformers", reason="transformers is a dev dependency")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a dev dependency")

from test_hf_import import SHAPES, random_llama  # noqa: E402

PROMPT = [1, 5, 17, 200, 3, 99, 42]


class _Logits(torch.nn.Module):
    """input_ids (and an all-ones attention mask, so transformers builds a plain causal mask) -> logits."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, input_ids):
        return self.net(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits


@contextlib.contextmanager
def _masks_without_vmap():
    """transformers builds masks with vmap, which TorchScript cannot trace; optimum's exporter swaps
    in these vmap-free equivalents, and so does a user of torch.onnx.export's TorchScript path."""
    from optimum.exporters.onnx.model_patcher import eager_mask_without_vmap, sdpa_mask_without_vmap
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, eager_mask, sdpa_mask
    ALL_MASK_ATTENTION_FUNCTIONS.register("sdpa", sdpa_mask_without_vmap)
    ALL_MASK_ATTENTION_FUNCTIONS.register("eager", eager_mask_without_vmap)
    try:
        yield
    finally:
        ALL_MASK_ATTENTION_FUNCTIONS.register("sdpa", sdpa_mask)
        ALL_MASK_ATTENTION_FUNCTIONS.register("eager", eager_mask)


def export(net, hf_dir, out_dir, exporter: str):
    """The graph file of one exporter: torchscript, dynamo, optimum (no past) or optimum-past."""
    out_dir.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([PROMPT])
    if exporter.startswith("optimum"):
        from optimum.exporters.onnx import main_export
        task = "text-generation-with-past" if exporter == "optimum-past" else "text-generation"
        main_export(str(hf_dir), output=str(out_dir), task=task, do_validation=False, no_post_process=True)
        return out_dir / "model.onnx"
    path = out_dir / "model.onnx"
    kw = dict(input_names=["input_ids"], output_names=["logits"])
    if exporter == "dynamo":
        torch.onnx.export(_Logits(net), (ids,), path, dynamo=True, verbose=False,
                          dynamic_shapes=({1: torch.export.Dim("seq", min=2, max=64)},), **kw)
    else:
        with _masks_without_vmap():
            torch.onnx.export(_Logits(net), (ids,), path, dynamo=False, opset_version=17,
                              dynamic_axes={"input_ids": {1: "seq"}}, **kw)
    (out_dir / "config.json").write_text((hf_dir / "config.json").read_text())   # the context length
    return path


def ort_logits(path, tokens):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    t = np.array([tokens], np.int64)
    feeds = {}
    for i in sess.get_inputs():
        if i.name == "input_ids":
            feeds[i.name] = t
        elif i.name == "attention_mask":
            feeds[i.name] = np.ones_like(t)
        elif i.name == "position_ids":
            feeds[i.name] = np.arange(t.shape[1], dtype=np.int64)[None]
        elif i.name.startswith("past_key_values"):
            shape = [1 if d == "batch_size" else 0 if isinstance(d, str) else d for d in i.shape]
            feeds[i.name] = np.zeros(shape, np.float32)
        else:
            raise AssertionError(f"unexpected graph input {i.name}")
    return sess.run(["logits"], feeds)[0][0]


EXPORTERS = ["torchscript", "dynamo", "optimum", "optimum-past"]
CASES = [("gqa6x2-untied-theta500", "torchscript"), ("gqa6x2-untied-theta500", "dynamo"),
         ("gqa6x2-untied-theta500", "optimum"), ("gqa6x2-untied-theta500", "optimum-past"),
         ("mha4-tied", "dynamo"), ("mha4-tied", "optimum")]


@pytest.fixture(scope="module")
def hf_models(tmp_path_factory):
    """name -> (LlamaForCausalLM, its save_pretrained directory), made once per module."""
    out = {}
    for name in {c[0] for c in CASES}:
        d = tmp_path_factory.mktemp(name)
        net = random_llama(**SHAPES[name])
        net.save_pretrained(d)
        out[name] = (net, d)
    return out


@pytest.mark.parametrize("name,exporter", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_exported_graph_imports_and_matches_onnxruntime_and_transformers(hf_models, tmp_path, name, exporter):
    net, hf_dir = hf_models[name]
    path = export(net, hf_dir, tmp_path / exporter, exporter)
    m = load_model(path)
    c, kw = m.config, SHAPES[name]
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size) == \
        (kw["hidden_size"], kw["num_hidden_layers"], kw["num_attention_heads"], kw["num_key_value_heads"],
         kw["vocab_size"])
    assert c.shared_classifier == kw["tie_word_embeddings"] and c.rope_theta == kw.get("rope_theta", 10000.0)
    assert c.max_seq_len == 64 and m.meta["decisions"]["rope"].startswith("rotate_half")
    eng = FloatEngine(m)
    got = np.stack([eng.forward(t, i) for i, t in enumerate(PROMPT)])
    ref = ort_logits(path, PROMPT)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    with torch.no_grad():
        hf = net(torch.tensor([PROMPT])).logits[0].numpy()
    np.testing.assert_allclose(got, hf, rtol=1e-4, atol=1e-4 * np.abs(hf).max())
    # the import is the same model as the checkpoint's own import
    direct = load_model(hf_dir)
    for k, t in direct.tensors.items():
        np.testing.assert_array_equal(m.tensors[k], t, err_msg=k)


def test_refusals_name_the_reason(hf_models, tmp_path):
    """Single-fault cases: no context length, scaled RoPE, a merged decoder's If."""
    import onnx
    from onnx import TensorProto, helper
    kw = {**SHAPES["mha4-tied"], "rope_scaling": {"rope_type": "linear", "factor": 2.0}}
    net = random_llama(**kw)
    net.save_pretrained(tmp_path / "hf")
    path = export(net, tmp_path / "hf", tmp_path / "scaled", "torchscript")
    with pytest.raises(ModelFormatError, match=r"rotary frequencies are not theta\^\(-2j/head_size\): a scaled RoPE"):
        load_model(path)
    net, hf_dir = hf_models["mha4-tied"]
    path = export(net, hf_dir, tmp_path / "plain", "torchscript")
    (tmp_path / "plain" / "config.json").unlink()
    with pytest.raises(ModelFormatError, match=r"names no context length"):
        load_model(path)
    # a merged decoder chooses between its with-past and without-past graphs with an If
    branch = lambda name: helper.make_graph([helper.make_node("Identity", ["x"], [name])], name, [],  # noqa: E731
                                            [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1])])
    g = helper.make_graph([helper.make_node("If", ["use_cache_branch"], ["logits"], name="optimum::if",
                                            then_branch=branch("a"), else_branch=branch("b"))], "merged",
                          [helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1]),
                           helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1])])
    onnx.save(helper.make_model(g), tmp_path / "merged.onnx")
    with pytest.raises(ModelFormatError, match=r"node 'optimum::if' is an If: a merged decoder"):
        load_model(tmp_path / "merged.onnx")
