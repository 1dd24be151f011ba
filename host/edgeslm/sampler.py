"""Token sampling, exactly as llama2.c run.c does it (and as the firmware will).

Every float operation is float32 and in run.c's order: the softmax sum and the cumulative sums
are sequential (np.add.accumulate), the top-p sort is by probability, descending. The exp used by
the softmax is a parameter: np.exp for the float reference (close to libm's expf), the firmware's
portable approximation for the golden model.

Random numbers: xorshift64* with run.c's constants; random_f32 = (u32 >> 8) / 2**24.

Total for any input (firmware/runtime/sampler.c has the same rules, in the same words):
1. argmax is run.c's strict `>` scan from index 0: the first maximum; a NaN never becomes the
   maximum, and a NaN at index 0 stays the answer.
2. With a temperature > 0 the coin is drawn for every token. If any logit / temperature is not
   finite (a temperature so small the division overflows, or logits that are already inf/NaN),
   the token is the argmax of the logits as they came: greedy, the limit of temperature -> 0.
3. Top-p keeps the tokens whose probability is at least (1 - topp) / (n - 1); when that keeps
   none (a near-uniform distribution with a tiny topp), the token is the first most probable one.
So the answer is always an index in [0, n), for every float32 input, on the host and the device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Callable

import numpy as np

F32 = np.float32
SoftmaxFn = Callable[[np.ndarray], np.ndarray]
_MASK64 = (1 << 64) - 1


def random_u32(state: int) -> tuple[int, int]:
    """xorshift64*: returns (new state, 32-bit output)."""
    state ^= state >> 12
    state ^= (state << 25) & _MASK64
    state ^= state >> 27
    return state, ((state * 0x2545F4914F6CDD1D) & _MASK64) >> 32


def random_f32(state: int) -> tuple[int, np.float32]:
    state, u = random_u32(state)
    return state, F32(u >> 8) / F32(16777216.0)


def softmax(x: np.ndarray) -> np.ndarray:
    """run.c softmax: subtract the max, exp, sequential sum, divide each by the sum."""
    x = np.asarray(x, dtype=F32)
    e = np.exp(x - x.max()).astype(F32)
    total = np.add.accumulate(e)[-1]
    return e / total


def argmax(x: np.ndarray) -> int:
    """run.c's strict `>` scan: the first maximum; NaN never wins, a NaN at index 0 stays (rule 1)."""
    x = np.asarray(x)
    if np.isnan(x[0]):
        return 0
    return int(np.nanargmax(x))


def sample_mult(probs: np.ndarray, coin: np.float32) -> int:
    cdf = np.add.accumulate(probs)
    hits = np.nonzero(coin < cdf)[0]
    return int(hits[0]) if hits.size else len(probs) - 1


def sample_topp(probs: np.ndarray, topp: np.float32, coin: np.float32) -> int:
    """run.c sample_topp: drop tokens below (1-topp)/(n-1), sort descending, cut where the
    cumulative probability first exceeds topp, then sample inside the kept prefix."""
    n = len(probs)
    with np.errstate(divide="ignore", invalid="ignore"):      # n == 1: the cutoff is inf, as in C
        cutoff = (F32(1.0) - topp) / F32(n - 1)
    idx = np.nonzero(probs >= cutoff)[0]
    # descending by probability; equal probabilities keep index order (the firmware's rule)
    idx = idx[np.argsort(-probs[idx], kind="stable")]
    if idx.size == 0:                  # rule 3: nothing reaches the cutoff
        return argmax(probs)
    p = probs[idx]
    cum = np.add.accumulate(p)
    over = np.nonzero(cum > topp)[0]
    last = int(over[0]) if over.size else len(idx) - 1
    r = coin * cum[last]
    hits = np.nonzero(r < cum[:last + 1])[0]
    return int(idx[hits[0]]) if hits.size else int(idx[last])


@dataclass
class Sampler:
    """run.c's Sampler: temperature 0 is greedy; otherwise softmax(logits / T), then top-p if
    0 < topp < 1, else plain multinomial. `state` is the xorshift state (run.c's seed)."""
    temperature: float
    topp: float
    state: int
    softmax: SoftmaxFn = softmax

    def sample(self, logits: np.ndarray) -> int:
        t = F32(self.temperature)
        if t == F32(0.0):
            return argmax(logits)
        logits = np.asarray(logits, dtype=F32)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            scaled = logits / t
        self.state, coin = random_f32(self.state)
        if not np.isfinite(scaled).all():  # rule 2: overflow or non-finite logits -> greedy
            return argmax(logits)
        with np.errstate(over="ignore", under="ignore"):   # x - max may round to -inf: exp 0
            probs = self.softmax(scaled)
        topp = F32(self.topp)
        if topp <= 0 or topp >= 1:
            return sample_mult(probs, coin)
        return sample_topp(probs, topp, coin)


def engine_sampler(engine: str, temperature: float, topp: float, seed: int) -> Sampler:
    """The sampler that belongs with an engine: run.c's softmax for "float", the firmware's for
    "golden" (and for checking the firmware)."""
    if engine == "float":
        return Sampler(temperature, topp, seed)
    from .quant.golden import softmax as golden_softmax
    return Sampler(temperature, topp, seed, softmax=golden_softmax)


# ---- integer sampling: integer-only builds (firmware/runtime/sampler_s8.c) -----------------------

