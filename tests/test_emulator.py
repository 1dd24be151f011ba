"""Verification tier 4: the firmware built by PlatformIO for each board, running under QEMU, driven
over its UART by the bridge; every token is checked against the golden model.

Tests of one board share build/<board>, so each board's tests are one class: pytest-xdist
(--dist loadscope) runs a class on one worker, one test after another, and boards in parallel."""

import json
import re
import shutil
import subprocess
import sys
import time

import pytest

from edgeslm.bench import open_device
from edgeslm.bridge import DeviceError
from edgeslm.lower.boards import load_board
from edgeslm.lower.compile import build_firmware
from edgeslm.lower.elfsize import float_symbols, region_usage
from edgeslm.model.synthetic import SHAPES, write_synthetic

from conftest import shared
from reliability_helpers import assert_none_left, new_tag, tagged_env
from test_reference import LLAMA2C_NO_PROMPT, LLAMA2C_TOM_AND_LILY


@pytest.fixture(scope="module", autouse=True)
def toolchain():
    for tool, pkg in (("qemu-system-arm", "qemu-system-arm"), ("arm-none-eabi-gcc", "gcc-arm-none-eabi")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {pkg} (.ci/run installs it)")


def edgeslm(*args, timeout=600):
    """The CLI in a child whose every descendant (QEMU, PlatformIO) carries a tag: none may outlive it."""
    tag = new_tag()
    r = subprocess.run([sys.executable, "-m", "edgeslm", *args], capture_output=True, timeout=timeout,
                       env=tagged_env(tag))
    assert_none_left(tag)
    return r


# Every scheme each core supports, a few tokens each (the M3 computes floats in software: shorter);
# q8 with its default int16 activations and with int8 (--act-bits 8, with the int8 KV cache).
SCHEMES = [("f32", "f32", ""), ("q8", "f32", ""), ("q8", "i8", "8"), ("q4", "i8", "")]


class _EveryScheme:
    board, steps = "", 0

    @pytest.mark.parametrize("quant,kv,act_bits", SCHEMES,
                             ids=[f"{q}-kv{kv}" + (f"-x{a}" if a else "") for q, kv, a in SCHEMES])
    def test_every_scheme_equals_golden(self, quant, kv, act_bits):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", quant, "--kv", kv, "--prompt", "",
                    "--steps", str(self.steps), *(["--act-bits", act_bits] if act_bits else []))
        assert r.returncode == 0, r.stderr.decode()
        assert f"all {self.steps} tokens equal the golden model's".encode() in r.stderr
        if quant == "f32" and kv == "f32":        # float on any core, soft or hard: llama2.c's own text
            text = r.stdout.decode().rstrip("\n")
            assert len(text) > 20 and LLAMA2C_NO_PROMPT.startswith(text)


class TestMps2An385(_EveryScheme):
    board, steps = "mps2_an385", 10


class TestMps2An500(_EveryScheme):
    board, steps = "mps2_an500", 24


class TestMps2An505(_EveryScheme):              # Cortex-M33: ARMv8-M Mainline, DSP, FPv5-SP
    board, steps = "mps2_an505", 24


class TestMps3An547(_EveryScheme):              # Cortex-M55: the Helium (MVE) matmul
    board, steps = "mps3_an547", 24


