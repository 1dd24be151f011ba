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

from dataclasses import dataclass
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
