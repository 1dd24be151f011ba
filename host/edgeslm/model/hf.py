"""Read Hugging Face Llama-architecture checkpoints (a directory, as `save_pretrained` writes it).

A directory holds:
    config.json                     the architecture (the fields below)
    model.safetensors               every weight, or
    model.safetensors.index.json    {"weight_map": {tensor name: shard file}} and the shards it names
    tokenizer.json                  the tokenizer (read_hf_tokenizer)

config.json, in the IR's words:
    hidden_size -> dim, intermediate_size -> hidden_dim, num_hidden_layers -> n_layers,
    num_attention_heads -> n_heads, num_key_value_heads -> n_kv_heads (default n_heads),
    vocab_size, max_position_embeddings -> max_seq_len, rms_norm_eps -> norm_eps (default 1e-6),
    rope_theta (or rope_parameters.rope_theta; default 10000), tie_word_embeddings -> shared_classifier
    (default false, as LlamaConfig's). Refused, naming the field: a model_type other than llama,
    hidden_act other than silu, rope_scaling other than the default, attention_bias, mlp_bias,
    a head_dim other than hidden_size / num_attention_heads, partial rotary, quantization_config.

safetensors (the format in its own words): an unsigned little-endian 64-bit header length N, N bytes
of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the
data buffer; offsets count from the buffer's start. F32, F16, BF16 and F64 tensors are read (and
widened or narrowed to float32) by this module itself: no package is needed to read a checkpoint.

Tensor names (HF -> IR):
    model.embed_tokens.weight                     tok_embeddings
    model.layers.{l}.input_layernorm.weight       layers.{l}.attention_norm
    model.layers.{l}.self_attn.{q,k,v,o}_proj.weight   layers.{l}.attention.w{q,k,v,o}
    model.layers.{l}.post_attention_layernorm.weight   layers.{l}.ffn_norm
    model.layers.{l}.mlp.{gate,down,up}_proj.weight    layers.{l}.feed_forward.w{1,2,3}
    model.norm.weight                             norm
    lm_head.weight                                output (absent or ignored when tied)

RoPE: HF's checkpoints rotate each head's halves (rotate_half: element j pairs with j + head_size/2);
the IR rotates interleaved pairs (2j, 2j+1), as llama2.c does. Both use frequency theta^(-2j/head_size)
for pair j, so permuting the rows of wq and wk within each head, new row 2j+t = old row
t*head_size/2 + j, gives the same attention scores (q.k is unchanged by permuting q and k alike);
wv and wo are untouched. This is the inverse of the permutation in transformers'
convert_llama_weights_to_hf.py, and what llama2.c's export.py does to HF checkpoints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError
from .ir import Model, ModelConfig, make_model
from .tokenizer import _NO_MERGE, BOS, EOS, Tokenizer

SUPPORTED_MODEL_TYPES = ("llama",)
_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}
_MAX_HEADER_BYTES = 100 << 20          # safetensors' own limit
_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq")   # recomputed from rope_theta


def is_hf_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.json").is_file()


def _json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{path.parent}: no {path.name} ({what})",
                               "pass a directory written by save_pretrained") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ModelFormatError(f"{path}: not readable JSON ({e})", "the file is corrupt") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: not a JSON object")
    return data


# ---------------------------------------------------------------- config.json

def _rope_theta(cfg: dict, where: str) -> float:
    """rope_theta, refusing any RoPE variant the IR cannot express."""
    params = cfg.get("rope_parameters")          # transformers 5 keeps theta and scaling here
    scaling = cfg.get("rope_scaling")
    for field, value in (("rope_scaling", scaling), ("rope_parameters", params)):
        if value is None:
            continue
        kind = value.get("rope_type", value.get("type", "default")) if isinstance(value, dict) else value
        if kind != "default":
            raise ModelFormatError(
                f"{where}: {field} is {json.dumps(value)}: edgeslm's RoPE has no frequency scaling "
                f"('{kind}')", "use a model without RoPE scaling; removing the field changes the model's "
                "outputs beyond its original context")
    theta = cfg.get("rope_theta")
    if theta is None and isinstance(params, dict):
        theta = params.get("rope_theta")
    theta = 10000.0 if theta is None else theta
    if not isinstance(theta, (int, float)) or not theta > 1.0:
        raise ModelFormatError(f"{where}: rope_theta is {theta!r}, not a number above 1")
    return float(theta)


def _config(cfg: dict, where: str) -> ModelConfig:
    mt = cfg.get("model_type")
    if mt not in SUPPORTED_MODEL_TYPES:
        raise ModelFormatError(f"{where}: model_type is {mt!r}; edgeslm reads Llama-architecture "
                               f"checkpoints (model_type {', '.join(map(repr, SUPPORTED_MODEL_TYPES))})",
                               "export another architecture to ONNX, or use a Llama-family model")
    refusals = [
        ("hidden_act", cfg.get("hidden_act", "silu") != "silu", "the IR's feed-forward is SwiGLU (silu)"),
        ("attention_bias", bool(cfg.get("attention_bias")), "the IR's attention projections have no bias"),
        ("mlp_bias", bool(cfg.get("mlp_bias")), "the IR's feed-forward projections have no bias"),
        ("partial_rotary_factor", cfg.get("partial_rotary_factor", 1.0) != 1.0,
         "the IR rotates every dimension of each head"),
        ("quantization_config", "quantization_config" in cfg,
         "edgeslm quantizes itself: give it the float (fp32/fp16/bf16) checkpoint"),
    ]
    for field, bad, why in refusals:
        if bad:
            raise ModelFormatError(f"{where}: {field} is {json.dumps(cfg.get(field))}: {why}",
                                   "use a plain Llama checkpoint")
    need = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "vocab_size", "max_position_embeddings"]
    missing = [k for k in need if not isinstance(cfg.get(k), int)]
    if missing:
        raise ModelFormatError(f"{where}: no integer {', '.join(missing)}", "the config is not a Llama config")
    dim, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    head_dim = cfg.get("head_dim")
    if head_dim is not None and heads and head_dim * heads != dim:
        raise ModelFormatError(f"{where}: head_dim is {head_dim}, not hidden_size / num_attention_heads "
                               f"= {dim} / {heads}: the IR's heads split the model dimension")
    theta = _rope_theta(cfg, where)
    c = ModelConfig(dim=dim, hidden_dim=cfg["intermediate_size"], n_layers=cfg["num_hidden_layers"],
                    n_heads=heads, n_kv_heads=cfg.get("num_key_value_heads") or heads,
                    vocab_size=cfg["vocab_size"], max_seq_len=cfg["max_position_embeddings"],
                    shared_classifier=bool(cfg.get("tie_word_embeddings", False)),
                    norm_eps=float(cfg.get("rms_norm_eps", 1e-6)), rope_theta=theta)
    try:
        c.validate()
    except ModelFormatError as e:
        raise ModelFormatError(f"{where}: {e}", e.hint) from None
    return c


# ---------------------------------------------------------------- safetensors

class _SafeTensors:
    """One .safetensors file: its header, and tensors read from a memory map on request."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.data = np.memmap(path, dtype=np.uint8, mode="r")
        except (OSError, ValueError) as e:
            raise ModelFormatError(f"cannot read {path}: {e}") from None
        if len(self.data) < 8:
            raise ModelFormatError(f"{path}: truncated: {len(self.data)} bytes, not even a safetensors header")
        n = int(self.data[:8].view("<u8")[0])
        if not 2 <= n <= min(_MAX_HEADER_BYTES, len(self.data) - 8):
            raise ModelFormatError(f"{path}: not a safetensors file (header length {n}, file {len(self.data)} bytes)",
                                   "the file is corrupt or truncated; download it again")
        try:
            header = json.loads(bytes(self.data[8:8 + n]).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ModelFormatError(f"{path}: unreadable safetensors header ({e})") from None
        header.pop("__metadata__", None)
        self.base = 8 + n
        self.header: dict = header

    def tensor(self, name: str) -> np.ndarray:
        h = self.header[name]
        dtype, shape, (begin, end) = h.get("dtype"), h.get("shape"), h.get("data_offsets", (0, -1))
        if dtype not in _ST_DTYPES:
            raise ModelFormatError(f"{self.path}: tensor {name} has dtype {dtype}; weights must be "
                                   f"{', '.join(_ST_DTYPES)}")
        count = int(np.prod(shape)) if shape else 1
        if end - begin != count * np.dtype(_ST_DTYPES[dtype]).itemsize or not \
                0 <= begin <= end <= len(self.data) - self.base:
            raise ModelFormatError(f"{self.path}: tensor {name} ({dtype} {shape}) claims bytes "
                                   f"[{begin}, {end}) of a {len(self.data) - self.base}-byte buffer",
                                   "the file is corrupt or truncated; download it again")
        raw = self.data[self.base + begin:self.base + end].view(_ST_DTYPES[dtype]).reshape(shape)
        if dtype == "BF16":         # bfloat16 is float32's upper half
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32)


