"""Boards as data: boards/<id>.json are PlatformIO board manifests with an `edgeslm` section.

The section names the board's target and core (everything about the core comes from the target,
host/edgeslm/targets/), its clock, memory regions, console port, cycle counter and emulator. It is
validated here (a schema in code, with messages that name the file and key); the rest of edgeslm
only asks the Board for roles: where weights may go, which emulator runs it, which kernels it has.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import paths
from ..errors import EdgeslmError
from ..targets import CoreConfig, Target, TargetError, get_target

BOARDS_DIR = paths.BOARDS
SCHEMA_VERSION = 2
HOLDS = ("code", "weights", "ram", "l1")      # l1: a cluster's worker stacks and scratches
CLUSTER_BACKENDS = ("qemu", "pmsis")


class BoardError(EdgeslmError):
    """An unknown board, or a board file that does not follow the schema."""


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    length_bytes: int
    holds: tuple[str, ...]
    # where the board's emulator has this region, if not at `origin` (QEMU 7.2's netduinoplus2 has no
    # CCM at 0x10000000 but 64 KiB more SRAM): emulated builds link it there (Board.for_emulator)
    emulator_origin: int | None = None


@dataclass(frozen=True)
class Board:
    id: str
    name: str
    target: Target
    core: CoreConfig
    clock_hz: int
    port: str                           # firmware/ports/<port>
    memory: tuple[Region, ...]
    stack_bytes: int
    code_budget_bytes: int
    cycle_counter: str
    emulator: dict = field(default_factory=dict)
    console: dict = field(default_factory=dict)   # the UART the port talks to (base address, ...)
    unverified: str = ""                # what of this file could not be checked here
    path: str = ""
    cluster: dict = field(default_factory=dict)   # a multi-core target's cluster: cores, L1 region

    @property
    def arch_dir(self) -> str:
        """The arch sources, relative to firmware/: the target's folder, on a cluster its back end's
        (arch/riscv_pulp/qemu, arch/riscv_pulp/pmsis)."""
        backend = self.cluster.get("backend")
        return f"arch/{self.target.arch_dir}" + (f"/{backend}" if backend else "")

    @property
    def cores(self) -> int:
        """The worker cores a step's rows are split over (1: no cluster)."""
        return int(self.cluster.get("cores", 1))

    def with_cores(self, n: int) -> "Board":
        """This board with its cluster's forks using n workers (1 .. the board's cluster.cores):
        `bench --cores N`. The emulator keeps every hart; the firmware is rebuilt for n."""
        if not self.cluster:
            raise BoardError(f"board {self.id} has no cluster: --cores needs a multi-core target",
                             "choose a board with a 'cluster' section, e.g. gap9_qemu")
        if not 1 <= n <= self.cores:
            raise BoardError(f"--cores {n}: board {self.id} has 1..{self.cores} cluster cores")
        return replace(self, cluster={**self.cluster, "cores": n})

    def for_emulator(self) -> "Board":
        """This board as its emulator maps it: every region with an `emulator_origin` moved there
        (same name, length and contents). The plan does not change; only the link addresses do."""
        if not any(r.emulator_origin is not None for r in self.memory):
            return self
        return replace(self, memory=tuple(replace(r, origin=r.emulator_origin, emulator_origin=None)
                                          if r.emulator_origin is not None else r for r in self.memory))

    def regions_for(self, kind: str) -> list[Region]:
        return [r for r in self.memory if kind in r.holds]

    @property
    def kernel_variants(self) -> list[str]:
        """The ISA variants of the kernels this board's core can run, portable first."""
        return self.target.variants_for(self.core)

    @property
    def kernel_variant(self) -> str:
        """The default: the best the core has."""
        return self.target.best_variant(self.core)


