"""The integer kernels of edgeslm.quant.tflm_int against tflite-micro's interpreter, op by op:
each test writes a single-op .tflite with the same quantization parameters and requires zero
mismatches over many random inputs (and several random parameter sets)."""

import numpy as np
import pytest

pytest.importorskip("tflite_micro", reason="tflite-micro is a dev dependency: pip install -e '.[dev]'")

from tflite_ops import INT8, INT16, S, Runner, single_op_model, tensor   # noqa: E402

from edgeslm.quant import tflm_int as T   # noqa: E402


def _params(rng):
    """A random (scale, zero point) like calibration produces."""
    return float(rng.uniform(0.005, 0.5)), int(rng.integers(-20, 21))


def _count(run, ref, make_inputs, trials: int) -> int:
    bad = 0
    for _ in range(trials):
        xs = make_inputs()
        got, want = run(*xs), ref(*xs)
        assert got.shape == want.shape
        bad += int(np.count_nonzero(got != want))
    return bad


def _i8(rng, shape):
    return rng.integers(-128, 128, shape).astype(np.int8)


@pytest.mark.parametrize("seed", range(4))
def test_quantize_multiplier_reconstructs(seed):
    for m in np.random.default_rng(seed).uniform(1e-6, 4.0, 200):
        q, shift = T.quantize_multiplier(float(m))
        assert 1 << 30 <= q < 1 << 31
        assert abs(q * 2.0 ** (shift - 31) - m) <= m * 2 ** -30


@pytest.mark.parametrize("seed", range(3))
def test_fully_connected_per_channel(seed):
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(8, 80)), int(rng.integers(4, 40))
    (sx, zx), (sy, zy) = _params(rng), _params(rng)
    sw = rng.uniform(1e-4, 0.02, n_out)
    w = _i8(rng, (n_out, n_in))
    w[w == -128] = -127                                     # symmetric weights
    mq = [T.conv_multiplier(sx, s, sy) for s in sw]
    tensors = [tensor([1, n_in], INT8, sx, zx), tensor([1, n_out], INT8, sy, zy),
               tensor([n_out, n_in], INT8, sw, [0] * n_out, qdim=0)]
    run = Runner(single_op_model(S.BuiltinOperator.FULLY_CONNECTED, tensors, [0], [1], {2: w},
                                 S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT()))
    mult, shift = np.array([m for m, _ in mq]), np.array([s for _, s in mq])
    assert _count(run, lambda x: T.fully_connected_per_channel(x, zx, w, None, mult, shift, zy),
                  lambda: (_i8(rng, (1, n_in)),), 300) == 0


@pytest.mark.parametrize("seed", range(3))
def test_fully_connected_16x8(seed):
    """int16 in and out, int8 per-channel weights (i8's RoPE of int16 keys: quant/golden_s8.rope_s16)."""
    rng = np.random.default_rng(seed)
    n_in, n_out = int(rng.integers(2, 80)), int(rng.integers(2, 40))
    sx, sy = float(rng.uniform(1e-4, 0.01)), float(rng.uniform(1e-4, 0.01))
    sw = rng.uniform(1e-3, 0.02, n_out)
    w = _i8(rng, (n_out, n_in))
    w[w == -128] = -127
    mq = [T.conv_multiplier(sx, s, sy) for s in sw]
    tensors = [tensor([1, n_in], INT16, sx, 0), tensor([1, n_out], INT16, sy, 0),
               tensor([n_out, n_in], INT8, sw, [0] * n_out, qdim=0)]
    run = Runner(single_op_model(S.BuiltinOperator.FULLY_CONNECTED, tensors, [0], [1], {2: w},
                                 S.BuiltinOptions.FullyConnectedOptions, S.FullyConnectedOptionsT()))
    mult, shift = np.array([m for m, _ in mq]), np.array([s for _, s in mq])
    x16 = lambda: (rng.integers(-32768, 32768, (1, n_in)).astype(np.int16),)   # noqa: E731
    assert _count(run, lambda x: T.fully_connected_16x8(x, w, None, mult, shift), x16, 300) == 0


@pytest.mark.parametrize("scale", [2.0 ** -12, 2.0 ** -10, 1e-4, 3.7e-4, 1e-3, 0.01])
def test_logistic_int16(scale):
    """Every int16 input (i8's --int16 ffn: the SiLU's sigmoid); the power-of-two scale 2^-12 takes
    TFLM's multiplier-0 branch."""
    tensors = [tensor([1, 512], INT16, scale, 0), tensor([1, 512], INT16, 1 / 32768, 0)]
    run = Runner(single_op_model(S.BuiltinOperator.LOGISTIC, tensors, [0], [1], {}))
    chunks = iter(np.arange(-32768, 32768).astype(np.int16).reshape(128, 1, 512))
    mult, shift = T.logistic16_params(scale)
    assert _count(run, lambda v: T.logistic_int16(v, mult, shift), lambda: (next(chunks),), 128) == 0


