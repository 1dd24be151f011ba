"""The PULP-cluster target (issue 11): GAP9 as data (boards/gap9.json, planned only) and its QEMU
stand-in (boards/gap9_qemu.json: `qemu-system-riscv32 -M virt -smp 9`, hart 0 the fabric
controller, harts 1..8 the cluster). Tokens equal golden with the steps forked over the workers,
and the workers' own instruction counts show the cluster doing the work.

The emulator tests share build/gap9_qemu: one class, so pytest-xdist (--dist loadscope) runs them
one after another on one worker."""

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgeslm.errors import EdgeslmError
from edgeslm.lower.boards import BoardError, load_board, parse_board
from edgeslm.lower.codegen import build_settings
from edgeslm.lower.compile import build_firmware
from edgeslm.lower.plan import plan
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
        in_l1 = [it for it in p.items if it.region == l1.name]                # L1 is the cluster's own:
        assert p.fits and [it.kind for it in in_l1] == ["l1"]                  # stacks and scratches only
        assert in_l1[0].nbytes == 8 * (b.cluster["worker_stack_bytes"] + p.scratch_bytes)
    assert load_board("gap9").kernel_variants == ["portable", "xpulp"]          # Xpulp: silicon only
    assert load_board("gap9_qemu").kernel_variants == ["portable"]


def test_build_settings_for_the_riscv_toolchain(stories):
    b = load_board("gap9_qemu")
    s = build_settings(plan(stories[0].config, get_scheme("q8", kv="i8"), b))
    assert s["toolchain_prefix"] == "riscv64-unknown-elf-"
    assert {"-march=rv32imfc", "-mabi=ilp32f", "--specs=picolibc.specs"} <= set(s["cflags"])
    assert s["defines"]["ESL_CLUSTER_CORES"] == 8 and s["defines"]["ESL_CONSOLE_BASE"] == "0x10000000u"
    assert "arch/riscv_pulp" in s["sources"] and "ports/qemu_virt" in s["sources"]
    s2 = build_settings(plan(stories[0].config, get_scheme("q8", kv="i8"), b.with_cores(2)))
    assert s2["defines"]["ESL_CLUSTER_CORES"] == 2


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


def test_gap9_silicon_is_refused_by_the_build():
    with pytest.raises(EdgeslmError, match="cannot be built here") as e:
        build_firmware(load_board("gap9"))
    assert "GAP SDK" in e.value.hint


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

    def test_every_worker_counts_and_8_beat_1(self, tmp_path):
        eight, one = self._bench(tmp_path, 8, 4), self._bench(tmp_path, 1, 4)
        for b in (eight, one):
            assert b["tokens_match"] and b["unit"] == "instructions"
        c8, c1 = eight["cluster"], one["cluster"]
        assert c8["cores"] == 8 and c1["cores"] == 1
        assert c8["forks_per_token"] == c1["forks_per_token"] > 0
        assert all(n > 10_000 for n in c8["instructions_per_token_per_core"])     # every worker worked
        assert c8["balance"] > 0.9
        # the same work, split: the workers' sum is the single worker's plus each worker's own
        # start-up per fork (measured: +2.8%), and the busiest core's time drops
        assert sum(c8["instructions_per_token_per_core"]) == pytest.approx(
            c1["instructions_per_token_per_core"][0], rel=0.05)
        assert one["instructions_per_token"]["mean"] > 4 * eight["instructions_per_token"]["mean"]

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
        srcs = [*sorted((fw / "arch" / "riscv_pulp").glob("*.c")), *sorted((fw / "ports" / board.port).glob("*.c")),
                fw / "runtime" / "protocol.c", fw / "runtime" / "fault.c", main]
        elf = tmp_path / "fault.elf"
        t = board.target
        r = subprocess.run([t.toolchain_prefix + "gcc", *t.flags(board.core), *FIRMWARE_CFLAGS,
                            "-DESL_CLUSTER_CORES=8", "-DESL_CONSOLE_BASE=0x10000000u", f"-I{fw / 'include'}",
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
