"""Quantization: named schemes, the quantizer, and the golden (bit-exact firmware) model.

    get_scheme(name, group_size, kv) -> Scheme
    quantize(model, scheme)          -> QuantModel
    golden.GoldenEngine(qmodel)      -> forward(token, pos) -> logits, as the firmware computes them
"""

from .quantize import QTensor, QuantModel, quantize, quantize_matrix, unpack_int4
from .schemes import DEFAULT_GROUP_SIZE, KV_FORMATS, SCHEME_NAMES, Scheme, get_scheme

__all__ = ["DEFAULT_GROUP_SIZE", "KV_FORMATS", "SCHEME_NAMES", "QTensor", "QuantModel", "Scheme",
           "get_scheme", "quantize", "quantize_matrix", "unpack_int4"]
