"""Static calibration: run the float model on representative data and record the range of every
activation tensor the integer scheme (i8) quantizes, and (for GPTQ rounding of q8/q4 weights) the
input Hessian X^T X of every weight matrix.

    reader = TextDataReader(tokenizer, text, max_seq)       # or PromptsDataReader, or your own
    calib = calibrate(model, reader, method="minmax", hessians=True)   # -> Calibration
    calib.save(path);  Calibration.load(path, model)         # refuses another model's file
    hessians = model_hessians(model)                         # no data: the float model's own samples

Hessians: for each matrix input x (a FloatEngine tap: `<l>.att_norm` feeds wq/wk/wv, `<l>.att_out`
wo, `<l>.ffn_norm` w1/w3, `<l>.gated` w2, `final_norm` the classifier), H = mean over tokens of
x x^T, in float64. They are saved beside the JSON as `<name>.hessians.npz` (its own format name,
version and model fingerprint inside), and the JSON names that file and its sha256.

A data reader is shaped like onnxruntime's CalibrationDataReader: get_next() returns the next
input ({"tokens": [ids...]} starting with BOS) or None when done.

Methods: minmax (the observed range), percentile (0.01% / 99.99% of the samples, and 0 kept in
range), mse (the clipping of the observed range that minimizes int8 quantization error on the
samples).
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import EdgeslmError, ModelMismatchError
from ..fileio import write_atomic
from ..model.ir import Model
from ..model.tokenizer import BOS, Tokenizer

FORMAT, VERSION = "edgeslm-calibration", 1
HESSIAN_FORMAT, HESSIAN_VERSION = "edgeslm-hessians", 1
# Default calibration openings: deliberately not the evaluation prompts (evaluate.DEFAULT_PROMPTS).
CALIBRATION_PROMPTS = ["Lily and Ben", "The cat", "One day", "A little boy", "The sun", "Sara had a",
                       "Once there was a big", "Mom and Dad"]
METHODS = ("minmax", "percentile", "mse")
_PER_CALL = 64                # values kept per tensor per token, for percentile / mse


class CalibrationError(EdgeslmError):
    """A calibration file that is corrupt, of another version, or for another model."""


class TextDataReader:
    """A text, tokenized, in windows of the context length (each starting with BOS)."""

    def __init__(self, tokenizer: Tokenizer, text: str, max_seq: int, max_samples: int | None = None):
        ids = tokenizer.encode(text, bos=False)
        step = max_seq - 1
        self._items = [[BOS] + ids[i:i + step] for i in range(0, len(ids), step)][:max_samples]

    def get_next(self) -> dict | None:
        return {"tokens": self._items.pop(0)} if self._items else None


class PromptsDataReader:
    """Prompts continued by the float model (greedy), e.g. one prompt per line of a file."""

    def __init__(self, model: Model, tokenizer: Tokenizer, prompts: list[str], steps: int = 128):
        from ..generate import generate
        from ..reference import FloatEngine
        from ..sampler import Sampler
        eng = FloatEngine(model)
        self._items = [[BOS] + generate(eng, tokenizer, p, steps, Sampler(0.0, 0.9, 1)).tokens for p in prompts]

    def get_next(self) -> dict | None:
        return {"tokens": self._items.pop(0)} if self._items else None


@dataclass
class _Stat:
    """Exact min/max, plus a random share of the values (for percentile and mse)."""
    lo: float = np.inf
    hi: float = -np.inf
    samples: list = field(default_factory=list)

    def add(self, v: np.ndarray, rng: np.random.Generator) -> None:
        v = np.asarray(v, np.float32).reshape(-1)
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        self.samples.append(v if v.size <= _PER_CALL else rng.choice(v, _PER_CALL, replace=False))


def quant_params(lo: float, hi: float) -> tuple[float, int]:
    """int8 asymmetric (scale, zero point) for a range, 0 always representable (TFLite's rule)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if hi - lo < 1e-12:
        return 1e-8, 0
    scale = (hi - lo) / 255.0
    zp = int(np.clip(round(-128 - lo / scale), -128, 127))
    return float(np.float32(scale)), zp


def _mse_range(samples: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    best, best_err = (lo, hi), np.inf
    for f in np.linspace(0.25, 1.0, 31):
        s, z = quant_params(lo * f, hi * f)
        q = np.clip(np.round(samples / s) + z, -128, 127)
        err = float(np.mean(((q - z) * s - samples) ** 2))
        if err < best_err:
            best, best_err = (lo * f, hi * f), err
    return best


def hessian_inputs(n_layers: int) -> list[str]:
    """The tap names whose X^T X GPTQ needs: every matrix's input, once per distinct input."""
    return [f"{l}.{k}" for l in range(n_layers) for k in ("att_norm", "att_out", "ffn_norm", "gated")] + ["final_norm"]


class _HessianTap:
    """Accumulates sum(x x^T) per input in float64, a batch of rows at a time."""
    _BATCH = 256

    def __init__(self, names: list[str]):
        self.rows: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self.sums: dict[str, np.ndarray] = {}

    def add(self, name: str, v: np.ndarray) -> None:
        rows = self.rows.get(name)
        if rows is not None:
            rows.append(np.asarray(v, np.float64).reshape(-1))
            if len(rows) >= self._BATCH:
                self._flush(name)

    def _flush(self, name: str) -> None:
        rows = self.rows[name]
        if rows:
            x = np.stack(rows)
            self.sums[name] = self.sums.get(name, 0) + x.T @ x
            rows.clear()

    def result(self, model: Model, tokens: int, source: str) -> "Hessians":
        for name in self.rows:
            self._flush(name)
        missing = [n for n in self.rows if n not in self.sums]
        if missing:
            raise EdgeslmError(f"no activations recorded for {missing[:3]}")
        return Hessians(model.fingerprint(), tokens, source, {n: self.sums[n] / tokens for n in self.rows})


@dataclass
class Hessians:
    """Per matrix input, H = mean over calibration tokens of x x^T (float64, (n, n)), for GPTQ."""
    model_fingerprint: str
    tokens: int
    source: str                     # what text they came from, for messages and reports
    inputs: dict[str, np.ndarray]

    def digest(self) -> str:
        """sha256 of the model fingerprint and every Hessian: which calibration this is."""
        h = hashlib.sha256(self.model_fingerprint.encode())
        for k in sorted(self.inputs):
            h.update(k.encode())
            h.update(np.ascontiguousarray(self.inputs[k], "<f8").tobytes())
        return h.hexdigest()

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.inputs:
            raise CalibrationError(f"the calibration has no Hessian for {name}", "calibrate again")
        return self.inputs[name]

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        meta = json.dumps({"format": HESSIAN_FORMAT, "version": HESSIAN_VERSION, "tokens": self.tokens,
                           "model_fingerprint": self.model_fingerprint, "source": self.source})
        np.savez(buf, __meta__=np.frombuffer(meta.encode(), np.uint8),
                 **{f"h:{k}": v for k, v in self.inputs.items()})
        return buf.getvalue()

    @staticmethod
    def from_bytes(data: bytes, where: str) -> "Hessians":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                meta = json.loads(bytes(z["__meta__"]).decode())
                if meta.get("format") != HESSIAN_FORMAT:
                    raise CalibrationError(f"{where}: not an edgeslm Hessian file", "calibrate again")
                if meta.get("version") != HESSIAN_VERSION:
                    raise CalibrationError(f"{where}: Hessian format version {meta.get('version')}, "
                                           f"this edgeslm reads {HESSIAN_VERSION}", "calibrate again")
                inputs = {k[2:]: z[k].astype(np.float64) for k in z.files if k.startswith("h:")}
            h = Hessians(str(meta["model_fingerprint"]), int(meta["tokens"]), str(meta["source"]), inputs)
        except CalibrationError:
            raise
        except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
            raise CalibrationError(f"{where}: malformed Hessian data ({e})", "calibrate again") from None
        bad = [k for k, v in inputs.items()
               if v.ndim != 2 or v.shape[0] != v.shape[1] or not np.isfinite(v).all()]
        if bad:
            raise CalibrationError(f"{where}: invalid Hessians for {bad[:3]}", "calibrate again")
        return h


@dataclass
class Calibration:
    model_fingerprint: str
    method: str
    tokens: int
    ranges: dict[str, tuple[float, float]]
    hessians: Hessians | None = None
    missing_hessians: str | None = None    # the Hessian file the JSON names, when it is not there

    def params(self, name: str) -> tuple[float, int]:
        if name not in self.ranges:
            raise CalibrationError(f"the calibration has no range for {name}",
                                   "calibrate again with this version of edgeslm")
        return quant_params(*self.ranges[name])

    @staticmethod
    def hessian_path(path: str | Path) -> Path:
        """Where save() puts the Hessians: calib.json -> calib.hessians.npz, beside it."""
        p = Path(path)
        return p.with_name(p.stem + ".hessians.npz")

    def save(self, path: str | Path) -> None:
        data = {"format": FORMAT, "version": VERSION, "model_fingerprint": self.model_fingerprint,
                "method": self.method, "tokens": self.tokens,
                "tensors": {k: {"min": lo, "max": hi} for k, (lo, hi) in self.ranges.items()}}
        if self.hessians is not None:
            blob = self.hessians.to_bytes()
            hp = write_atomic(self.hessian_path(path), blob)
            data["hessians"] = {"file": hp.name, "sha256": hashlib.sha256(blob).hexdigest(),
                                "tokens": self.hessians.tokens}
        write_atomic(path, json.dumps(data, indent=1) + "\n")

    @staticmethod
    def load(path: str | Path, model: Model | None = None) -> "Calibration":
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except OSError as e:
            raise CalibrationError(f"cannot read calibration file {p}: {e.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CalibrationError(f"{p}: not a calibration file (invalid JSON: {e})",
                                   "run `edgeslm calibrate` to make one") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise CalibrationError(f"{p}: not an edgeslm calibration file", "run `edgeslm calibrate`")
        if data.get("version") != VERSION:
            raise CalibrationError(f"{p}: calibration format version {data.get('version')}, "
                                   f"this edgeslm reads {VERSION}", "calibrate again")
        try:
            ranges = {k: (float(v["min"]), float(v["max"])) for k, v in data["tensors"].items()}
            calib = Calibration(str(data["model_fingerprint"]), str(data["method"]), int(data["tokens"]), ranges)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CalibrationError(f"{p}: malformed calibration data ({e})", "calibrate again") from None
        bad = [k for k, (lo, hi) in ranges.items() if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi)]
        if bad:
            raise CalibrationError(f"{p}: invalid ranges for {bad[:3]}", "calibrate again")
        if "hessians" in data:
            calib.hessians = _load_hessians(p, data["hessians"])
            if calib.hessians is None:
                calib.missing_hessians = str(p.with_name(str(data["hessians"]["file"])))
            elif calib.hessians.model_fingerprint != calib.model_fingerprint:
                raise CalibrationError(f"{p}: its Hessian file was made for another model", "calibrate again")
        if model is not None and calib.model_fingerprint != model.fingerprint():
            raise ModelMismatchError(
                f"{p} was made for model {calib.model_fingerprint[:16]}, not {model.source} "
                f"({model.fingerprint()[:16]})", "calibrate this model: edgeslm calibrate MODEL -o FILE")
        return calib


def _load_hessians(p: Path, ref) -> Hessians | None:
    """The Hessian file a calibration JSON names: beside it, with the sha256 it records; None when
    it is not there (the ranges alone serve i8), an error when it is there but not that file."""
    try:
        hp = p.with_name(str(ref["file"]))
        sha = str(ref["sha256"])
    except (KeyError, TypeError) as e:
        raise CalibrationError(f"{p}: malformed Hessian reference ({e})", "calibrate again") from None
    if hp.name != ref["file"]:
        raise CalibrationError(f"{p}: the Hessian file must be beside it, not {ref['file']}", "calibrate again")
    if not hp.exists():
        return None
    try:
        blob = hp.read_bytes()
    except OSError as e:
        raise CalibrationError(f"cannot read {hp}, the Hessians {p.name} names: {e.strerror}",
                               "keep the .hessians.npz beside its .json, or calibrate again") from None
    if hashlib.sha256(blob).hexdigest() != sha:
        raise CalibrationError(f"{hp} is not the Hessian file {p.name} was written with (sha256 differs)",
                               "calibrate again")
    return Hessians.from_bytes(blob, str(hp))


def calibrate(model: Model, reader, method: str = "minmax",
              progress: Callable[[int], None] | None = None, hessians: bool = False) -> Calibration:
    """Run the float model over the reader's inputs and record every quantized tensor's range;
    with `hessians`, also every matrix input's X^T X (for GPTQ rounding) in the same pass."""
    from ..reference import FloatEngine
    if method not in METHODS:
        raise EdgeslmError(f"unknown calibration method {method!r}", f"choose one of {', '.join(METHODS)}")
    rng = np.random.default_rng(0)
    stats: dict[str, _Stat] = {}
    htap = _HessianTap(hessian_inputs(model.config.n_layers)) if hessians else None

    def on_tap(name: str, v: np.ndarray) -> None:
        stats.setdefault(name, _Stat()).add(v, rng)
        if htap is not None:
            htap.add(name, v)

    tap = FloatEngine(model, tap=on_tap)
    tokens = 0
    while (item := reader.get_next()) is not None:
        seq = item["tokens"]
        tap.reset()
        for pos, tok in enumerate(seq[:model.config.max_seq_len]):
            tap.forward(tok, pos)
            tokens += 1
            if progress:
                progress(1)
    if tokens == 0:
        raise EdgeslmError("no calibration data: the reader gave no tokens")
    ranges = {}
    for name, st in stats.items():
        samples = np.concatenate(st.samples) if st.samples else np.zeros(1, np.float32)
        if method == "minmax":
            ranges[name] = (st.lo, st.hi)
        elif method == "percentile":
            ranges[name] = (min(float(np.percentile(samples, 0.01)), 0.0), max(float(np.percentile(samples, 99.99)), 0.0))
        else:
            ranges[name] = _mse_range(samples, st.lo, st.hi)
    hs = htap.result(model, tokens, "calibration data") if htap is not None else None
    return Calibration(model.fingerprint(), method, tokens, ranges, hs)


# The default calibration text for GPTQ: the float model's own samples from BOS (no tokenizer needed,
# so that quantize(model, scheme) is a function of the model alone, and the compiler and the golden
# model round alike). Temperature 1.0, top-p 0.9, seeds 1, 2, ...: not the evaluation text, which
# continues evaluate.DEFAULT_PROMPTS at temperature 0 or 0.8 with seeds from 1000.
# Tokens: 4x the widest matrix input, at least 1024, at most 4096 (stories260K, widest 172: KL of
# q4 gptq 0.072 / 0.063 / 0.052 / 0.052 with 256 / 512 / 1024 / 2048 tokens).
SELF_TEXT_STEPS = 256


def self_text_tokens(model: Model) -> int:
    c = model.config
    return min(4096, max(1024, 4 * max(c.dim, c.hidden_dim, c.n_heads * c.head_size)))


_self_cache: dict[tuple[str, int], Hessians] = {}


def model_hessians(model: Model, tokens: int | None = None,
                   progress: Callable[[int], None] | None = None) -> Hessians:
    """Hessians from the float model's own sampled text (see above), `tokens` of it (default
    self_text_tokens(model)); deterministic, and cached for the life of the process."""
    from ..reference import FloatEngine
    from ..sampler import Sampler
    tokens = tokens or self_text_tokens(model)
    key = (model.fingerprint(), tokens)
    if key in _self_cache:
        return _self_cache[key]
    htap = _HessianTap(hessian_inputs(model.config.n_layers))
    eng = FloatEngine(model, tap=htap.add)
    done, seed = 0, 1
    steps = min(SELF_TEXT_STEPS, model.config.max_seq_len)
    while done < tokens:
        sampler = Sampler(1.0, 0.9, seed)
        eng.reset()
        token = BOS
        for pos in range(min(steps, tokens - done)):
            with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
                logits = eng.forward(token, pos)
            done += 1
            if progress:
                progress(1)
            token = sampler.sample(logits)
            if token == BOS:
                break
        seed += 1
    h = htap.result(model, done, f"{done} tokens of the float model's own samples")
    _self_cache[key] = h
    return h
