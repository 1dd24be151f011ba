"""The PULP-cluster target (issue 11): GAP9 as data (boards/gap9.json, planned only) and its QEMU
stand-in (boards/gap9_qemu.json: `qemu-system-riscv32 -M virt -smp 9`, hart 0 the fabric
controller, harts 1..8 the cluster). Tokens equal golden with the steps forked over the workers,
and the workers' own instruction counts show the cluster doing the work.

The emulator tests share build/gap9_qemu: one class, so pytest-xdist (--dist loadscope) runs them
one after another on one worker."""

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.lower.boards import BoardError, load_board, parse_board
from edgeslm.lower.codegen import build_settings
from edgeslm.lower.plan import plan
from edgeslm.lower.plan_cluster import matmul_l1_bytes, split_rows, tile_bytes
from edgeslm.quant.schemes import get_scheme

from test_emulator import edgeslm   # the CLI in a tagged child: nothing it starts may outlive it


# ---- boards and planning (no emulator) ------------------------------------------------------

def test_gap9_boards_name_the_cluster_target(stories):
    for board_id in ("gap9", "gap9_qemu"):
        b = load_board(board_id)
        assert b.target.name == "pulp_cluster" and b.cores == 8
        l1 = next(r for r in b.memory if r.name == b.cluster["l1_region"])
        l2 = next(r for r in b.memory if r.name == "l2")
        assert (l1.length_bytes, l2.length_bytes) == (128 * 1024, 1536 * 1024)   # GreenWaves' figures
        assert b.unverified
        p = plan(stories[0].config, get_scheme("q8", kv="i8"), b)
        in_l1 = {it.name: it.nbytes for it in p.items if it.region == l1.name}   # L1 is the cluster's own:
        pmsis = {"cluster L1: controller stack", "cluster L1: PMSIS runtime (reserved)"}   # stacks, scratches
        assert p.fits and set(in_l1) == {"cluster L1: worker stacks", "cluster L1: worker scratches (DMA tiles)",
                                         *(pmsis if b.cluster["backend"] == "pmsis" else ())}
        assert sum(in_l1.values()) <= l1.length_bytes
        assert in_l1["cluster L1: worker stacks"] == 8 * b.cluster["worker_stack_bytes"]
        assert in_l1["cluster L1: worker scratches (DMA tiles)"] == 8 * p.l1_scratch_bytes
        assert p.l1_scratch_bytes >= p.scratch_bytes
    assert load_board("gap9").kernel_variants == ["portable", "xpulp"]          # Xpulp: silicon only
    assert load_board("gap9_qemu").kernel_variants == ["portable"]


def test_build_settings_for_the_riscv_toolchain(stories):
    b = load_board("gap9_qemu")
    s = build_settings(plan(stories[0].config, get_scheme("q8", kv="i8"), b))
    assert s["toolchain_prefix"] == "riscv64-unknown-elf-"
    assert {"-march=rv32imfc", "-mabi=ilp32f", "--specs=picolibc.specs"} <= set(s["cflags"])
    assert s["defines"]["ESL_CLUSTER_CORES"] == 8 and s["defines"]["ESL_CONSOLE_BASE"] == "0x10000000u"
    assert "arch/riscv_pulp/qemu" in s["sources"] and "ports/qemu_virt" in s["sources"] and not s["exclude"]
    s2 = build_settings(plan(stories[0].config, get_scheme("q8", kv="i8"), b.with_cores(2)))
    assert s2["defines"]["ESL_CLUSTER_CORES"] == 2


def test_rows_split_as_the_firmware_splits_them():
    """split_rows mirrors esl_cl_split with align 1 (the matmuls' split): hand-checkable."""
    assert split_rows(172, 8) == [22, 22, 22, 22, 21, 21, 21, 21]
    assert split_rows(32, 8) == [4] * 8
    assert split_rows(3, 8) == [1, 1, 1, 0, 0, 0, 0, 0]
    assert split_rows(172, 8, align=4) == [24, 24, 24, 20, 20, 20, 20, 20]


