"""Verification tier 3, whole generations: the generated C model + runtime, built natively, against
the golden model token for token (and the tokenizer against the host's)."""

import numpy as np
import pytest

from edgeslm.bridge import protocol as P
from edgeslm.quant.golden import GoldenEngine
from edgeslm.verify import expected_tokens, first_mismatch

from firmware_helpers import device, native_firmware
from test_reference import LLAMA2C_NO_PROMPT

CASES = [("", 0.0, 1), ("Tom and Lily", 0.0, 1), ("Once upon a time", 0.9, 42), ("The dog", 1.0, 7)]


@pytest.mark.parametrize("quant,kv", [("q8", "f32"), ("q8", "i8"), ("q4", "f32"), ("q4", "i8"),
                                      ("f32", "f32")])
def test_generations_equal_golden(stories, tmp_path, quant, kv):
    model, tok = stories
    comp, exe = native_firmware(model, tok, tmp_path, quant, kv)
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    with device(exe) as dev:
        info = dev.hello()
        assert info.weights_ok and info.scheme == quant and info.model_hash == comp.qmodel.model_fingerprint[:16]
        for prompt, temp, seed in CASES:
            got = [m.token for m in dev.generate(prompt, 120, temp, 0.9, seed) if isinstance(m, P.Token)]
            want = expected_tokens(golden, tok, prompt, 120, temp, 0.9, seed)
            assert first_mismatch(got, want) is None, (prompt, temp)


@pytest.mark.parametrize("quant", ["q8", "q4"])
def test_activation_groups_finer_than_weight_groups_equal_golden(stories, tmp_path, quant):
    """--act-group-size 16 with weight groups of 32: the same integers, each scale repeated over its
    two activation groups (quant.quantize.split_groups); firmware and golden work in groups of 16."""
    from edgeslm.quant.quantize import quantize_matrix, split_groups
    model, tok = stories
    w = model.tensors["layers.0.feed_forward.w1"]
    t32 = quantize_matrix(w, 8, 32)
    t16 = split_groups(t32, 16)
    assert t16.group_size == 16 and np.array_equal(t16.dequantize(), t32.dequantize())
    comp, exe = native_firmware(model, tok, tmp_path, quant, "i8", max_seq=96, act_group_size=16)
    assert comp.plan.scheme.kernel_group_size == 16
    assert {ps.step.group_size for ps in comp.plan.steps if ps.step.op == "matmul"} == {16}
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    with device(exe) as dev:
        for prompt, temp, seed in CASES[1:3]:
            got = [m.token for m in dev.generate(prompt, 60, temp, 0.9, seed) if isinstance(m, P.Token)]
            assert first_mismatch(got, expected_tokens(golden, tok, prompt, 60, temp, 0.9, seed)) is None


def test_second_model_and_short_context(aidreams, tmp_path):
    model, tok = aidreams
    comp, exe = native_firmware(model, tok, tmp_path, "q8", "i8", max_seq=64)
    golden = GoldenEngine(comp.qmodel, 64)
    with device(exe) as dev:
        for prompt, temp, seed in CASES:
            msgs = list(dev.generate(prompt, 0, temp, 0.9, seed))   # 0 = the whole (64) context
            got = [m.token for m in msgs if isinstance(m, P.Token)]
            assert first_mismatch(got, expected_tokens(golden, tok, prompt, 0, temp, 0.9, seed)) is None
            assert len(got) <= 64 and isinstance(msgs[-1], P.Done)


def test_f32_firmware_prints_llama2c_text(stories, tmp_path):
    model, tok = stories
    _, exe = native_firmware(model, tok, tmp_path, "f32")
    with device(exe) as dev:
        pieces = [tok.printable(m.piece) for m in dev.generate("", 200, 0.0) if isinstance(m, P.Token)]
    assert b"".join(pieces).decode() == LLAMA2C_NO_PROMPT


PROMPTS = ["Tom and Lily", "", "a", "Lily's mom said, \"Let's go!\"", "naïve café 🐉 über",
           "   spaces   and\ttabs\n", "x" * 300, "The quick brown fox jumps over the lazy dog."]


def test_firmware_tokenizer_equals_host(stories, tmp_path):
    """Prompt tokens the firmware forces equal the host tokenizer's (token-id prompts vs text)."""
    model, tok = stories
    _, exe = native_firmware(model, tok, tmp_path, "q8")
    with device(exe) as dev:
        for prompt in PROMPTS:
            ids = tok.encode(prompt)
            steps = len(ids)    # every step forces the next prompt token: the device echoes them
            got = [m.token for m in dev.generate(prompt, steps, 0.0) if isinstance(m, P.Token)]
            assert got[:len(ids) - 1] == ids[1:], prompt
            if 2 * len(ids) <= 491:                 # u16 ids must fit one request frame
                as_ids = [m.token for m in dev.generate(ids, steps, 0.0) if isinstance(m, P.Token)]
                assert as_ids == got


def test_no_dynamic_allocation_in_firmware():
    from edgeslm.lower.native import FIRMWARE
    for src in FIRMWARE.rglob("*.c"):
        text = src.read_text()
        for word in ("malloc(", "calloc(", "realloc(", "free("):
            assert word not in text, f"{src} uses {word}"
