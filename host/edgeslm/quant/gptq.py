"""GPTQ: calibrated rounding of a weight matrix into the same stored format as round-to-nearest.

Frantar et al., "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"
(2022), with group scales. For a layer y = W x, with H = X^T X the (mean) outer product of its float
inputs on calibration text, the columns of W (input dimensions) are quantized in their natural order;
each column's rounding error is pushed onto the columns not yet quantized, weighted by the inverse
Hessian, so that the layer's output error ||W X - Q X|| is small rather than each weight's.

    H    = X^T X + damp * mean(diag(H)) * I        damp = 0.01 (the paper's); a column that never
                                                   sees input gets H_jj = 1 first
    U    = upper Cholesky factor of H^-1           (H^-1 = U^T U)
    for each column j, in order:
        at the first column of a group: scale[:, g] = the MSE-best clip of the group's current values
        q[:, j] = clip(round_half_even(w[:, j] / scale), -qmax, qmax)
        e       = (w[:, j] - q[:, j] * scale) / U[j, j]
        w[:, j+1:] -= e * U[j, j+1:]               (done lazily, a block of columns at a time)

Group scale by MSE search: for ratios r = 1.00, 0.98, ..., 0.50 (26 steps), scale = float32(r * amax /
qmax), and the r with the least sum of squared (w - q * scale) over the group's weights wins (the
first on a tie, so r = 1 unless clipping helps). An all-zero group gets scale 0 and q = 0, as in RTN.

The output is a QTensor exactly as quantize_matrix makes it (int8 values in [-qmax, qmax], float32
scales of shape (rows, n_groups)), so the firmware and the golden model are untouched; only which
integers and scales are chosen differs. Arithmetic is float64 numpy and deterministic.
"""

from __future__ import annotations

import numpy as np

DAMP = 0.01
CLIP_RATIOS = np.linspace(1.0, 0.5, 26)
BLOCK_COLUMNS = 128                   # lazy-update block, rounded up to whole groups


def hessian_key(name: str, shared_classifier: bool) -> str | None:
    """Which calibration input (a FloatEngine tap name) feeds matrix `name`; None when the matrix
    is a lookup table only (an unshared token embedding), which GPTQ does not apply to."""
    if name == "output" or (name == "tok_embeddings" and shared_classifier):
        return "final_norm"
    if name == "tok_embeddings":
        return None
    _, layer, kind = name.split(".", 2)
    return layer + "." + {"attention.wq": "att_norm", "attention.wk": "att_norm", "attention.wv": "att_norm",
                          "attention.wo": "att_out", "feed_forward.w1": "ffn_norm",
                          "feed_forward.w3": "ffn_norm", "feed_forward.w2": "gated"}[kind]


def mse_scales(w: np.ndarray, qmax: int) -> np.ndarray:
    """float32 scale per row of w (rows, group) that minimizes the squared rounding error over
    the clip ratios CLIP_RATIOS; 0 for an all-zero row."""
    w = np.asarray(w, np.float64)
    amax = np.abs(w).max(axis=1)
    best = (amax / qmax).astype(np.float32)
    best_err = np.full(w.shape[0], np.inf)
    for r in CLIP_RATIOS:
        s = (r * amax / qmax).astype(np.float32)
        s64 = np.where(s == 0, 1.0, s.astype(np.float64))[:, None]
        q = np.clip(np.rint(w / s64), -qmax, qmax)
        err = ((w - q * s.astype(np.float64)[:, None]) ** 2).sum(axis=1)
        better = err < best_err
        best = np.where(better, s, best)
        best_err = np.where(better, err, best_err)
    return best


def _inverse_cholesky(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper U with U^T U = (H + damp*mean(diag H)*I)^-1; dead columns (H_jj = 0) get H_jj = 1."""
    h = np.array(h, np.float64, copy=True)
    d = np.diag(h).copy()
    dead = d <= 0
    h[dead, dead] = 1.0
    mean_diag = float(np.mean(np.diag(h)))
    for k in range(8):                      # more damping only if H is numerically singular
        try:
            hd = h + (damp * 10 ** k) * mean_diag * np.eye(h.shape[0])
            l = np.linalg.cholesky(hd)
            linv = np.linalg.solve(l, np.eye(h.shape[0]))           # L^-1, lower
            hinv = linv.T @ linv
            return np.linalg.cholesky(hinv).T
        except np.linalg.LinAlgError:
            continue
    raise np.linalg.LinAlgError("Hessian is not positive definite even with heavy damping")


def gptq_quantize(w: np.ndarray, bits: int, group_size: int, hessian: np.ndarray,
                  damp: float = DAMP) -> tuple[np.ndarray, np.ndarray]:
    """(values int8 (rows, cols), scales float32 (rows, n_groups)) for w (rows, cols) and the
    Hessian (cols, cols) of its inputs. See the module docstring for the algorithm."""
    from .quantize import QMAX
    qmax = QMAX[bits]
    rows, cols = w.shape
    if hessian.shape != (cols, cols):
        raise ValueError(f"Hessian {hessian.shape} does not fit a matrix with {cols} columns")
    n_groups = -(-cols // group_size)
    u = _inverse_cholesky(hessian, damp)
    W = np.array(w, np.float64, copy=True)
    q = np.zeros((rows, cols), np.int8)
    scales = np.zeros((rows, n_groups), np.float32)
    block = group_size * -(-BLOCK_COLUMNS // group_size)
    for b0 in range(0, cols, block):
        b1 = min(b0 + block, cols)
        wb = W[:, b0:b1]                                  # a view: updated in place
        errs = np.zeros((rows, b1 - b0))
        for i in range(b1 - b0):
            j = b0 + i
            if j % group_size == 0:
                g = j // group_size
                scales[:, g] = mse_scales(wb[:, i:i + group_size], qmax)
                s64 = scales[:, g].astype(np.float64)
                safe = np.where(s64 == 0, 1.0, s64)
            col = wb[:, i]
            qc = np.clip(np.rint(col / safe), -qmax, qmax)
            q[:, j] = qc
            e = (col - qc * s64) / u[j, j]
            wb[:, i:] -= np.outer(e, u[j, j:b1])
            errs[:, i] = e
        if b1 < cols:
            W[:, b1:] -= errs @ u[b0:b1, b1:]
    return q, scales
