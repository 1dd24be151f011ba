"""The PULP-cluster target: RISC-V cores in a GAP9-class cluster (a fabric controller plus 8 worker
cores sharing an L1 scratchpad, fed by DMA from L2), kernels in C with ISA branches.

ISA levels (RISC-V unprivileged spec; GreenWaves' and pulp-platform's public material for Xpulp):

    rv32imfc        the portable level: integer multiply, single-precision FPU, compressed. What
                    QEMU's `virt` harts run for the GAP9 stand-in (boards/gap9_qemu.json), built
                    with Debian's riscv64-unknown-elf-gcc and picolibc (multilib rv32imf/ilp32f)
    rv32imcxgap9    GAP9's cluster cores (GreenWaves' GAP SDK: -march=rv32imcxgap9): + Xpulp
                    (hardware loops, post-increment loads, 4x int8 SIMD dot products `pv.sdotsp.b`,
                    ...) and an FPU. QEMU has no Xpulp: the `xpulp` kernel variant is a named slot
                    (ESL_KERNELS_XPULP) that no kernel fills yet, and it is never offered to a core
                    whose board runs under QEMU (the gap9_qemu core lacks the "xpulp" feature)

ISA variants of the kernels, worst first: portable (plain C, the reference), xpulp (needs Xpulp).
A kernel without an xpulp branch runs its portable one (resolve picks it).

The cluster: arch/riscv_pulp/ (esl_cluster.h) forks a step's rows, heads or elements over the
board's `cluster.cores` workers, and the matmuls stream their weights through L1 by DMA in the
planner's tiles (edgeslm.lower.plan_cluster); the step table is the same as every target's,
a matmul's n carrying its tiling. The board's `cluster.timing` gives what a fork and a DMA command
cost. What the kernels' cluster branches do is below, as data for the planner.
"""

from __future__ import annotations

from pathlib import Path

from .base import Core, CoreConfig, Target
from .cortex_m import FLOAT_KERNELS, S8_KERNELS

_GAP9 = ("GreenWaves GAP9 product brief and datasheet (https://greenwaves-technologies.com/gap9_processor/): "
         "9-core compute cluster (8 workers + a cluster controller), RISC-V with Xpulp DSP extensions and FPU")
_VIRT = "QEMU 7.2 target/riscv (rv32 'virt' harts: I, M, A, F, D, C; no Xpulp)"

CORES = {c.name: c for c in (
    # The stand-in: what QEMU runs. The harts have A and D too; the build does not use them (GAP9's
    # cluster cores have neither atomics nor double precision).
    Core("rv32imfc", "rv32imfc", frozenset(), "f", _VIRT),
    # The real cluster core: Xpulp. Its build (PMSIS, GAP SDK) is not done here.
    Core("gap9-cluster", "rv32imcxgap9", frozenset({"xpulp"}), "f", _GAP9),
)}

KERNELS = (
    *FLOAT_KERNELS,         # the portable C of both schemes; their cluster branches split the work
    *S8_KERNELS,
)


def _flags(cc: CoreConfig) -> list[str]:
    """rv32imfc / ilp32f (hard float) with the FPU, rv32imc / ilp32 without. The Xpulp core would
    take -march=rv32imcxgap9 from the GAP SDK's compiler, which Debian's gcc does not know.
    picolibc's specs file serves both compiling (its headers) and linking (its multilib)."""
    isa = ["-march=rv32imfc", "-mabi=ilp32f"] if cc.fpu else ["-march=rv32imc", "-mabi=ilp32"]
    return isa + ["-mcmodel=medany", "--specs=picolibc.specs"]


def _defines(variant: str) -> dict[str, int]:
    return {"ESL_KERNELS_XPULP": int(variant == "xpulp")}


TARGET = Target(
    name="pulp_cluster",
    arch_dir="riscv_pulp",
    cores=CORES,
    variants=(("portable", None), ("xpulp", "xpulp")),
    kernels=KERNELS,
    toolchain_prefix="riscv64-unknown-elf-",
    costs_file=Path(__file__).with_name("pulp_cluster_costs.json"),
    flags=_flags,
    link_flags=("-nostartfiles", "-Wl,--gc-sections"),
    libs=("m", "c", "gcc"),
    defines=_defines,
)


# Forks per call of each kernel's cluster branch (the kernels that do not fork run on the fabric
# controller); a w8f matmul whose input the step before left quantized forks once, not twice.
# tests/test_gap9.py checks the plan's forks per token against the firmware's count.
CLUSTER_FORKS = {"matmul_w8f": 2, "matmul_s8": 1, "rmsnorm_f32": 1, "rope_f32": 1,
                 "kvstore_f32": 1, "kvstore_kv8": 1, "attention_f32": 1, "attention_kv8": 1,
                 "attention_s8": 1, "add_f32": 1, "swiglu_f32": 1,
                 "rmsnorm_s8": 1, "rope_s8": 1, "rope_s16": 1, "add_s8": 1, "swiglu_s8": 1,
                 "swiglu_s16": 1, "matmul_s16": 1}
TILED_KERNELS = ("matmul_w8f", "matmul_s8")     # matmuls streamed through L1 in tiles

# Instructions a worker spends per tile besides the rows themselves (the DMA commands and their
# waits, the tile's view of W, the call of the row loop with its set-up): measured on gap9_qemu
# (stories260K q8, 1 core: tiles of 4 rows against the planner's one tile per matmul (two for the
# first), 193,557 more instructions per token for 841 more tiles). With ROW_INSTRUCTIONS_PER_MAC
# (w8f's RV32 rows, esl_matmul_w8f.c: the matmul steps measure 3.77 per MAC on one core (s8: 4.11),
# quantizing their input included) it serves only to choose the tile sizes (stories260K's are the
# same with the earlier 210 and 4.2).
TILE_LOOP_INSTRUCTIONS = 230
ROW_INSTRUCTIONS_PER_MAC = 3.8
