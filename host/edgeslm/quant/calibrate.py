"""Static calibration: run the float model on representative data and record the range of every
activation tensor the integer scheme (i8) quantizes.

    reader = TextDataReader(tokenizer, text, max_seq)       # or PromptsDataReader, or your own
    calib = calibrate(model, reader, method="minmax")        # -> Calibration
    calib.save(path);  Calibration.load(path, model)         # refuses another model's file

A data reader is shaped like onnxruntime's CalibrationDataReader: get_next() returns the next
input ({"tokens": [ids...]} starting with BOS) or None when done.

Methods: minmax (the observed range), percentile (0.01% / 99.99% of the samples, and 0 kept in
range), mse (the clipping of the observed range that minimizes int8 quantization error on the
samples).
"""

from __future__ import annotations

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


@dataclass
class Calibration:
    model_fingerprint: str
    method: str
    tokens: int
    ranges: dict[str, tuple[float, float]]

    def params(self, name: str) -> tuple[float, int]:
        if name not in self.ranges:
            raise CalibrationError(f"the calibration has no range for {name}",
                                   "calibrate again with this version of edgeslm")
        return quant_params(*self.ranges[name])

    def save(self, path: str | Path) -> None:
        data = {"format": FORMAT, "version": VERSION, "model_fingerprint": self.model_fingerprint,
                "method": self.method, "tokens": self.tokens,
                "tensors": {k: {"min": lo, "max": hi} for k, (lo, hi) in self.ranges.items()}}
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
        if model is not None and calib.model_fingerprint != model.fingerprint():
            raise ModelMismatchError(
                f"{p} was made for model {calib.model_fingerprint[:16]}, not {model.source} "
                f"({model.fingerprint()[:16]})", "calibrate this model: edgeslm calibrate MODEL -o FILE")
        return calib


def calibrate(model: Model, reader, method: str = "minmax",
              progress: Callable[[int], None] | None = None) -> Calibration:
    """Run the float model over the reader's inputs and record every quantized tensor's range."""
    from ..reference import FloatEngine
    if method not in METHODS:
        raise EdgeslmError(f"unknown calibration method {method!r}", f"choose one of {', '.join(METHODS)}")
    rng = np.random.default_rng(0)
    stats: dict[str, _Stat] = {}
    tap = FloatEngine(model, tap=lambda name, v: stats.setdefault(name, _Stat()).add(v, rng))
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
    return Calibration(model.fingerprint(), method, tokens, ranges)
