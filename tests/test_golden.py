"""The golden model against its own written spec (quant/golden.py docstring), kernel by kernel.

Each `spec_*` below is a literal scalar transcription of the spec, one float32 operation at a time,
the way the C kernels are written; the vectorized golden code must give the same bits (tolerance 0).
"""

import struct

import numpy as np
import pytest

from edgeslm.quant import get_scheme, quantize, quantize_matrix, unpack_int4
from edgeslm.quant.golden import (EXP2_HI, EXP2_LO, EXP_SCALE, GoldenEngine, _Matmul,
                                  esl_expf, quantize_i8, softmax)
from edgeslm.reference import rmsnorm

F = np.float32


def spec_expf(x: float) -> np.float32:
    x = F(min(max(F(x), F(-87.0)), F(88.0)))
    k = int(x * EXP_SCALE + (F(0.5) if x >= 0 else F(-0.5)))     # int() truncates like a C cast
    frac, whole = k % 65536, k // 65536                             # k = 65536 * whole + frac
    m = EXP2_HI[frac // 256] * EXP2_LO[frac % 256]
    bits = struct.unpack("<I", struct.pack("<f", m))[0] + whole * (1 << 23)
    return F(struct.unpack("<f", struct.pack("<I", bits))[0])


def spec_quantize_i8(x, gs, qmax=127):
    q, s = [], []
    for g in range(0, len(x), gs):
        grp = [F(v) for v in x[g:g + gs]]
        amax = max(abs(v) for v in grp)
        if amax == 0:
            s.append(F(0))
            q += [0] * len(grp)
            continue
        s.append(amax / F(qmax))
        inv = F(qmax) / amax
        q += [max(-qmax, min(qmax, int(v * inv + (F(0.5) if v >= 0 else F(-0.5))))) for v in grp]
    return q, s


def spec_matmul_q(wq, ws, gs, x, qmax=127):
    xq, xs = spec_quantize_i8(x, gs, qmax)
    out = []
    for i in range(len(wq)):
        y = F(0.0)
        for gi, g in enumerate(range(0, len(x), gs)):
            isum = sum(int(wq[i][j]) * xq[j] for j in range(g, min(g + gs, len(x))))
            y = y + F(isum) * (ws[i][gi] * xs[gi])
        out.append(y)
    return np.array(out, F)


def spec_seqsum(values):
    acc = F(0.0)
    for v in values:
        acc = acc + F(v)
    return acc


def test_expf_hand_values():
    assert esl_expf(np.array([0.0], F))[0] == F(1.0)
    assert esl_expf(np.array([-200.0], F))[0] == spec_expf(-87.0) > 0     # clamped, still normal
    assert np.isfinite(esl_expf(np.array([1000.0], F))[0])


def test_exp_tables_are_the_firmwares_and_the_nearest_float32():
    """golden's EXP2_HI/EXP2_LO against firmware/kernels/common/esl_exp2_table.c's hex literals, and
    each entry against the exact power of two (Fraction arithmetic: independent of exp2's rounding)."""
    import re
    from fractions import Fraction
    from pathlib import Path
    src = (Path(__file__).parent.parent / "firmware/kernels/common/esl_exp2_table.c").read_text()
    tables = {}
    for name, body in re.findall(r"const float (esl_exp2_\w+)\[256\] = \{([^}]*)\}", src):
        tables[name] = np.array([float.fromhex(v.strip().rstrip("f")) for v in body.split(",") if v.strip()], F)
    assert set(tables) == {"esl_exp2_hi", "esl_exp2_lo"}
    for table, golden, step in ((tables["esl_exp2_hi"], EXP2_HI, 256), (tables["esl_exp2_lo"], EXP2_LO, 65536)):
        assert table.shape == (256,) and (table.view(np.uint32) == golden.view(np.uint32)).all()
        for i in range(0, 256, 5):
            v, ulp = F(table[i]), np.spacing(F(table[i]))
            # v nearest to 2^(i/step): (v -+ ulp/2)^step brackets 2^i (powers are monotonic)
            lo_, hi_ = Fraction(float(v)) - Fraction(float(ulp)) / 2, Fraction(float(v)) + Fraction(float(ulp)) / 2
            assert lo_ ** step <= 2 ** i <= hi_ ** step, (step, i)


def test_kv8_exp_table_is_the_firmwares_and_rounded_to_nearest():
    """golden's EXP8_Q15 against esl_exp8_q15 in esl_exp2_table.c, each entry the integer nearest to
    2^15 * 2^(-i/256) (exact integer arithmetic: (2T - 1)^256 <= 2^(16*256 - i) <= (2T + 1)^256)."""
    import re
    from pathlib import Path
    from edgeslm.quant.golden import EXP8_Q15, exp8_q15
    src = (Path(__file__).parent.parent / "firmware/kernels/common/esl_exp2_table.c").read_text()
    body = re.search(r"const uint16_t esl_exp8_q15\[256\] = \{([^}]*)\}", src).group(1)
    table = [int(v.strip().rstrip("u")) for v in body.split(",") if v.strip()]
    assert table == EXP8_Q15.tolist() and table[0] == 32768
    for i, t in enumerate(table):
        assert (2 * t - 1) ** 256 <= 2 ** (16 * 256 - i) <= (2 * t + 1) ** 256, i
    # the whole part of d / 256 shifts; d is truncated and capped (0 from 2^-16 on)
    d = np.array([0.0, 0.99, 1.0, 255.9, 256.0, 511.0, 4095.0, 4096.0, 1e9], F)
    assert exp8_q15(d).tolist() == [32768, 32768, table[1], table[255], 16384, table[255] >> 1,
                                    table[255] >> 15, 0, 0]


def test_expf_matches_spec_and_is_accurate():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-90, 90, 3000), rng.uniform(-1, 1, 3000)]).astype(F)
    got = esl_expf(x)
    assert all(got[i] == spec_expf(float(x[i])) for i in range(0, len(x), 7))
    inside = (x > -87) & (x < 88)
    rel = np.abs(got[inside] - np.exp(x[inside].astype(np.float64))) / np.exp(x[inside].astype(np.float64))
    assert rel.max() < 1.2e-5                    # k's rounding: half of 2^-16 in log2, and x*EXP_SCALE's
    assert (got >= np.finfo(F).tiny).all()       # never subnormal: no FTZ differences between targets


