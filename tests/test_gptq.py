"""GPTQ rounding (quant/gptq.py): the stored format of round-to-nearest, a smaller layer output error,
the Hessians a calibration collects, and the firmware still equal to golden with GPTQ weights."""

from dataclasses import dataclass

import numpy as np
import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.quant import Scheme, get_scheme, quantize, quantize_matrix
from edgeslm.quant.calibrate import (Calibration, CalibrationError, TextDataReader, calibrate,
                                     hessian_inputs, model_hessians)
from edgeslm.quant.gptq import gptq_quantize, mse_scales

F = np.float32


def _layer(seed: int, rows: int = 24, cols: int = 70, n: int = 600):
    """A random layer and correlated inputs, as a transformer's normed activations are."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(rows, cols)).astype(F)
    mix = rng.normal(size=(cols, cols)) / np.sqrt(cols) + np.eye(cols)
    x = rng.normal(size=(n, cols)) @ mix * rng.uniform(0.2, 3.0, size=cols)
    return w, x


@pytest.mark.parametrize("bits,gs", [(8, 32), (4, 32), (4, 16), (8, 64)])
def test_gptq_stores_the_rtn_format(bits, gs):
    w, x = _layer(1)
    ref = quantize_matrix(w, bits, gs)
    q, s = gptq_quantize(w, bits, gs, x.T @ x / len(x))
    qmax = {8: 127, 4: 7}[bits]
    assert q.dtype == ref.values.dtype == np.int8 and q.shape == ref.values.shape
    assert s.dtype == ref.scales.dtype == np.float32 and s.shape == ref.scales.shape
    assert q.min() >= -qmax and q.max() <= qmax
    assert (s >= 0).all() and np.isfinite(s).all()


@pytest.mark.parametrize("bits", [8, 4])
def test_gptq_beats_rtn_on_the_layer_output(bits):
    """||W X - Q X||, the quantity GPTQ minimizes, computed here without its Hessian machinery."""
    for seed in (2, 3, 4):
        w, x = _layer(seed)
        rtn = quantize_matrix(w, bits, 32).dequantize().astype(np.float64)
        q, s = gptq_quantize(w, bits, 32, x.T @ x / len(x))
        gq = q * np.repeat(s, 32, axis=1)[:, :w.shape[1]].astype(np.float64)
        err = lambda wq: np.linalg.norm((w - wq) @ x.T)           # noqa: E731
        assert err(gq) < 0.9 * err(rtn), seed             # measured 0.69-0.80


def test_gptq_zero_group_and_dead_input():
    w, x = _layer(5, cols=64)
    w[:, :32] = 0.0                       # an all-zero group: scale 0, values 0, as in RTN
    x[:, 40] = 0.0                        # an input never seen in calibration
    q, s = gptq_quantize(w, 4, 32, x.T @ x / len(x))
    assert (s[:, 0] == 0).all() and (q[:, :32] == 0).all()
    assert np.isfinite(s).all() and (s[:, 1] > 0).all()


def test_mse_scale_never_worse_than_max_abs():
    rng = np.random.default_rng(6)
    w = rng.standard_t(3, size=(50, 32))             # heavy tails: clipping pays
    amax = np.abs(w).max(axis=1)
    for qmax in (7, 127):
        s = mse_scales(w, qmax).astype(np.float64)[:, None]
        s0 = (amax / qmax).astype(F).astype(np.float64)[:, None]
        err = lambda sc: ((w - np.clip(np.rint(w / sc), -qmax, qmax) * sc) ** 2).sum(axis=1)  # noqa: E731
        assert (err(s) <= err(s0)).all() and (s <= s0).all()
    assert (mse_scales(w, 7) < (amax / 7).astype(F)).any()


@pytest.fixture(scope="module")
def tiny_hessians(aidreams):
    model, _ = aidreams
    return model_hessians(model, 200)


def test_quantize_gptq_model(aidreams, tiny_hessians):
    model, _ = aidreams
    for name in ("q8", "q4"):
        scheme = get_scheme(name)
        rtn, gq = quantize(model, scheme, "rtn"), quantize(model, scheme, "gptq", tiny_hessians)
        assert rtn.meta["rounding"] == "rtn" and gq.meta["rounding"] == "gptq"
        assert rtn.tensors.keys() == gq.tensors.keys()
        for k, t in rtn.tensors.items():
            g = gq.tensors[k]
            if isinstance(t, np.ndarray):
                assert g is t
                continue
            assert (g.bits, g.group_size, g.values.dtype, g.values.shape, g.scales.dtype, g.scales.shape) == \
                (t.bits, t.group_size, t.values.dtype, t.values.shape, t.scales.dtype, t.scales.shape)
            assert np.abs(g.values).max() <= (7 if g.bits == 4 else 127)
        changed = [k for k in rtn.tensors if k.endswith("w2") and
                   not np.array_equal(rtn.tensors[k].values, gq.tensors[k].values)]
        assert changed
    # deterministic: the same Hessians give the same integers and scales
    again = quantize(model, get_scheme("q4"), "gptq", tiny_hessians)
    w = "layers.1.feed_forward.w2"
    assert np.array_equal(again.tensors[w].values, gq.tensors[w].values)
    assert np.array_equal(again.tensors[w].scales, gq.tensors[w].scales)


def test_quantize_refuses_other_models_hessians(stories, tiny_hessians):
    model, _ = stories
    with pytest.raises(EdgeslmError, match="another model"):
        quantize(model, get_scheme("q4"), "gptq", tiny_hessians)
    with pytest.raises(EdgeslmError, match="rounding"):
        quantize(model, get_scheme("q4"), "nearest")


def test_calibration_saves_and_checks_hessians(aidreams, tmp_path):
    model, tok = aidreams
    reader = TextDataReader(tok, "Once upon a time there was a cat. The cat was happy. " * 6, 64, 2)
    calib = calibrate(model, reader, "minmax", hessians=True)
    h = calib.hessians
    assert sorted(h.inputs) == sorted(hessian_inputs(model.config.n_layers)) and h.tokens == calib.tokens
    assert h["0.gated"].shape == (model.config.hidden_dim,) * 2
    assert np.allclose(h["final_norm"], h["final_norm"].T)
    path = tmp_path / "c.json"
    calib.save(path)
    back = Calibration.load(path, model)
    assert back.hessians.tokens == h.tokens
    for k, v in h.inputs.items():
        assert np.array_equal(back.hessians[k], v)
    npz = Calibration.hessian_path(path)
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(CalibrationError, match="sha256"):
        Calibration.load(path, model)
    npz.unlink()                          # the ranges still serve i8; gptq is told, and calibrates itself
    alone = Calibration.load(path, model)
    assert alone.hessians is None and alone.missing_hessians == str(npz) and alone.ranges == back.ranges


@dataclass(frozen=True)
class _GptqScheme(Scheme):
    """What Scheme will carry once rounding travels with it: compile and golden then agree."""
    rounding: str = "gptq"


def test_firmware_equals_golden_with_gptq_weights(stories, tmp_path):
    from edgeslm.bridge import protocol as P
    from edgeslm.lower.boards import load_board
    from edgeslm.lower.compile import compile_model
    from edgeslm.lower.native import build_native
    from edgeslm.quant.golden import GoldenEngine
    from edgeslm.verify import expected_tokens, first_mismatch
    from firmware_helpers import device
    model, tok = stories
    comp = compile_model(model, tok, load_board("mps2_an386"), _GptqScheme("q4"), None, tmp_path)
    assert comp.qmodel.meta["rounding"] == "gptq"
    rtn = quantize(model, get_scheme("q4"), "rtn")
    assert not np.array_equal(comp.qmodel.tensors["layers.0.attention.wq"].values,
                              rtn.tensors["layers.0.attention.wq"].values)
    exe = build_native(comp.gen_dir, tmp_path / "firmware_host")
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    with device(exe) as dev:
        for prompt, temp, seed in [("Tom and Lily", 0.0, 1), ("The dog", 1.0, 7)]:
            got = [m.token for m in dev.generate(prompt, 100, temp, 0.9, seed) if isinstance(m, P.Token)]
            assert first_mismatch(got, expected_tokens(golden, tok, prompt, 100, temp, 0.9, seed)) is None
