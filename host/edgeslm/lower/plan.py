"""The planner: the step table with each step's kernel chosen for the board, the activation
arena, the kernel scratch, where everything lives, whether it fits, and what a token should cost.

    plan(config, scheme, board, max_seq, kernels=None) -> Plan

The forward pass comes from `schedule` (written once; the golden model runs the same steps). For
each step the board's target picks the best kernel variant the core has (`kernels` caps it, e.g.
"portable" for the plain-C reference). Every activation a step writes is a *value* with a live
range [first step, last step]; values whose ranges do not overlap share arena space (first-fit by
start step). The shared scratch is the largest any chosen kernel's rule asks for. Weights and RAM
buffers are then placed, largest first, into the first board region that may hold them and still
has room. Costs per step come from the target's cost table for this core (fitted by `bench`).
A board with a cluster also gets its tiles, DMA traffic and fork/DMA time model (plan_cluster,
at the end), and each worker's L1 is placed like any other item.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..errors import EdgeslmError
from ..model.ir import ModelConfig
from ..quant.schemes import Scheme, get_scheme
from ..sizes import I8_LAYER_TABLE_BYTES, kv_cache_bytes, rope_table_bytes, weight_bytes
from ..targets import KernelSpec, work_units
from ..targets.pulp_cluster import (CLUSTER_FORKS, ROW_INSTRUCTIONS_PER_MAC, TILE_LOOP_INSTRUCTIONS,
                                     TILED_KERNELS)
from .boards import Board
from .schedule import Step, schedule


class FitError(EdgeslmError):
    """The model does not fit the board; `plan` holds the numbers, `str()` the table."""

    def __init__(self, message: str, hint: str, plan: "Plan"):
        super().__init__(message, hint)
        self.plan = plan


@dataclass(frozen=True)
class PlannedStep:
    step: Step
    kernel: KernelSpec
    scratch_bytes: int
    tile_rows: int = 0           # a cluster's matmul: weight rows per DMA tile (0: none)
    x_ready: bool = False        # a cluster's w8f matmul: the step before left its x quantized
    slot: int = 0                # a cluster's matmul: the L1 slot of its first tile (0 or 1)
    forks: int = 0               # a cluster: forks per call of the step's kernel


@dataclass
class Item:
    """Something with a home in memory: a weight array, a RAM buffer, the code, the stack."""
    name: str
    kind: str                    # code | weights | ram
    nbytes: int
    region: str = ""


@dataclass
class Plan:
    config: ModelConfig
    scheme: Scheme
    board: Board
    max_seq: int
    steps: list[PlannedStep]
    values: dict[str, int]                     # value -> size (elements: scheme.activation_bytes each)
    offsets: dict[str, int]                    # value -> arena offset (elements)
    arena_elements: int
    scratch_bytes: int                         # the shared kernel scratch (largest rule)
    items: list[Item]
    fits: bool
    overflow: dict[str, int] = field(default_factory=dict)   # region -> bytes over
    kernel_variant: str = "portable"           # the ISA variant the kernels were capped at
    costs: dict = field(default_factory=dict)  # the target's cost table for this core
    cluster: "ClusterPlan | None" = None       # a multi-core target: L1 budget, tiles, DMA, time model

    def used(self) -> dict[str, int]:
        out = {r.name: 0 for r in self.board.memory}
        for it in self.items:
            if it.region:
                out[it.region] += it.nbytes
        return out

    @property
    def arena_bytes(self) -> int:
        return self.arena_elements * self.scheme.activation_bytes

    def kernels(self) -> list[KernelSpec]:
        """The distinct kernels of the step table, in first-use order."""
        return list(dict.fromkeys(p.kernel for p in self.steps))

    @property
    def weight_macs(self) -> int:
        return sum(p.step.rows * p.step.cols for p in self.steps if p.step.op == "matmul")

    def predicted_step(self, i: int, pos: int) -> float | None:
        """Instructions step i should take at position pos (None: no cost data for its kernel)."""
        coef = self.costs.get("kernels", {}).get(self.steps[i].kernel.cost_key)
        if coef is None:
            return None
        units = work_units(self.steps[i].step, self.config, pos)
        return sum(units.get(u, 0) * c for u, c in coef.items())

    def predicted_step_mean(self, i: int, positions: int) -> float | None:
        vals = [self.predicted_step(i, p) for p in range(positions)]
        return None if vals[0] is None else sum(vals) / positions

    def predicted_instructions(self, pos: int) -> float | None:
        """A whole token at pos: every step, plus what is outside the steps (sampling, framing)."""
        per = [self.predicted_step(i, pos) for i in range(len(self.steps))]
        if not per or any(v is None for v in per):
            return None
        return sum(per) + self.costs.get("token", {}).get("call", 0.0)

    def predicted_mean(self, steps: int) -> float | None:
        steps = max(1, min(steps, self.max_seq))
        vals = [self.predicted_instructions(p) for p in range(steps)]
        return None if vals[0] is None else sum(vals) / steps

    @property
    def l1_scratch_bytes(self) -> int:
        """A cluster worker's L1 scratch (its tiles, attention scores): 0 without a cluster."""
        return self.cluster.scratch_bytes if self.cluster else 0


