"""Model import: the IR (config + named fp32 tensors), importers, and the tokenizer.

    load_model(path)      -> Model       (llama2.c .bin version 0/1/2, .onnx, or a Hugging Face
                                          Llama directory: config.json + *.safetensors)
    load_tokenizer(path)  -> Tokenizer   (llama2.c tokenizer .bin, or HF tokenizer.json / its directory)
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelMismatchError
from .ir import Model, ModelConfig, make_model, tensor_shapes
from .tokenizer import BOS, EOS, Tokenizer, read_tokenizer


def load_model(path: str | Path) -> Model:
    """Load a model file of any supported format, chosen by its extension (a directory: Hugging Face)."""
    p = Path(path)
    if p.is_dir():
        from .hf import read_hf
        return read_hf(p)
    if p.suffix == ".onnx":
        from .onnx_import import read_onnx
        return read_onnx(p)
    from .llama2c import read_checkpoint
    return read_checkpoint(p)


def load_tokenizer(path: str | Path, model: Model | None = None) -> Tokenizer:
    """Load a tokenizer; with `model`, also check that it belongs to it (same vocab size)."""
    p = Path(path)
    if p.is_dir() or p.suffix == ".json":
        from .hf import read_hf_tokenizer
        tok = read_hf_tokenizer(p)
        if model is not None:
            tok = tok.padded_to(model.config.vocab_size)
    else:
        tok = read_tokenizer(p)
    if model is not None:
        tok.check_model(model.config.vocab_size, model.source)
        want = model.meta.get("tokenizer_sha256")
        if want and tok.identity() != want:
            raise ModelMismatchError(f"tokenizer {tok.source} is not the one {model.source} was exported with",
                                     "pass the tokenizer given to `edgeslm export-onnx`")
    return tok


__all__ = ["BOS", "EOS", "Model", "ModelConfig", "Tokenizer", "load_model", "load_tokenizer",
           "make_model", "tensor_shapes"]
