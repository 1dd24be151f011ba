"""firmware/include/esl_fixedpoint.h is host/edgeslm/quant/tflm_int.py in C, bit for bit: a native
driver built under UBSan (any undefined behaviour kills it) answers batches of inputs, and every
answer must equal the numpy model's. Inputs: the edges (0, +-1, +-2^k, +-(2^k - 1), INT32_MIN,
INT32_MAX) against every shift, many random ones, and hypothesis's. The header also builds for a
Cortex-M0 with no float helper referenced."""

import struct
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reliability_helpers  # noqa: F401  (hypothesis's own files go to .pytest_cache)

from edgeslm.lower.native import FIRMWARE
from edgeslm.quant import tflm_int as T

HEADER = FIRMWARE / "include" / "esl_fixedpoint.h"
I32_MIN, I32_MAX = T.I32_MIN, T.I32_MAX
I64_MIN, I64_MAX = -(1 << 63), (1 << 63) - 1
NATIVE_FLAGS = ["-std=c99", "-pedantic", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wconversion",
                "-fsanitize=undefined", "-fno-sanitize-recover=all"]
RANDOM_PER_OP = 20000
CHUNK = 2048                                    # rows per request: 32 KiB of answer
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# Request: op i32, count u32, then count records of three i64 (a, b, c); answer: count records of
# two i64. The ops are the header's functions, in the order of OPS below.
DRIVER = r"""
#include <stdio.h>
#include "esl_fixedpoint.h"

int main(void)
{
    for (;;) {
        int32_t op;
        uint32_t n;
        if (fread(&op, 4, 1, stdin) != 1) return 0;
        if (fread(&n, 4, 1, stdin) != 1) return 2;
        for (uint32_t k = 0; k < n; k++) {
            int64_t in[3], out[2] = { 0, 0 };
            if (fread(in, 8, 3, stdin) != 3) return 2;
            const int32_t a = (int32_t)in[0], b = (int32_t)in[1], c = (int32_t)in[2];
            int bits = 0;
            switch (op) {
            case 0: out[0] = esl_srdhm(a, b); break;
            case 1: out[0] = esl_rdbp(a, b); break;
            case 2: out[0] = esl_rdbp64(in[0], b); break;
            case 3: out[0] = esl_mbqm(a, b, c); break;
            case 4: out[0] = esl_sat_rounding_mul_by_pot(a, b); break;
            case 5: out[0] = esl_exp_on_negative_values(a, b); break;
            case 6: out[0] = esl_one_over_one_plus_x_for_x_in_0_1(a); break;
            case 7: out[0] = esl_get_reciprocal(a, b, &bits); out[1] = bits; break;
            default: return 3;
            }
            fwrite(out, 8, 2, stdout);
        }
        fflush(stdout);
    }
}
"""


def _one_at_a_time(fn):
    """numpy reference whose second argument must be a Python int: grouped by that argument."""
    def run(a, b, c):
        out = np.zeros(len(a), np.int64)
        for v in np.unique(b):
            sel = b == v
            out[sel] = fn(a[sel], int(v))
        return out
    return run


def _reciprocal(a, b, c):
    out = np.zeros((len(a), 2), np.int64)
    for v in np.unique(b):
        sel = b == v
        r, bits = T.get_reciprocal(a[sel], int(v))
        out[sel, 0], out[sel, 1] = r, bits
    return out


# op: (name, numpy reference, range of b, range of c)
OPS = {
    0: ("srdhm", lambda a, b, c: T.srdhm(a, b), (I32_MIN, I32_MAX), (0, 0)),
    1: ("rdbp", lambda a, b, c: T.rounding_divide_by_pot(a, b), (0, 31), (0, 0)),
    2: ("rdbp64", lambda a, b, c: T.rounding_divide_by_pot(a, b), (0, 63), (0, 0)),
    3: ("mbqm", lambda a, b, c: T.multiply_by_quantized_multiplier(a, b, c), (I32_MIN, I32_MAX), (-31, 31)),
    4: ("sat_rounding_mul_by_pot", _one_at_a_time(T.sat_rounding_mul_by_pot), (-31, 31), (0, 0)),
    5: ("exp_on_negative_values", _one_at_a_time(T.exp_on_negative_values), (0, 29), (0, 0)),
    6: ("one_over_one_plus_x_for_x_in_0_1", lambda a, b, c: T.one_over_one_plus_x_for_x_in_0_1(a), (0, 0), (0, 0)),
    7: ("get_reciprocal", _reciprocal, (-8, 40), (0, 0)),
}