STEP_BYTES = 36                           # sizeof(esl_step_t) on a 32-bit core
SAMPLER_S8_BYTES = 2 * 256 * 4 + 32      # sampler_s8.c's state: weight table and bin counts


def live_ranges(steps: list[Step]) -> dict[str, tuple[int, int]]:
    """value -> (first step that touches it, last step that touches it); the logits outlive the pass."""
    ranges: dict[str, list[int]] = {}
    for i, s in enumerate(steps):
        for v in (s.out, s.inp, s.in2):
            if v:
                r = ranges.setdefault(v, [i, i])
                r[1] = i
    ranges["x"] = [0, len(steps)]
    ranges["logits"][1] = len(steps)
    return {k: (a, b) for k, (a, b) in ranges.items()}


def allocate(sizes: dict[str, int], ranges: dict[str, tuple[int, int]]) -> tuple[dict[str, int], int]:
    """First-fit offsets (elements) so that values live at the same time never overlap."""
    placed: list[tuple[int, int, int, int]] = []      # (start, end, offset, size)
    offsets = {}
    for name in sorted(sizes, key=lambda v: (ranges[v][0], -sizes[v])):
        a, b = ranges[name]
        busy = sorted((o, o + n) for s, e, o, n in placed if s <= b and a <= e)
        off = 0
        for lo, hi in busy:
            if off + sizes[name] <= lo:
                break
            off = max(off, hi)
        offsets[name] = off
        placed.append((a, b, off, sizes[name]))
    return offsets, max((o + n for _, _, o, n in placed), default=0)


def _weight_items(cfg: ModelConfig, scheme: Scheme, max_seq: int, tokenizer_bytes: int) -> list[Item]:
    items = [Item(name, "weights", n) for name, n in weight_bytes(cfg, scheme).items()]
    items.append(Item("rope tables", "weights", rope_table_bytes(cfg, scheme, max_seq)))
    if scheme.integer:
        items.append(Item("integer tables", "weights", cfg.n_layers * I8_LAYER_TABLE_BYTES))
    items.append(Item("tokenizer", "weights", tokenizer_bytes))
    return items


def tokenizer_bytes(vocab_size: int, blob_bytes: int) -> int:
    """blob + offsets (u32, vocab+1) + merge ranks (i32) + sorted ids (u16)."""
    return blob_bytes + 4 * (vocab_size + 1) + 4 * vocab_size + 2 * vocab_size


