"""What a target is: a family of cores sharing an instruction set and a way to run kernels.

    KernelSpec   one kernel variant: op, contract, the ISA variant it is written for, its scratch
                 rule and its cost units
    Core         one core of the family: ISA level, features, its optional FPU
    Target       the family: cores, ISA variants in order, kernels, toolchain and flags, costs

Plain data and pure functions; the planner asks a Target which kernel serves a step
(`Target.resolve`), how big its scratch is, and what it should cost on this core.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import EdgeslmError
from ..model.ir import ModelConfig
from ..lower.schedule import Step


class TargetError(EdgeslmError):
    """An unknown target or core, a kernel variant the core lacks, or no kernel for a step."""


def _no_scratch(step: Step, max_seq: int) -> int:
    return 0


def work_units(step: Step, cfg: ModelConfig, pos: int) -> dict[str, float]:
    """What a step does at position pos, in the units its cost is counted in (one "call" each).
    matmul: MACs, rows and columns (the input is quantized once per call, unless the previous
    matmul prepared it) and, for the quantized ones, groups (rows x groups per row: each has its
    float work, twice as many with groups of 16 as of 32); attention: scores (one per head and
    cached position: an exp each) and their elements (scores x head_size: the dot product's and the
    weighted sum's work; runs of one head size cannot tell the two apart, and the fit then keeps
    scores alone); everything else: elements."""
    if step.op == "matmul":     # an input the previous matmul prepared is not quantized again
        units = {"call": 1, "mac": step.rows * step.cols, "row": step.rows,
                 "col": 0 if step.input_prepared else step.cols}
        if step.group_size:
            units["group"] = step.rows * -(-step.cols // step.group_size)
        return units
    if step.op == "attention":
        scores = cfg.n_heads * (pos + 1)
        return {"call": 1, "score": scores, "score_element": scores * cfg.head_size}
    if step.op == "embed":
        return {"call": 1, "element": step.cols}
    if step.op == "rope":
        return {"call": 1, "element": step.n * cfg.head_size}
    return {"call": 1, "element": step.n}


@dataclass(frozen=True)
class KernelSpec:
    op: str                      # the step op it serves
    contract: str                # f32 | w8f | w4f | kv8 | s8
    variant: str = "portable"    # the ISA variant (a branch of the kernel's C file)
    scratch: Callable[[Step, int], int] = _no_scratch    # bytes of shared scratch for (step, max_seq)
    about: str = ""
    param_bytes: int = 0         # its esl_<name>_t step parameters, bytes on the target (s8 kernels)

    @property
    def name(self) -> str:
        return f"{self.op}_{self.contract}"

    @property
    def c_file(self) -> str:
        """Relative to firmware/: one file per kernel, ISA variants as #if branches inside."""
        return f"kernels/{self.op}/esl_{self.name}.c"

    @property
    def step_symbol(self) -> str:
        return f"esl_step_{self.name}"

    @property
    def cost_key(self) -> str:
        return f"{self.name}.{self.variant}"


@dataclass(frozen=True)
class Core:
    name: str                    # as gcc's -mcpu / the board file's "core"
    isa: str                     # ISA level
    features: frozenset[str]     # ISA features the kernel variants may need (dsp, mve, ...)
    fpu: str | None = None       # the core's optional FPU (gcc -mfpu), None if it has none
    source: str = ""             # where the facts come from
    mcpu: str = ""               # gcc -mcpu when it is not the name (extensions switched off)


@dataclass(frozen=True)
class CoreConfig:
    """A core as a board has it: with or without its optional FPU."""
    core: Core
    fpu: str | None

    @property
    def id(self) -> str:
        return self.core.name + (f"+{self.fpu}" if self.fpu else "")

    @property
    def features(self) -> frozenset[str]:
        return self.core.features | ({"fpu"} if self.fpu else frozenset())


@dataclass(frozen=True)
class Target:
    name: str
    arch_dir: str                                # firmware/arch/<arch_dir>
    cores: dict[str, Core]
    variants: tuple[tuple[str, str | None], ...]  # ISA variants, best last: (name, feature it needs)
    kernels: tuple[KernelSpec, ...]
    toolchain_prefix: str                        # e.g. arm-none-eabi-
    costs_file: Path
    flags: Callable[[CoreConfig], list[str]] = field(default=lambda cc: [])
    link_flags: tuple[str, ...] = ()
    libs: tuple[str, ...] = ()
    defines: Callable[[str], dict[str, int]] = field(default=lambda variant: {})

    # ---- cores and variants
    def core_config(self, core: str, fpu: bool | str | None) -> CoreConfig:
        c = self.cores.get(core)
        if c is None:
            raise TargetError(f"target {self.name} has no core '{core}'",
                              f"choose one of: {', '.join(sorted(self.cores))}")
        if fpu is True:
            if c.fpu is None:
                raise TargetError(f"{core} has no FPU", "set \"fpu\": false in the board file")
            return CoreConfig(c, c.fpu)
        if isinstance(fpu, str):
            return CoreConfig(c, fpu)
        return CoreConfig(c, None)

    def variants_for(self, cc: CoreConfig) -> list[str]:
        """The ISA variants this core can run, worst (portable) first."""
        return [v for v, needs in self.variants if needs is None or needs in cc.features]

    def best_variant(self, cc: CoreConfig) -> str:
        return self.variants_for(cc)[-1]

    def check_variant(self, cc: CoreConfig, variant: str) -> str:
        offered = self.variants_for(cc)
        if variant not in offered:
            raise TargetError(f"{cc.id} cannot run '{variant}' kernels",
                              f"choose one of: {', '.join(offered)}")
        return variant

    # ---- kernels
    def resolve(self, step: Step, cc: CoreConfig, ceiling: str) -> KernelSpec:
        """The best kernel for a step: the highest ISA variant the core has, up to `ceiling`."""
        allowed = self.variants_for(cc)
        allowed = allowed[:allowed.index(ceiling) + 1]
        have = [k for k in self.kernels if k.op == step.op and k.contract == step.contract]
        if not have:
            raise TargetError(f"target {self.name} has no {step.op} kernel for contract "
                              f"'{step.contract}' (esl_{step.kernel})",
                              "choose another --quant / --kv")
        usable = [k for k in have if k.variant in allowed]
        return max(usable, key=lambda k: allowed.index(k.variant))

    # ---- costs, per core configuration, as data beside the target
    def costs(self, cc: CoreConfig) -> dict:
        data = json.loads(self.costs_file.read_text()) if self.costs_file.is_file() else {}
        return data.get("cores", {}).get(cc.id, {})
