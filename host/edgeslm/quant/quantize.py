"""Turn a float Model into a QuantModel under a Scheme (host-side, done once).

Weight quantization (symmetric, per row and group of `group_size` along the input dimension):
    amax  = max |w| over the group          (computed in float64)
    scale = float32(amax / qmax)            qmax = 127 (int8) or 7 (int4); 0 for an all-zero group
    q     = clip(round_half_even(w / scale), -qmax, qmax)
These are constants for the device; only their values, not this arithmetic, must be bit-exact.

That is rounding "rtn" (round to nearest). Rounding "gptq" (quant/gptq.py) stores the same format
(int8/int4 values in [-qmax, qmax], one float32 scale per row and group) but chooses the integers
with the layer's input Hessian from calibration text, pushing each column's rounding error onto the
columns not yet quantized, and each group's scale by an MSE search over clip ratios. It applies to
every matrix with a known input (the classifier too, shared or not); an unshared token embedding
stays "rtn".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.ir import Model, ModelConfig
from .schemes import DEFAULT_ROUNDING, ROUNDINGS, Scheme  # noqa: F401  (ROUNDINGS: re-exported)

QMAX = {8: 127, 4: 7}


@dataclass
class QTensor:
    """A weight matrix (rows, cols) as stored on the device.
    bits=32: `values` float32 (rows, cols), no scales.
    bits=8/4: `values` int8 (rows, cols) holding the integers, `scales` float32 (rows, n_groups)."""
    bits: int
    values: np.ndarray
    scales: np.ndarray | None = None
    group_size: int = 0

    @property
    def shape(self) -> tuple[int, int]:
        return self.values.shape

    @property
    def n_groups(self) -> int:
        return 0 if self.bits == 32 else -(-self.shape[1] // self.group_size)

    def packed(self) -> np.ndarray:
        """The bytes as the firmware stores them: int8 as is; int4 two per byte, element 2j in the
        low nibble, 2j+1 in the high nibble, rows padded to an even length with a zero nibble."""
        if self.bits != 4:
            return self.values
        rows, cols = self.shape
        v = np.zeros((rows, cols + (cols & 1)), np.int8)
        v[:, :cols] = self.values
        lo = v[:, 0::2].astype(np.uint8) & 0x0F
        hi = v[:, 1::2].astype(np.uint8) & 0x0F
        return (lo | (hi << 4)).astype(np.uint8)

    def nbytes(self) -> int:
        data = self.packed().nbytes
        return data + (0 if self.scales is None else self.scales.nbytes)

    def dequantize(self) -> np.ndarray:
        if self.bits == 32:
            return self.values
        s = np.repeat(self.scales, self.group_size, axis=1)[:, :self.shape[1]]
        return self.values.astype(np.float32) * s


def unpack_int4(packed: np.ndarray, cols: int) -> np.ndarray:
    """Inverse of QTensor.packed() for bits=4: sign-extend each nibble."""
    lo = (packed & 0x0F).astype(np.int8)
    hi = (packed >> 4).astype(np.int8)
    v = np.empty((packed.shape[0], packed.shape[1] * 2), np.int8)
    v[:, 0::2], v[:, 1::2] = lo, hi
    v = np.where(v > 7, v - 16, v).astype(np.int8)
    return v[:, :cols]


def quantize_matrix(w: np.ndarray, bits: int, group_size: int) -> QTensor:
    if bits == 32:
        return QTensor(32, np.ascontiguousarray(w, np.float32))
    qmax = QMAX[bits]
    rows, cols = w.shape
    n_groups = -(-cols // group_size)
    padded = np.zeros((rows, n_groups * group_size), np.float64)
    padded[:, :cols] = w
    g = padded.reshape(rows, n_groups, group_size)
    amax = np.abs(g).max(axis=2)
    scales = (amax / qmax).astype(np.float32)
    safe = np.where(scales == 0, 1.0, scales.astype(np.float64))
    q = np.clip(np.rint(g / safe[:, :, None]), -qmax, qmax).astype(np.int8)
    return QTensor(bits, q.reshape(rows, -1)[:, :cols].copy(), scales, group_size)


@dataclass
class QuantModel:
    """A model as the device holds it: config, scheme, fp32 norm weights, quantized matrices.
    `tensors` has the IR names; the classifier is tensors['tok_embeddings'] when shared."""
    config: ModelConfig
    scheme: Scheme
    tensors: dict[str, QTensor | np.ndarray]
    model_fingerprint: str
    meta: dict = field(default_factory=dict)

    def classifier(self) -> QTensor:
        return self.tensors["tok_embeddings" if self.config.shared_classifier else "output"]

    def weight_bytes(self) -> int:
        return sum(t.nbytes() if isinstance(t, QTensor) else t.nbytes for t in self.tensors.values())


def quantize_matrix_gptq(w: np.ndarray, bits: int, group_size: int, hessian: np.ndarray) -> QTensor:
    """As quantize_matrix, the same format, with GPTQ rounding for inputs whose X^T X is `hessian`."""
    from .gptq import gptq_quantize
    if bits == 32:
        return quantize_matrix(w, 32, group_size)
    q, scales = gptq_quantize(w, bits, group_size, hessian)
    return QTensor(bits, q, scales, group_size)


def split_groups(t: QTensor, group_size: int) -> QTensor:
    """The same integers with each group's scale repeated over sub-groups of `group_size`: the
    kernels and golden then quantize the activations per sub-group (finer), the weights keep the
    scales they were rounded with. Exact: a sub-group's scale is its group's, bit for bit."""
    if t.bits == 32 or t.group_size == group_size:
        return t
    per = t.group_size // group_size
    n_groups = -(-t.shape[1] // group_size)
    scales = np.ascontiguousarray(np.repeat(t.scales, per, axis=1)[:, :n_groups])
    return QTensor(t.bits, t.values, scales, group_size)


def check_rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        from ..errors import UsageError
        raise UsageError(f"unknown rounding {rounding!r}", f"choose one of: {', '.join(ROUNDINGS)}")
    return rounding


# GPTQ matrices already made in this process, per (Hessians digest, group size): (name, bits) ->
# QTensor. The digest covers the model's fingerprint, so a key names one result. (The CLI quantizes
# once per process; tests and `eval --compare` ask for the same matrices many times.)
_gptq_cache: dict[tuple[str, int], dict[tuple[str, int], QTensor]] = {}


def quantize(model: Model, scheme: Scheme, rounding: str | None = None, hessians=None) -> QuantModel:
    """Quantize every matrix of `model` as `scheme` says; norms stay fp32.
    `rounding`: "rtn" or "gptq"; None takes `scheme.rounding` where the Scheme has one, else
    DEFAULT_ROUNDING. `hessians` (calibrate.Hessians) feed "gptq"; None means the default
    calibration, calibrate.model_hessians(model): the float model's own samples, deterministic,
    so every caller that passes the same model and scheme gets the same weights."""
    rounding = check_rounding(rounding or getattr(scheme, "rounding", DEFAULT_ROUNDING))
    gptq = rounding == "gptq" and scheme.quantized and not scheme.integer
    if gptq and hessians is None:
        from .calibrate import model_hessians
        hessians = model_hessians(model)
    if gptq and hessians.model_fingerprint != model.fingerprint():
        from ..errors import ModelMismatchError
        raise ModelMismatchError("the Hessians for GPTQ were made for another model",
                                 "calibrate this model: edgeslm calibrate MODEL -o FILE")
    from .gptq import hessian_key
    out: dict[str, QTensor | np.ndarray] = {}
    cache = _gptq_cache.setdefault((hessians.digest(), scheme.group_size), {}) if gptq else {}
    for name, t in model.tensors.items():
        if t.ndim == 1:
            out[name] = t
            continue
        bits, key = scheme.matrix_bits(name, model.config.n_layers), hessian_key(name, model.config.shared_classifier)
        if gptq and key is not None:
            if (name, bits) not in cache:
                cache[(name, bits)] = quantize_matrix_gptq(t, bits, scheme.group_size, hessians[key])
            out[name] = cache[(name, bits)]
        else:
            out[name] = quantize_matrix(t, bits, scheme.group_size)
    if scheme.quantized and scheme.kernel_group_size != scheme.group_size:
        out = {n: split_groups(t, scheme.kernel_group_size) if isinstance(t, QTensor) else t for n, t in out.items()}
    meta = {"rounding": rounding if scheme.quantized else "none"}
    if gptq:
        meta["hessians"] = hessians.source
    return QuantModel(model.config, scheme, out, model.fingerprint(), meta)