def plan(cfg: ModelConfig, scheme: Scheme, board: Board, max_seq: int | None = None,
         vocab_blob_bytes: int = 0, suggest: bool = True, kernels: str | None = None) -> Plan:
    """Plan the model for the board; raises FitError (with the table and fixes) if it cannot fit,
    TargetError if the board's target has no kernel for a step or the core lacks `kernels`."""
    max_seq = max_seq or cfg.max_seq_len
    if not 1 <= max_seq <= cfg.max_seq_len:
        raise EdgeslmError(f"--max-seq {max_seq} is outside 1..{cfg.max_seq_len} (the model's context)")
    target, core = board.target, board.core
    variant = target.check_variant(core, kernels) if kernels else board.kernel_variant
    steps, sizes = schedule(cfg, scheme, max_seq)
    planned = []
    for s in steps:
        k = target.resolve(s, core, variant)
        planned.append(PlannedStep(s, k, k.scratch(s, max_seq)))
    offsets, arena = allocate(sizes, live_ranges(steps))
    scratch = (max((p.scratch_bytes for p in planned), default=0) + 7) // 8 * 8
    kv = kv_cache_bytes(cfg, scheme, max_seq)
    ram = [Item("KV cache", "ram", kv), Item("activation arena", "ram", arena * scheme.activation_bytes),
           Item("kernel scratch", "ram", scratch),
           Item("step profile", "ram", 8 * len(planned)),
           Item("sampler scratch", "ram", SAMPLER_S8_BYTES if scheme.integer else cfg.vocab_size * 8),
           Item("runtime buffers", "ram", 4096),      # serve.c: frame buffers, prompt ids (~3.2 KB)
           Item("stack", "ram", board.stack_bytes)]
    # the step table (esl_step_t: a function pointer, five u32, three pointers) and its parameters
    table = STEP_BYTES * len(planned) + sum(p.kernel.param_bytes for p in planned)
    cluster = None
    if board.cluster:      # each worker: its stack and its L1 scratch (tiles, attention scores)
        cluster = plan_cluster(board, planned, scratch)
        planned = cluster.steps
        ram += [Item("cluster L1: worker stacks", "l1", board.cores * board.cluster["worker_stack_bytes"]),
                Item("cluster L1: worker scratches (DMA tiles)", "l1", board.cores * cluster.scratch_bytes)]
    items = [Item("code", "code", board.code_budget_bytes), Item("step table", "weights", table)] + \
        _weight_items(cfg, scheme, max_seq, tokenizer_bytes(cfg.vocab_size, vocab_blob_bytes)) + ram
    free = {r.name: r.length_bytes for r in board.memory}
    overflow: dict[str, int] = {}
    for it in sorted(items, key=lambda i: (i.kind != "code", i.name == "stack", -i.nbytes)):
        regions = board.regions_for(it.kind)
        if it.name == "stack":                 # the stack stays in the first RAM region
            regions = regions[:1]
        home = next((r for r in regions if free[r.name] >= it.nbytes), None)
        if home is None:
            first = regions[0].name
            overflow[first] = overflow.get(first, 0) + it.nbytes
            continue
        it.region = home.name
        free[home.name] -= it.nbytes
    p = Plan(cfg, scheme, board, max_seq, planned, sizes, offsets, arena, scratch, items,
             fits=not overflow, overflow=overflow, kernel_variant=variant, costs=target.costs(core),
             cluster=cluster)
    if not p.fits:
        hints = _suggestions(cfg, scheme, board, max_seq, vocab_blob_bytes, kernels) if suggest else []
        raise FitError(f"the model does not fit {board.id} with {scheme.describe()} at context {max_seq}",
                       "; ".join(hints) or "use a board with more memory", p)
    return p


