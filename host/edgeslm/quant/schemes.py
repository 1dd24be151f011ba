"""Quantization schemes by name. A scheme says how every weight is stored, how activations are
quantized on the fly, and the KV cache format; the golden model and the firmware implement it.

    f32  weights fp32; matmuls in fp32.
    q8   matmul weights int8, symmetric, one fp32 scale per group of `group_size` along the input
         dimension (the last group of a row may be shorter); activations quantized dynamically per
         group, to int16 (`act_bits` 16, the default) or int8; int32 dot product per group;
         scales applied in fp32 (Q8_0 family, with wider activations).
    q4   as q8 with int8 activations, but matmul weights int4 in [-7, 7], two per byte (element 2j in the low nibble,
         2j+1 in the high nibble, two's complement; an odd row is padded with a zero nibble).
         The token embedding and the classifier stay int8 (as q8), since one shared table is both, and
         so do the matrices of the last `int8_layers` transformer layers (default 2: precision where
         it pays, as llama.cpp's Q4_K_M keeps some tensors wider; README: Accuracy).
    i8   integer-only (TFLite-Micro arithmetic, quant/int8.py): int8 per-channel weights, int8
         asymmetric activations with ranges from a calibration file, int8 KV cache; no float on
         the token path. Needs a calibration (edgeslm calibrate); `kv` and `group_size` do not apply.
         `int16` names the parts kept in int16 (symmetric, zero point 0) where int8 loses most
         (README: Accuracy): "keys" = k out of wk, its RoPE and the key cache; "ffn" = the FFN's
         inside, h1 and h3 out of w1/w3, the SiLU, the gate, w2's input (TFLM's int16 ops);
         "residual" = the residual stream and what is added to it (x, o, f; TFLM's int16 ADD);
         "norms" = the RMSNorms' outputs, so every matmul but wo reads int16 (matmul_s16).
         Default "ffn" (DEFAULT_I8_INT16); "keys" costs half as much KV cache again, so it is asked for.

In every scheme the norm weights stay fp32, the token embedding is dequantized one row at a time
(never a full fp32 copy), and the KV cache is `kv`: "f32", or "i8" (int8 with one fp32 scale per
(layer, position, kv head), symmetric, scale = max|x| / 127).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

SCHEME_NAMES = ("f32", "q8", "q4", "i8")
ROUNDINGS = ("rtn", "gptq")         # how q8/q4 weights are rounded (quant/quantize.py, quant/gptq.py)
DEFAULT_ROUNDING = "gptq"           # lower KL than rtn in every case measured (README: Accuracy)
KV_FORMATS = ("f32", "i8")
DEFAULT_GROUP_SIZE = 32
ACT_BITS = (8, 16)                  # q8: how the int8-weight matmuls quantize their input
DEFAULT_ACT_BITS = 16               # q8's default (README: Accuracy): KL a third, on the M4 as fast
MAX_ACT16_GROUP = 512               # int16 x int8 sums of a group stay within int32: 512*32767*127 < 2^31
INT16_PARTS = ("keys", "ffn", "residual", "norms")   # i8: what --int16 can widen (quant/int8.py)
MAX_KEYS16_HEAD = 256               # int16 keys: a score's int32 sum stays exact, 256*255*32768 < 2^31
MAX_FFN16_HIDDEN = 516              # int16 ffn: w2's int32 sum stays exact, 516*127*32768 < 2^31
                                    # (and int16 norms: every matmul but wo, their width the model's dim)
DEFAULT_I8_INT16 = ("ffn",)         # i8's default (README: Accuracy): aidreams260K top-1 96.4% -> 97.5%,
                                    # stories260K KL -19%, +2.3% instructions on the M4F, 176 bytes of RAM
DEFAULT_Q4_INT8_LAYERS = 2          # q4: the last layers, whose error costs most, keep int8 weights
                                    # (stories260K KL 0.0527 -> 0.0254; README: Accuracy)


@dataclass(frozen=True)
class Scheme:
    name: str                       # f32 | q8 | q4 | i8
    group_size: int = DEFAULT_GROUP_SIZE
    kv: str = "f32"                 # KV cache: f32 | i8
    rounding: str = DEFAULT_ROUNDING  # q8/q4 weight rounding: rtn | gptq (same stored format)
    act_group_size: int = 0         # q8/q4: activations quantized per group of this many (0: group_size)
    act_bits: int = 8               # the int8-weight (w8f) matmuls' activations: int8 or int16
                                    # (q8 only; q4's w4f kernels and its int8 classifier keep 8)
    int8_layers: int = 0            # q4: the last this many transformer layers store int8 weights
    int16: tuple[str, ...] = ()     # i8: the parts kept in int16 (INT16_PARTS, in that order)

    @property
    def kernel_group_size(self) -> int:
        """The group the matmul kernels and golden work in: the activation group. A weight group
        of group_size then holds group_size / act_group_size kernel groups with the same scale."""
        return self.act_group_size or self.group_size

    @property
    def weight_bits(self) -> int:
        return {"f32": 32, "q8": 8, "q4": 4, "i8": 8}[self.name]

    def matrix_bits(self, name: str, n_layers: int) -> int:
        """How a weight matrix of a model with n_layers is stored: the embedding/classifier table
        stays int8 (fp32 in f32), and so do q4's last int8_layers layers."""
        if name in ("tok_embeddings", "output") or self.integer:
            return 32 if self.name == "f32" else 8
        if self.int8_layers and name.startswith("layers.") and \
                int(name.split(".")[1]) >= n_layers - self.int8_layers:
            return 8
        return self.weight_bits

    @property
    def activation_bytes(self) -> int:
        """Bytes of one activation element in the arena: int8 for the integer scheme, else float."""
        return 1 if self.integer else 4

    @property
    def quantized(self) -> bool:
        return self.name != "f32"

    @property
    def integer(self) -> bool:
        """Integer-only arithmetic end to end (needs a calibration)."""
        return self.name == "i8"

    def options_label(self) -> str:
        """The options beside name and KV that change the arithmetic, compactly ("g32 a16 gptq",
        "g32/16 a8 l2 rtn", i8's "i16 keys"; "" for f32 and plain i8): what tells two runs of one scheme apart."""
        if self.integer:
            return "i16 " + "+".join(self.int16) if self.int16 else ""
        if not self.quantized:
            return ""
        g = f"g{self.group_size}" + (f"/{self.act_group_size}" if self.act_group_size else "")
        layers = f" l{self.int8_layers}" if self.int8_layers else ""
        return f"{g} a{self.act_bits}{layers} {self.rounding}"

    def describe(self) -> str:
        if self.integer:
            wide = "".join(f", int16 {p}" for p in self.int16 if p != "keys")
            kv = "int16 keys / int8 values" if "keys" in self.int16 else "int8"
            return f"i8 (integer-only, static calibration{wide}, KV cache {kv})"
        a = f", activations per {self.act_group_size}" if self.act_group_size else ""
        b = f", activations int{self.act_bits}" if self.quantized else ""
        g = f", group {self.group_size}{a}{b}, {self.rounding}" if self.quantized else ""
        w = f"{self.weight_bits}-bit" + (f", the last {self.int8_layers} layers 8-bit" if self.int8_layers else "")
        return f"{self.name} (weights {w}{g}, KV cache {self.kv})"


