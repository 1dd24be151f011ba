"""The integer-only (s8) kernels against their golden functions, step by step, at tolerance 0:
the generated i8 model of a real checkpoint built natively with tests/c/step_dump.c, every step's
output compared with quant/golden_s8.py's over several positions (real calibrated multipliers,
zero points and tables). And the golden step table against the blocks that tests/test_tflite_export.py
replays against tflite-micro, so the kernels inherit that independent check."""

import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgeslm.lower.boards import load_board
from edgeslm.lower.compile import compile_model
from edgeslm.lower.native import CFLAGS, FIRMWARE, kernel_sources
from edgeslm.quant import get_scheme
from edgeslm.quant.calibrate import PromptsDataReader, calibrate
from edgeslm.quant.int8 import I8Engine, quantize_int8

TESTS_C = Path(__file__).parent / "c"


@pytest.fixture(scope="module")
def calib(stories):
    model, tok = stories
    return calibrate(model, PromptsDataReader(model, tok, ["Lily and Ben", "The cat"], 100), "percentile")


def _step_dump(comp, out: Path) -> Path:
    exe = out / "step_dump"
    srcs = [TESTS_C / "step_dump.c", FIRMWARE / "runtime" / "forward.c", FIRMWARE / "ports" / "host" / "port.c",
            *kernel_sources(), *sorted(comp.gen_dir.glob("*.c"))]
    subprocess.run(["gcc", *CFLAGS, "-fsanitize=undefined", "-fno-sanitize-recover", f"-I{FIRMWARE / 'include'}",
                    f"-I{comp.gen_dir}", "-o", str(exe), *map(str, srcs), "-lm"], check=True)
    return exe


@pytest.mark.parametrize("board,int16", [("mps2_an386", "none"), ("mps2_an385", "none"), ("mps2_an386", "ffn"),
                                         ("mps2_an386", "keys,ffn,residual,norms"), ("mps2_an385", "keys,ffn,residual,norms"),
                                         ("mps2_an386", "residual"), ("mps2_an386", "norms")])
def test_every_s8_step_equals_golden(stories, calib, tmp_path, board, int16):
    """Also with the --int16 parts (their int16 values compared as int16: every byte)."""
    model, tok = stories
    max_seq = 16
    comp = compile_model(model, tok, load_board(board), get_scheme("i8", int16=int16), max_seq, tmp_path,
                         calib=calib)
    exe = _step_dump(comp, tmp_path)
    rng = np.random.default_rng(7)
    tokens = [1] + [int(t) for t in rng.integers(0, model.config.vocab_size, max_seq - 1)]
    nbytes = comp.plan.arena_bytes
    out = subprocess.run([str(exe), str(nbytes), *map(str, tokens)], capture_output=True, check=True).stdout
    steps = comp.plan.steps
    assert len(out) == nbytes * len(steps) * len(tokens)
    golden = I8Engine(comp.qmodel, max_seq)
    checked = 0
    for pos, token in enumerate(tokens):
        golden.token, golden.pos = token, pos
        for i, (run, s) in enumerate(zip(golden.run, golden.steps)):
            run(golden, s)
            if not s.out:
                continue
            want = golden.val[s.out]
            at = (pos * len(steps) + i) * nbytes + comp.plan.offsets[s.out]
            got = np.frombuffer(out[at:at + want.nbytes], want.dtype)
            bad = np.flatnonzero(got != want)
            assert bad.size == 0, f"pos {pos} step {i} ({s.kernel} {s.weight or s.norm}): {bad.size} differ, " \
                                  f"first at {bad[0]}: firmware {got[bad[0]]}, golden {golden.val[s.out][bad[0]]}"
            checked += 1
    assert checked > 80 * len(tokens) * 0.9


@pytest.mark.parametrize("int16", [(), ("keys",), ("ffn",), ("residual",), ("norms",), ("keys", "ffn", "residual", "norms")])
def test_golden_steps_equal_tflm_blocks(stories, aidreams, calib, int16):
    """The step kernels' golden (forward) == the TFLM-op blocks (forward_blocks), bit for bit
    (with int16 keys the blocks' RoPE is TFLM's FULLY_CONNECTED 16x8, with an int16 ffn its int16
    LOGISTIC and MUL, with an int16 residual its int16 ADD: tests/test_tflm_ops.py)."""
    for model, tok in (stories, aidreams):
        c = calib if model is stories[0] else calibrate(model, PromptsDataReader(model, tok, ["The"], 60))
        qm = quantize_int8(model, c, int16)
        steps, blocks = I8Engine(qm), I8Engine(qm)
        rng = np.random.default_rng(3)
        for pos, t in enumerate([1] + [int(x) for x in rng.integers(0, model.config.vocab_size, 47)]):
            steps.forward(t, pos)
            assert np.array_equal(steps.last_logits_q, blocks.forward_blocks(t, pos)), pos
