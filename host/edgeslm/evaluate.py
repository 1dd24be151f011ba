"""Accuracy of a quantized model against the float reference (verification tier 5).

Teacher-forced over token sequences: at every position both engines see the same token; we compare
their next-token distributions. Figures: mean KL(float || quant) first (it sees every probability, so
it ranks methods with far fewer positions), then top-1 agreement with its Wilson 95% interval, then
the perplexity of each on the next token of the sequence.

The interval treats positions as independent draws; positions of one sequence are not quite, so
read it as a lower bound on the uncertainty. At 12,000 positions (DEFAULT_TOKENS) it is about
+-0.2% near 99% agreement and +-0.55% near 90%.

Several quantized engines can be compared in one pass (compare_many): the float reference runs once
per position and every engine sees the same tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from .generate import Engine, forward_checked, generate
from .model.tokenizer import BOS, Tokenizer
from .sampler import Sampler

DEFAULT_TOKENS = 12_000
WILSON_Z = 1.959964                     # two-sided 95%

# Varied openings for the default evaluation text (the float model continues each).
DEFAULT_PROMPTS = [
    "", "Once upon a time", "Tom and Lily", "The little dog", "One day, a girl named Sue",
    "The sun was", "Ben wanted to", "In the park", "Mom said", "A big bird",
    "There was a boy who", "The cat and the mouse",
]


@dataclass
class Accuracy:
    tokens: int
    top1_agreement: float
    kl_mean: float
    ppl_float: float
    ppl_quant: float

    @property
    def top1_interval(self) -> tuple[float, float]:
        return wilson_interval(round(self.top1_agreement * self.tokens), self.tokens)

    def as_dict(self) -> dict:
        lo, hi = self.top1_interval
        return {**asdict(self), "top1_wilson95": [lo, hi]}


def wilson_interval(hits: int, n: int, z: float = WILSON_Z) -> tuple[float, float]:
    """Wilson score interval for a proportion hits/n (95% for the default z)."""
    if n <= 0:
        return 0.0, 1.0
    p = hits / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, float(centre - half)), min(1.0, float(centre + half))


def model_text(engine: Engine, tokenizer: Tokenizer, tokens_wanted: int = DEFAULT_TOKENS,
               steps: int = 256, after: Callable[[list[int]], None] | None = None) -> list[list[int]]:
    """The default evaluation text: the float model's own continuations of DEFAULT_PROMPTS,
    alternately greedy and sampled (T=0.8, top-p 0.9, fixed seeds), until `tokens_wanted`.
    `after(seq)` is called with each sequence once it is generated."""
    seqs, total, i = [], 0, 0
    steps = min(steps, engine.max_seq_len)
    while total < tokens_wanted:
        prompt = DEFAULT_PROMPTS[i % len(DEFAULT_PROMPTS)]
        greedy = (i + i // len(DEFAULT_PROMPTS)) % 2 == 0   # each prompt both ways
        sampler = Sampler(0.0 if greedy else 0.8, 0.9, state=1000 + i)
        gen = generate(engine, tokenizer, prompt, steps, sampler)
        seq = [BOS] + gen.tokens
        if after:
            after(seq)
        if len(seq) > 1:
            seqs.append(seq)
            total += len(seq) - 1
        i += 1
    return seqs


def text_sequences(tokenizer: Tokenizer, text: str, max_seq_len: int) -> list[list[int]]:
    """A text file's tokens, cut into windows of the context length, each starting with BOS."""
    ids = tokenizer.encode(text, bos=False)
    return [[BOS] + ids[i:i + max_seq_len - 1] for i in range(0, len(ids), max_seq_len - 1)]


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


class _Tally:
    """Running sums for k engines against the float one, position by position."""

    def __init__(self, k: int):
        self.agree, self.kl, self.nll_q = np.zeros(k, np.int64), np.zeros(k), np.zeros(k)
        self.nll_f, self.n = 0.0, 0

    def add(self, lf: np.ndarray, lqs: list[np.ndarray], nxt: int) -> None:
        pf, top = np.exp(lf), np.argmax(lf)
        for i, lq in enumerate(lqs):
            self.agree[i] += int(top == np.argmax(lq))
            self.kl[i] += float(np.sum(pf * (lf - lq)))
            self.nll_q[i] -= lq[nxt]
        self.nll_f -= lf[nxt]
        self.n += 1

    def result(self) -> list[Accuracy]:
        n = self.n
        if n == 0:
            from .errors import UsageError
            raise UsageError("no tokens to evaluate", "give a text with at least two tokens")
        return [Accuracy(tokens=n, top1_agreement=int(self.agree[i]) / n, kl_mean=float(self.kl[i]) / n,
                         ppl_float=float(np.exp(self.nll_f / n)), ppl_quant=float(np.exp(self.nll_q[i] / n)))
                for i in range(len(self.agree))]