def edges(bits: int) -> np.ndarray:
    """0, +-1, +-2^k, +-(2^k - 1), +-(2^k + 1) and the extremes of a `bits`-bit signed integer."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    v = {0, 1, -1, lo, lo + 1, hi, hi - 1}
    for k in range(1, bits - 1):
        v |= {1 << k, -(1 << k), (1 << k) - 1, -(1 << k) + 1, (1 << k) + 1, -(1 << k) - 1}
    return np.array(sorted(x for x in v if lo <= x <= hi), np.int64)


def random_ints(rng, n: int, bits: int) -> np.ndarray:
    """Half uniform over the whole range, half with a uniform bit length (small values too)."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    uniform = rng.integers(lo, hi, n // 2, endpoint=True, dtype=np.int64)
    length = rng.integers(0, bits - 1, n - n // 2)
    mag = (rng.integers(0, I64_MAX, n - n // 2, dtype=np.int64) >> (63 - length)).astype(np.int64)
    sign = rng.integers(0, 2, n - n // 2)
    return np.concatenate([uniform, np.where(sign == 1, -mag - 1, mag)])


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    d = tmp_path_factory.mktemp("fixedpoint")
    (d / "driver.c").write_text(DRIVER)
    exe = d / "driver"
    r = subprocess.run(["gcc", *NATIVE_FLAGS, f"-I{FIRMWARE / 'include'}", "-o", str(exe), str(d / "driver.c")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def call(op: int, a, b=None, c=None) -> np.ndarray:
        a = np.asarray(a, np.int64)
        b = np.zeros_like(a) if b is None else np.broadcast_to(np.asarray(b, np.int64), a.shape)
        c = np.zeros_like(a) if c is None else np.broadcast_to(np.asarray(c, np.int64), a.shape)
        rows = np.stack([a, b, c], 1).astype("<i8")
        out = []
        for start in range(0, len(rows), CHUNK):        # an answer fits the pipe: no deadlock
            chunk = rows[start:start + CHUNK]
            proc.stdin.write(struct.pack("<iI", op, len(chunk)) + chunk.tobytes())
            proc.stdin.flush()
            want = 16 * len(chunk)
            got = proc.stdout.read(want)
            assert len(got) == want, f"the driver died (exit {proc.wait(10)}): {proc.stderr.read().decode()[-2000:]}"
            out.append(np.frombuffer(got, "<i8").reshape(-1, 2))
        return np.concatenate(out)
    yield call
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0


def check(driver, op: int, a, b=None, c=None):
    """C == numpy on every row; a mismatch is reported as inputs, C, numpy."""
    name, ref, _, _ = OPS[op]
    a = np.asarray(a, np.int64)
    b = np.zeros_like(a) if b is None else np.broadcast_to(np.asarray(b, np.int64), a.shape).copy()
    c = np.zeros_like(a) if c is None else np.broadcast_to(np.asarray(c, np.int64), a.shape).copy()
    got = driver(op, a, b, c)
    want = np.asarray(ref(a, b, c), np.int64)
    if want.ndim == 1:
        got = got[:, 0]
    bad = np.nonzero((got != want).reshape(len(a), -1).any(axis=1))[0]
    rows = [(int(a[i]), int(b[i]), int(c[i]), got[i].tolist(), want[i].tolist()) for i in bad[:10]]
    assert bad.size == 0, f"{name}: {bad.size} of {len(a)} differ; (a, b, c, C, numpy): {rows}"


def grid(x: np.ndarray, shifts: range):
    """Every x against every shift."""
    xs, ss = np.meshgrid(x, np.array(list(shifts), np.int64), indexing="ij")
    return xs.ravel(), ss.ravel()


# ---- hand-checkable rows ------------------------------------------------------------------------

def test_hand_checked_rows(driver):
    # srdhm: 2^30 * 2^30 / 2^31 = 2^29; 3 * 1/2 = 1.5 -> 2; -1.5 -> -1 (the nudge 1 - 2^30 then division
    # toward zero: negative ties go up); INT32_MIN * INT32_MIN saturates
    assert driver(0, [1 << 30, 3, -3, I32_MIN], [1 << 30, 1 << 30, 1 << 30, I32_MIN])[:, 0].tolist() == \
        [1 << 29, 2, -1, I32_MAX]
    # rdbp: 5/2 = 2.5 -> 3, -5/2 -> -3, 7/4 = 1.75 -> 2, -6/4 = -1.5 -> -2
    assert driver(1, [5, -5, 7, -6], [1, 1, 2, 2])[:, 0].tolist() == [3, -3, 2, -2]
    # mbqm: x * (2^30 / 2^31) * 2^shift: 10 * 0.5 = 5; 10 * 0.5 / 4 = 1.25 -> 1; 2^30 * 4 saturates to
    # INT32_MAX before the multiplier: INT32_MAX * 0.5 rounds to 2^30
    assert driver(3, [10, 10, 1 << 30], [1 << 30, 1 << 30, 1 << 30], [0, -2, 2])[:, 0].tolist() == \
        [5, 1, 1 << 30]
    # exp(0) = INT32_MAX; exp(-1.0) in Q5.26: exp(-1) * 2^31 = 790015084.1, gemmlowp's series gives 224 more
    assert driver(5, [0, -(1 << 26)], [5, 5])[:, 0].tolist() == [I32_MAX, 790015308]
    # 1/(1+0) saturates to INT32_MAX; 1/(1+1/2) = 2/3: 1431655765.3, three Newton steps give 1431655762
    assert driver(6, [0, 1 << 30])[:, 0].tolist() == [I32_MAX, 1431655762]


# ---- every edge against every shift, and many random inputs -----------------------------------

def test_srdhm(driver):
    e = edges(32)
    a, b = np.meshgrid(e, e, indexing="ij")
    check(driver, 0, a.ravel(), b.ravel())
    rng = np.random.default_rng(0)
    check(driver, 0, random_ints(rng, RANDOM_PER_OP, 32), random_ints(rng, RANDOM_PER_OP, 32))


def test_rounding_divide_by_pot(driver):
    check(driver, 1, *grid(edges(32), range(0, 32)))
    rng = np.random.default_rng(1)
    check(driver, 1, random_ints(rng, RANDOM_PER_OP, 32), rng.integers(0, 32, RANDOM_PER_OP))


def test_rounding_divide_by_pot_64(driver):
    check(driver, 2, *grid(edges(64), range(0, 64)))
    rng = np.random.default_rng(2)
    check(driver, 2, random_ints(rng, RANDOM_PER_OP, 64), rng.integers(0, 64, RANDOM_PER_OP))


def test_multiply_by_quantized_multiplier(driver):
    e = edges(32)
    qs = np.concatenate([e, [1 << 30, (1 << 31) - 1, 1518500250, 1073741825]])
    x, q, s = np.meshgrid(e, qs, np.arange(-31, 32), indexing="ij")
    check(driver, 3, x.ravel(), q.ravel(), s.ravel())
    rng = np.random.default_rng(3)
    n = RANDOM_PER_OP
    check(driver, 3, random_ints(rng, n, 32), random_ints(rng, n, 32), rng.integers(-31, 32, n))
    # TFLM's own multipliers: q in [2^30, 2^31)
    check(driver, 3, random_ints(rng, n, 32), rng.integers(1 << 30, 1 << 31, n), rng.integers(-31, 32, n))


def test_sat_rounding_mul_by_pot(driver):
    check(driver, 4, *grid(edges(32), range(-31, 32)))
    rng = np.random.default_rng(4)
    check(driver, 4, random_ints(rng, RANDOM_PER_OP, 32), rng.integers(-31, 32, RANDOM_PER_OP))


def test_exp_on_negative_values(driver):
    check(driver, 5, *grid(edges(32), range(0, 30)))
    rng = np.random.default_rng(5)
    n = RANDOM_PER_OP
    check(driver, 5, random_ints(rng, n, 32), rng.integers(0, 30, n))
    # the domain as softmax uses it: a <= 0 in Q5.26, all of [-32, 0] densely
    check(driver, 5, -rng.integers(0, 1 << 31, n), np.full(n, 5))


def test_one_over_one_plus_x(driver):
    check(driver, 6, edges(32))
    rng = np.random.default_rng(6)
    check(driver, 6, random_ints(rng, RANDOM_PER_OP, 32))
    check(driver, 6, rng.integers(0, 1 << 31, RANDOM_PER_OP))          # the domain, [0, 1)


def test_get_reciprocal(driver):
    check(driver, 7, *grid(edges(32), range(-8, 41)))
    rng = np.random.default_rng(7)
    check(driver, 7, random_ints(rng, RANDOM_PER_OP, 32), rng.integers(0, 32, RANDOM_PER_OP))


# ---- hypothesis: batches of whatever it finds interesting ---------------------------------------

i32 = st.integers(I32_MIN, I32_MAX)


@st.composite
def batches(draw):
    op = draw(st.sampled_from(sorted(OPS)))
    _, _, (blo, bhi), (clo, chi) = OPS[op]
    ints = st.integers(I64_MIN, I64_MAX) if op == 2 else i32
    rows = draw(st.lists(st.tuples(ints, st.integers(blo, bhi), st.integers(clo, chi)), min_size=1, max_size=20))
    return op, np.array(rows, np.int64)


@PROPERTY
@given(batch=batches())
def test_hypothesis_batches(driver, batch):
    op, rows = batch
    check(driver, op, rows[:, 0], rows[:, 1], rows[:, 2])