class TestMps2An386(_EveryScheme):
    board, steps = "mps2_an386", 24

    def test_q8_story_on_emulated_board_equals_golden(self):
        r = edgeslm("run", "--emulate", "--board", "mps2_an386", "--quant", "q8", "--prompt", "Tom and Lily",
                    "--steps", "128")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.startswith(b"Tom and Lily were playing in the park.")
        assert b"all 128 tokens equal the golden model's" in r.stderr
        assert b"instructions/token" in r.stderr

    def test_f32_on_emulated_board_prints_llama2c_text(self):
        r = edgeslm("run", "--emulate", "--quant", "f32", "--prompt", "", "--steps", "200")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.decode() == LLAMA2C_NO_PROMPT + "\n"
        r = edgeslm("run", "--emulate", "--quant", "f32", "--prompt", "Tom and Lily", "--steps", "128")
        assert r.stdout.decode() == LLAMA2C_TOM_AND_LILY + "\n"

    def test_bench_is_deterministic_and_reports(self, tmp_path):
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("Once upon a time\nThe little dog\n")
        reports = []
        for i in range(2):
            out = tmp_path / f"b{i}.json"
            r = edgeslm("bench", "--emulate", "--quant", "q8", "--kv", "i8", "--prompts", str(prompts),
                        "--steps", "40", "--json", str(out), *(("--profile", "--plot", str(tmp_path / "p.png"))
                                                              if i else ()))
            assert r.returncode == 0, r.stderr.decode()
            reports.append(json.loads(out.read_text()))
        a, b = reports
        assert a["tokens_match"] is True and a["first_mismatch"] is None
        assert a["instructions_by_position"] == b["instructions_by_position"]     # icount: exact repeat
        ipt = a["instructions_per_token"]
        assert 0 < ipt["min"] <= ipt["mean"] <= ipt["max"]
        for key in ("predicted_instructions_per_token", "tokens_per_s_at_nominal_clock", "flash_bytes", "ram_bytes"):
            assert a[key] > 0
        assert a["regions"]["code"]["image"] > 250_000          # the q8 weights are in the code region
        base = a["baseline"]                                     # the portable kernels, same session
        assert a["kernels"] == "dsp" and base["kernels"] == "portable"
        assert base["tokens_match"] is True
        # instruction counts are exact under icount: the DSP kernels must stay ahead of portable C
        assert a["instructions_per_token"]["mean"] < 0.95 * base["instructions_per_token"]["mean"]
        # the per-step profile: one entry per step of the table, deterministic, adding up to the token
        assert a["steps"] == b["steps"] and len(a["steps"]) == 1 + 5 * 16 + 2
        per_token = sum(s["measured"] for s in a["steps"]) + a["outside_steps_per_token"]
        assert per_token == pytest.approx(ipt["mean"], rel=1e-9)
        assert a["outside_steps_per_token"] > 0
        assert {s["cost_key"] for s in a["steps"] if s["op"] == "matmul"} == {"matmul_w8f.dsp"}
        assert {s["cost_key"] for s in base["steps"] if s["op"] == "matmul"} == {"matmul_w8f.portable"}
        assert a["by_kernel"]["matmul_w8f.dsp"]["measured"] < base["by_kernel"]["matmul_w8f.portable"]["measured"]
        for s in a["steps"]:                          # the cost table covers every kernel of the plan
            assert s["measured"] > 0 and s["predicted"] > 0, s
        # --profile: the same per-step counts, token by token, by step kind and position
        assert a["profile"] is None and b["steps"] == a["steps"]
        prof = b["profile"]["by_position"]
        assert len(prof["attention"]) == 40 and prof["attention"][39] > 2 * prof["attention"][0]
        assert max(prof["matmul"]) - min(prof["matmul"]) < 8   # flat: only the counter reads' jitter
        for p in range(40):                       # the steps of a token add up to less than the token
            assert sum(v[p] for v in prof.values()) < b["instructions_by_position"][str(p)]
        assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # fitting from the counts by position separates attention's per-call and per-score costs:
        # the fit then predicts every position (the per-step means alone cannot tell them apart)
        from edgeslm.bench import fit_costs
        key = next(s["cost_key"] for s in b["steps"] if s["op"] == "attention")
        cost = fit_costs([b])["kernels"][key]
        assert set(cost) == {"call", "score"} and fit_costs([a])["kernels"][key].keys() == {"score"}
        units = b["profile"]["units_by_position"]["attention"]
        for p in (0, 20, 39):
            pred = sum(cost[u] * units[u][p] for u in cost)
            assert pred == pytest.approx(prof["attention"][p], rel=0.02)

    def test_bench_against_another_scheme(self, tmp_path):
        out = tmp_path / "f32.json"
        r = edgeslm("bench", "--emulate", "--quant", "q8", "--baseline", "f32", "--steps", "20", "--json", str(out))
        assert r.returncode == 0, r.stderr.decode()
        a = json.loads(out.read_text())
        assert a["baseline"]["scheme"] == "f32" and a["baseline"]["tokens_match"] is True
        assert a["baseline"]["flash_bytes"] > 3 * a["flash_bytes"] / 2

    def test_i8_with_dsp_kernels_equals_golden(self):
        """i8 on the M4: the DSP matmul_s8, calibrated on the fly (no --calib: a warning says so)."""
        r = edgeslm("run", "--emulate", "--quant", "i8", "--prompt", "Once upon a time", "--steps", "24",
                    "--temperature", "0.9", "--topp", "0.9", "--seed", "11")
        assert r.returncode == 0, r.stderr.decode()
        assert b"without --calib" in r.stderr
        assert b"all 24 tokens equal the golden model's" in r.stderr

    def test_q4_in_groups_of_16_equals_golden(self):
        """q4 with --group-size 16: matmul_w4f's DSP fast path for groups of 16 (the 64-wide matrices
        four rows at a time, w2's 172 = 10 * 16 + 12 in pairs with a short last group)."""
        r = edgeslm("run", "--emulate", "--board", "mps2_an386", "--quant", "q4", "--group-size", "16",
                    "--prompt", "Once upon a time", "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 24 tokens equal the golden model's" in r.stderr

    def test_q8_in_groups_of_16_equals_golden(self):
        """q8 with --group-size 16: matmul_w8f's DSP fast path for groups of 16 with q8's int16
        activations (the 64-wide matrices four rows at a time, w2's 172 = 10 * 16 + 12 in pairs with
        a short last group; q4 g16's int8 classifier takes the same path with int8 activations)."""
        r = edgeslm("run", "--emulate", "--board", "mps2_an386", "--quant", "q8", "--group-size", "16",
                    "--prompt", "Once upon a time", "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 24 tokens equal the golden model's" in r.stderr

    def test_linker_agrees_with_the_plan(self):
        board = load_board("mps2_an386")
        elf = build_firmware(board)
        use = region_usage(elf, board)
        assert use["sram"]["zero"] > 160_000                     # KV cache and arena are in SRAM
        assert use["psram"]["image"] == 0

    def test_emulator_killed_mid_generation_is_reported_and_cleaned_up(self):
        board = load_board("mps2_an386")
        elf = build_firmware(board)
        t0 = time.monotonic()
        with pytest.raises(DeviceError) as e:
            with open_device(board, elf, True, None, timeout=5.0) as (dev, emu):
                gen = dev.generate("Once upon a time", 400, 0.8, 0.9, 3)
                next(gen)
                proc = emu.proc
                proc.kill()
                list(gen)
        assert "lost the device" in str(e.value) or "no answer" in str(e.value)
        assert proc.poll() is not None                           # nothing left running
        assert time.monotonic() - t0 < 30

    def test_bench_through_labgrid_equals_the_bench_on_our_own_qemu(self, tmp_path):
        """Issue 16: labgrid's QEMUDriver (labgrid/mps2_an386.yaml) runs the same bench, with the
        same instruction counts as edgeslm's own QEMU."""
        pytest.importorskip("labgrid", reason="labgrid is not installed (pip install -e '.[dev]')")
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("Once upon a time\n")
        out = {}
        for how in (("--labgrid", "labgrid/mps2_an386.yaml"), ("--emulate",)):
            out[how[0]] = tmp_path / f"{how[0][2:]}.json"
            r = edgeslm("bench", *how, "--quant", "q8", "--prompts", str(prompts), "-n", "6", "--baseline", "dsp",
                        "--json", str(out[how[0]]))
            assert r.returncode == 0, r.stderr.decode()
        lab, own = (json.loads(out[k].read_text()) for k in ("--labgrid", "--emulate"))
        assert lab["tokens_match"] is True and lab["tokens"] == 6
        assert lab["instructions_by_position"] == own["instructions_by_position"]

    def test_run_and_bench_records_make_a_report(self, tmp_path):
        """Telemetry (issue 16): one JSON line per generation from run and bench (and its baseline),
        with the stack peak the firmware measured by painting; `edgeslm report` plots them."""
        records = tmp_path / "records.jsonl"
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("Tom and Lily\n")
        r = edgeslm("run", "--emulate", "--quant", "q8", "--kv", "i8", "-i", "Tom and Lily", "-n", "8",
                    "--record", str(records))
        assert r.returncode == 0, r.stderr.decode()
        r = edgeslm("bench", "--emulate", "--quant", "q8", "--kv", "i8", "--prompts", str(prompts), "-n", "8",
                    "--profile", "--plot", str(tmp_path / "p.png"), "--record", str(records))
        assert r.returncode == 0, r.stderr.decode()
        lines = records.read_text().splitlines()
        assert len(lines) == 3                                  # run; bench: dsp and the portable baseline
        recs = [json.loads(line) for line in lines]
        run, dsp, portable = recs
        assert [x["kind"] for x in recs] == ["run", "bench", "bench"]
        assert (dsp["kernels"], portable["kernels"]) == ("dsp", "portable")
        board = load_board("mps2_an386")
        for x in recs:
            assert x["schema"] == 1 and x["board"] == "mps2_an386" and x["scheme"] == "q8" and x["kv"] == "i8"
            assert x["tokens_match"] is True and x["unit"] == "instructions" and len(x["counts"]) == 8
            assert len(x["build_id"]) == 8 and x["protocol"] == 4
            n_prompt = x["request"]["prompt_tokens"]
            assert n_prompt == 5                                 # BOS + 4 tokens of "Tom and Lily"
            assert x["time_to_first_token"]["count"] == pytest.approx(sum(x["counts"][:n_prompt]))
            assert x["time_to_first_token"]["seconds"] == pytest.approx(
                x["time_to_first_token"]["count"] / 25e6)
            assert x["tokens_per_s"]["decode"] == pytest.approx(25e6 * 3 / sum(x["counts"][5:]))
            assert len(x["steps"]) == 1 + 5 * 16 + 2 and all(s["measured"] > 0 for s in x["steps"])
            # painted: more than the paint margin, less than the stack the board reserves
            assert 64 < x["stack"]["peak_bytes"] < x["stack"]["reserved_bytes"] == board.stack_bytes
            assert x["memory"]["kv_cache_bytes"] > 0 and x["memory"]["arena_bytes"] > 0
            assert x["memory"]["regions"]["sram"]["planned"]["KV cache"] == x["memory"]["kv_cache_bytes"]
            assert x["memory"]["regions"]["code"]["image"] > 250_000
            assert x["energy"] is None                             # an FPGA board: no datasheet current
        assert run["tokens"] == dsp["tokens"]                     # the same generation (--profile's frames
        assert sum(run["counts"]) == pytest.approx(sum(dsp["counts"]), rel=0.01)   # cost a little)
        assert run["by_kind_position"] is None and len(dsp["by_kind_position"]["matmul"]) == 8
        assert sum(portable["counts"]) > sum(dsp["counts"])
        out = tmp_path / "report"
        r = edgeslm("report", str(records), "-o", str(out))
        assert r.returncode == 0, r.stderr.decode()
        for png in ("cost_per_token", "steps", "memory", "schemes"):
            assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        md = (out / "summary.md").read_text()
        assert "mps2_an386 q8 kvi8 dsp" in md and "mps2_an386 q8 kvi8 portable" in md
        assert "![schemes](schemes.png)" in md


# The ARMv6-M boards (issue 12). ARMv6-M's only 32-bit Thumb instructions (Arm v6-M Architecture
# Reference Manual, A5.2 and A6.7): everything else a v7-M core would run must be absent.
V6M_32BIT = {"bl", "mrs", "msr", "dmb", "dsb", "isb"}
THUMB2_LINE = re.compile(r"^\s*[0-9a-f]+:\s+([0-9a-f]{4}) ([0-9a-f]{4})\s+(\S+)", re.M)


def assert_armv6m(board_id: str):
    """The board's ELF is an ARMv6-M build: its attributes say so, and no instruction in it is
    ARMv7-M only (no IT blocks, no 32-bit Thumb-2 other than v6-M's six)."""
    elf = build_firmware(load_board(board_id))
    attrs = subprocess.run(["arm-none-eabi-readelf", "-A", str(elf)], capture_output=True, text=True,
                           check=True).stdout
    assert re.search(r"Tag_CPU_arch: v6S?-M\b", attrs), attrs
    assert "Tag_THUMB_ISA_use: Thumb-1" in attrs, attrs
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", "-j", ".text", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    wide = {m.group(3).split(".")[0] for m in THUMB2_LINE.finditer(dis)}
    assert wide and wide <= V6M_32BIT, f"ARMv7-M instructions in {board_id}: {sorted(wide - V6M_32BIT)}"
    assert not re.search(r"\tit[te]*\s", dis), f"IT blocks in {board_id}"
    return elf


class TestMps2An385M0(_EveryScheme):           # an ARMv6-M (Cortex-M0) build on the AN385's M3
    board, steps = "mps2_an385_m0", 6

    def test_the_elf_is_armv6m(self):
        edgeslm("compile", "--board", self.board, "--quant", "q8", "--kv", "i8")
        assert_armv6m(self.board)

    def test_i8_equals_golden_and_links_no_floating_point(self, tmp_path):
        """The integer-only build: tokens equal golden (greedy and sampled), an ARMv6-M ELF with no
        soft-float helper, no float printf, no libm; the q8 build of the same core has them (the
        check can fail)."""
        calib = tmp_path / "calib.json"
        r = edgeslm("calibrate", "--samples", "2", "--steps", "64", "-o", str(calib))
        assert r.returncode == 0, r.stderr.decode()
        for temperature in ("0", "0.8"):
            r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "i8", "--calib", str(calib),
                        "--prompt", "Tom", "--steps", "12", "--temperature", temperature, "--seed", "5")
            assert r.returncode == 0, r.stderr.decode()
            assert b"all 12 tokens equal the golden model's" in r.stderr
        elf = assert_armv6m(self.board)
        assert float_symbols(elf) == []
        r = edgeslm("compile", "--board", self.board, "--quant", "q8")
        assert r.returncode == 0, r.stderr.decode()
        assert {"__aeabi_fadd", "__aeabi_fmul"} <= set(float_symbols(build_firmware(load_board(self.board))))


class TestMicrobit:                              # nRF51822: QEMU's Cortex-M0 rejects ARMv7 code
    board = "microbit"

    def test_stories260k_does_not_fit_at_full_context_and_the_planner_says_what_does(self):
        r = edgeslm("compile", "--board", self.board, "--quant", "q4", "--kv", "i8")
        assert r.returncode != 0
        err = r.stderr.decode()
        assert "does not fit microbit" in err and "KV cache" in err and "--max-seq" in err
        assert "--int8-layers 0" in err              # q4's int8 last layers are what does not fit

    def test_stories260k_q4_at_a_short_context_equals_golden(self):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "q4", "--int8-layers", "0", "--kv", "i8",
                    "--max-seq", "7", "--prompt", "", "--steps", "7")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 7 tokens equal the golden model's" in r.stderr
        assert r.stdout.startswith(b"Once upon a time")
        assert_armv6m(self.board)

    def test_i8_on_a_synthetic_model_equals_golden_with_no_floating_point(self, tmp_path):
        """stories260K's i8 weights do not fit 256 KB of flash; micro16 does, integer-only."""
        model = write_synthetic(tmp_path / "micro16.bin", SHAPES["micro16"])
        r = edgeslm("run", str(model), "-z", str(shared("tok512.bin")), "--emulate", "--board", self.board,
                    "--quant", "i8", "--prompt", "Once", "--steps", "32", "--temperature", "0.7", "--seed", "3")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 32 tokens equal the golden model's" in r.stderr
        assert float_symbols(assert_armv6m(self.board)) == []

    def test_a_synthetic_model_at_its_whole_context_equals_golden(self, tmp_path):
        model = write_synthetic(tmp_path / "micro16.bin", SHAPES["micro16"])
        r = edgeslm("run", str(model), "-z", str(shared("tok512.bin")), "--emulate", "--board", self.board,
                    "--quant", "q8", "--kv", "i8", "--prompt", "Once", "--steps", "128")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 128 tokens equal the golden model's" in r.stderr
        assert b"instructions/token" in r.stderr    # TIMER0 counts under icount