def default_int8_layers(name: str) -> int:
    """How many last layers keep int8 weights when --int8-layers is not given: q4's default, else 0."""
    return DEFAULT_Q4_INT8_LAYERS if name == "q4" else 0


def get_scheme(name: str, group_size: int = DEFAULT_GROUP_SIZE, kv: str = "f32",
               rounding: str = DEFAULT_ROUNDING, act_group_size: int = 0, act_bits: int | None = None,
               int8_layers: int | None = None, int16: tuple[str, ...] | str | None = None) -> Scheme:
    """A checked Scheme; act_bits None: the scheme's default (16 for q8, else 8); int8_layers
    None: q4's default (DEFAULT_Q4_INT8_LAYERS), 0 elsewhere; int16: i8's int16 parts (a tuple
    or a comma-separated string of INT16_PARTS, "none" for none; None: DEFAULT_I8_INT16 for i8)."""
    if name not in SCHEME_NAMES:
        raise UsageError(f"unknown quantization scheme {name!r}",
                         f"choose one of: {', '.join(SCHEME_NAMES)}")
    if kv not in KV_FORMATS:
        raise UsageError(f"unknown KV cache format {kv!r}", f"choose one of: {', '.join(KV_FORMATS)}")
    if not 2 <= group_size <= 4096 or group_size % 2:
        raise UsageError(f"group size {group_size} is out of range",
                         "use an even group size between 2 and 4096 (32 is the default)")
    if rounding not in ROUNDINGS:
        raise UsageError(f"unknown rounding {rounding!r}", f"choose one of: {', '.join(ROUNDINGS)}")
    if act_group_size and (name not in ("q8", "q4") or act_group_size < 2 or act_group_size % 2
                           or group_size % act_group_size):
        raise UsageError(f"activation group {act_group_size} does not apply to {name} with weight group {group_size}",
                         "use it with q8/q4, an even size that divides --group-size (e.g. 16 for 32)")
    if act_bits is None:
        act_bits = DEFAULT_ACT_BITS if name == "q8" else 8
    if act_bits not in ACT_BITS or (act_bits == 16 and name != "q8"):
        raise UsageError(f"{act_bits}-bit activations do not apply to {name}",
                         "int16 activations are a q8 option (--act-bits 16); other schemes take 8")
    if act_bits == 16 and (act_group_size or group_size) > MAX_ACT16_GROUP:
        raise UsageError(f"int16 activations with groups of {act_group_size or group_size}: a group's int32 sum could overflow",
                         f"use groups of at most {MAX_ACT16_GROUP} (--act-group-size), or --act-bits 8")
    if int8_layers is None:
        int8_layers = default_int8_layers(name)
    if int8_layers < 0 or (int8_layers and name != "q4"):
        raise UsageError(f"--int8-layers {int8_layers} does not apply to {name}",
                         "it is a q4 option: the number of last layers that keep int8 weights (0 or more)")
    int16 = (DEFAULT_I8_INT16 if name == "i8" else ()) if int16 is None else parse_int16(int16)
    if int16 and name != "i8":
        raise UsageError(f"--int16 {','.join(int16)} does not apply to {name}",
                         "it is an i8 option (integer-only scheme); q8 takes --act-bits 16")
    if name == "i8":
        return Scheme(name="i8", group_size=group_size, kv="i8", int16=int16)
    if act_group_size == group_size:
        act_group_size = 0                   # the same thing, one spelling
    return Scheme(name=name, group_size=group_size, kv=kv, rounding=rounding, act_group_size=act_group_size,
                  act_bits=act_bits, int8_layers=int8_layers)


def parse_int16(parts: tuple[str, ...] | str) -> tuple[str, ...]:
    """"keys" or ("keys",) -> ("keys",), checked, in INT16_PARTS order; "" / () / "none" -> ()."""
    if isinstance(parts, str):
        parts = tuple(p.strip() for p in parts.split(",") if p.strip() and p.strip() != "none")
    unknown = [p for p in parts if p not in INT16_PARTS]
    if unknown:
        raise UsageError(f"--int16: unknown part {unknown[0]!r}",
                         f"choose from {', '.join(INT16_PARTS)} (comma-separated), or none")
    return tuple(p for p in INT16_PARTS if p in parts)