def _open_weights(d: Path) -> tuple[dict[str, _SafeTensors], list[str]]:
    """Tensor name -> its file; and the files, for messages."""
    single, index = d / "model.safetensors", d / "model.safetensors.index.json"
    if single.is_file():
        f = _SafeTensors(single)
        return {n: f for n in f.header}, [single.name]
    if index.is_file():
        wm = _json(index, "the shard index").get("weight_map")
        if not isinstance(wm, dict):
            raise ModelFormatError(f"{index}: no weight_map")
        files = {s: _SafeTensors(d / s) for s in sorted(set(wm.values()))}
        for name, shard in wm.items():
            if name not in files[shard].header:
                raise ModelFormatError(f"{index}: {name} is mapped to {shard}, which does not hold it",
                                       "the shards and their index do not belong together")
        return {n: files[s] for n, s in wm.items()}, sorted(files)
    others = sorted(p.name for p in d.glob("*.bin")) + sorted(p.name for p in d.glob("*.pt*"))
    raise ModelFormatError(f"{d}: no model.safetensors or model.safetensors.index.json"
                           + (f" (only {', '.join(others[:3])})" if others else ""),
                           "save the model with save_pretrained(dir) (safetensors is its default)")


# ---------------------------------------------------------------- the model

def unpermute_rotate_half(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Rows of an HF q/k projection (rotate_half layout) in the IR's interleaved-pair order:
    per head, new row 2j+t = old row t*head_size/2 + j."""
    rows, cols = w.shape
    hs = rows // n_heads
    return w.reshape(n_heads, 2, hs // 2, cols).transpose(0, 2, 1, 3).reshape(rows, cols)


def _names(c: ModelConfig) -> dict[str, str]:
    """IR name -> HF name."""
    m = {"tok_embeddings": "model.embed_tokens.weight", "norm": "model.norm.weight"}
    for l in range(c.n_layers):
        hf, ir = f"model.layers.{l}.", f"layers.{l}."
        m.update({ir + "attention_norm": hf + "input_layernorm.weight",
                  ir + "attention.wq": hf + "self_attn.q_proj.weight",
                  ir + "attention.wk": hf + "self_attn.k_proj.weight",
                  ir + "attention.wv": hf + "self_attn.v_proj.weight",
                  ir + "attention.wo": hf + "self_attn.o_proj.weight",
                  ir + "ffn_norm": hf + "post_attention_layernorm.weight",
                  ir + "feed_forward.w1": hf + "mlp.gate_proj.weight",
                  ir + "feed_forward.w2": hf + "mlp.down_proj.weight",
                  ir + "feed_forward.w3": hf + "mlp.up_proj.weight"})
    if not c.shared_classifier:
        m["output"] = "lm_head.weight"
    return m


def read_hf(path: str | Path) -> Model:
    """Load a Hugging Face Llama checkpoint directory into the IR (see the module docstring)."""
    d = Path(path)
    where = str(d / "config.json")
    c = _config(_json(d / "config.json", "the model's architecture"), where)
    files, file_names = _open_weights(d)
    names = _names(c)
    missing = [hf for hf in names.values() if hf not in files]
    if missing:
        raise ModelFormatError(f"{d}: no tensor {missing[0]}" + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                               + f" in {', '.join(file_names)}",
                               "the checkpoint is not a LlamaForCausalLM, or config.json does not belong to it")
    wanted = set(names.values()) | {"lm_head.weight"}
    extra = sorted(n for n in files if n not in wanted and not _IGNORED.fullmatch(n))
    if extra:
        raise ModelFormatError(f"{d}: tensor {extra[0]} has no place in a Llama model"
                               + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
                               "the checkpoint has parts (biases?) that config.json does not declare")
    tensors, sources = {}, {}
    for ir, hf in names.items():
        t = files[hf].tensor(hf)
        if ir.endswith("attention.wq") or ir.endswith("attention.wk"):
            heads = c.n_heads if ir.endswith("wq") else c.n_kv_heads
            if t.ndim == 2 and t.shape[0] % (2 * heads) == 0:
                t = unpermute_rotate_half(t, heads)
            sources[ir] = f"{hf} (rows un-permuted: rotate_half -> interleaved pairs)"
        else:
            sources[ir] = hf
        tensors[ir] = t
    m = make_model(c, tensors, str(d))
    m.meta.update({
        "format": "huggingface",
        "tensor_sources": sources,
        "decisions": {
            "rope": "HF rotate_half; wq/wk rows un-permuted per head into interleaved pairs",
            "classifier": "tied to the embedding" if c.shared_classifier else "lm_head.weight",
            "gqa": f"{c.n_heads} query heads share {c.n_kv_heads} kv heads "
                   f"({c.n_heads // c.n_kv_heads} per kv head)",
            "weights": ", ".join(sorted({files[hf].header[hf].get("dtype", "?") for hf in names.values()}))
                       + " read as float32",
        },
    })
    return m


# ---------------------------------------------------------------- tokenizer.json

_SPACE = "\u2581"          # sentencepiece's "▁", which stands for a space in its pieces


def _flatten(rule: dict | None) -> list[dict]:
    """A normalizer or pre-tokenizer as the list of its steps (a Sequence opened up)."""
    if rule is None:
        return []
    if rule.get("type") == "Sequence":
        return [y for x in rule.get("normalizers", rule.get("pretokenizers", [])) for y in _flatten(x)]
    return [rule]


def _text_rules(tj: dict, where: str, vocab: dict[str, int]) -> None:
    """Accept the normalizer/pre-tokenizer pairs that mean "prefix a space, spaces become ▁, one
    word": what run.c's dummy prefix and byte-wise scan do. Refuse anything else by name."""
    n, p = _flatten(tj.get("normalizer")), _flatten(tj.get("pre_tokenizer"))
    prepend = [{"type": "Prepend", "prepend": _SPACE},
               {"type": "Replace", "pattern": {"String": " "}, "content": _SPACE}]
    if n == prepend and not p:
        return
    if not n and len(p) == 1 and p[0].get("type") == "Metaspace" and p[0].get("replacement") == _SPACE \
            and p[0].get("prepend_scheme", "always" if p[0].get("add_prefix_space", True) else "never") \
            in ("first", "always"):
        inner = [t for t in vocab if _SPACE in t[1:]]
        if not p[0].get("split", True) or not inner:
            return
        raise ModelFormatError(f"{where}: pre_tokenizer Metaspace splits words, and pieces such as "
                               f"{inner[0]!r} hold a ▁ inside: run.c's tokenizer would merge across words")
    what = next((f"normalizer {x.get('type')}" for x in n if x not in prepend), None) or \
        next((f"pre_tokenizer {x.get('type')}" for x in p), "no space prefix (Prepend ▁ or Metaspace)")
    raise ModelFormatError(f"{where}: {what}: the on-device tokenizer only prefixes a space and spells "
                           "spaces as ▁ (sentencepiece style, as Llama's tokenizer.json does)",
                           "use a sentencepiece-style byte-fallback BPE tokenizer (Llama, TinyLlama)")


def read_hf_tokenizer(path: str | Path) -> Tokenizer:
    """A Hugging Face tokenizer.json (or the directory holding one) of the sentencepiece kind, as
    run.c's tokenizer: pieces with ▁ spelled as a space, <0xXX> byte-fallback pieces, and each
    piece scored -(rank of the first merge that makes it); pieces no merge makes score -1e10 (never
    merged).

    run.c merges the adjacent pair whose *merged piece* scores best; HF's BPE the pair whose
    *merge* ranks first. The two agree when (a) every split of a merged piece into two pieces is
    itself a merge, and (b) the merges that make one piece are not interleaved in rank with those of
    another: what transformers' sentencepiece converter writes (Llama, TinyLlama, Mistral). A
    tokenizer for which they could differ is refused, naming the merge. (Equal-rank corner cases
    aside: a pair x+y == y+z of two merges for the same piece is taken leftmost, as sentencepiece
    does.) Added tokens are not cut out of the text (run.c does not either)."""
    p = Path(path)
    if p.is_dir():
        p = p / "tokenizer.json"
    where = str(p)
    tj = _json(p, "the tokenizer")
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise ModelFormatError(f"{where}: model.type is {model.get('type')!r}; the on-device tokenizer is a "
                               "sentencepiece-style BPE", "use a BPE tokenizer with byte_fallback (Llama's)")
    if not model.get("byte_fallback") or "ByteLevel" in json.dumps([tj.get("pre_tokenizer"), tj.get("decoder")]):
        raise ModelFormatError(f"{where}: a byte-level (GPT-2 style) BPE, not byte_fallback: its pieces spell "
                               "bytes as remapped characters, which the on-device tokenizer does not",
                               "use a sentencepiece-style byte-fallback BPE tokenizer (Llama, TinyLlama)")
    for field, ok in (("dropout", model.get("dropout") in (None, 0, 0.0)),
                      ("continuing_subword_prefix", not model.get("continuing_subword_prefix")),
                      ("end_of_word_suffix", not model.get("end_of_word_suffix")),
                      ("ignore_merges", not model.get("ignore_merges"))):
        if not ok:
            raise ModelFormatError(f"{where}: model.{field} is {json.dumps(model.get(field))}, which run.c's "
                                   "merge rule does not have")
    vocab: dict[str, int] = dict(model.get("vocab") or {})
    for a in tj.get("added_tokens") or []:
        vocab.setdefault(a["content"], a["id"])
    _text_rules(tj, where, vocab)
    n = max(vocab.values(), default=-1) + 1
    pieces: list[str | None] = [None] * n
    for t, i in vocab.items():
        pieces[i] = t
    if None in pieces:
        raise ModelFormatError(f"{where}: no token has id {pieces.index(None)} (ids must be 0..{n - 1})")
    specials = {a["id"] for a in tj.get("added_tokens") or [] if a.get("special")}
    for tid, what in ((BOS, "BOS"), (EOS, "EOS")):
        if tid not in specials:
            raise ModelFormatError(f"{where}: id {tid} is {pieces[tid] if tid < n else None!r}, not a special "
                                   f"token: edgeslm takes {what} = {tid} (<s> = 1, </s> = 2, as Llama's tokenizer)")
    if _SPACE not in vocab:
        raise ModelFormatError(f"{where}: no ▁ piece, which the dummy space prefix needs")
    byte_ids = []
    for b in range(256):
        if f"<0x{b:02X}>" not in vocab:
            raise ModelFormatError(f"{where}: no byte-fallback token <0x{b:02X}>")
        byte_ids.append(vocab[f"<0x{b:02X}>"])
    # scores from the merges
    scores = np.full(n, _NO_MERGE, np.float32)
    made_by: dict[int, int] = {}                  # piece id -> rank of its first merge
    merge_set: set[tuple[str, str]] = set()
    last, closed = None, set()
    for rank, m in enumerate(model.get("merges") or []):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        t = vocab.get(a + b)
        if a not in vocab or b not in vocab or t is None:
            raise ModelFormatError(f"{where}: merge {rank} ({a!r} {b!r}) names a piece not in the vocabulary")
        merge_set.add((a, b))
        if t != last:
            if t in closed:
                raise ModelFormatError(
                    f"{where}: merge {rank} ({a!r} {b!r}) makes {a + b!r}, which earlier merges make too, with "
                    "others ranked between: run.c's rule (best merged piece) would order them differently",
                    "use a tokenizer converted from sentencepiece (Llama-style merges)")
            closed.add(last)
            last = t
        made_by.setdefault(t, rank)
    for t, rank in made_by.items():
        s = pieces[t]
        for k in range(1, len(s)):
            if s[:k] in vocab and s[k:] in vocab and (s[:k], s[k:]) not in merge_set:
                raise ModelFormatError(
                    f"{where}: {s!r} is made by merge {rank}, but not from {s[:k]!r} + {s[k:]!r}, which are "
                    "pieces too: run.c's rule would merge them", "use a tokenizer converted from "
                    "sentencepiece (every split of a merged piece is a merge)")
        scores[t] = -float(rank)
    spelled = [pieces[i].encode("utf-8") if i in specials else pieces[i].replace(_SPACE, " ").encode("utf-8")
               for i in range(n)]
    seen: dict[bytes, int] = {}
    for i, v in enumerate(spelled):
        if v in seen and i not in specials:
            raise ModelFormatError(f"{where}: pieces {seen[v]} and {i} both spell {v!r} once ▁ is a space")
        seen.setdefault(v, i)
    return Tokenizer(vocab=spelled, scores=scores, max_token_length=max(1, max(map(len, spelled))),
                     source=where, byte_ids=None if byte_ids == list(range(3, 259)) else tuple(byte_ids))
