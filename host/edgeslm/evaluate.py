"""Accuracy of a quantized model against the float reference (verification tier 5).

Teacher-forced over token sequences: at every position both engines see the same token; we compare
their next-token distributions. Figures: mean KL(float || quant) first (it sees every probability, so
it ranks methods with far fewer positions), then top-1 agreement with its Wilson 95% interval, then
the perplexity of each on the next token of the sequence.

The interval treats positions as independent draws; positions of one sequence are not quite, so
read it as a lower bound on the uncertainty. At 12,000 positions (DEFAULT_TOKENS) it is about
+-0.2% near 99% agreement and +-0.55% near 90%.

Several quantized engines can be compared in one pass (compare_many): the float reference runs once
per position and every engine sees the same tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .generate import Engine, forward_checked, generate
from .model.tokenizer import BOS, Tokenizer
from .sampler import Sampler

DEFAULT_TOKENS = 12_000
WILSON_Z = 1.959964                     # two-sided 95%

# Varied openings for the default evaluation text (the float model continues each).
DEFAULT_PROMPTS = [
    "", "Once upon a time", "Tom and Lily", "The little dog", "One day, a girl named Sue",
    "The sun was", "Ben wanted to", "In the park", "Mom said", "A big bird",
    "There was a boy who", "The cat and the mouse",
]


@dataclass
class Accuracy:
    tokens: int
    top1_agreement: float
    kl_mean: float
    ppl_float: float
    ppl_quant: float

    @property
    def top1_interval(self) -> tuple[float, float]:
        return wilson_interval(round(self.top1_agreement * self.tokens), self.tokens)

    def as_dict(self) -> dict:
        lo, hi = self.top1_interval
        return {**asdict(self), "top1_wilson95": [lo, hi]}


def wilson_interval(hits: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for a proportion hits/n (95% for the default z)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def model_text(engine: Engine, tokenizer: Tokenizer, tokens_wanted: int = DEFAULT_TOKENS,
               steps: int = 256) -> list[list[int]]:
    """The default evaluation text: the float model's own continuations of DEFAULT_PROMPTS,
    alternately greedy and sampled (T=0.8, top-p 0.9, fixed seeds), until `tokens_wanted`."""
    seqs, total, i = [], 0, 0
    steps = min(steps, engine.max_seq_len)
    while total < tokens_wanted:
        prompt = DEFAULT_PROMPTS[i % len(DEFAULT_PROMPTS)]
        greedy = (i + i // len(DEFAULT_PROMPTS)) % 2 == 0   # each prompt both ways
        sampler = Sampler(0.0 if greedy else 0.8, 0.9, state=1000 + i)
        gen = generate(engine, tokenizer, prompt, steps, sampler)
        seq = [BOS] + gen.tokens
        if len(seq) > 1:
            seqs.append(seq)
            total += len(seq) - 1
        i += 1
    return seqs


def text_sequences(tokenizer: Tokenizer, text: str, max_seq_len: int) -> list[list[int]]:
    """A text file's tokens, cut into windows of the context length, each starting with BOS."""
    ids = tokenizer.encode(text, bos=False)
    return [[BOS] + ids[i:i + max_seq_len - 1] for i in range(0, len(ids), max_seq_len - 1)]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def compare(float_engine: Engine, quant_engine: Engine, sequences: list[list[int]],
            progress: Callable[[int], None] | None = None) -> Accuracy:
    return compare_many(float_engine, [quant_engine], sequences, progress)[0]


def compare_many(float_engine: Engine, quant_engines: list[Engine], sequences: list[list[int]],
                 progress: Callable[[int], None] | None = None) -> list[Accuracy]:
    """Accuracy of each engine against the float one, all teacher-forced on the same sequences;
    the float forward pass runs once per position."""
    k = len(quant_engines)
    agree, kl, nll_q = np.zeros(k, np.int64), np.zeros(k), np.zeros(k)
    nll_f, n = 0.0, 0
    for seq in sequences:
        float_engine.reset()
        for e in quant_engines:
            e.reset()
        for pos in range(len(seq) - 1):
            lf = _log_softmax(forward_checked(float_engine, seq[pos], pos))
            pf, top = np.exp(lf), np.argmax(lf)
            nxt = seq[pos + 1]
            for i, e in enumerate(quant_engines):
                lq = _log_softmax(forward_checked(e, seq[pos], pos))
                agree[i] += int(top == np.argmax(lq))
                kl[i] += float(np.sum(pf * (lf - lq)))
                nll_q[i] -= lq[nxt]
            nll_f -= lf[nxt]
            n += 1
            if progress:
                progress(1)
    if n == 0:
        from .errors import UsageError
        raise UsageError("no tokens to evaluate", "give a text with at least two tokens")
    return [Accuracy(tokens=n, top1_agreement=int(agree[i]) / n, kl_mean=float(kl[i]) / n,
                     ppl_float=float(np.exp(nll_f / n)), ppl_quant=float(np.exp(nll_q[i] / n)))
            for i in range(k)]
