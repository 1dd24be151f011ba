"""The Cortex-M target: Arm v6-M to v8.1-M cores, one thread, kernels in C with ISA branches.

ISA levels and what the kernels may use (Arm Architecture Reference Manuals for v6-M, v7-M and
v8-M; the Cortex-M technical reference manuals for the optional units):

    armv6-m         Cortex-M0/M0+: Thumb, 32x32 multiply, no DSP, no FPU, no DWT cycle counter
    armv7-m         Cortex-M3: Thumb-2, hardware divide; no DSP, no FPU
    armv7e-m        Cortex-M4/M7: + DSP extension (SMLAD, SXTB16, ...); optional FPU
                    (M4: FPv4-SP; M7: FPv5, single or double precision)
    armv8-m.main    Cortex-M33: + optional DSP extension and FPv5-SP FPU
    armv8.1-m.main  Cortex-M55: + MVE (Helium) and DSP; FPU with half precision

ISA variants of the kernels, worst first: portable (plain C, the reference), dsp (needs the DSP
extension), mve (needs Helium). A kernel without a branch for the core's best variant runs its best
lower one (resolve picks it), so an M55 runs the mve matmul and the dsp or portable rest.
"""

from __future__ import annotations

from pathlib import Path

from ..lower.schedule import Step
from .base import Core, CoreConfig, KernelSpec, Target

_ARM_DOCS = "https://developer.arm.com/documentation (Cortex-M{} Technical Reference Manual)"

