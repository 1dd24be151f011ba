"""Scheme i8: calibration files, the integer-only golden model, and its accuracy."""

import json
import subprocess
import sys

import numpy as np
import pytest

from edgeslm.errors import ModelMismatchError
from edgeslm.quant.calibrate import (Calibration, CalibrationError, PromptsDataReader, TextDataReader,
                                     calibrate, quant_params)
from edgeslm.quant.int8 import I8Engine, Norm, quantize_int8

from conftest import shared


@pytest.fixture(scope="module")
def calib(stories):
    model, tok = stories
    return calibrate(model, PromptsDataReader(model, tok, ["Lily and Ben", "The cat"], 120), "percentile")


def test_calibration_covers_every_quantized_tensor(stories, calib):
    n_layers = stories[0].config.n_layers
    per_layer = {"att_norm", "q", "k", "v", "q_rot", "k_rot", "scores", "att_out", "o", "x_att",
                 "ffn_norm", "h1", "h3", "silu", "gated", "f", "x_ffn"}
    want = {"x0", "final_norm", "logits"} | {f"{l}.{n}" for l in range(n_layers) for n in per_layer}
    norms = ["final_norm"] + [f"{l}.{n}" for l in range(n_layers) for n in ("att_norm", "ffn_norm")]
    want |= {f"{n}.{part}" for n in norms for part in ("sq", "ms", "r", "n")}   # for export-tflite
    assert set(calib.ranges) == want
    assert calib.tokens == 2 * (1 + 120)                      # BOS + 120 continued tokens each
    lo, hi = calib.ranges["0.h1"]
    assert lo < 0 < hi


def test_quant_params_keep_zero_exact():
    s, zp = quant_params(-1.0, 3.0)
    assert s == pytest.approx(4.0 / 255, rel=1e-6) and isinstance(zp, int)
    assert round(-1.0 / s) + zp == -128 and round(3.0 / s) + zp == 127    # the range ends hit the int8 ends
    s, zp = quant_params(0.5, 3.0)                         # a range without 0 is widened to hold it
    assert zp == -128 and round(3.0 / s) + zp == 127


def test_methods_differ_and_file_round_trips(stories, tmp_path, calib):
    model, tok = stories
    text = "Once upon a time, there was a little dog named Max. Max liked to run. " * 30
    mm = calibrate(model, TextDataReader(tok, text, 64, 4), "minmax")
    mse = calibrate(model, TextDataReader(tok, text, 64, 4), "mse")
    assert mm.ranges != mse.ranges
    assert all(mse.ranges[k][1] <= mm.ranges[k][1] + 1e-6 for k in mm.ranges)   # mse only clips
    p = tmp_path / "c.json"
    calib.save(p)
    again = Calibration.load(p, model)
    assert again.ranges == {k: (float(a), float(b)) for k, (a, b) in calib.ranges.items()}
    assert again.model_fingerprint == model.fingerprint()


def test_calibration_for_another_model_is_refused(stories, aidreams, calib, tmp_path):
    p = tmp_path / "c.json"
    calib.save(p)
    with pytest.raises(ModelMismatchError, match="was made for model"):
        Calibration.load(p, aidreams[0])


@pytest.mark.parametrize("content,words", [
    ("{not json", "invalid JSON"),
    ('{"format": "something-else"}', "not an edgeslm calibration file"),
    ('{"format": "edgeslm-calibration", "version": 9}', "version 9"),
    ('{"format": "edgeslm-calibration", "version": 1, "model_fingerprint": "x", "method": "minmax",'
     ' "tokens": 3}', "malformed"),
    ('{"format": "edgeslm-calibration", "version": 1, "model_fingerprint": "x", "method": "minmax",'
     ' "tokens": 3, "tensors": {"x0": {"min": 5.0, "max": 1.0}}}', "invalid ranges"),
])
def test_corrupt_calibration_files_are_refused(tmp_path, content, words):
    p = tmp_path / "bad.json"
    p.write_text(content)
    with pytest.raises(CalibrationError, match=words):
        Calibration.load(p)


def test_integer_rmsnorm_hand_vector():
    # n = 4, xc = [3, -4, 0, 0]: T = 25, a = 28, isqrt(25 << 56) = 5 << 28, inv = 2^60 // (5 << 28);
    # weights 1, output scale 0.1: y = xc * sqrt(4) / sqrt(25) / 0.1 = 4 * xc = [12, -16, 0, 0]
    from edgeslm.quant import tflm_int as T
    m, s = T.quantize_multiplier(2.0 / 0.1)
    norm = Norm(zp=10, n_eps=0, mult=np.full(4, m), shift=np.full(4, s), out_zp=-3)
    x = np.array([13, 6, 10, 10], np.int8)
    assert norm(x).tolist() == [12 - 3, -16 - 3, -3, -3]


def test_i8_golden_generates_on_both_models(stories, aidreams, calib):
    from edgeslm.generate import generate
    from edgeslm.sampler import Sampler
    for model, tok in (stories, aidreams):
        c = calib if model is stories[0] else calibrate(model, PromptsDataReader(model, tok, ["The"], 100))
        eng = I8Engine(quantize_int8(model, c))
        gen = generate(eng, tok, "", 80, Sampler(0.0, 0.9, 1))
        text = gen.text.decode("utf-8", errors="replace")
        assert len(gen.tokens) > 20 and sum(ch.isalpha() for ch in text) > 0.5 * len(text)
        assert eng.last_logits_q.dtype == np.int8


def test_i8_weights_and_multipliers_are_integers(stories, calib):
    qm = quantize_int8(stories[0], calib)
    for layer in qm.layers:
        for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
            lin = layer[name]
            assert lin.w.dtype == np.int8 and lin.mult.dtype == np.int64 and lin.shift.dtype == np.int64
            assert np.all((lin.mult >= 1 << 30) & (lin.mult < 1 << 31))
        assert layer["sigmoid_lut"].dtype == np.int8 and layer["sigmoid_lut"].shape == (256,)
    assert qm.rope.dtype == np.int8 and qm.rope[0, 0, 0] == 127 and qm.rope[0, 0, 1] == 0


def test_cli_calibrate_and_eval_i8(tmp_path):
    model, tok = str(shared("stories260K.bin")), str(shared("tok512.bin"))
    cal, out = tmp_path / "calib.json", tmp_path / "i8.json"
    run = lambda *a: subprocess.run([sys.executable, "-m", "edgeslm", *a], capture_output=True, text=True)  # noqa: E731
    r = run("calibrate", model, "-z", tok, "--samples", "4", "--steps", "120", "-o", str(cal))
    assert r.returncode == 0, r.stderr
    r = run("eval", model, "-z", tok, "--quant", "i8", "--calib", str(cal), "--tokens", "800", "--json", str(out))
    assert r.returncode == 0, r.stderr
    data = json.loads(out.read_text())
    assert data["scheme"] == "i8" and data["tokens"] >= 800
    assert data["top1_agreement"] >= 0.85                      # measured ~93% with the defaults
    r = run("eval", str(shared("aidreams260K/aidreams260K.bin")), "-z", str(shared("aidreams260K/tok512.bin")),
            "--quant", "i8", "--calib", str(cal))
    assert r.returncode == 2 and "was made for model" in r.stderr
    r = run("eval", model, "-z", tok, "--quant", "i8")
    assert r.returncode == 2 and "--calib" in r.stderr
