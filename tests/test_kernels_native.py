"""Verification tier 3, kernel by kernel: each C kernel's portable branch (built natively with the
firmware's flags) against the golden model on random inputs, compared bit for bit. The ISA
branches run on the emulated boards: tests/test_kernels_emulated.py."""

import os
import struct
import subprocess

import numpy as np
import pytest

from edgeslm.lower.native import CFLAGS, FIRMWARE, kernel_sources
from edgeslm.quant import quantize_matrix
from edgeslm.quant.golden import (_Matmul, attention, attention_kv8, embed, esl_expf, quantize_i8, rope,
                                  rope_tables, softmax)
from edgeslm.reference import rmsnorm

F = np.float32
U32 = lambda *v: struct.pack(f"<{len(v)}I", *v)         # noqa: E731
F32 = lambda *v: struct.pack(f"<{len(v)}f", *v)         # noqa: E731


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    out = tmp_path_factory.mktemp("kdrv") / "kernel_driver"
    srcs = kernel_sources()
    # under the sanitizers: a kernel reading or writing outside its buffers, or an int32 sum that
    # overflows, aborts the run (the case fails). Not float-cast-overflow: test_quantize_in_parts
    # feeds a NaN, outside golden's contract, on purpose.
    subprocess.run(["gcc", *CFLAGS, "-Wno-unused-parameter", "-fsanitize=address,undefined",
                    "-fno-sanitize-recover=all", f"-I{FIRMWARE / 'include'}", "-o", str(out),
                    "tests/c/kernel_driver.c", *map(str, srcs), "-lm"], check=True)
    return out


def run(driver, op: str, data: bytes) -> bytes:
    # the driver's own buffers live until it exits: no leak reports for them
    env = {**os.environ, "ASAN_OPTIONS": "detect_leaks=0"}
    r = subprocess.run([str(driver), op], input=data, capture_output=True, env=env)
    assert r.returncode == 0, r.stderr.decode(errors="replace")[-2000:]
    return r.stdout


def same_bits(got: bytes, want: np.ndarray) -> None:
    """Tolerance zero; a failure names the first differing position, C's value and golden's."""
    want = np.ascontiguousarray(want).reshape(-1)
    g = np.frombuffer(got, dtype=want.dtype)
    assert g.size == want.size, f"C wrote {g.size} values, golden has {want.size}"
    diff = np.nonzero(g.view(f"u{want.itemsize}") != want.view(f"u{want.itemsize}"))[0]
    if diff.size:
        i = int(diff[0])
        raise AssertionError(f"{diff.size} mismatches, first at {i}: C {g[i]!r}, golden {want[i]!r}")


RNG = np.random.default_rng(1234)


def test_expf(driver):
    x = np.concatenate([RNG.uniform(-100, 100, 5000), RNG.normal(size=5000),
                        [0.0, -0.0, 88.0, -87.0, 1e-30, -1e-30]]).astype(F)
    same_bits(run(driver, "expf", U32(len(x)) + x.tobytes()), esl_expf(x))


@pytest.mark.parametrize("n", [1, 64, 172, 255])
def test_rmsnorm(driver, n):
    x, w = RNG.normal(size=n).astype(F) * 3, RNG.normal(size=n).astype(F)
    same_bits(run(driver, "rmsnorm", U32(n) + F32(1e-5) + x.tobytes() + w.tobytes()), rmsnorm(x, w, 1e-5))


