"""Check a device's generation against the golden model, token by token (verification tier 4).

    expected_tokens(qmodel, tokenizer, prompt, steps, T, topp, seed) -> list of token ids
    first_mismatch(device_tokens, expected) -> position or None
"""

from __future__ import annotations

import numpy as np

from .generate import generate
from .model.tokenizer import Tokenizer
from .quant.golden import GoldenEngine
from .sampler import engine_sampler


class IntegerSampler:
    """The integer-only firmware's fixed-point sampler (firmware/runtime/sampler_s8.c, mirrored by
    sampler.sample_s8) over the i8 engine's int8 logits; temperature and top-p as the request's
    float32, read as Q16.16 the way the firmware reads them."""

    def __init__(self, engine, temperature: float, topp: float, seed: int):
        from .sampler import logit_k, q16_from_f32
        self.engine = engine
        self.temp_q16 = q16_from_f32(float(np.float32(temperature)))
        self.topp_q16 = q16_from_f32(float(np.float32(topp)))
        if self.topp_q16 == 0 and np.float32(topp) != 0:
            self.topp_q16 = 1                     # a tiny top-p stays top-p (serve.c: sampler_init)
        self.k = logit_k(engine.qm.params["logits"][0])
        self.state = seed

    def sample(self, logits) -> int:
        from .sampler import sample_s8
        self.state, token = sample_s8(self.engine.last_logits_q, self.temp_q16, self.topp_q16, self.k, self.state)
        return token


def golden_sampler(engine, temperature: float, topp: float, seed: int):
    """The sampler the firmware runs with this golden engine: fixed point for the integer scheme."""
    from .quant.int8 import I8Engine
    if isinstance(engine, I8Engine):
        return IntegerSampler(engine, temperature, topp, seed)
    return engine_sampler("golden", temperature, topp, seed)


def expected_tokens(engine: GoldenEngine, tok: Tokenizer, prompt: str, steps: int,
                    temperature: float, topp: float, seed: int) -> list[int]:
    """The tokens the firmware must send: the golden model under run.c's generation loop."""
    gen = generate(engine, tok, prompt, steps, golden_sampler(engine, temperature, topp, seed))
    return gen.tokens


def first_mismatch(got: list[int], want: list[int]) -> int | None:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return i
    return None if len(got) == len(want) else min(len(got), len(want))
