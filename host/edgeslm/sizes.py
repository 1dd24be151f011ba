"""How many bytes a model needs under a scheme: weights, KV cache, activation buffers.

Plain arithmetic on the config, so it answers instantly for any model (the planner builds on it).
"""

from __future__ import annotations

from dataclasses import dataclass

from .model.ir import ModelConfig, tensor_shapes
from .quant.schemes import Scheme


def matrix_bytes(rows: int, cols: int, bits: int, group_size: int) -> int:
    """Storage of one weight matrix as QTensor.nbytes() counts it."""
    if bits == 32:
        return rows * cols * 4
    n_groups = -(-cols // group_size)
    data = rows * cols if bits == 8 else rows * -(-cols // 2)
    return data + rows * n_groups * 4


def weight_bytes(cfg: ModelConfig, scheme: Scheme) -> dict[str, int]:
    """Stored bytes of every tensor: matrices with their scales, norm weights in fp32."""
    return {name: shape[0] * 4 if len(shape) == 1 else
            matrix_bytes(shape[0], shape[1], scheme.matrix_bits(name), scheme.group_size)
            for name, shape in tensor_shapes(cfg).items()}


@dataclass
class Footprint:
    weights: int          # matrices (+ scales) and norms
    rope_tables: int      # cos/sin tables, (max_seq, head_size/2) each, fp32
    kv_cache: int         # at max_seq
    activations: int      # every run-time buffer, summed (no reuse)

    @property
    def total(self) -> int:
        return self.weights + self.rope_tables + self.kv_cache + self.activations


def kv_cache_bytes(cfg: ModelConfig, kv: str, max_seq: int) -> int:
    values = 2 * cfg.n_layers * max_seq * cfg.kv_dim
    if kv == "f32":
        return values * 4
    return values + 2 * cfg.n_layers * max_seq * cfg.n_kv_heads * 4


def activation_bytes(cfg: ModelConfig, scheme: Scheme, max_seq: int) -> int:
    f32 = (3 * cfg.dim + cfg.dim + 2 * cfg.kv_dim + 2 * cfg.hidden_dim   # x xb xb2, q k v, hb hb2
           + cfg.n_heads * max_seq + cfg.vocab_size)                     # att, logits
    probindex = cfg.vocab_size * 8                                       # top-p sort (prob, index)
    widest = max(cfg.dim, cfg.hidden_dim)
    qact = widest + -(-widest // scheme.group_size) * 4 if scheme.quantized else 0
    return f32 * 4 + probindex + qact


def footprint(cfg: ModelConfig, scheme: Scheme, max_seq: int | None = None) -> Footprint:
    max_seq = max_seq or cfg.max_seq_len
    return Footprint(weights=sum(weight_bytes(cfg, scheme).values()), rope_tables=max_seq * cfg.head_size * 4,
                     kv_cache=kv_cache_bytes(cfg, scheme.kv, max_seq),
                     activations=activation_bytes(cfg, scheme, max_seq))
