"""Token sampling, exactly as llama2.c run.c does it (and as the firmware will).

Every float operation is float32 and in run.c's order: the softmax sum and the cumulative sums
are sequential (np.add.accumulate), the top-p sort is by probability, descending. The exp used by
the softmax is a parameter: np.exp for the float reference (close to libm's expf), the firmware's
portable approximation for the golden model.

Random numbers: xorshift64* with run.c's constants; random_f32 = (u32 >> 8) / 2**24.
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
    """The first index of the maximum (run.c's strict > scan)."""
    return int(np.argmax(x))


def sample_mult(probs: np.ndarray, coin: np.float32) -> int:
    cdf = np.add.accumulate(probs)
    hits = np.nonzero(coin < cdf)[0]
    return int(hits[0]) if hits.size else len(probs) - 1


def sample_topp(probs: np.ndarray, topp: np.float32, coin: np.float32) -> int:
    """run.c sample_topp: drop tokens below (1-topp)/(n-1), sort descending, cut where the
    cumulative probability first exceeds topp, then sample inside the kept prefix."""
    n = len(probs)
    cutoff = (F32(1.0) - topp) / F32(n - 1)
    idx = np.nonzero(probs >= cutoff)[0]
    # descending by probability; equal probabilities keep index order (the firmware's rule)
    idx = idx[np.argsort(-probs[idx], kind="stable")]
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
        probs = self.softmax(np.asarray(logits, dtype=F32) / t)
        self.state, coin = random_f32(self.state)
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