@pytest.mark.parametrize("quant", ["q8", "i8"])
@pytest.mark.parametrize("cores", [1, 3, 8])
def test_matmuls_are_tiled_to_l1_with_a_prefetch_chain(stories, quant, cores):
    """Every matmul streams through L1 in tiles of a multiple of 4 rows whose layout (the steps'
    scratch, x, tiles A and B, the two first-tile slots) fits each worker's share of L1; each
    prefetches the next one's first tile into the other slot, the last the first's; q8's k, v and
    w3 find their input quantized by the matmul before."""
    cfg = stories[0].config
    b = load_board("gap9_qemu").with_cores(cores)
    if quant == "i8":       # i8's default --int16 ffn gives w2 to matmul_s16, which reads W where it is
        d = plan(cfg, get_scheme("i8"), b)
        assert [ps.tile_rows for ps in d.steps if ps.step.kernel == "matmul_s16"] == [0] * cfg.n_layers
    p = plan(cfg, get_scheme(quant, kv="i8", int16="none" if quant == "i8" else None), b)
    c = p.cluster
    l1 = next(r for r in b.memory if r.name == "l1")
    assert cores * (b.cluster["worker_stack_bytes"] + c.scratch_bytes) <= l1.length_bytes
    assert c.scratch_bytes <= c.l1_budget_bytes and c.tiles_at >= p.scratch_bytes
    tiled = [i for i, ps in enumerate(p.steps) if ps.step.op == "matmul"]
    assert tiled and all(p.steps[i].tile_rows % 4 == 0 and p.steps[i].tile_rows >= 4 for i in tiled)
    for i in tiled:
        ps = p.steps[i]
        slot = tile_bytes(ps.step, ps.tile_rows)
        assert slot <= c.slot_bytes[ps.slot]
        assert c.tiles_at + matmul_l1_bytes(ps.step, ps.tile_rows, cores) + sum(c.slot_bytes) <= c.scratch_bytes
    assert [p.steps[i].slot for i in tiled] == [k % 2 for k in range(len(tiled))]
    assert c.next_matmul == {i: tiled[(k + 1) % len(tiled)] for k, i in enumerate(tiled)}
    ready = {p.steps[i].step.weight.rsplit(".", 1)[-1] for i in tiled if p.steps[i].step.input_prepared}
    assert ready == {"wk", "wv", "w3"}      # i8 too: its matmuls take x as it is (no fork to skip)
    # the traffic, counted independently: each matmul's weights and scales once, and x (with its
    # scales; int16 with q8's default activations) once per worker that has rows, but for q8's k,
    # v and w3: their workers that had rows in the matmul before (on the same x) still hold x in L1
    want = 0
    for i in tiled:
        st = p.steps[i].step
        scales = 4 * -(-st.cols // st.group_size) if quant == "q8" else 0
        x = st.cols * (2 if quant == "q8" else 1) + scales
        kept = p.steps[i - 1].step.rows if quant == "q8" and st.input_prepared else 0
        want += st.rows * (st.cols + scales) + max(0, min(cores, st.rows) - kept) * x
    assert c.dma_bytes_per_token == want
    # forks: per layer 2 rmsnorms, q (2: quantize, rows), k, v, 2 ropes, kvstore (q8), attention,
    # wo (2), 2 adds, w1 (2), w3, swiglu, w2 (2); then the final rmsnorm and the logits (2)
    per_layer = 20 if quant == "q8" else 15
    final = 3 if quant == "q8" else 2
    assert c.forks_per_token == cfg.n_layers * per_layer + final


def test_cluster_timing_is_board_data(stories):
    with open(load_board("gap9_qemu").path) as f:
        data = json.load(f)
    del data["edgeslm"]["cluster"]["timing"]["dma_bytes_per_cycle"]
    with pytest.raises(EdgeslmError, match="cluster.timing must give"):
        plan(stories[0].config, get_scheme("q8"), parse_board("bad", data))


def test_the_step_table_carries_the_tiling(tmp_path):
    """The generated step table: each matmul's n holds its tile rows, ESL_CL_X_READY, its slot and
    1 + the step it prefetches (esl_cluster.h); the linker script places the tiles and slot 0."""
    r = edgeslm("compile", "--board", "gap9_qemu", "--quant", "q8", "--kv", "i8", "-o", str(tmp_path))
    assert r.returncode == 0, r.stderr.decode()
    assert b"streamed through L1 in tiles" in r.stderr and b"fits gap9_qemu: yes" in r.stderr
    text = (tmp_path / "gen" / "esl_model.c").read_text()
    rows = re.findall(r"\{ esl_step_matmul_w8f, \d+u, \d+u, \d+u, (\d+)u, .*/\* (\d+): matmul_w8f ([\w.]+)", text)
    assert len(rows) == 36
    first = int(rows[0][1])
    for k, (n, index, weight) in enumerate(rows):
        n, index = int(n), int(index)
        assert n & 0xFFFF in range(4, 513, 4)
        assert (n >> 16) & 1 == weight.endswith(("wk", "wv", "w3"))
        assert (n >> 17) & 1 == k % 2
        assert (n >> 18) - 1 == (int(rows[k + 1][1]) if k + 1 < len(rows) else first)
    link = (tmp_path / "gen" / "link.ld").read_text()
    assert re.search(r"_esl_l1_tiles_at = \d+;", link) and re.search(r"_esl_l1_slot0_bytes = \d+;", link)
    build = json.loads((tmp_path / "gen" / "build.json").read_text())["defines"]
    assert (build["ESL_CL_DMA_SETUP_CYCLES"], build["ESL_CL_DMA_BYTES_PER_CYCLE"], build["ESL_CL_TICKS_PER_CYCLE"]) \
        == (20, 8, 128)         # boards/gap9_qemu.json; 2^7 ns per instruction at 1 tick per ns


def test_cores_must_be_within_the_cluster():
    with pytest.raises(BoardError, match="1..8"):
        load_board("gap9_qemu").with_cores(9)
    with pytest.raises(BoardError, match="no cluster"):
        load_board("mps2_an386").with_cores(2)
    with open(load_board("gap9_qemu").path) as f:
        data = json.load(f)
    data["edgeslm"]["cluster"]["l1_region"] = "tcdm"
    with pytest.raises(BoardError, match="l1_region 'tcdm'"):
        parse_board("bad", data)


# ---- the QEMU stand-in ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def riscv_toolchain():
    for tool, pkg in (("qemu-system-riscv32", "qemu-system-misc"),
                      ("riscv64-unknown-elf-gcc", "gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {pkg} (make setup installs it)")


@pytest.mark.usefixtures("riscv_toolchain")
class TestGap9Qemu:
    board = "gap9_qemu"

    def _bench(self, tmp_path, cores: int, steps: int) -> dict:
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("Once upon a time\n")
        out = tmp_path / f"bench{cores}.json"
        r = edgeslm("bench", "--emulate", "--board", self.board, "--quant", "q8", "--kv", "i8",
                    "--cores", str(cores), "--prompts", str(prompts), "--steps", str(steps),
                    "--baseline", "q8", "--json", str(out))
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(out.read_text())

    def test_tokens_equal_golden_forked_over_8_workers(self):
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "q8", "--kv", "i8", "--prompt", "",
                    "--steps", "8")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 8 tokens equal the golden model's" in r.stderr

    def test_i8_integer_kernels_on_the_riscv_fabric_controller_equal_golden(self):
        """The s8 kernels' portable C on a second ISA (rv32imfc, gcc for RISC-V), matmul rows and
        attention heads forked over the workers."""
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "i8", "--prompt", "Tom", "--steps", "6")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 6 tokens equal the golden model's" in r.stderr

    def test_i8_int16_parts_forked_equal_golden(self, tmp_path):
        """i8 with --int16 keys,ffn (rope_s16, swiglu_s16, matmul_s16, attention over int16 keys) on
        8 workers: tokens equal golden, and the forks the firmware counts are the plan's."""
        prompts = tmp_path / "prompts.txt"
        prompts.write_text("Tom\n")
        out = tmp_path / "bench.json"
        r = edgeslm("bench", "--emulate", "--board", self.board, "--quant", "i8", "--int16", "keys,ffn",
                    "--cores", "8", "--prompts", str(prompts), "--steps", "4", "--baseline", "i8", "--json", str(out))
        assert r.returncode == 0, r.stderr.decode()
        b = json.loads(out.read_text())
        assert b["tokens_match"] and b["int16"] == ["keys", "ffn"] and b["baseline"]["int16"] == ["ffn"]
        assert b["cluster"]["forks_per_token"] == b["cluster"]["forks_per_token_planned"] > 0

    def test_every_worker_counts_and_8_beat_1(self, tmp_path):
        eight, one = self._bench(tmp_path, 8, 4), self._bench(tmp_path, 1, 4)
        for b in (eight, one):
            assert b["tokens_match"] and b["unit"] == "instructions"
        c8, c1 = eight["cluster"], one["cluster"]
        assert c8["cores"] == 8 and c1["cores"] == 1
        assert c8["forks_per_token"] == c1["forks_per_token"] == c8["forks_per_token_planned"] > 0
        assert all(n > 10_000 for n in c8["instructions_per_token_per_core"])     # every worker worked
        assert c8["balance"] > 0.9
        # the same work, split: the workers' sum is the single worker's plus what each worker does
        # per fork (its share, its x fetch) and the loops of more, smaller tiles (measured: +14%)
        one_worker, all_eight = c1["instructions_per_token_per_core"][0], sum(c8["instructions_per_token_per_core"])
        assert one_worker < all_eight < 1.2 * one_worker
        assert one["instructions_per_token"]["mean"] > 5.5 * eight["instructions_per_token"]["mean"]

    def test_the_dma_traffic_is_the_plans_and_the_time_model_adds_to_the_count(self, tmp_path):
        """DMA bytes per token as planned (plus, once per generation after boot, the first tiles
        the first token fetches itself: nothing prefetched them); the modelled time is the busiest
        core's instructions plus the board's fork and barrier cycles per fork plus the DMA waits."""
        b = self._bench(tmp_path, 8, 6)
        c, tm = b["cluster"], b["cluster"]["time_model"]
        assert b["dma_bytes_per_token"] == c["dma_bytes_per_token"]
        first_tiles = 8 * 4 * (64 + 4 * 2)          # wq's first tiles: 4 rows of 64 int8 and 2 scales, per worker
        assert 0 <= c["dma_bytes_per_token"] - c["dma_bytes_per_token_planned"] <= first_tiles / 6
        assert c["dma_commands_per_token"] > 0
        assert tm["busiest_core_instructions"] == b["instructions_per_token"]["mean"]
        assert tm["fork_barrier_cycles"] == c["forks_per_token"] * (30 + 11)      # boards/gap9_qemu.json
        assert 0 <= tm["dma_wait_cycles"] <= tm["dma_wait_cycles_planned"]       # the plan's bound holds
        assert tm["cycles_per_token"] == pytest.approx(
            tm["busiest_core_instructions"] + tm["fork_barrier_cycles"] + tm["dma_wait_cycles"])
        assert tm["tokens_per_s_at_cluster_clock"] == pytest.approx(370e6 / tm["cycles_per_token"])
        for step in b["steps"]:                      # every step: its time is its count plus the plan's overheads
            c = step["cluster"]
            assert c["time_cycles"] == pytest.approx(step["measured"] + c["overhead_cycles"])

    def test_q8_with_a_float_kv_cache_equals_golden_on_3_workers(self):
        """An odd worker count: shares of 22 and 21 rows, tails of rows % 4, groups split 1/1/0."""
        r = edgeslm("run", "--emulate", "--board", self.board, "--quant", "q8", "--kv", "f32", "--cores", "3",
                    "--prompt", "Once", "--steps", "6")
        assert r.returncode == 0, r.stderr.decode()
        assert b"all 6 tokens equal the golden model's" in r.stderr

    def test_a_trap_is_reported_with_the_function(self, tmp_path):
        """tests/c/fault_main.c with an illegal instruction: ERROR FAULT names the function, the
        RISC-V cause and mtval, then the emulator exits (semihosting)."""
        from edgeslm.bridge import Device, DeviceError
        from edgeslm.emulator import Emulator
        from board_firmware import FIRMWARE_CFLAGS
        r = edgeslm("compile", "--board", self.board, "--quant", "q8", "--kv", "i8", "-o", str(tmp_path))
        assert r.returncode == 0, r.stderr.decode()
        board = load_board(self.board)
        src = (Path(__file__).parent / "c" / "fault_main.c").read_text()
        main = tmp_path / "fault_main.c"
        main.write_text(src.replace("udf #42", "unimp"))
        fw = Path(__file__).parents[1] / "firmware"
        srcs = [*sorted((fw / board.arch_dir).glob("*.c")), *sorted((fw / "ports" / board.port).glob("*.c")),
                fw / "runtime" / "protocol.c", fw / "runtime" / "fault.c", main]
        elf = tmp_path / "fault.elf"
        t = board.target
        defines = json.loads((tmp_path / "gen" / "build.json").read_text())["defines"]
        cluster = [f"-D{k}={v}" for k, v in defines.items() if k.startswith("ESL_CL")]
        r = subprocess.run([t.toolchain_prefix + "gcc", *t.flags(board.core), *FIRMWARE_CFLAGS, *cluster,
                            "-DESL_CONSOLE_BASE=0x10000000u", f"-I{fw / 'include'}",
                            f"-I{tmp_path / 'gen'}", *map(str, srcs), *t.link_flags, f"-T{tmp_path / 'gen' / 'link.ld'}",
                            "-o", str(elf), *[f"-l{lib}" for lib in t.libs]], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        with Emulator(board, elf) as emu:
            with pytest.raises(DeviceError) as e:
                Device(emu.transport, timeout=20).hello()
            proc = emu.proc
            deadline = time.monotonic() + 20
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
            assert proc.poll() is not None                      # semihosting ended the run
        text = str(e.value)
        assert "the board crashed at crash_here+0x2: illegal instruction" in text, text
        assert "(main+0x" in text and "mcause 0x00000002" in text, text