class TestNdp120:                                # the NDP120's M0: 48 KB for code, weights and RAM
    board = "ndp120"

    def test_i8_fits_48_kb_with_a_320_token_vocabulary_and_equals_golden(self, tmp_path):
        """In i8 each vocabulary row carries integer multipliers: nano8 (512 tokens) does not fit and
        the planner says so; pico8 (320 tokens, a cut of tok512.bin) does, integer-only."""
        nano = write_synthetic(tmp_path / "nano8.bin", SHAPES["nano8"])
        r = edgeslm("compile", str(nano), "-z", str(shared("tok512.bin")), "--board", self.board, "--quant", "i8")
        assert r.returncode != 0 and b"does not fit ndp120 with i8" in r.stderr
        pico = tmp_path / "pico8.bin"
        r = subprocess.run([sys.executable, "-m", "edgeslm.model.synthetic", "pico8", "-o", str(pico),
                            "--tokenizer-from", str(shared("tok512.bin"))], capture_output=True)
        assert r.returncode == 0, r.stderr.decode()
        r = edgeslm("run", str(pico), "--emulate", "--board", self.board, "--quant", "i8", "--prompt", "Once",
                    "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 24 tokens equal the golden model's" in r.stderr
        board = load_board(self.board)
        elf = assert_armv6m(self.board)
        assert float_symbols(elf) == []
        (region,) = board.memory
        use = region_usage(elf, board)[region.name]
        assert use["image"] + use["zero"] <= region.length_bytes == 48 * 1024

    def test_stories260k_does_not_fit(self):
        r = edgeslm("compile", "--board", self.board, "--quant", "q4", "--kv", "i8")
        assert r.returncode != 0 and b"does not fit ndp120" in r.stderr

    def test_a_synthetic_model_equals_golden_within_48_kb(self, tmp_path):
        model = write_synthetic(tmp_path / "nano8.bin", SHAPES["nano8"])
        r = edgeslm("run", str(model), "-z", str(shared("tok512.bin")), "--emulate", "--board", self.board,
                    "--quant", "q8", "--kv", "i8", "--prompt", "Once", "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 24 tokens equal the golden model's" in r.stderr
        board = load_board(self.board)
        elf = assert_armv6m(self.board)
        (region,) = board.memory
        use = region_usage(elf, board)[region.name]
        assert use["image"] + use["zero"] <= region.length_bytes == 48 * 1024


class TestNiclaVoice:                            # its nRF52832 (M4F, 64 KB RAM, 512 KB flash)
    board = "nicla_voice"

    def test_stories260k_i8_at_the_longest_context_that_fits_equals_golden(self):
        """i8 needs no per-position KV scales and int8 activations: context 173 fits (q8: 106, its
        attention keeping two heads' float scores)."""
        r = edgeslm("compile", "--board", self.board, "--quant", "i8")
        assert r.returncode != 0 and b"--max-seq 173 fits" in r.stderr
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "i8", "--max-seq", "173",
                    "--prompt", "Tom and Lily", "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 24 tokens equal the golden model's" in r.stderr

    def test_stories260k_fits_with_an_int8_kv_cache_at_a_short_context(self):
        r = edgeslm("compile", "--board", self.board, "--quant", "q8", "--kv", "i8")
        assert r.returncode != 0 and b"--max-seq" in r.stderr

    def test_stories260k_q8_equals_golden(self):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "q8", "--kv", "i8", "--max-seq", "106",
                    "--prompt", "Tom and Lily", "--steps", "48")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.startswith(b"Tom and Lily were playing in the park.")
        assert b"all 48 tokens equal the golden model's" in r.stderr


class TestNetduinoplus2:                         # STM32F405 (M4F 168 MHz): 1 MB flash, 128 KB SRAM + 64 KB CCM
    """A board people own that QEMU also models (issue 16). QEMU 7.2 has no CCM: emulated builds link
    the ccm region at its emulator_origin (0x20020000, SRAM there); `edgeslm build` at 0x10000000."""
    board = "netduinoplus2"

    def test_the_planner_says_what_fits(self):
        for quant, fix in ((["--quant", "q8", "--kv", "i8"], b"--max-seq 273 fits"),
                           (["--quant", "i8"], b"--max-seq 409 fits"),
                           (["--quant", "f32", "--kv", "i8"], b"--quant q4 --max-seq 273 fits")):   # 1 MB flash
            r = edgeslm("compile", "--board", self.board, *quant)
            assert r.returncode != 0 and fix in r.stderr, r.stderr.decode()

    def test_stories260k_q8_with_the_arena_in_ccm_equals_golden(self):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "q8", "--kv", "i8", "--max-seq", "273",
                    "--prompt", "Tom and Lily", "--steps", "24")
        assert r.returncode == 0, r.stderr.decode()
        assert r.stdout.startswith(b"Tom and Lily were playing in the park.")
        assert b"all 24 tokens equal the golden model's" in r.stderr
        assert b"at 168 MHz" in r.stderr

    def test_stories260k_i8_at_the_longest_context_equals_golden(self):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "i8", "--max-seq", "409",
                    "--prompt", "Tom and Lily", "--steps", "16")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 16 tokens equal the golden model's" in r.stderr

    def test_the_build_for_the_part_puts_the_ccm_at_0x10000000(self):
        board = load_board(self.board)
        assert [r.origin for r in board.memory if r.name == "ccm"] == [0x10000000]
        assert [r.origin for r in board.for_emulator().memory if r.name == "ccm"] == [0x20020000]
        r = edgeslm("build", "--board", self.board, "--quant", "q8", "--kv", "i8", "--max-seq", "273")
        assert r.returncode == 0, r.stderr.decode()
        out = subprocess.run(["arm-none-eabi-objdump", "-h", r.stdout.decode().strip()], capture_output=True,
                             text=True, check=True).stdout
        ccm = [line.split() for line in out.splitlines() if ".esl_ram_ccm" in line]
        assert ccm and 0x10000000 <= int(ccm[0][3], 16) < 0x10010000      # VMA: in the CCM