def test_quantize_i8_hand_vector():
    # amax 1.0 -> scale 1/127, inv 127: 1.0 -> 127, -0.5 -> -63.5 -> -64 (ties away from zero),
    # 0.25 -> 31.75 -> 32, 0 -> 0; the second group is all zero -> scale 0
    q, s = quantize_i8(np.array([1.0, -0.5, 0.25, 0.0, 0, 0], F), 4)
    assert q.tolist() == [127, -64, 32, 0, 0, 0]
    assert s.tolist() == [F(1.0) / F(127.0), 0.0]


@pytest.mark.parametrize("n,gs", [(64, 32), (172, 32), (172, 64), (7, 4)])
def test_matmul_q8_matches_spec_bit_for_bit(n, gs):
    rng = np.random.default_rng(n + gs)
    w = rng.normal(size=(5, n)).astype(F)
    x = rng.normal(size=n).astype(F)
    qt = quantize_matrix(w, 8, gs)
    assert np.array_equal(_Matmul(qt)(x), spec_matmul_q(qt.values, qt.scales, gs, x))
    # int16 activations (q8's default): the spec with 32767, sums past float's 24 bits rounded once
    x[:gs] *= 1000.0
    assert np.array_equal(_Matmul(qt, 16)(x), spec_matmul_q(qt.values, qt.scales, gs, x, 32767))
    assert not np.array_equal(_Matmul(qt, 16)(x), _Matmul(qt, 8)(x))


def test_quantize_i16_matches_spec():
    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(size=64) * 3, [0.0] * 32, [1.0, -1.0, 0.5, -0.0, 2.0]]).astype(F)
    q, s = quantize_i8(x, 32, 32767)
    sq, ss = spec_quantize_i8(x.tolist(), 32, 32767)
    assert q.dtype == np.int16 and q.tolist() == sq and s.tolist() == [float(v) for v in ss]
    assert np.abs(q).max() == 32767 and s[2] == 0.0


def test_ragged_last_group_is_not_dropped():
    """llama2.c's runq stops at the last whole group; 172 = 5*32 + 12 must use all 172 inputs."""
    rng = np.random.default_rng(1)
    w = rng.normal(size=(64, 172)).astype(F)
    x = rng.normal(size=172).astype(F)
    exact = w.astype(np.float64) @ x
    y = _Matmul(quantize_matrix(w, 8, 32))(x)
    dropped_tail = w[:, :160].astype(np.float64) @ x[:160]
    err = np.abs(y - exact).max() / np.abs(exact).max()
    assert err < 0.02
    assert np.abs(dropped_tail - exact).max() / np.abs(exact).max() > 5 * err


