"""The generation loop of llama2.c run.c, shared by every engine (float, golden, firmware check).

An engine is anything with ``forward(token, pos) -> logits`` (float32, vocab_size) that keeps its
own KV cache, and ``reset()``. The loop forces the prompt tokens, then samples; it stops after
`steps` forward passes or when BOS is produced, and emits each token's printable piece as run.c does.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .errors import UsageError
from .model.tokenizer import BOS, Tokenizer
from .sampler import Sampler


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


def generate(engine: Engine, tokenizer: Tokenizer, prompt: str, steps: int, sampler: Sampler,
             on_piece: Callable[[int, bytes], None] | None = None) -> Generation:
    """Generate like `run MODEL -z TOK -i PROMPT -n STEPS ...`; `on_piece(token, text)` streams."""
    prompt_tokens = tokenizer.encode(prompt, bos=True)
    steps = run_c_steps(steps, engine.max_seq_len)
    if len(prompt_tokens) > engine.max_seq_len:
        raise UsageError(f"the prompt is {len(prompt_tokens)} tokens, the context holds "
                         f"{engine.max_seq_len}", "shorten the prompt")
    engine.reset()
    gen = Generation(prompt_tokens=prompt_tokens)
    pieces = []
    token, pos = prompt_tokens[0], 0
    start = time.perf_counter()
    while pos < steps:
        logits = engine.forward(token, pos)
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
