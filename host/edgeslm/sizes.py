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


# i8 (quant/golden_s8.py step_params): per output row of a matrix an int32 multiplier, an int8
# shift and an int32 bias; per embedding row a multiplier and a shift; per norm element the same.
I8_ROW_BYTES, I8_EMBED_ROW_BYTES, I8_NORM_BYTES = 9, 5, 5
I8_LAYER_TABLE_BYTES = 256 * 4 + 256      # softmax exp table (int32) and SiLU table (int8)


def weight_bytes(cfg: ModelConfig, scheme: Scheme) -> dict[str, int]:
    """Stored bytes of every tensor: matrices with their scales, norm weights in fp32 (i8: int8
    matrices with their per-row integers, norms as multipliers; a tied classifier shares the table)."""
    if scheme.integer:
        out = {}
        for name, shape in tensor_shapes(cfg).items():
            if len(shape) == 1:
                out[name] = I8_NORM_BYTES * shape[0]
            elif name == "tok_embeddings":
                out[name] = shape[0] * shape[1] + I8_EMBED_ROW_BYTES * shape[0] + \
                    (I8_ROW_BYTES * shape[0] if cfg.shared_classifier else 0)
            else:
                out[name] = shape[0] * shape[1] + I8_ROW_BYTES * shape[0]
        return out
    return {name: shape[0] * 4 if len(shape) == 1 else
            matrix_bytes(shape[0], shape[1], scheme.matrix_bits(name, cfg.n_layers), scheme.kernel_group_size)
            for name, shape in tensor_shapes(cfg).items()}


def rope_table_bytes(cfg: ModelConfig, scheme: Scheme, max_seq: int) -> int:
    """cos and sin per position and pair: fp32, or int8 (scale 1/127) in the integer scheme."""
    return max_seq * cfg.head_size * (1 if scheme.integer else 4)


def kv_cache_bytes(cfg: ModelConfig, scheme: Scheme, max_seq: int) -> int:
    """f32: floats; i8 KV of a float scheme: int8 plus an fp32 scale per (position, kv head);
    the integer scheme: int8 at one calibrated scale per layer (no per-position scales), the keys
    int16 with --int16 keys."""
    values = 2 * cfg.n_layers * max_seq * cfg.kv_dim
    if scheme.kv == "f32":
        return values * 4
    if scheme.integer:
        return values * 3 // 2 if "keys" in scheme.int16 else values
    return values + 2 * cfg.n_layers * max_seq * cfg.n_kv_heads * 4