def test_matmul_f32_is_sequential_sum():
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 100)).astype(F)
    x = rng.normal(size=100).astype(F)
    got = _Matmul(quantize_matrix(w, 32, 0))(x)
    assert [float(v) for v in got] == [float(spec_seqsum(w[i] * x)) for i in range(3)]


def test_int4_nibble_order_and_round_trip():
    qt = quantize_matrix(np.array([[1.0, -2.0, 7.0]], F) , 4, 4)
    assert qt.values.tolist() == [[1, -2, 7]]          # scale 1: amax 7 / 7
    assert qt.packed().tolist() == [[0xE1, 0x07]]      # low nibble first, -2 = 0xE, odd row padded
    rng = np.random.default_rng(3)
    qt = quantize_matrix(rng.normal(size=(9, 173)).astype(F), 4, 32)
    assert np.array_equal(unpack_int4(qt.packed(), 173), qt.values)
    assert qt.values.min() >= -7 and qt.values.max() <= 7


def test_softmax_and_rmsnorm_match_spec():
    rng = np.random.default_rng(4)
    x = rng.normal(size=37).astype(F) * 4
    e = [spec_expf(float(v - x.max())) for v in x]
    inv = F(1.0) / spec_seqsum(e)
    assert softmax(x).tolist() == [float(v * inv) for v in e]
    w = rng.normal(size=37).astype(F)
    ss = spec_seqsum([v * v for v in x]) / F(37)
    r = F(1.0) / np.sqrt(ss + F(1e-5))
    assert rmsnorm(x, w, 1e-5).tolist() == [float(w[j] * (r * x[j])) for j in range(37)]


def _golden_tokens(model, tok, scheme, steps=200, prompt=""):
    from edgeslm.generate import generate
    from edgeslm.sampler import Sampler
    return generate(GoldenEngine(quantize(model, scheme)), tok, prompt, steps, Sampler(0.0, 0.9, 1))


def test_golden_f32_prints_llama2c_text(stories):
    from test_reference import LLAMA2C_NO_PROMPT
    gen = _golden_tokens(*stories, get_scheme("f32"))
    assert gen.text.decode() == LLAMA2C_NO_PROMPT


@pytest.mark.parametrize("name,kv", [("q8", "f32"), ("q8", "i8"), ("q4", "f32"), ("q4", "i8")])
@pytest.mark.parametrize("which", ["stories", "aidreams"])
def test_quantized_golden_generation_runs_on_both_models(request, which, name, kv):
    model, tok = request.getfixturevalue(which)
    gen = _golden_tokens(model, tok, get_scheme(name, kv=kv), steps=100)
    assert len(gen.tokens) > 20
    text = gen.text.decode("utf-8", errors="replace")
    assert sum(c.isalpha() for c in text) > 0.5 * len(text)      # words, not noise


def test_q8_keeps_the_story_opening(stories):
    from test_reference import LLAMA2C_NO_PROMPT
    gen = _golden_tokens(*stories, get_scheme("q8"), steps=60)
    assert LLAMA2C_NO_PROMPT.startswith(gen.text.decode()[:100])


def test_sigmoid_u16_table_is_the_firmwares_and_sigmoid():
    """tflm_int's SIGMOID_TABLE_U16 (TFLM's published table, which test_tflm_ops checks against
    tflite-micro's int16 LOGISTIC on every input) against esl_sigmoid_u16 in esl_sigmoid_u16.c, and
    each entry within 1.2 of 65536 * sigmoid(i / 24) (its published values are not rounded to nearest)."""
    import re
    from pathlib import Path
    from edgeslm.quant.tflm_int import SIGMOID_TABLE_U16
    src = (Path(__file__).parent.parent / "firmware/kernels/common/esl_sigmoid_u16.c").read_text()
    body = re.search(r"const uint16_t esl_sigmoid_u16\[256\] = \{([^}]*)\}", src).group(1)
    table = [int(v.strip().rstrip("u")) for v in body.split(",") if v.strip()]
    assert table == SIGMOID_TABLE_U16.tolist()
    exact = 65536.0 / (1.0 + np.exp(-np.arange(256) / 24.0))
    assert np.all(np.abs(np.array(table) - exact) < 1.2)
