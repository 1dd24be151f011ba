"""Tier 1: the float reference prints what llama2.c's run.c prints (../shared/models/README.md)."""

import subprocess
import sys

import numpy as np

from edgeslm.generate import generate
from edgeslm.reference import FloatEngine
from edgeslm.sampler import Sampler, random_u32

from conftest import shared

# llama2.c: run stories260K.bin -z tok512.bin -t 0.0 -n 200   (stdout, final newline removed)
LLAMA2C_NO_PROMPT = (
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
    "One day, she saw a big, red ball. She wanted to play with it, but it was too high.\n"
    "Lily's mom said, \"Lily, let's go to the park.\" Lily was sad and didn't know what to do. "
    "She said, \"I want to play with your ball, but I can't find it.\"\n"
    "Lily was sad and didn't know what to do. She said, \"I'm sorry, Lily. I didn't know what to do.\"\n"
    "Lily didn't want to help her mom, so she")
# llama2.c: run stories260K.bin -z tok512.bin -i "Tom and Lily" -t 0 -n 128
LLAMA2C_TOM_AND_LILY = (
    "Tom and Lily were playing in the park. They liked to play with their toys and run around the "
    "park. They saw a big box with a big box. They wanted to play with the box.\n"
    "\"Look, Mom!\" Tom said. \"Let's go to the park.\"\n"
    "\"Let's go to the park,\" Lily said. \"Let's go to the park.\"\n"
    "\"OK,\"")


def test_no_prompt_matches_llama2c(stories):
    m, tok = stories
    gen = generate(FloatEngine(m), tok, "", 200, Sampler(0.0, 0.9, 1))
    assert gen.text.decode() == LLAMA2C_NO_PROMPT
    assert len(gen.tokens) == 200


def test_prompt_matches_llama2c(stories):
    m, tok = stories
    gen = generate(FloatEngine(m), tok, "Tom and Lily", 128, Sampler(0.0, 0.9, 1))
    assert gen.text.decode() == LLAMA2C_TOM_AND_LILY


def test_cli_stdout_is_byte_identical_to_run_c():
    out = subprocess.run(
        [sys.executable, "-m", "edgeslm", "generate", str(shared("stories260K.bin")),
         "--tokenizer", str(shared("tok512.bin")), "--temperature", "0", "--steps", "200"],
        capture_output=True, check=True).stdout
    assert out == (LLAMA2C_NO_PROMPT + "\n").encode()


def test_second_model_different_shape(aidreams):
    """aidreams260K: 4 layers, 4 heads, no GQA, context 128. Greedy generation is deterministic,
    and every step's logits agree with an independent whole-sequence float64 forward pass."""
    m, tok = aidreams
    eng = FloatEngine(m)
    gen = generate(eng, tok, "", 0, Sampler(0.0, 0.9, 1))
    assert 20 < len(gen.tokens) <= 128
    again = generate(FloatEngine(m), tok, "", 0, Sampler(0.0, 0.9, 1))
    assert again.tokens == gen.tokens
    seq = [1] + gen.tokens
    ref = _float64_forward(m, seq)
    eng.reset()
    for pos in range(len(seq) - 1):
        logits = eng.forward(seq[pos], pos)
        np.testing.assert_allclose(logits, ref[pos], rtol=1e-4, atol=1e-4)
        assert int(np.argmax(logits)) == seq[pos + 1]


def _float64_forward(m, tokens):
    """An independent, whole-sequence float64 Llama forward (causal mask, no KV cache)."""
    c, w = m.config, m.tensors
    T, hs = len(tokens), c.head_size
    x = w["tok_embeddings"][tokens].astype(np.float64)

    def norm(v, g):
        return g * v / np.sqrt((v * v).mean(-1, keepdims=True) + c.norm_eps)

    freq = 1.0 / c.rope_theta ** (np.arange(0, hs, 2) / hs)
    ang = np.arange(T)[:, None] * freq[None]
    cos, sin = np.cos(ang)[:, None], np.sin(ang)[:, None]

    def rot(v):
        a, b = v[..., 0::2], v[..., 1::2]
        out = np.empty_like(v)
        out[..., 0::2], out[..., 1::2] = a * cos - b * sin, a * sin + b * cos
        return out

    for l in range(c.n_layers):
        p = f"layers.{l}."
        h = norm(x, w[p + "attention_norm"])
        q = rot((h @ w[p + "attention.wq"].T).reshape(T, c.n_heads, hs))
        k = rot((h @ w[p + "attention.wk"].T).reshape(T, c.n_kv_heads, hs))
        v = (h @ w[p + "attention.wv"].T).reshape(T, c.n_kv_heads, hs)
        rep = c.n_heads // c.n_kv_heads
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        s = np.einsum("thd,uhd->htu", q, k) / np.sqrt(hs)
        s = s + np.triu(np.full((T, T), -np.inf), 1)
        a = np.exp(s - s.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        o = np.einsum("htu,uhd->thd", a, v).reshape(T, -1)
        x = x + o @ w[p + "attention.wo"].T
        h = norm(x, w[p + "ffn_norm"])
        g = h @ w[p + "feed_forward.w1"].T
        x = x + ((g / (1 + np.exp(-g))) * (h @ w[p + "feed_forward.w3"].T)) @ w[p + "feed_forward.w2"].T
    return norm(x, w["norm"]) @ m.classifier().T


def test_xorshift_matches_hand_computation():
    # xorshift64* from seed 1, computed by hand from the three shifts and the multiplier
    s = 1
    s ^= s >> 12
    s ^= (s << 25) & (2**64 - 1)
    s ^= s >> 27
    assert random_u32(1) == (s, ((s * 0x2545F4914F6CDD1D) % 2**64) >> 32)


def test_sampling_is_reproducible_and_seed_dependent(stories):
    m, tok = stories
    runs = [generate(FloatEngine(m), tok, "Tom", 60, Sampler(0.8, 0.9, seed)).tokens
            for seed in (42, 42, 43)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
