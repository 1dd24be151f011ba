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
A board with a cluster also gets its tiles, DMA traffic and fork/DMA time model (plan_cluster.py),
and each worker's L1 is placed like any other item.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import EdgeslmError
from ..model.ir import ModelConfig
from ..quant.schemes import Scheme, get_scheme
from ..sizes import I8_LAYER_TABLE_BYTES, kv_cache_bytes, rope_table_bytes, weight_bytes
from ..targets import KernelSpec, work_units
from .boards import Board
from .plan_cluster import ClusterPlan, plan_cluster
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
    cluster: ClusterPlan | None = None       # a multi-core target: L1 budget, tiles, DMA, time model

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


def allocate(sizes: dict[str, int], ranges: dict[str, tuple[int, int]],
             align: int = 1) -> tuple[dict[str, int], int]:
    """First-fit offsets (elements, multiples of `align`) so that values live at the same time
    never overlap."""
    placed: list[tuple[int, int, int, int]] = []      # (start, end, offset, size)
    offsets = {}
    for name in sorted(sizes, key=lambda v: (ranges[v][0], -sizes[v])):
        a, b = ranges[name]
        busy = sorted((o, o + n) for s, e, o, n in placed if s <= b and a <= e)
        off = 0
        for lo, hi in busy:
            if off + sizes[name] <= lo:
                break
            off = max(off, -(-hi // align) * align)
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


# attention_kv8's int16 query times int8 keys: the sum of head_size products of at most 32767 * 127 is an
# exact int32 up to 516 of them; its exps (at most 2^15 each) sum exactly in a uint32 over fewer than
# 2^17 positions (esl_attention_heads.h).
KV8_MAX_HEAD_SIZE = 512
KV8_MAX_SEQ = (1 << 17) - 1


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
    if scheme.kv == "i8" and not scheme.integer:          # attention_kv8's integer sums stay exact
        if cfg.head_size > KV8_MAX_HEAD_SIZE:
            raise EdgeslmError(f"--kv i8 serves head sizes up to {KV8_MAX_HEAD_SIZE} (its int32 dot products "
                               f"stay exact up to there); this model's is {cfg.head_size}: use --kv f32")
        if max_seq > KV8_MAX_SEQ:
            raise EdgeslmError(f"--kv i8 serves contexts up to {KV8_MAX_SEQ} (its softmax's integer sum stays "
                               f"exact up to there): use --max-seq {KV8_MAX_SEQ} or --kv f32")
    target, core = board.target, board.core
    variant = target.check_variant(core, kernels) if kernels else board.kernel_variant
    steps, sizes = schedule(cfg, scheme, max_seq)
    planned = []
    for s in steps:
        k = target.resolve(s, core, variant)
        planned.append(PlannedStep(s, k, k.scratch(s, max_seq)))
    offsets, arena = allocate(sizes, live_ranges(steps), 2 if scheme.int16 else 1)   # int16 values: even bytes
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
        if board.cluster["controller_stack_bytes"] or board.cluster["l1_reserved_bytes"]:    # PMSIS
            ram += [Item("cluster L1: controller stack", "l1", board.cluster["controller_stack_bytes"]),
                    Item("cluster L1: PMSIS runtime (reserved)", "l1", board.cluster["l1_reserved_bytes"])]
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
    # q4 also without its int8 layers (every layer int4: the smallest weights)
    all_int4 = scheme.name == "q4" and scheme.int8_layers == 0
    candidates = [(n, None if n != scheme.name else scheme.int8_layers) for n in names] + \
        [("q4", 0)] * ("q4" in names and not all_int4)
    # i8 with int16 keys also without them (they take half as much KV cache again)
    wides = [scheme.int16] + [tuple(p for p in scheme.int16 if p != "keys")] * ("keys" in scheme.int16)
    for name, int8_layers in candidates:
        for kv, wide in ((k, w) for k in dict.fromkeys([scheme.kv, "i8"])
                         for w in (wides if name == scheme.name else [None])):
            s = get_scheme(name, scheme.group_size, kv, scheme.rounding,
                           scheme.act_group_size if name in ("q8", "q4") else 0,
                           scheme.act_bits if name == scheme.name else None, int8_layers, wide)
            seq = longest(s)
            if seq < 1:
                continue
            flags = ([f"--quant {name}"] if name != scheme.name else []) + \
                (["--int8-layers 0"] if name == "q4" and int8_layers == 0 and not all_int4 else []) + \
                ([f"--kv {kv}"] if kv != scheme.kv else []) + \
                ([f"--int16 {','.join(wide) or 'none'}"] if wide is not None and wide != scheme.int16 else []) + \
                ([f"--max-seq {seq}"] if seq < max_seq else [])
            options.append((len(flags), -seq, " ".join(flags) + " fits"))
    kept, best = [], 0
    for _, neg_seq, text in sorted(options):      # fewest changes first; drop what buys no context
        if -neg_seq > best:
            kept.append(text)
            best = -neg_seq
    return kept[:3]
