"""The model IR: a config and named fp32 tensors, independent of any file format.

Tensor names and shapes (weights are stored (out, in), row-major, as llama2.c does):

    tok_embeddings                    (vocab_size, dim)
    layers.{l}.attention_norm         (dim,)
    layers.{l}.attention.wq           (n_heads * head_size, dim)
    layers.{l}.attention.wk           (n_kv_heads * head_size, dim)
    layers.{l}.attention.wv           (n_kv_heads * head_size, dim)
    layers.{l}.attention.wo           (dim, n_heads * head_size)
    layers.{l}.ffn_norm               (dim,)
    layers.{l}.feed_forward.w1        (hidden_dim, dim)     gate
    layers.{l}.feed_forward.w2        (dim, hidden_dim)     down
    layers.{l}.feed_forward.w3        (hidden_dim, dim)     up
    norm                              (dim,)
    output                            (vocab_size, dim)     only if not shared_classifier
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import ModelFormatError

# Bounds that no real small model exceeds; a header outside them is garbage, not a model.
MAX_DIM = 1 << 15
MAX_LAYERS = 1024
MAX_VOCAB = 1 << 20
MAX_SEQ = 1 << 20
# The largest weight magnitude a model may have: float16's largest finite value. Trained models
# stay far below it (stories260K's largest is 4.4, a norm weight); beyond it the float32 sums of
# products of every scheme overflow within a few layers, and inf/NaN arithmetic is not something
# the firmware mirrors bit for bit, so such a model is refused at load.
MAX_ABS_WEIGHT = 65504.0


@dataclass(frozen=True)
class ModelConfig:
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    max_seq_len: int
    shared_classifier: bool
    norm_eps: float = 1e-5
    rope_theta: float = 10000.0

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.n_kv_heads * self.head_size

    def validate(self) -> None:
        """Refuse a config no transformer can have (what a corrupt header usually looks like)."""
        checks = [
            (0 < self.dim <= MAX_DIM, f"dim={self.dim}"),
            (0 < self.hidden_dim <= 8 * MAX_DIM, f"hidden_dim={self.hidden_dim}"),
            (0 < self.n_layers <= MAX_LAYERS, f"n_layers={self.n_layers}"),
            (0 < self.n_heads <= self.dim, f"n_heads={self.n_heads}"),
            (0 < self.n_kv_heads <= self.n_heads, f"n_kv_heads={self.n_kv_heads}"),
            (0 < self.vocab_size <= MAX_VOCAB, f"vocab_size={self.vocab_size}"),
            (0 < self.max_seq_len <= MAX_SEQ, f"max_seq_len={self.max_seq_len}"),
        ]
        for ok, what in checks:
            if not ok:
                raise ModelFormatError(f"implausible model config: {what}",
                                       "the file is corrupt or not a model of a supported format")
        if self.dim % self.n_heads or self.n_heads % self.n_kv_heads or self.head_size % 2:
            raise ModelFormatError(
                f"inconsistent heads: dim={self.dim}, n_heads={self.n_heads}, "
                f"n_kv_heads={self.n_kv_heads} (need dim % n_heads == 0, n_heads % n_kv_heads == 0, "
                "even head size)", "the file is corrupt or not a model of a supported format")


def tensor_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor the config implies, in a canonical order, with its shape."""
    hs = cfg.head_size
    shapes: dict[str, tuple[int, ...]] = {"tok_embeddings": (cfg.vocab_size, cfg.dim)}
    for l in range(cfg.n_layers):
        p = f"layers.{l}."
        shapes[p + "attention_norm"] = (cfg.dim,)
        shapes[p + "attention.wq"] = (cfg.n_heads * hs, cfg.dim)
        shapes[p + "attention.wk"] = (cfg.n_kv_heads * hs, cfg.dim)
        shapes[p + "attention.wv"] = (cfg.n_kv_heads * hs, cfg.dim)
        shapes[p + "attention.wo"] = (cfg.dim, cfg.n_heads * hs)
        shapes[p + "ffn_norm"] = (cfg.dim,)
        shapes[p + "feed_forward.w1"] = (cfg.hidden_dim, cfg.dim)
        shapes[p + "feed_forward.w2"] = (cfg.dim, cfg.hidden_dim)
        shapes[p + "feed_forward.w3"] = (cfg.hidden_dim, cfg.dim)
    shapes["norm"] = (cfg.dim,)
    if not cfg.shared_classifier:
        shapes["output"] = (cfg.vocab_size, cfg.dim)
    return shapes


@dataclass
class Model:
    config: ModelConfig
    tensors: dict[str, np.ndarray]
    source: str = ""          # where it was loaded from, for messages
    meta: dict = field(default_factory=dict)

    def classifier(self) -> np.ndarray:
        return self.tensors["tok_embeddings" if self.config.shared_classifier else "output"]

    def n_params(self) -> int:
        return sum(int(t.size) for t in self.tensors.values())

    def fingerprint(self) -> str:
        """sha256 of the config and every tensor's bytes: the model's identity, whatever the file format."""
        h = hashlib.sha256(json.dumps(asdict(self.config), sort_keys=True).encode())
        for name in tensor_shapes(self.config):
            h.update(name.encode())
            h.update(np.ascontiguousarray(self.tensors[name], dtype="<f4").tobytes())
        return h.hexdigest()


def make_model(config: ModelConfig, tensors: dict[str, np.ndarray], source: str = "") -> Model:
    """Check a config and its tensors (names, shapes, finite values) and build the Model."""
    config.validate()
    expected = tensor_shapes(config)
    missing = [n for n in expected if n not in tensors]
    extra = [n for n in tensors if n not in expected]
    if missing or extra:
        raise ModelFormatError(f"{source or 'model'}: tensors do not match the config "
                               f"(missing {missing[:3]}, unexpected {extra[:3]})")
    out = {}
    for name, shape in expected.items():
        t = np.ascontiguousarray(tensors[name], dtype=np.float32)
        if t.shape != shape:
            raise ModelFormatError(f"{source or 'model'}: tensor {name} has shape {t.shape}, "
                                   f"the config implies {shape}")
        if not np.isfinite(t).all():
            bad = int(np.count_nonzero(~np.isfinite(t)))
            raise ModelFormatError(f"{source or 'model'}: tensor {name} has {bad} NaN/Inf values",
                                   "the file is corrupt; re-export or re-download it")
        big = np.abs(t) > MAX_ABS_WEIGHT
        if big.any():
            at = tuple(int(i) for i in np.argwhere(big)[0])
            raise ModelFormatError(
                f"{source or 'model'}: tensor {name} holds {t[at]:g} at {list(at)}: weights beyond "
                f"+-{MAX_ABS_WEIGHT:g} overflow the float32 arithmetic of every scheme",
                "the file is corrupt or not a trained model; re-export or re-download it")
        out[name] = t
    return Model(config=config, tensors=out, source=source)