@pytest.mark.parametrize("n,gs", [(64, 32), (172, 32), (7, 4), (40, 64)])
def test_quantize(driver, n, gs):
    x = (RNG.normal(size=n) * 5).astype(F)
    x[:gs // 2] = 0 if n > 8 else x[:gs // 2]         # an all-zero half group somewhere
    q, s = quantize_i8(x, gs)
    out = run(driver, "quantize", U32(n, gs) + x.tobytes())
    same_bits(out[:n], q)
    same_bits(out[n:], s)


@pytest.mark.parametrize("wide", [0, 1])
@pytest.mark.parametrize("parts", [1, 2, 4])
def test_quantize_in_parts(driver, parts, wide):
    """esl_quantize_i8_part / _i16_part, as cluster workers sharing a group call them (each the
    group's amax, its own 8-element blocks, the first part the scale): the whole group's q and s
    (golden's), an all-zero group included; a group holding a NaN (outside golden's contract) as
    the C quantizes it in one part."""
    n, gs = 172, 32
    x = (RNG.normal(size=n) * 5).astype(F)
    x[32:64] = 0
    qmax = 32767 if wide else 127
    q, s = quantize_i8(x, gs, qmax=qmax)
    out = run(driver, "quantize_parts", U32(n, gs, parts, wide) + x.tobytes())
    size = 2 if wide else 1
    same_bits(out[:size * n], q)
    same_bits(out[size * n:], s)
    x[70] = np.nan
    whole = run(driver, "quantize_parts", U32(n, gs, 1, wide) + x.tobytes())
    assert run(driver, "quantize_parts", U32(n, gs, parts, wide) + x.tobytes()) == whole


@pytest.mark.parametrize("bits", [32, 8, 4])
@pytest.mark.parametrize("rows,cols,gs", [(64, 64, 32), (64, 172, 32), (5, 7, 4), (17, 33, 16)])
def test_matmul(driver, bits, rows, cols, gs):
    w = RNG.normal(size=(rows, cols)).astype(F)
    x = RNG.normal(size=cols).astype(F)
    qt = quantize_matrix(w, bits, gs)
    blob = U32(rows, cols, gs) + qt.packed().tobytes() + (qt.scales.tobytes() if bits != 32 else b"")
    op = {32: "matmul_f32", 8: "matmul_w8f", 4: "matmul_w4f"}[bits]
    same_bits(run(driver, op, blob + x.tobytes()), _Matmul(qt)(x))


@pytest.mark.parametrize("bits", [32, 8])
def test_embed(driver, bits):
    table = quantize_matrix(RNG.normal(size=(20, 70)).astype(F), bits, 32)
    blob = U32(20, 70, 32) + table.packed().tobytes() + (table.scales.tobytes() if bits == 8 else b"")
    same_bits(run(driver, f"embed_{'w8f' if bits == 8 else 'f32'}", blob + U32(13)), embed(table, 13))


def test_rope(driver):
    cos, sin = rope_tables(8, 100, 10000.0)
    v = RNG.normal(size=(6, 8)).astype(F)
    same_bits(run(driver, "rope", U32(6, 8) + v.tobytes() + cos[77].tobytes() + sin[77].tobytes()),
              rope(v, cos[77], sin[77]))


@pytest.mark.parametrize("n", [1, 2, 100, 512])
def test_softmax(driver, n):
    x = (RNG.normal(size=n) * 6).astype(F)
    same_bits(run(driver, "softmax", U32(n) + x.tobytes()), softmax(x))


def test_kvstore_kv8(driver):
    n, hs = 32, 8
    k, v = (RNG.normal(size=n) * 3).astype(F), RNG.normal(size=n).astype(F)
    k[:hs] = 0                                          # an all-zero head: scale 0, values 0
    out = run(driver, "kvstore_kv8", U32(n, hs) + k.tobytes() + v.tobytes())
    (kq, ks), (vq, vs) = quantize_i8(k, hs), quantize_i8(v, hs)
    split = [n, 4 * (n // hs), n, 4 * (n // hs)]
    parts = [out[sum(split[:i]):sum(split[:i + 1])] for i in range(4)]
    for got, want in zip(parts, (kq, ks, vq, vs)):
        same_bits(got, want)


def test_swiglu_and_add(driver):
    a, b = (RNG.normal(size=172) * 4).astype(F), RNG.normal(size=172).astype(F)
    same_bits(run(driver, "swiglu", U32(172) + a.tobytes() + b.tobytes()),
              (a * (F(1.0) / (F(1.0) + esl_expf(-a)))) * b)
    same_bits(run(driver, "add", U32(172) + a.tobytes() + b.tobytes()), a + b)


@pytest.mark.parametrize("kv", ["f32", "kv8"])
@pytest.mark.parametrize("heads,kv_heads,pos", [(8, 4, 0), (8, 4, 37), (4, 4, 63), (6, 2, 20)])
def test_attention(driver, kv, heads, kv_heads, pos):
    hs, max_seq = 8, 64
    inv = F(1.0 / np.sqrt(hs))
    q = RNG.normal(size=(heads, hs)).astype(F)
    kf = RNG.normal(size=(max_seq, kv_heads, hs)).astype(F)
    vf = RNG.normal(size=(max_seq, kv_heads, hs)).astype(F)
    head = U32(heads, kv_heads, hs, max_seq, pos) + F32(inv) + q.tobytes()
    if kv == "f32":
        blob, want = head + kf.tobytes() + vf.tobytes(), attention(q, kf[:pos + 1], vf[:pos + 1], inv)
    else:
        quant = [quantize_i8(t.reshape(-1), hs) for t in (kf[p] for p in range(max_seq))]
        kq = np.stack([a for a, _ in quant]).reshape(max_seq, kv_heads, hs)
        ks = np.stack([s for _, s in quant])
        quant = [quantize_i8(t.reshape(-1), hs) for t in (vf[p] for p in range(max_seq))]
        vq = np.stack([a for a, _ in quant]).reshape(max_seq, kv_heads, hs)
        vs = np.stack([s for _, s in quant])
        blob = head + kq.tobytes() + vq.tobytes() + ks.tobytes() + vs.tobytes()
        want = attention_kv8(q, kq[:pos + 1], vq[:pos + 1], ks[:pos + 1], vs[:pos + 1], inv)
    same_bits(run(driver, f"attention_{kv}", blob), want)