Q16_ONE = 1 << 16
SAMPLER_S8_MAX_N = 1 << 16            # logits read per token (ESL_SAMPLER_S8_MAX_N)
_U32_MAX = (1 << 32) - 1


def q16_from_f32(value) -> int:
    """A float32 as unsigned Q16.16, as esl_q16_from_f32_bits reads the protocol's float32:
    round(value * 65536) half up, exactly, saturated at 2^32 - 1; -0.0 gives 0. ValueError for a
    negative value, NaN or infinity. A Python float is first rounded to float32 (as the request
    carries it)."""
    with np.errstate(over="ignore"):
        v = F32(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{value!r} is not a finite float32 >= 0")
    return min(math.floor(Fraction(float(v)) * Q16_ONE + Fraction(1, 2)), _U32_MAX)


def logit_k(scale) -> int:
    """K = round(s_l * 2^42) (half up, exact), the build constant of the integer sampler: s_l is the
    int8 logits' scale. ValueError unless s_l is finite and > 0 and K fits uint64."""
    s = float(scale)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"the logits' scale must be finite and > 0, not {scale!r}")
    k = math.floor(Fraction(s) * (1 << 42) + Fraction(1, 2))
    if k >= 1 << 64:
        raise ValueError(f"the logits' scale {s!r} is too large for the integer sampler (K >= 2^64)")
    return k


@lru_cache(maxsize=64)
def _weight_table(temp_q16: int, k: int) -> tuple[int, ...]:
    from .quant.tflm_int import exp_on_negative_values
    a = np.array([min((d * k) // temp_q16, 1 << 31) for d in range(256)], np.int64)
    e = exp_on_negative_values(-np.minimum(a, (1 << 31) - 1), 5)
    return tuple(int(w) for w in np.where(a >= 1 << 31, 0, (e + (1 << 14)) >> 15))


def s8_weight_table(temp_q16: int, logit_k: int) -> np.ndarray:
    """E16[d] for d = 0..255 (rule 2 of sample_s8); temp_q16 in [1, 2^32), logit_k in [0, 2^64)."""
    if not (0 < temp_q16 <= _U32_MAX and 0 <= logit_k < 1 << 64):
        raise ValueError(f"no weight table for temp_q16={temp_q16}, logit_k={logit_k}")
    return np.array(_weight_table(int(temp_q16), int(logit_k)), np.int64)


def sample_s8(logits_int8, temp_q16: int, topp_q16: int, logit_k: int, state: int) -> tuple[int, int]:
    """The integer sampler, written naively (sort, then scan) as an independent check of the
    firmware's bins. Returns (new state, token).

    Inputs: int8 logits q[0..n); temperature and top-p as unsigned Q16.16 (temp_q16, topp_q16); the
    xorshift64* state (esl_random_u32); K = round(s_l * 2^42) as uint64, s_l the logits' scale (the
    host computes it: logit_k). Only the first 65536 logits are read; n == 0 gives token 0.
    1. temp_q16 == 0: the argmax, the first maximum (strict > scan); no random number is drawn.
    2. Otherwise u = esl_random_u32(state), drawn once per token, always. qmax = max q. The weight
       table, once per request: for d = 0..255, a = (d * K) / temp_q16 (exact, floor); E16[d] = 0 if
       a >= 2^31, else (E + 2^14) >> 15 with E = esl_exp_on_negative_values(-a, 5) in Q0.31 (so
       E16[0] = 65536). Token i weighs w_i = E16[qmax - q_i].
    3. Without top-p (topp_q16 == 0 or topp_q16 >= 65536): total = the sum of all w_i;
       r = (u * total) >> 32; the token is the first i (index order) whose cumulative weight
       w_0 + ... + w_i exceeds r.
    4. With top-p: order the tokens by d = qmax - q_i ascending, then by index ascending (most
       probable first). Keep the shortest prefix of that order whose cumulative weight C satisfies
       C * 65536 > topp_q16 * total (all tokens if none does); r = (u * C) >> 32; the token is the
       first in that order whose cumulative weight exceeds r.
    Every product and sum is exact (64 bits hold them all). A token of weight 0 is never chosen, and
    the answer is always an index in [0, n).
    """
    q = [int(x) for x in np.asarray(logits_int8, np.int8).ravel()[:SAMPLER_S8_MAX_N]]
    if temp_q16 == 0:                                             # rule 1
        return state, (q.index(max(q)) if q else 0)
    state, u = random_u32(state)                                  # rule 2
    if not q:
        return state, 0
    e16 = _weight_table(int(temp_q16), int(logit_k))
    qmax = max(q)
    w = [e16[qmax - x] for x in q]
    total = sum(w)
    if topp_q16 == 0 or topp_q16 >= Q16_ONE:                      # rule 3
        r = (u * total) >> 32
        cum = 0
        for i, wi in enumerate(w):
            cum += wi
            if cum > r:
                return state, i
        raise AssertionError("not reached: r < total")
    order = sorted(range(len(q)), key=lambda i: (qmax - q[i], i))   # rule 4
    kept, cum = order, 0
    for m, i in enumerate(order):
        cum += w[i]
        if cum * Q16_ONE > topp_q16 * total:
            kept = order[:m + 1]
            break
    r = (u * sum(w[i] for i in kept)) >> 32
    cum = 0
    for i in kept:
        cum += w[i]
        if cum > r:
            return state, i
    raise AssertionError("not reached: r < the kept weight")
