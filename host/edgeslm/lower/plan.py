"""The memory planner: the kernel schedule, the activation arena, where everything lives, whether
it fits, and what a token should cost.

    plan(config, scheme, board, max_seq) -> Plan

The schedule is the fixed list of kernel calls of one forward pass. Every activation it writes is a
*value* with a live range [written at step, last read at step]; values whose ranges do not overlap
share arena space (first-fit by start step), so the arena is far smaller than the sum of buffers.
Weights and RAM buffers are then placed, largest first, into the first board region that may hold
them and still has room.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import EdgeslmError
from ..model.ir import ModelConfig, tensor_shapes
from ..quant.schemes import Scheme, get_scheme
from ..sizes import kv_cache_bytes, weight_bytes
from .boards import Board


class FitError(EdgeslmError):
    """The model does not fit the board; `plan` holds the numbers, `str()` the table."""

    def __init__(self, message: str, hint: str, plan: "Plan"):
        super().__init__(message, hint)
        self.plan = plan


@dataclass
class Step:
    op: str                      # EMBED RMSNORM MATMUL ROPE KV_STORE ATTENTION ADD SWIGLU
    layer: int = 0
    out: str = ""                # value names, resolved to arena offsets by the plan
    inp: str = ""
    in2: str = ""
    n: int = 0
    weight: str = ""             # tensor name (MATMUL, EMBED)
    norm: str = ""               # tensor name (RMSNORM)


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
    steps: list[Step]
    values: dict[str, int]                     # value -> size (floats)
    offsets: dict[str, int]                    # value -> arena offset (floats)
    arena_floats: int
    qact_bytes: int                            # widest quantized matmul input (int8)
    qscale_floats: int
    items: list[Item]
    fits: bool
    overflow: dict[str, int] = field(default_factory=dict)   # region -> bytes over
    cost: dict = field(default_factory=dict)
    kernel_variant: str = "portable"

    def used(self) -> dict[str, int]:
        out = {r.name: 0 for r in self.board.memory}
        for it in self.items:
            if it.region:
                out[it.region] += it.nbytes
        return out

    def by_kind(self, kind: str) -> int:
        return sum(it.nbytes for it in self.items if it.kind == kind)

    def predicted_instructions(self, pos: int) -> float:
        c, k = self.cost, self.board.cost_model.get(self.kernel_variant, {})
        if not k:
            return 0.0
        attn = self.config.n_layers * self.config.n_heads * (pos + 1) * self.config.head_size * 2
        attn_key = "per_attention_mac_kv_i8" if self.scheme.kv == "i8" else "per_attention_mac"
        elems = (self.config.n_layers * (self.config.n_heads * (pos + 1) + self.config.hidden_dim)
                 + self.config.vocab_size)
        return (sum(c["macs"][b] * k.get(f"per_mac_{b}", 0.0) for b in c["macs"])
                + attn * k.get(attn_key, k.get("per_attention_mac", 0.0)) + elems * k.get("per_element", 0.0)
                + k.get("per_token_fixed", 0.0))

    def predicted_mean(self, steps: int) -> float:
        steps = max(1, min(steps, self.max_seq))
        return sum(self.predicted_instructions(p) for p in range(steps)) / steps


def schedule(cfg: ModelConfig, max_seq: int) -> tuple[list[Step], dict[str, int]]:
    """The forward pass as kernel calls over named values; returns (steps, value sizes in floats)."""
    sizes = {"x": cfg.dim}
    steps = [Step("EMBED", out="x", weight="tok_embeddings")]

    def val(name: str, n: int) -> str:
        sizes[name] = n
        return name

    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        xb, q, k, v = val(f"xb{l}", cfg.dim), val(f"q{l}", cfg.dim), val(f"k{l}", cfg.kv_dim), val(f"v{l}", cfg.kv_dim)
        att, ao, o = val(f"att{l}", cfg.n_heads * max_seq), val(f"ao{l}", cfg.dim), val(f"o{l}", cfg.dim)
        xn, h1, h3, f = val(f"xn{l}", cfg.dim), val(f"h1_{l}", cfg.hidden_dim), val(f"h3_{l}", cfg.hidden_dim), val(f"f{l}", cfg.dim)
        steps += [
            Step("RMSNORM", l, out=xb, inp="x", n=cfg.dim, norm=p + "attention_norm"),
            Step("MATMUL", l, out=q, inp=xb, weight=p + "attention.wq"),
            Step("MATMUL", l, out=k, inp=xb, weight=p + "attention.wk"),
            Step("MATMUL", l, out=v, inp=xb, weight=p + "attention.wv"),
            Step("ROPE", l, out=q, inp=q, n=cfg.n_heads),
            Step("ROPE", l, out=k, inp=k, n=cfg.n_kv_heads),
            Step("KV_STORE", l, inp=k, in2=v),
            Step("ATTENTION", l, out=ao, inp=q, in2=att),
            Step("MATMUL", l, out=o, inp=ao, weight=p + "attention.wo"),
            Step("ADD", l, out="x", inp=o, n=cfg.dim),
            Step("RMSNORM", l, out=xn, inp="x", n=cfg.dim, norm=p + "ffn_norm"),
            Step("MATMUL", l, out=h1, inp=xn, weight=p + "feed_forward.w1"),
            Step("MATMUL", l, out=h3, inp=xn, weight=p + "feed_forward.w3"),
            Step("SWIGLU", l, out=h1, inp=h3, n=cfg.hidden_dim),
            Step("MATMUL", l, out=f, inp=h1, weight=p + "feed_forward.w2"),
            Step("ADD", l, out="x", inp=f, n=cfg.dim),
        ]
    steps += [Step("RMSNORM", out=val("xf", cfg.dim), inp="x", n=cfg.dim, norm="norm"),
              Step("MATMUL", out=val("logits", cfg.vocab_size), inp="xf",
                   weight="tok_embeddings" if cfg.shared_classifier else "output")]
    return steps, sizes


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
    """First-fit offsets (floats) so that values live at the same time never overlap."""
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
    items.append(Item("rope tables", "weights", max_seq * cfg.head_size * 4))
    items.append(Item("tokenizer", "weights", tokenizer_bytes))
    return items


def _macs(cfg: ModelConfig, scheme: Scheme) -> dict[str, int]:
    """Weight multiply-accumulates per token, by storage kind (the embedding itself is a lookup)."""
    kind = {32: "f32", 8: "q8", 4: "q4"}
    macs = {"f32": 0, "q8": 0, "q4": 0}
    for name, shape in tensor_shapes(cfg).items():
        if len(shape) == 2 and name != "tok_embeddings":
            macs[kind[scheme.matrix_bits(name)]] += shape[0] * shape[1]
    if cfg.shared_classifier:
        macs[kind[scheme.matrix_bits("tok_embeddings")]] += cfg.vocab_size * cfg.dim
    return macs


def tokenizer_bytes(vocab_size: int, blob_bytes: int) -> int:
    """blob + offsets (u32, vocab+1) + scores (f32) + sorted ids (u16)."""
    return blob_bytes + 4 * (vocab_size + 1) + 4 * vocab_size + 2 * vocab_size


def plan(cfg: ModelConfig, scheme: Scheme, board: Board, max_seq: int | None = None,
         vocab_blob_bytes: int = 0, suggest: bool = True, kernel_variant: str | None = None) -> Plan:
    """Plan the model for the board; raises FitError (with the table and fixes) if it cannot fit."""
    max_seq = max_seq or cfg.max_seq_len
    if not 1 <= max_seq <= cfg.max_seq_len:
        raise EdgeslmError(f"--max-seq {max_seq} is outside 1..{cfg.max_seq_len} (the model's context)")
    steps, sizes = schedule(cfg, max_seq)
    offsets, arena = allocate(sizes, live_ranges(steps))
    quant_inputs = [tensor_shapes(cfg)[s.weight][1] for s in steps if s.op == "MATMUL"] \
        if scheme.quantized else []
    widest = max(quant_inputs, default=0)
    # int8 x, then (DSP kernels) the same x widened to int16 at the next 4-byte boundary
    qact = (widest + 3) // 4 * 4 + 2 * widest if widest else 0
    qscale = -(-widest // scheme.group_size) if widest else 0
    kv = kv_cache_bytes(cfg, scheme.kv, max_seq)
    ram = [Item("KV cache", "ram", kv), Item("activation arena", "ram", arena * 4),
           Item("quantized activations", "ram", qact + qscale * 4),
           Item("sampler scratch", "ram", cfg.vocab_size * 8),
           Item("runtime buffers", "ram", 4096),      # serve.c: frame buffers, prompt ids (~3.2 KB)
           Item("stack", "ram", board.stack_bytes)]
    items = [Item("code", "code", board.code_budget_bytes)] + \
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
    p = Plan(cfg, scheme, board, max_seq, steps, sizes, offsets, arena, qact, qscale, items,
             fits=not overflow, overflow=overflow, cost={"macs": _macs(cfg, scheme)},
             kernel_variant=kernel_variant or board.kernel_variant)
    if not p.fits:
        hints = _suggestions(cfg, scheme, board, max_seq, vocab_blob_bytes) if suggest else []
        raise FitError(f"the model does not fit {board.id} with {scheme.describe()} at context {max_seq}",
                       "; ".join(hints) or "use a board with more memory", p)
    return p


def _suggestions(cfg, scheme, board, max_seq, blob) -> list[str]:
    """Changes that make it fit, fewest changes first: for the current scheme, an int8 KV cache,
    and smaller weights, the longest context (up to the asked one) that fits."""
    def fits(s: Scheme, seq: int) -> bool:
        try:
            plan(cfg, s, board, seq, blob, suggest=False)
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
            s = get_scheme(name, scheme.group_size, kv)
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
