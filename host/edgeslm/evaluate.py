"""Accuracy of a quantized model against the float reference (verification tier 5).

Teacher-forced over token sequences: at every position both engines see the same token; we compare
their next-token distributions. Figures: top-1 agreement, mean KL(float || quant), perplexity of
each on the next token of the sequence.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .generate import Engine, forward_checked, generate
from .model.tokenizer import BOS, Tokenizer
from .sampler import Sampler

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

    def as_dict(self) -> dict:
        return asdict(self)


def model_text(engine: Engine, tokenizer: Tokenizer, tokens_wanted: int = 3000,
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
    agree, kl, nll_f, nll_q, n = 0, 0.0, 0.0, 0.0, 0
    for seq in sequences:
        float_engine.reset()
        quant_engine.reset()
        for pos in range(len(seq) - 1):
            lf = _log_softmax(forward_checked(float_engine, seq[pos], pos))
            lq = _log_softmax(forward_checked(quant_engine, seq[pos], pos))
            agree += int(np.argmax(lf) == np.argmax(lq))
            kl += float(np.sum(np.exp(lf) * (lf - lq)))
            nll_f -= lf[seq[pos + 1]]
            nll_q -= lq[seq[pos + 1]]
            n += 1
            if progress:
                progress(1)
    if n == 0:
        from .errors import UsageError
        raise UsageError("no tokens to evaluate", "give a text with at least two tokens")
    return Accuracy(tokens=n, top1_agreement=agree / n, kl_mean=kl / n,
                    ppl_float=float(np.exp(nll_f / n)), ppl_quant=float(np.exp(nll_q / n)))