def _require(d: dict, key: str, typ, where: str):
    if key not in d:
        raise BoardError(f"{where}: missing key '{key}'", "see boards/mps2_an386.json for the schema")
    v = d[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is int:
        raise BoardError(f"{where}: '{key}' must be {getattr(typ, '__name__', typ)}, got {v!r}")
    return v


def _int(v, where: str) -> int:
    try:
        return int(v, 0) if isinstance(v, str) else int(v)
    except ValueError:
        raise BoardError(f"{where}: {v!r} is not an integer (decimal or 0x hex)") from None


def parse_board(board_id: str, data: dict, path: str = "") -> Board:
    where = path or board_id
    e = data.get("edgeslm")
    if not isinstance(e, dict):
        raise BoardError(f"{where}: no 'edgeslm' section", "add one; see boards/mps2_an386.json")
    if e.get("schema") != SCHEMA_VERSION:
        raise BoardError(f"{where}: edgeslm schema {e.get('schema')!r}, this edgeslm reads {SCHEMA_VERSION}",
                         "schema 2 names a 'target' and a 'core' (+ 'fpu'); ISA features, kernel "
                         "variants and costs come from the target: see boards/mps2_an386.json")
    try:
        target = get_target(_require(e, "target", str, where))
        fpu = e.get("fpu", False)
        if not isinstance(fpu, (bool, str)):
            raise BoardError(f"{where}: 'fpu' must be true, false or a -mfpu name, got {fpu!r}")
        core = target.core_config(_require(e, "core", str, where), fpu)
    except TargetError as err:
        raise BoardError(f"{where}: {err}", err.hint) from None
    regions = []
    for i, r in enumerate(_require(e, "memory", list, where)):
        w = f"{where}: memory[{i}]"
        holds = tuple(_require(r, "holds", list, w))
        bad = [h for h in holds if h not in HOLDS]
        if bad:
            raise BoardError(f"{w}: unknown 'holds' {bad}", f"use some of {', '.join(HOLDS)}")
        length = _int(_require(r, "length_bytes", (int, str), w), w)
        if length <= 0:
            raise BoardError(f"{w}: length_bytes must be positive")
        emu_origin = r.get("emulator_origin")
        regions.append(Region(_require(r, "name", str, w), _int(_require(r, "origin", (int, str), w), w),
                              length, holds, None if emu_origin is None else _int(emu_origin, w)))
    for kind in ("code", "ram"):
        if not any(kind in r.holds for r in regions):
            raise BoardError(f"{where}: no memory region holds '{kind}'")
    cluster = e.get("cluster", {})
    if not isinstance(cluster, dict):
        raise BoardError(f"{where}: 'cluster' must be an object (cores, l1_region, worker_stack_bytes)")
    if cluster:
        w = f"{where}: cluster"
        cores = _require(cluster, "cores", int, w)
        if not 1 <= cores <= 16:
            raise BoardError(f"{w}: cores must be 1..16, got {cores}")
        l1 = _require(cluster, "l1_region", str, w)
        if l1 not in {r.name for r in regions}:
            raise BoardError(f"{w}: l1_region '{l1}' is not one of the memory regions")
        # the back end of firmware/arch/<arch>/ that implements esl_cluster.h: "qemu" (the stand-in's
        # harts) or "pmsis" (GreenWaves' PMSIS, built with the GAP SDK: edgeslm.lower.gap_sdk)
        backend = cluster.get("backend", "qemu")
        if backend not in CLUSTER_BACKENDS:
            raise BoardError(f"{w}: backend must be one of {', '.join(CLUSTER_BACKENDS)}, got {backend!r}")
        # each worker's stack, in L1 (after it, its scratch: the planner's); under PMSIS also the
        # cluster controller's stack (it runs the step loop) and what the runtime keeps in L1
        cluster = {**cluster, "backend": backend,
                   "worker_stack_bytes": _int(cluster.get("worker_stack_bytes", 1024), w),
                   "controller_stack_bytes": _int(cluster.get("controller_stack_bytes", 0), w),
                   "l1_reserved_bytes": _int(cluster.get("l1_reserved_bytes", 0), w)}
    return Board(
        id=board_id, name=data.get("name", board_id), target=target, core=core,
        clock_hz=_int(_require(e, "clock_hz", (int, str), where), where),
        port=_require(e, "port", str, where),
        memory=tuple(regions), stack_bytes=_int(e.get("stack_bytes", 8192), where),
        code_budget_bytes=_int(e.get("code_budget_bytes", 65536), where),
        cycle_counter=_require(e, "cycle_counter", str, where), emulator=e.get("emulator", {}),
        console=e.get("console", {}), unverified=e.get("unverified", ""), path=path, cluster=cluster)


def board_dirs() -> list[Path]:
    """The project's boards/, after $EDGESLM_BOARDS_DIR if set (your own boards, same schema)."""
    extra = os.environ.get("EDGESLM_BOARDS_DIR")
    return ([Path(extra)] if extra else []) + [BOARDS_DIR]


def list_boards() -> list[str]:
    return sorted({p.stem for d in board_dirs() for p in d.glob("*.json")})


def load_board(board_id: str) -> Board:
    path = next((d / f"{board_id}.json" for d in board_dirs() if (d / f"{board_id}.json").is_file()), None)
    if path is None:
        raise BoardError(f"unknown board '{board_id}'",
                         f"choose one of: {', '.join(list_boards()) or '(none)'} "
                         f"(boards are the JSON files in {', '.join(map(str, board_dirs()))})")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise BoardError(f"{path}: not valid JSON: {e}") from None
    return parse_board(board_id, data, str(path))