def compare(float_engine: Engine, quant_engine: Engine, sequences: list[list[int]],
            progress: Callable[[int], None] | None = None) -> Accuracy:
    return compare_many(float_engine, [quant_engine], sequences, progress)[0]


def compare_many(float_engine: Engine, quant_engines: list[Engine], sequences: list[list[int]],
                 progress: Callable[[int], None] | None = None) -> list[Accuracy]:
    """Accuracy of each engine against the float one, all teacher-forced on the same sequences;
    the float forward pass runs once per position."""
    tally = _Tally(len(quant_engines))
    for seq in sequences:
        float_engine.reset()
        for e in quant_engines:
            e.reset()
        for pos in range(len(seq) - 1):
            lf = _log_softmax(forward_checked(float_engine, seq[pos], pos))
            tally.add(lf, [_log_softmax(forward_checked(e, seq[pos], pos)) for e in quant_engines], seq[pos + 1])
            if progress:
                progress(1)
    return tally.result()


class _Lockstep:
    """An engine for generate() that is the float engine, and also runs every quantized engine on
    the same token; a position is scored once its next token is known (the next forward, or the
    sequence's end), so the float forward pass that writes the text also serves as the reference."""

    def __init__(self, float_engine: Engine, quant_engines: list[Engine], tally: _Tally,
                 progress: Callable[[int], None] | None):
        self.float, self.quant, self.tally, self.progress = float_engine, quant_engines, tally, progress
        self.max_seq_len = float_engine.max_seq_len
        self.pending = None                           # (pos, lf, lqs) of the last forward

    def reset(self) -> None:
        self.float.reset()
        for e in self.quant:
            e.reset()
        self.pending = None

    def _score(self, nxt: int) -> None:
        _, lf, lqs = self.pending
        self.tally.add(lf, lqs, nxt)
        self.pending = None
        if self.progress:
            self.progress(1)

    def forward(self, token: int, pos: int) -> np.ndarray:
        if self.pending is not None and self.pending[0] == pos - 1:
            self._score(token)
        logits = forward_checked(self.float, token, pos)
        lqs = [_log_softmax(forward_checked(e, token, pos)) for e in self.quant]
        self.pending = (pos, _log_softmax(logits), lqs)
        return logits

    def finish(self, seq: list[int]) -> None:
        """After a generation: score its last position if its next token made it into `seq`."""
        if self.pending is not None and self.pending[0] + 1 < len(seq):
            self._score(seq[self.pending[0] + 1])
        self.pending = None


def compare_on_model_text(float_engine: Engine, quant_engines: list[Engine], tokenizer: Tokenizer,
                          tokens_wanted: int = DEFAULT_TOKENS,
                          progress: Callable[[int], None] | None = None) -> tuple[list[list[int]], list[Accuracy]]:
    """model_text and compare_many in one pass (the same sequences, positions and figures), with
    one float forward pass per position instead of two."""
    tally = _Tally(len(quant_engines))
    lock = _Lockstep(float_engine, quant_engines, tally, progress)
    seqs = model_text(lock, tokenizer, tokens_wanted, after=lock.finish)
    return seqs, tally.result()


# ---------------------------------------------------------------- variants, for `eval --compare`

DEFAULT_COMPARE = "q8:rtn,q8:gptq:x8,q8:gptq,q4:rtn,q4:gptq:l0,q4:gptq,i8:x8,i8,i8:keys16:ffn16"