CORES = {c.name: c for c in (
    Core("cortex-m0", "armv6-m", frozenset(), None, _ARM_DOCS.format("0")),
    Core("cortex-m0plus", "armv6-m", frozenset(), None, _ARM_DOCS.format("0+")),
    Core("cortex-m3", "armv7-m", frozenset(), None, _ARM_DOCS.format("3")),
    Core("cortex-m4", "armv7e-m", frozenset({"dsp"}), "fpv4-sp-d16", _ARM_DOCS.format("4")),
    Core("cortex-m7", "armv7e-m", frozenset({"dsp"}), "fpv5-d16", _ARM_DOCS.format("7")),
    Core("cortex-m33", "armv8-m.main", frozenset({"dsp"}), "fpv5-sp-d16", _ARM_DOCS.format("33")),
    # MVE float is off: QEMU 7.2 flushes subnormals in MVE float ops (scalar FP does not), and gcc
    # auto-vectorizes float loops with it, which would break bit-exactness. Integer MVE stays on.
    Core("cortex-m55", "armv8.1-m.main", frozenset({"dsp", "mve"}), "auto", _ARM_DOCS.format("55"),
         mcpu="cortex-m55+nomve.fp"),
)}


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def _matmul_q_scratch(step: Step, max_seq: int) -> int:
    """xq int8[cols] (int16 for w8f with int16 activations) padded to 4 bytes, then xs
    float[n_groups] (esl_matmul_w8f.c / _w4f.c)."""
    return _round4(step.cols * (2 if step.act_bits == 16 else 1)) + 4 * -(-step.cols // step.group_size)


def _matmul_w8f_dsp_scratch(step: Step, max_seq: int) -> int:
    """The portable layout, then x widened once to int16[cols] for SMLAD."""
    return _matmul_q_scratch(step, max_seq) + 2 * step.cols


def _matmul_w4f_dsp_scratch(step: Step, max_seq: int) -> int:
    """The portable layout, then xsum int32[n_groups] and x laid out as int16[cols] for SMLAD."""
    return _matmul_q_scratch(step, max_seq) + 4 * -(-step.cols // step.group_size) + 2 * step.cols


def _attention_pair_scratch(step: Step, max_seq: int) -> int:
    """Two heads' scores, float[2 * max_seq] (query heads sharing a kv head go in pairs)."""
    return 8 * max_seq


def _attention_kv8_scratch(step: Step, max_seq: int) -> int:
    """Two heads' scores, float[2 * max_seq], then their quantized q, int16[2 * head_size]."""
    return 8 * max_seq + _round4(4 * step.cols)


def _matmul_s8_dsp_scratch(step: Step, max_seq: int) -> int:
    """x widened once to int16[cols] for SMLAD (esl_dot_i8.h)."""
    return 2 * step.cols


def _attention_s8_scratch(step: Step, max_seq: int) -> int:
    """q - q_zp as int16[head_size] (rounded up to even), one head's scores / weights [max_seq], then
    the weight of each score difference [256]."""
    return 2 * (step.cols + step.cols % 2) + max_seq + 256


# s8: the integer-only scheme (TFLM arithmetic; no float, so they serve FPU-less cores), the
# portable C of each (any 32-bit target can run them: targets/pulp_cluster.py does).
# param_bytes = sizeof(esl_<name>_t) on a 32-bit core (tests/test_plan.py checks it with gcc).
S8_KERNELS = (
    KernelSpec("embed", "s8", about="requantize one int8 row", param_bytes=16),
    KernelSpec("rmsnorm", "s8", about="integer isqrt, per-channel multipliers", param_bytes=28),
    KernelSpec("matmul", "s8", about="TFLM FULLY_CONNECTED, host-folded input zero point", param_bytes=24),
    KernelSpec("rope", "s8", about="two non-zero terms of each int8 rotation row", param_bytes=24),
    KernelSpec("rope", "s16", about="TFLM FULLY_CONNECTED 16x8 of int16 keys, int8 rotation", param_bytes=16),
    KernelSpec("swiglu", "s16", about="TFLM int16 LOGISTIC (table, interpolated) and two int16 MULs",
               param_bytes=24),
    KernelSpec("matmul", "s16", about="int16 x, int8 W, int32 sums, 4 rows per pass", param_bytes=16),
    KernelSpec("kvstore", "s8"),
    KernelSpec("attention", "s8", scratch=_attention_s8_scratch, about="TFLM int8 softmax, host exp table",
               param_bytes=44),
    KernelSpec("add", "s8", about="TFLM int8 ADD (int16 with --int16 residual)", param_bytes=44),
    KernelSpec("swiglu", "s8", about="SiLU table, one TFLM MUL", param_bytes=24),
)

# The float schemes (f32, q8, q4): the portable C of each, also what targets/pulp_cluster.py runs.
FLOAT_KERNELS = (
    KernelSpec("embed", "f32", about="copy one fp32 row"),
    KernelSpec("embed", "w8f", about="dequantize one int8 row"),
    KernelSpec("rmsnorm", "f32"),
    KernelSpec("matmul", "f32", about="sequential fp32 dot per row"),
    KernelSpec("matmul", "w8f", scratch=_matmul_q_scratch, about="int8 x int8 per group, fp32 scales"),
    KernelSpec("matmul", "w4f", scratch=_matmul_q_scratch, about="int4 nibbles x int8 per group"),
    KernelSpec("rope", "f32"),
    KernelSpec("kvstore", "f32"),
    KernelSpec("kvstore", "kv8", about="int8 per (position, kv head)"),
    KernelSpec("attention", "f32", scratch=_attention_pair_scratch, about="query heads in pairs per kv head"),
    KernelSpec("attention", "kv8", scratch=_attention_kv8_scratch,
               about="int32 dot products over int8 keys and values, Q15 softmax; heads in pairs"),
    KernelSpec("add", "f32"),
    KernelSpec("swiglu", "f32"),
)

KERNELS = (
    *FLOAT_KERNELS,
    KernelSpec("matmul", "w8f", "dsp", _matmul_w8f_dsp_scratch, about="SXTB16 + SMLAD, x widened once"),
    KernelSpec("matmul", "w8f", "mve", _matmul_q_scratch, about="VMLADAVA over 16 int8 lanes, predicated tail"),
    KernelSpec("matmul", "w4f", "dsp", _matmul_w4f_dsp_scratch, about="8 nibbles per load, UXTB16 + SMLAD"),
    KernelSpec("attention", "f32", "dsp", _attention_pair_scratch,
               about="a pair of heads: the exps, and at head size 8 one VLDM per key and value row (FPU assembly)"),
    KernelSpec("attention", "kv8", "dsp", _attention_kv8_scratch,
               about="SXTB16 + SMLAD scores, SMLAxy weighted sums for a pair of heads; the exps in FPU assembly"),
    KernelSpec("attention", "kv8", "mve", _attention_kv8_scratch,
               about="VMLADAVA scores and VMLA weighted sums over int8 rows widened by VLDRB; the DSP rest"),
    *S8_KERNELS,
    KernelSpec("matmul", "s8", "dsp", _matmul_s8_dsp_scratch, about="SXTB16 + SMLAD, 4 rows per pass",
               param_bytes=24),
    KernelSpec("matmul", "s8", "mve", about="VMLADAVA over 16 int8 lanes, predicated tail", param_bytes=24),
    KernelSpec("matmul", "s16", "dsp", _matmul_s8_dsp_scratch, about="int16 x reordered once, SXTB16 + SMLAD",
               param_bytes=16),
)


def _flags(cc: CoreConfig) -> list[str]:
    flags = [f"-mcpu={cc.core.mcpu or cc.core.name}", "-mthumb"]
    if cc.fpu:
        return flags + [f"-mfpu={cc.fpu}", "-mfloat-abi=hard"]
    return flags + ["-mfloat-abi=soft"]


def _defines(variant: str) -> dict[str, int]:
    return {"ESL_KERNELS_DSP": int(variant in ("dsp", "mve")), "ESL_KERNELS_MVE": int(variant == "mve")}


TARGET = Target(
    name="cortex_m",
    arch_dir="cortex_m",
    cores=CORES,
    variants=(("portable", None), ("dsp", "dsp"), ("mve", "mve")),
    kernels=KERNELS,
    toolchain_prefix="arm-none-eabi-",
    costs_file=Path(__file__).with_name("cortex_m_costs.json"),
    flags=_flags,
    link_flags=("-nostartfiles", "--specs=nosys.specs", "-Wl,--gc-sections"),
    libs=("m", "c", "gcc"),
    defines=_defines,
)