@pytest.mark.parametrize("op", ["add", "mul"])
@pytest.mark.parametrize("seed", range(3))
def test_add_and_mul_int16(op, seed):
    """TFLM int16 ADD and MUL (i8's --int16 residual adds; the SiLU and gate of --int16 ffn)."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    s1, s2, sy = (float(rng.uniform(1e-5, 1e-3)) for _ in range(3))
    tensors = [tensor([1, n], INT16, s1, 0), tensor([1, n], INT16, s2, 0), tensor([1, n], INT16, sy, 0)]
    if op == "add":
        code, opts, p = S.BuiltinOperator.ADD, (S.BuiltinOptions.AddOptions, S.AddOptionsT()), T.add_params(s1, s2, sy, 16)
        ref = lambda a, b: T.add(a, 0, b, 0, p, 0, 16)                            # noqa: E731
    else:
        code, opts, mq = S.BuiltinOperator.MUL, (S.BuiltinOptions.MulOptions, S.MulOptionsT()), T.conv_multiplier(s1, s2, sy)
        ref = lambda a, b: T.mul(a, 0, b, 0, *mq, 0, 16)                          # noqa: E731
    run = Runner(single_op_model(code, tensors, [0, 1], [2], {}, *opts))
    i16 = lambda: rng.integers(-32768, 32768, (1, n)).astype(np.int16)   # noqa: E731
    assert _count(run, ref, lambda: (i16(), i16()), 200) == 0


@pytest.mark.parametrize("seed", range(3))
def test_batch_matmul(seed):
    rng = np.random.default_rng(seed)
    b, m, k, n = 4, 1, 8, int(rng.integers(2, 64))           # one head's q (1, hd) @ K^T (hd, t)
    (sa, za), (sb, zb), (sy, zy) = _params(rng), _params(rng), _params(rng)
    tensors = [tensor([b, m, k], INT8, sa, za), tensor([b, k, n], INT8, sb, zb), tensor([b, m, n], INT8, sy, zy)]
    opts = S.BatchMatMulOptionsT()
    run = Runner(single_op_model(S.BuiltinOperator.BATCH_MATMUL, tensors, [0, 1], [2], {},
                                 S.BuiltinOptions.BatchMatMulOptions, opts))
    mult, shift = T.conv_multiplier(sa, sb, sy)
    assert _count(run, lambda x, y: T.batch_matmul(x, za, y, zb, mult, shift, zy),
                  lambda: (_i8(rng, (b, m, k)), _i8(rng, (b, k, n))), 300) == 0


@pytest.mark.parametrize("seed", range(3))
def test_softmax_int8(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    sx, zx = _params(rng)
    tensors = [tensor([4, n], INT8, sx, zx), tensor([4, n], INT8, 1 / 256, -128)]
    opts = S.SoftmaxOptionsT()
    opts.beta = 1.0
    run = Runner(single_op_model(S.BuiltinOperator.SOFTMAX, tensors, [0], [1], {},
                                 S.BuiltinOptions.SoftmaxOptions, opts))
    p = T.softmax_params(sx)
    assert _count(run, lambda x: T.softmax_int8(x, p), lambda: (_i8(rng, (4, n)),), 300) == 0


@pytest.mark.parametrize("seed", range(6))
def test_logistic_int8_every_input(seed):
    rng = np.random.default_rng(seed)
    sx, zx = _params(rng)
    tensors = [tensor([256], INT8, sx, zx), tensor([256], INT8, 1 / 256, -128)]
    run = Runner(single_op_model(S.BuiltinOperator.LOGISTIC, tensors, [0], [1], {}))
    every = np.arange(-128, 128).astype(np.int8)              # all 256 inputs: the whole table
    assert _count(run, lambda x: T.logistic_int8(x, T.logistic_params(sx, zx)), lambda: (every,), 1) == 0


@pytest.mark.parametrize("seed", range(3))
def test_add_and_mul_int8(seed):
    rng = np.random.default_rng(seed)
    (sa, za), (sb, zb), (sy, zy) = _params(rng), _params(rng), _params(rng)
    tensors = [tensor([64], INT8, sa, za), tensor([64], INT8, sb, zb), tensor([64], INT8, sy, zy)]
    add = Runner(single_op_model(S.BuiltinOperator.ADD, tensors, [0, 1], [2], {},
                                 S.BuiltinOptions.AddOptions, S.AddOptionsT()))
    p = T.add_params(sa, sb, sy)
    inputs = lambda: (_i8(rng, 64), _i8(rng, 64))        # noqa: E731
    assert _count(add, lambda a, b: T.add(a, za, b, zb, p, zy), inputs, 300) == 0
    mul = Runner(single_op_model(S.BuiltinOperator.MUL, tensors, [0, 1], [2], {},
                                 S.BuiltinOptions.MulOptions, S.MulOptionsT()))
    m, s = T.conv_multiplier(sa, sb, sy)
    assert _count(mul, lambda a, b: T.mul(a, za, b, zb, m, s, zy), inputs, 300) == 0