@dataclass(frozen=True)
class Variant:
    """One row of a comparison: a scheme and its options.
    Spelled SCHEME[:OPTION...]; options: rtn | gptq (weight rounding), kv8 | kvf32 (KV cache),
    g<N> (group size), a<N> (activation group), x8 | x16 (q8's activation bits), l<N> (q4: the
    last N layers int8), <part>16 (i8: its int16 parts, e.g. keys16:ffn16; x8: none), e.g. "q4:gptq",
    "q8:rtn:kv8", "q8:g16", "q8:a16", "q8:x8", "q4:l0", "i8:x8", "i8:keys16:ffn16"."""
    scheme: str
    rounding: str | None = None      # None: the quantizer's default
    kv: str = "f32"
    group_size: int = 32
    act_group_size: int = 0
    act_bits: int | None = None      # None: the scheme's default
    int8_layers: int | None = None   # None: the scheme's default (q4: DEFAULT_Q4_INT8_LAYERS)
    int16: tuple[str, ...] | None = None   # i8: its int16 parts (None: the scheme's default)

    def scheme_int8_layers(self) -> int:
        from .quant.schemes import default_int8_layers
        return default_int8_layers(self.scheme) if self.int8_layers is None else self.int8_layers

    def label(self) -> str:
        from .quant.quantize import DEFAULT_ROUNDING
        if self.scheme == "i8":
            from .quant.schemes import get_scheme
            parts = get_scheme("i8", int16=self.int16).int16
            return "i8" + (", int16 " + " and ".join(parts) if parts else ", every activation int8")
        if self.scheme == "f32":
            return "f32" + (", kv i8" if self.kv == "i8" else "")
        parts = [self.scheme, self.rounding or DEFAULT_ROUNDING]
        if self.group_size != 32:
            parts.append(f"group {self.group_size}")
        if self.act_group_size:
            parts.append(f"act group {self.act_group_size}")
        if self.act_bits is not None:
            parts.append(f"act int{self.act_bits}")
        if self.scheme == "q4":
            n = self.scheme_int8_layers()
            parts.append(f"last {n} layers int8" if n else "every layer int4")
        if self.kv != "f32":
            parts.append(f"kv {self.kv}")
        return " ".join(parts[:2]) + "".join(", " + p for p in parts[2:])


def parse_variants(text: str, group_size: int = 32, kv: str = "f32") -> list[Variant]:
    """"q8:rtn,q4:gptq:kv8,i8" -> Variants; `group_size` and `kv` are the defaults of each."""
    from .errors import UsageError
    from .quant.quantize import ROUNDINGS
    from .quant.schemes import INT16_PARTS, SCHEME_NAMES, get_scheme
    out = []
    for spec in (s.strip() for s in text.split(",")):
        if not spec:
            continue
        name, *opts = spec.split(":")
        if name not in SCHEME_NAMES:
            raise UsageError(f"--compare {spec!r}: unknown scheme {name!r}", f"choose from {', '.join(SCHEME_NAMES)}")
        rounding, v_kv, gs, ags, bits, i8l, wide = None, kv, group_size, 0, None, None, None
        for o in opts:
            if name == "i8" and (o == "x8" or (o.endswith("16") and o[:-2] in INT16_PARTS)):
                wide = (wide or ()) + ((o[:-2],) if o != "x8" else ())       # x8: every activation int8
                continue
            if o.endswith("16") and o[:-2] in INT16_PARTS:
                raise UsageError(f"--compare {spec!r}: {o} is an i8 option", "e.g. i8:keys16:ffn16")
            if o in ROUNDINGS:
                rounding = o
            elif o in ("kv8", "kvi8"):
                v_kv = "i8"
            elif o == "kvf32":
                v_kv = "f32"
            elif o[:1] == "g" and o[1:].isdigit():
                gs = int(o[1:])
            elif o[:1] == "a" and o[1:].isdigit():
                ags = int(o[1:])
            elif o in ("x8", "x16"):
                bits = int(o[1:])
            elif o[:1] == "l" and o[1:].isdigit():
                i8l = int(o[1:])
            else:
                raise UsageError(f"--compare {spec!r}: unknown option {o!r}",
                                 "options: rtn, gptq, kv8, kvf32, g<N>, a<N>, x8, x16, l<N>, "
                                 + ", ".join(p + "16" for p in INT16_PARTS) +
                                 " (e.g. q4:gptq:kv8, q8:a16, q8:x8, q4:l0, i8:x8, i8:keys16:ffn16)")
        get_scheme(name, gs, v_kv, act_group_size=ags, act_bits=bits, int8_layers=i8l,
                   int16=wide)                                       # range checks, with messages
        if name in ("i8", "f32") and rounding is not None:
            raise UsageError(f"--compare {spec!r}: rounding applies to q8 and q4 only")
        out.append(Variant(name, rounding, "i8" if name == "i8" else v_kv, gs, ags, bits, i8l, wide))
    if not out:
        raise UsageError("--compare names no scheme", f"e.g. --compare {DEFAULT_COMPARE}")
    return out


def variant_engine(model, variant: Variant, calib=None, hessians=None) -> Engine:
    """The golden engine of a variant: `calib` (quant.calibrate.Calibration) for i8, `hessians`
    for gptq (None: the quantizer's default calibration)."""
    from .quant.golden import GoldenEngine, golden_engine
    from .quant.quantize import quantize
    from .quant.schemes import get_scheme
    scheme = get_scheme(variant.scheme, variant.group_size, variant.kv, act_group_size=variant.act_group_size,
                        act_bits=variant.act_bits, int8_layers=variant.int8_layers, int16=variant.int16)
    if scheme.integer:
        return golden_engine(model, scheme, calib)
    return GoldenEngine(quantize(model, scheme, variant.rounding, hessians))
