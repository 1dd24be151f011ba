"""How many bytes a model's weights and KV cache take under a scheme.

Plain arithmetic on the config, so it answers instantly for any model. Activation and scratch
bytes depend on the schedule and the board's kernels: the planner (lower/plan.py) computes them.
"""

from __future__ import annotations

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


def kv_cache_bytes(cfg: ModelConfig, kv: str, max_seq: int) -> int:
    values = 2 * cfg.n_layers * max_seq * cfg.kv_dim
    if kv == "f32":
        return values * 4
    return values + 2 * cfg.n_layers * max_seq * cfg.n_kv_heads * 4
