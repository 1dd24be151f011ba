"""The sampler is total and the same on both sides: for every float32 input the protocol accepts
(and any logits, NaN and inf included) host/edgeslm/sampler.py and firmware/runtime/sampler.c
return the same index in [0, n) and leave the same random state. The issue's case: temperature
1e-38 with top-p 0.9 made every probability NaN, and sample_topp read before its buffer."""

import struct
import subprocess

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reliability_helpers  # noqa: F401  (hypothesis's own files go to .pytest_cache)

from edgeslm.lower.native import CFLAGS, FIRMWARE
from edgeslm.quant.golden import softmax as golden_softmax
from edgeslm.sampler import Sampler, argmax, sample_topp

TESTS = FIRMWARE.parent / "tests"
F32 = np.float32
EXAMPLES = 400                                  # per property test (reported in the issue's figures)
SANITIZE = ["-g", "-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]

PROPERTY = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
temperatures = st.one_of(st.just(0.0), st.sampled_from([1e-45, 1e-38, 1e-30, 1e-6, 0.5, 1.0, 1e30, 3.4e38]),
                         st.floats(min_value=0.0, width=32, allow_nan=False, allow_infinity=False))
topps = st.one_of(st.sampled_from([0.0, 1.0, 1e-6, 0.9, 0.5]),
                  st.floats(min_value=0.0, max_value=1.0, width=32, allow_subnormal=True))
any_f32 = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)


@st.composite
def logit_vectors(draw):
    """Mostly model-like logits (normal, scaled), sometimes any float32 at all, sometimes with a
    few NaN / inf / huge entries planted; 1 to 600 entries."""
    n = draw(st.integers(1, 600))
    kind = draw(st.sampled_from(["normal", "any", "planted", "flat"]))
    if kind == "any":
        return np.array(draw(st.lists(any_f32, min_size=n, max_size=n)), F32)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = (rng.normal(size=n) * draw(st.sampled_from([0.01, 1.0, 5.0, 100.0, 1e30]))).astype(F32)
    if kind == "flat":
        x[:] = x[0]
    if kind == "planted":
        for v in draw(st.lists(st.sampled_from([np.nan, np.inf, -np.inf, 3.4e38, -3.4e38]), min_size=1, max_size=4)):
            x[draw(st.integers(0, n - 1))] = v
    return x


def host_sample(logits, temperature, topp, seed):
    s = Sampler(temperature, topp, seed, softmax=golden_softmax)
    return s.sample(logits.copy()), s.state


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """The firmware's sampler, natively built under AddressSanitizer and UBSan (a report kills it,
    and the test fails), answering requests on a pipe."""
    exe = tmp_path_factory.mktemp("sampler") / "sampler_driver"
    srcs = [FIRMWARE / "runtime" / "sampler.c", FIRMWARE / "kernels" / "common" / "esl_softmax_f32.c",
            FIRMWARE / "kernels" / "common" / "esl_exp2_table.c",
            TESTS / "c" / "sampler_driver.c"]
    r = subprocess.run(["gcc", *CFLAGS, *SANITIZE, f"-I{FIRMWARE / 'include'}", "-o", str(exe), *map(str, srcs), "-lm"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    proc = subprocess.Popen([str(exe)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def sample(logits, temperature, topp, seed):
        proc.stdin.write(struct.pack("<IffQ", len(logits), temperature, topp, seed) + logits.astype("<f4").tobytes())
        proc.stdin.flush()
        out = proc.stdout.read(12)
        assert len(out) == 12, f"the driver died (exit {proc.wait(10)}): {proc.stderr.read().decode()[-2000:]}"
        return struct.unpack("<IQ", out)
    yield sample
    proc.stdin.close()
    assert proc.wait(timeout=10) == 0
    # nothing left behind: the driver exited (asserted above) and is reaped


def test_both_sides_state_the_same_rules():
    """sampler.c and sampler.py give their totality rules in the same words."""
    from edgeslm import sampler
    c = (FIRMWARE / "runtime" / "sampler.c").read_text()
    c_rules = " ".join(line.strip().lstrip("*").strip() for line in c[c.index("* 1."):c.index("*/")].splitlines())
    py = sampler.__doc__
    py_rules = " ".join(line.strip() for line in py[py.index("1. argmax"):].splitlines())
    assert c_rules.split() == py_rules.split()


def test_issue_case_temperature_1e38_is_greedy():
    rng = np.random.default_rng(0)
    logits = (rng.normal(size=512) * 5).astype(F32)
    token, _ = host_sample(logits, 1e-38, 0.9, 42)
    assert token == argmax(logits)                  # the limit of temperature -> 0


def test_topp_that_keeps_nothing_picks_the_most_probable():
    probs = np.full(512, F32(1 / 512), F32)
    probs[7] = F32(1 / 511)                         # a tiny top-p on a near-uniform distribution
    assert sample_topp(probs, F32(1e-6), F32(0.5)) == 7


def test_argmax_is_run_c_scan():
    assert argmax(np.array([np.nan, 5, 9], F32)) == 0           # NaN at 0 stays
    assert argmax(np.array([1, np.nan, 9, 9], F32)) == 2        # NaN never wins; first maximum
    assert argmax(np.array([-np.inf, -np.inf], F32)) == 0


@PROPERTY
@given(logits=logit_vectors(), temperature=temperatures, topp=topps, seed=st.integers(1, 2**64 - 1))
def test_host_sampler_is_total(logits, temperature, topp, seed):
    token, state = host_sample(logits, temperature, topp, seed)
    assert 0 <= token < len(logits)
    assert state == seed if temperature == 0 else state != seed     # one coin per sampled token


@PROPERTY
@given(logits=logit_vectors(), temperature=temperatures, topp=topps, seed=st.integers(1, 2**64 - 1))
def test_firmware_sampler_equals_host(driver, logits, temperature, topp, seed):
    assert driver(logits, temperature, topp, seed) == host_sample(logits, temperature, topp, seed)
