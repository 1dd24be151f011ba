"""The generation loop of llama2.c run.c, shared by every engine (float, golden, firmware check).

An engine is anything with ``forward(token, pos) -> logits`` (float32, vocab_size) that keeps its
own KV cache, and ``reset()``. The loop forces the prompt tokens, then samples; it stops after
`steps` forward passes or when BOS is produced, and emits each token's printable piece as run.c does.

A prompt longer than the context is refused before it is tokenized in full, and logits that are
not finite (the model's float32 arithmetic overflowed) are refused at the position they appear.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import EdgeslmError, UsageError
from .model.tokenizer import BOS, Tokenizer
from .sampler import Sampler


class ArithmeticOverflow(EdgeslmError):
    """The model's arithmetic left float32's range: its weights are too large for the scheme."""


def forward_checked(engine: "Engine", token: int, pos: int) -> np.ndarray:
    """engine.forward, refusing logits that are not finite and, for the firmware's arithmetic
    (every engine but the float reference), any float operation that left float32's range: the
    firmware would not mirror it bit for bit. The float reference is run.c's IEEE arithmetic,
    where expf overflowing to inf inside a sigmoid is part of the answer."""
    from .reference import FloatEngine
    over = "ignore" if isinstance(engine, FloatEngine) else "raise"
    try:
        with np.errstate(over=over, invalid="ignore", divide="ignore", under="ignore"):
            logits = engine.forward(token, pos)
    except FloatingPointError as e:
        raise ArithmeticOverflow(f"the forward pass at position {pos} overflowed float32 ({e})",
                                 "the model's weights are too large for this arithmetic; "
                                 "rescale or retrain it") from None
    if not np.isfinite(logits).all():
        bad = int(np.count_nonzero(~np.isfinite(logits)))
        raise ArithmeticOverflow(f"the forward pass at position {pos} left {bad} of {len(logits)} logits "
                                 "inf or NaN", "the model's weights are too large for this arithmetic; "
                                 "rescale or retrain it")
    return logits


class Engine(Protocol):
    max_seq_len: int

    def reset(self) -> None: ...
    def forward(self, token: int, pos: int) -> np.ndarray: ...


@dataclass
class Generation:
    prompt_tokens: list[int]
    tokens: list[int] = field(default_factory=list)   # every token after the first (prompt + sampled)
    text: bytes = b""                                   # what run.c prints (without the final newline)
    seconds: float = 0.0


def run_c_steps(steps: int, max_seq_len: int) -> int:
    """run.c's -n: <= 0 or more than the context means the whole context."""
    return max_seq_len if steps <= 0 or steps > max_seq_len else steps


def generate(engine: Engine, tokenizer: Tokenizer, prompt: str | bytes, steps: int, sampler: Sampler,
             on_piece: Callable[[int, bytes], None] | None = None) -> Generation:
    """Generate like `run MODEL -z TOK -i PROMPT -n STEPS ...`; `on_piece(token, text)` streams."""
    if steps < 0:
        raise UsageError(f"steps {steps} is negative", "pass 0 for the whole context, or a positive count")
    prompt_tokens = tokenizer.encode(prompt, bos=True, max_tokens=engine.max_seq_len)
    steps = run_c_steps(steps, engine.max_seq_len)
    engine.reset()
    gen = Generation(prompt_tokens=prompt_tokens)
    pieces = []
    token, pos = prompt_tokens[0], 0
    start = time.perf_counter()
    while pos < steps:
        logits = forward_checked(engine, token, pos)
        nxt = prompt_tokens[pos + 1] if pos < len(prompt_tokens) - 1 else sampler.sample(logits)
        pos += 1
        if nxt == BOS:
            break
        piece = tokenizer.printable(tokenizer.decode(token, nxt))
        gen.tokens.append(nxt)
        pieces.append(piece)
        if on_piece:
            on_piece(nxt, piece)
        token = nxt
    gen.seconds = time.perf_counter() - start
    gen.text = b"".join(pieces)
    return gen
