"""A plan's cluster part, for a board with a `cluster` section (a multi-core target such as
pulp_cluster): each matmul's DMA tiles in the workers' L1, the prefetches between matmuls, the
forks, the DMA traffic and the fork/barrier + DMA-wait time model.

    plan_cluster(board, planned steps, scratch bytes) -> ClusterPlan

Called by plan.plan; the planned steps come back with their tiling (PlannedStep.tile_rows, slot,
forks), which codegen writes into each matmul step's n (firmware/include/esl_cluster.h).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..errors import EdgeslmError
from ..targets.pulp_cluster import (CLUSTER_FORKS, ROW_INSTRUCTIONS_PER_MAC, TILE_LOOP_INSTRUCTIONS,
                                     TILED_KERNELS)
from .boards import Board
from .schedule import Step

if TYPE_CHECKING:
    from .plan import PlannedStep


# ---- a cluster (a board with a `cluster` section: a multi-core target such as pulp_cluster) ----
# Every matmul's rows are split over the workers (contiguous shares differing by one row at most,
# as the kernels call esl_cl_split: a share's last rows % 4 go one at a time).
# Each worker streams its rows through its L1 in tiles: the DMA fetches tile k + 1 while the core
# computes tile k (double buffering), and while it computes its last tile, the first tile of the
# next matmul in the table into the other of two slots (a prefetch across the steps between; the
# last matmul prefetches the next token's first). The planner sizes the tiles to the worker's
# share of L1 and writes them into the step table (the matmul step's n: esl_cluster.h); the L1
# layout is the kernels' cluster branches' (firmware/kernels/matmul/esl_matmul_{w8f,s8}.c):
#     [the steps' own scratch (attention's scores)][x, tiles A and B of the running matmul] ...
#     ... [slot 1: first tiles of the odd matmuls][slot 0: of the even ones]
# What the kernels' cluster branches do (which fork, how often, which are tiled, what a tile costs)
# is the target's: host/edgeslm/targets/pulp_cluster.py.

@dataclass(frozen=True)
class ClusterTiming:
    """What a fork and a DMA command cost on the board's cluster, in cluster cycles: the board's
    cluster.timing (boards/gap9*.json cite each figure or call it an estimate)."""
    fork_cycles: int             # dispatching a function to the team (PMSIS pi_cl_team_fork)
    barrier_cycles: int          # the join: the team's barrier
    dma_bytes_per_cycle: int     # the cluster DMA's L2 -> L1 bandwidth, shared by the workers
    dma_setup_cycles: int        # per command, before its first byte arrives

    @classmethod
    def of(cls, board: Board) -> "ClusterTiming":
        t = board.cluster.get("timing")
        keys = list(cls.__dataclass_fields__)
        if not isinstance(t, dict) or any(not isinstance(t.get(k), int) or t[k] < 0 for k in keys) \
                or t["dma_bytes_per_cycle"] < 1:
            raise EdgeslmError(f"board {board.id}: cluster.timing must give {', '.join(keys)} "
                               "(cycles, whole numbers; bytes per cycle at least 1)",
                               "see boards/gap9_qemu.json")
        return cls(**{k: t[k] for k in keys})

    def dma_cycles(self, nbytes: int, cores: int) -> int:
        """One command of nbytes while `cores` workers stream at once (the firmware's model,
        firmware/arch/riscv_pulp/cluster_qemu.c dma_ticks)."""
        return self.dma_setup_cycles + -(-nbytes * cores // self.dma_bytes_per_cycle)


@dataclass(frozen=True)
class ClusterStep:
    """One step on the cluster: its DMA traffic per call and the cycles a real cluster adds to
    its busiest core's instructions: fork and barrier, and the DMA waits the model expects (the
    input x, which is quantized just before; a first tile whose prefetch had too little time)."""
    dma_bytes: int
    dma_commands: int
    overhead_cycles: int


@dataclass(frozen=True)
class ClusterPlan:
    cores: int
    timing: ClusterTiming
    l1_budget_bytes: int         # a worker's share of L1 after its stack
    tiles_at: int                # where each worker's DMA tiles start in its L1 scratch
    scratch_bytes: int           # each worker's L1 scratch: its steps' part, then its tiles (8-byte multiple)
    slot_bytes: tuple[int, int]  # its last bytes: slot 0 of the first tiles, slot 1 before it
    steps: list[PlannedStep]     # the plan's steps, with tile rows, forks and the next matmul
    per_step: list[ClusterStep]
    next_matmul: dict[int, int]  # tiled matmul step -> the step whose first tile it prefetches

    @property
    def dma_bytes_per_token(self) -> int:
        return sum(c.dma_bytes for c in self.per_step)

    @property
    def dma_commands_per_token(self) -> int:
        return sum(c.dma_commands for c in self.per_step)

    @property
    def forks_per_token(self) -> int:
        return sum(p.forks for p in self.steps)

    @property
    def fork_cycles_per_token(self) -> int:
        return self.forks_per_token * (self.timing.fork_cycles + self.timing.barrier_cycles)


def _round4(n: int) -> int:
    return (n + 3) // 4 * 4


def split_rows(rows: int, cores: int, align: int = 1) -> list[int]:
    """Each worker's row count, as esl_cl_split: contiguous blocks of `align` rows."""
    blocks = -(-rows // align)
    per, extra = divmod(blocks, cores)
    out, begin = [], 0
    for k in range(cores):
        end = min(rows, (begin // align + per + (k < extra)) * align)
        out.append(end - begin)
        begin = end
    return out


def _matmul_parts(step: Step) -> tuple[int, int, int]:
    """(bytes of x each worker fetches, weight bytes per row, scale bytes per row) of a matmul.
    w8f: x padded to 4 bytes and its scales, as they lie in the scratch and in L1: one command."""
    if step.contract == "w8f":
        ng = -(-step.cols // step.group_size)
        return _round4(_x_bytes(step)) + 4 * ng, step.cols, 4 * ng
    return step.cols, step.cols, 0                         # s8: int8 x and rows; bias etc. in L2


def _x_bytes(step: Step) -> int:
    """x as quantized: int8, or int16 (w8f with int16 activations)."""
    return step.cols * (2 if step.act_bits == 16 else 1)


def tile_bytes(step: Step, tile_rows: int) -> int:
    """One tile in L1: the weights padded to 4 bytes, then the rows' scales (w8f)."""
    _, row, scales = _matmul_parts(step)
    return _round4(tile_rows * row) + tile_rows * scales


def matmul_l1_bytes(step: Step, tile_rows: int, cores: int) -> int:
    """A worker's L1 for a matmul besides the slots (the kernels' layout): x as prepared (padded
    to 4 bytes) and its scales (w8f), then the tiles A and B, as many as the busiest worker uses
    after its first (which is in a slot)."""
    x, _, _ = _matmul_parts(step)
    tiles = -(-max(split_rows(step.rows, cores)) // tile_rows)
    return _round4(x) + min(tiles - 1, 2) * tile_bytes(step, tile_rows)


def _matmul_dma(step: Step, tile_rows: int, cores: int, timing: ClusterTiming,
                window: float, x_kept: int = 0) -> ClusterStep:
    """Bytes and commands of one call, and the DMA wait the model expects on the busiest path:
    x (and its scales: one command), which the workers fetch as the step starts, and of the first
    tile what its prefetch, issued `window` cycles before the step, has not brought yet. Later
    tiles come while the core computes: hidden as long as a tile's rows take longer than its DMA
    (here about ROW_INSTRUCTIONS_PER_MAC * cols cycles per row against cores / dma_bytes_per_cycle
    per byte). x_kept: the rows of the matmul before on the same x (w8f, the schedule's
    input_prepared), whose workers with rows (the first x_kept) still hold x in L1: they skip it."""
    x, row, scales = _matmul_parts(step)
    shares = [n for n in split_rows(step.rows, cores) if n]
    first = min(max(shares), tile_rows)
    if step.contract == "w8f":      # x and its scales, then per tile the weights and their scales
        tile_commands, tile_parts = 2, [first * row, first * scales]
        x_fetches = max(0, len(shares) - x_kept)
    else:                           # x, then per tile the weights
        tile_commands, tile_parts = 1, [first * row]
        x_fetches = len(shares)
    tiles = sum(-(-n // tile_rows) for n in shares)
    fetch = sum(timing.dma_cycles(b, cores) for b in tile_parts)
    wait = (timing.dma_cycles(x, cores) if x_fetches else 0) + max(0.0, fetch - window)
    return ClusterStep(dma_bytes=x_fetches * x + step.rows * (row + scales),
                       dma_commands=x_fetches + tiles * tile_commands, overhead_cycles=round(wait))


def _prefetch_window(step: Step, tile_rows: int, cores: int) -> float:
    """Cycles the next matmul's first tile has to arrive: while the busiest worker computes its
    last tile (the steps between are not counted)."""
    share = max(split_rows(step.rows, cores))
    tiles = -(-share // tile_rows)
    return (share - (tiles - 1) * tile_rows) * step.cols * ROW_INSTRUCTIONS_PER_MAC


def choose_tile_rows(step: Step, cores: int, budget: int, timing: ClusterTiming, window: float) -> int:
    """Rows per tile (a multiple of 4): of those whose L1 (its own and a slot's tile) fits the
    budget, the one with the least modelled cost on the busiest worker: TILE_LOOP_INSTRUCTIONS per
    tile and the DMA wait (_matmul_dma). 4 if none fits (the L1 placement then reports it)."""
    share = max(split_rows(step.rows, cores))
    best, best_cost = 4, math.inf
    for rows in range(4, _round4(share) + 1, 4):
        if matmul_l1_bytes(step, rows, cores) + 2 * tile_bytes(step, rows) > budget:
            break
        cost = _matmul_dma(step, rows, cores, timing, window).overhead_cycles + \
            -(-share // rows) * TILE_LOOP_INSTRUCTIONS
        if cost < best_cost:
            best, best_cost = rows, cost
    return best


def plan_cluster(board: Board, planned: list[PlannedStep], scratch: int) -> ClusterPlan:
    """Tiles, prefetches, forks and the time model of the steps on the board's cluster."""
    cores, timing = board.cores, ClusterTiming.of(board)
    l1 = next(r for r in board.memory if r.name == board.cluster["l1_region"])
    shared = board.cluster["controller_stack_bytes"] + board.cluster["l1_reserved_bytes"]   # PMSIS only
    budget = ((l1.length_bytes - shared) // cores - board.cluster["worker_stack_bytes"]) // 8 * 8
    tiles_at = (scratch + 7) // 8 * 8
    tiled = [i for i, ps in enumerate(planned) if ps.kernel.name in TILED_KERNELS]
    slot = {i: k % 2 for k, i in enumerate(tiled)}
    # each matmul prefetches the next one's first tile, the last the first's (the next token's) if
    # the slots alternate all the way round; all of one kernel (one L1 layout)
    kinds = {planned[i].kernel.name for i in tiled}
    next_matmul = {i: tiled[k + 1] for k, i in enumerate(tiled[:-1])} if len(kinds) == 1 else {}
    if next_matmul and len(tiled) % 2 == 0:
        next_matmul[tiled[-1]] = tiled[0]
    rows: dict[int, int] = {}
    window = 0.0                    # the first matmul's prefetch comes from the last: not counted
    for i in tiled:
        rows[i] = choose_tile_rows(planned[i].step, cores, budget - tiles_at, timing, window)
        window = _prefetch_window(planned[i].step, rows[i], cores)

    def slots() -> list[int]:
        return [max((tile_bytes(planned[i].step, rows[i]) for i in tiled if slot[i] == k), default=0)
                for k in (0, 1)]

    def tiles_bytes() -> int:
        return max((matmul_l1_bytes(planned[i].step, rows[i], cores) for i in tiled), default=0) + sum(slots())

    while tiled and tiles_bytes() > budget - tiles_at:      # shrink the largest tile
        i = max((i for i in tiled if rows[i] > 4), key=lambda i: tile_bytes(planned[i].step, rows[i]),
                default=None)
        if i is None:
            break
        rows[i] -= 4
    steps, per_step, window = [], [], 0.0
    fork = timing.fork_cycles + timing.barrier_cycles
    for i, ps in enumerate(planned):
        forks = CLUSTER_FORKS.get(ps.kernel.name, 0)
        if i in rows:
            # q, k, v (and w1, w3) read one input (the schedule's input_prepared): the first
            # quantizes it into the shared scratch, the others find it there and skip that fork
            forks -= ps.kernel.name == "matmul_w8f" and ps.step.input_prepared
            # and (w8f) its workers find x in their L1, where the matmul before left it
            x_kept = planned[i - 1].step.rows if ps.step.input_prepared and i - 1 in rows else 0
            dma = _matmul_dma(ps.step, rows[i], cores, timing, window, x_kept)
            window = _prefetch_window(ps.step, rows[i], cores)
            steps.append(replace(ps, tile_rows=rows[i], slot=slot[i], forks=forks))
            per_step.append(replace(dma, overhead_cycles=dma.overhead_cycles + forks * fork))
        else:
            steps.append(replace(ps, forks=forks))
            per_step.append(ClusterStep(0, 0, forks * fork))
    return ClusterPlan(cores, timing, budget, tiles_at, tiles_at + (tiles_bytes() + 7) // 8 * 8, tuple(slots()),
                       steps, per_step, next_matmul)