def _suggestions(cfg, scheme, board, max_seq, blob, kernels) -> list[str]:
    """Changes that make it fit, fewest changes first: for the current scheme, an int8 KV cache,
    and smaller weights, the longest context (up to the asked one) that fits."""
    def fits(s: Scheme, seq: int) -> bool:
        try:
            plan(cfg, s, board, seq, blob, suggest=False, kernels=kernels)
            return True
        except FitError:
            return False

    def longest(s: Scheme) -> int:
        lo, hi = 0, max_seq
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if fits(s, mid) else (lo, mid - 1)
        return lo

    options = []
    names = [scheme.name] + [n for n in ("q8", "q4") if n != scheme.name and
                             Scheme(n).weight_bits < scheme.weight_bits]
    for name in names:
        for kv in dict.fromkeys([scheme.kv, "i8"]):
            s = get_scheme(name, scheme.group_size, kv, scheme.rounding,
                           scheme.act_group_size if name in ("q8", "q4") else 0)
            seq = longest(s)
            if seq < 1:
                continue
            flags = ([f"--quant {name}"] if name != scheme.name else []) + \
                ([f"--kv {kv}"] if kv != scheme.kv else []) + \
                ([f"--max-seq {seq}"] if seq < max_seq else [])
            options.append((len(flags), -seq, " ".join(flags) + " fits"))
    kept, best = [], 0
    for _, neg_seq, text in sorted(options):      # fewest changes first; drop what buys no context
        if -neg_seq > best:
            kept.append(text)
            best = -neg_seq
    return kept[:3]


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
    """(bytes of x each worker fetches, weight bytes per row, scale bytes per row) of a matmul."""
    if step.contract == "w8f":
        ng = -(-step.cols // step.group_size)
        return step.cols + 4 * ng, step.cols, 4 * ng
    return step.cols, step.cols, 0                         # s8: int8 x and rows; bias etc. in L2


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
    return _round4(step.cols) + (x - step.cols) + min(tiles - 1, 2) * tile_bytes(step, tile_rows)


def _matmul_dma(step: Step, tile_rows: int, cores: int, timing: ClusterTiming,
                window: float) -> ClusterStep:
    """Bytes and commands of one call, and the DMA wait the model expects on the busiest path:
    x (and its scales), which the workers fetch as the step starts, and of the first tile what
    its prefetch, issued `window` cycles before the step, has not brought yet. Later tiles come
    while the core computes: hidden as long as a tile's rows take longer than its DMA (here about
    ROW_INSTRUCTIONS_PER_MAC * cols cycles per row against cores / dma_bytes_per_cycle per byte)."""
    x, row, scales = _matmul_parts(step)
    shares = [n for n in split_rows(step.rows, cores) if n]
    first = min(max(shares), tile_rows)
    if step.contract == "w8f":      # x and its scales, then per tile the weights and their scales
        commands, x_parts, tile_parts = 2, [step.cols, x - step.cols], [first * row, first * scales]
    else:                           # x, then per tile the weights
        commands, x_parts, tile_parts = 1, [step.cols], [first * row]
    tiles = sum(-(-n // tile_rows) for n in shares)
    fetch = sum(timing.dma_cycles(b, cores) for b in tile_parts)
    wait = sum(timing.dma_cycles(b, cores) for b in x_parts) + max(0.0, fetch - window)
    return ClusterStep(dma_bytes=len(shares) * x + step.rows * (row + scales),
                       dma_commands=(len(shares) + tiles) * commands, overhead_cycles=round(wait))


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
    budget = (l1.length_bytes // cores - board.cluster["worker_stack_bytes"]) // 8 * 8
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
            # q, k, v (and w1, w3) read one input: the first quantizes it into the shared scratch,
            # the others find it there (no other step runs between them) and skip that fork
            before = planned[i - 1].step if i else None
            ready = ps.kernel.name == "matmul_w8f" and before is not None and before.op == "matmul" and \
                before.contract == "w8f" and (before.inp, before.cols, before.group_size) == \
                (ps.step.inp, ps.step.cols, ps.step.group_size)
            forks -= ready
            dma = _matmul_dma(ps.step, rows[i], cores, timing, window)
            window = _prefetch_window(ps.step, rows[i], cores)
            steps.append(replace(ps, tile_rows=rows[i], x_ready=ready, slot=slot[i], forks=forks))
            per_step.append(replace(dma, overhead_cycles=dma.overhead_cycles + forks * fork))
        else:
            steps.append(replace(ps, forks=forks))
            per_step.append(ClusterStep(0, 0, forks * fork))
    return ClusterPlan(cores, timing, budget, tiles_at, tiles_at + (tiles_bytes() + 7) // 8 * 8, tuple(slots()),
                       steps, per_step, next_matmul)
