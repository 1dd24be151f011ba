"""Check a device's generation against the golden model, token by token (verification tier 4).

    expected_tokens(qmodel, tokenizer, prompt, steps, T, topp, seed) -> list of token ids
    first_mismatch(device_tokens, expected) -> position or None
"""

from __future__ import annotations

from .generate import generate
from .model.tokenizer import Tokenizer
from .quant.golden import GoldenEngine
from .sampler import engine_sampler


def expected_tokens(engine: GoldenEngine, tok: Tokenizer, prompt: str, steps: int,
                    temperature: float, topp: float, seed: int) -> list[int]:
    """The tokens the firmware must send: the golden model under run.c's generation loop."""
    gen = generate(engine, tok, prompt, steps, engine_sampler("golden", temperature, topp, seed))
    return gen.tokens


def first_mismatch(got: list[int], want: list[int]) -> int | None:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return None if len(got) == len(want) else min(len(got), len(want))
