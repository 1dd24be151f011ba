"""The llama2.c tokenizer: file format, encode and decode exactly as run.c does them.

File format (little-endian): int32 max_token_length, then for every token:
float32 score, int32 length, `length` bytes. The vocabulary size is not stored; it is the number of
entries, and it must equal the model's vocab_size.

Token ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are the byte-fallback tokens <0x00>..<0xFF>.
"""

from __future__ import annotations

import hashlib
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError, ModelMismatchError

BOS = 1
EOS = 2
_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{1,2})")
# C's isprint() || isspace() in the "C" locale: what run.c's safe_printf lets through as a lone byte.
_PRINTABLE_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(b" \t\n\v\f\r")


@dataclass
class Tokenizer:
    vocab: list[bytes]
    scores: np.ndarray               # float32, one per token
    max_token_length: int
    source: str = ""
    _lookup: dict[bytes, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # run.c bsearches a sorted copy; with duplicate strings the first id is as good as any.
        for i, piece in enumerate(self.vocab):
            self._lookup.setdefault(piece, i)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def identity(self) -> str:
        """sha256 over every token's bytes and score: what an exported model records."""
        h = hashlib.sha256()
        for v in self.vocab:
            h.update(len(v).to_bytes(4, "little") + v)
        h.update(self.scores.astype("<f4").tobytes())
        return h.hexdigest()

    def check_model(self, vocab_size: int, model_source: str = "") -> None:
        if self.vocab_size != vocab_size:
            raise ModelMismatchError(
                f"tokenizer {self.source} has {self.vocab_size} tokens but the model "
                f"{model_source} has vocab_size {vocab_size}",
                "pass the tokenizer that was trained with this model (--tokenizer)")

    def encode(self, text: str | bytes, bos: bool = True, eos: bool = False) -> list[int]:
        """run.c encode(): BOS, dummy-space prefix, UTF-8 codepoints with byte fallback, then
        repeatedly merge the adjacent pair whose merged string has the best score."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        tokens: list[int] = [BOS] if bos else []
        if data:
            tokens.append(self._lookup[b" "])
        i = 0
        while i < len(data):
            # one UTF-8 codepoint: a lead byte plus up to 3 continuation bytes (run.c caps at 4 bytes)
            j = i + 1
            while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
                j += 1
            chunk = data[i:j]
            if chunk in self._lookup:
                tokens.append(self._lookup[chunk])
            else:
                tokens.extend(b + 3 for b in chunk)
            i = j
        while True:
            best_score, best_id, best_idx = np.float32(-1e10), -1, -1
            for k in range(len(tokens) - 1):
                tid = self._lookup.get(self.vocab[tokens[k]] + self.vocab[tokens[k + 1]], -1)
                if tid != -1 and self.scores[tid] > best_score:
                    best_score, best_id, best_idx = self.scores[tid], tid, k
            if best_idx == -1:
                break
            tokens[best_idx:best_idx + 2] = [best_id]
        if eos:
            tokens.append(EOS)
        return tokens

    def decode(self, prev_token: int, token: int) -> bytes:
        """run.c decode(): the piece for `token`, its leading space dropped right after BOS,
        <0xXX> pieces turned into that raw byte."""
        piece = self.vocab[token]
        if prev_token == BOS and piece[:1] == b" ":
            piece = piece[1:]
        m = _BYTE_PIECE.match(piece)
        if m:
            piece = bytes([int(m.group(1), 16)])
        return piece

    @staticmethod
    def printable(piece: bytes) -> bytes:
        """run.c safe_printf(): a lone byte that is neither printable nor whitespace prints nothing
        (so a multi-byte character spelled in byte-fallback tokens is dropped, as run.c drops it);
        a piece stops at its first NUL, as printf("%s") does."""
        piece = piece.split(b"\0", 1)[0]
        if len(piece) == 1 and piece[0] not in _PRINTABLE_BYTES:
            return b""
        return piece

    def decode_all(self, tokens: list[int]) -> bytes:
        """The raw bytes of a token sequence (byte tokens reassembled, so split UTF-8 survives)."""
        out, prev = [], BOS
        for t in tokens:
            if t == BOS:
                prev = t
                continue
            out.append(self.decode(prev, t))
            prev = t
        return b"".join(out)


def read_tokenizer(path: str | Path) -> Tokenizer:
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ModelFormatError(f"cannot read tokenizer file {path}: {e.strerror}") from None
    if len(data) < 4:
        raise ModelFormatError(f"{path}: truncated: not even the 4-byte max_token_length header")
    (max_len,) = struct.unpack_from("<i", data, 0)
    if not 0 < max_len <= 1024:
        raise ModelFormatError(f"{path}: not a llama2.c tokenizer (max_token_length={max_len})",
                               "pass the tokenizer .bin that llama2.c's tokenizer.py exported")
    vocab, scores, pos = [], [], 4
    while pos < len(data):
        if pos + 8 > len(data):
            raise ModelFormatError(f"{path}: truncated inside the entry of token {len(vocab)}")
        score, length = struct.unpack_from("<fi", data, pos)
        pos += 8
        if not 0 <= length <= max_len or pos + length > len(data):
            raise ModelFormatError(
                f"{path}: token {len(vocab)} claims {length} bytes (max_token_length {max_len}, "
                f"{len(data) - pos} bytes left)", "the tokenizer file is corrupt or truncated")
        if not np.isfinite(score):
            raise ModelFormatError(f"{path}: token {len(vocab)} has a non-finite score")
        vocab.append(data[pos:pos + length])
        scores.append(score)
        pos += length
    if len(vocab) < 259 or b" " not in vocab:
        raise ModelFormatError(f"{path}: {len(vocab)} tokens, without the 3 special tokens, 256 byte "
                               "tokens and ' ' that a llama2.c tokenizer has")
    return Tokenizer(vocab=vocab, scores=np.array(scores, dtype=np.float32),
                     max_token_length=max_len, source=path)
