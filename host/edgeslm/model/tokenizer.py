"""The llama2.c tokenizer: file format, encode and decode exactly as run.c does them.

File format (little-endian): int32 max_token_length, then for every token:
float32 score, int32 length, `length` bytes. The vocabulary size is not stored; it is the number of
entries, and it must equal the model's vocab_size.

Token ids 0, 1, 2 are <unk>, <s> (BOS), </s> (EOS); ids 3..258 are the byte-fallback tokens <0x00>..<0xFF>
(as run.c assumes; a tokenizer converted from another format may name other ids in `byte_ids`, which
the host follows and the firmware refuses).
"""

from __future__ import annotations

import hashlib
import heapq
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelFormatError, ModelMismatchError, UsageError

BOS = 1
EOS = 2
_BYTE_PIECE = re.compile(rb"<0x([0-9A-Fa-f]{1,2})")
# C's isprint() || isspace() in the "C" locale: what run.c's safe_printf lets through as a lone byte.
_PRINTABLE_BYTES = frozenset(range(0x20, 0x7F)) | frozenset(b" \t\n\v\f\r")
_NO_MERGE = float(np.float32(-1e10))    # run.c's best_score start: a merge must score above it


def prompt_bytes(text: str | bytes) -> bytes:
    """A prompt's bytes: UTF-8 for text; bytes as they are (run.c takes argv's raw bytes). A str
    holding bytes that were not UTF-8 (Python's surrogateescape, e.g. from argv) gets them back."""
    if isinstance(text, (bytes, bytearray)):
        return bytes(text)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as e:
        raise UsageError(f"the prompt holds {text[e.start:e.end]!r}, which is not a character",
                         "pass UTF-8 text (or bytes)") from None


class PromptTooLong(UsageError):
    """A prompt with more tokens than the context holds."""


@dataclass
class Tokenizer:
    vocab: list[bytes]
    scores: np.ndarray               # float32, one per token
    max_token_length: int
    source: str = ""
    byte_ids: tuple[int, ...] | None = None     # the id of each byte's <0xXX> token; None: byte + 3
    _lookup: dict[bytes, int] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        # run.c bsearches a sorted copy; with duplicate strings the first id is as good as any.
        for i, piece in enumerate(self.vocab):
            self._lookup.setdefault(piece, i)
        self._bytes = self.byte_ids or tuple(b + 3 for b in range(256))

    def padded_to(self, vocab_size: int) -> "Tokenizer":
        """This tokenizer with empty, never-merged pieces appended up to a model's (padded) vocab_size."""
        extra = vocab_size - self.vocab_size
        if extra <= 0:
            return self
        return Tokenizer(vocab=self.vocab + [b""] * extra,
                         scores=np.concatenate([self.scores, np.full(extra, _NO_MERGE, np.float32)]),
                         max_token_length=self.max_token_length, source=self.source, byte_ids=self.byte_ids)

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

    def encode(self, text: str | bytes, bos: bool = True, eos: bool = False,
               max_tokens: int | None = None) -> list[int]:
        """run.c encode(): BOS, dummy-space prefix, UTF-8 codepoints with byte fallback, then
        repeatedly merge the adjacent pair whose merged string has the best score (the leftmost
        of equal scores; a score must beat -1e10). The merges run from a heap: the same result as
        run.c's rescan after every merge, in O(n log n) instead of O(n^2).

        max_tokens: raise PromptTooLong as soon as the result cannot fit. Every token spells at
        most max_token_length bytes of " " + text, so a text longer than that many tokens can
        spell is refused before any work."""
        data = prompt_bytes(text)
        if max_tokens is not None:
            least = int(bos) + (-(-(len(data) + 1) // self.max_token_length) if data else 0) + int(eos)
            if least > max_tokens:
                raise PromptTooLong(f"the prompt is {len(data):,} bytes: at least {least:,} tokens, and the "
                                    f"context holds {max_tokens:,}", "shorten the prompt")
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
                tokens.extend(self._bytes[b] for b in chunk)
            i = j
        tokens = self._merge(tokens)
        if eos:
            tokens.append(EOS)
        if max_tokens is not None and len(tokens) > max_tokens:
            raise PromptTooLong(f"the prompt is {len(tokens):,} tokens, the context holds {max_tokens:,}",
                                "shorten the prompt")
        return tokens

    def _merge(self, tokens: list[int]) -> list[int]:
        """run.c's merge loop over a linked list: nodes keep their first index, so list order is
        index order and "leftmost pair" is "smallest left index" (the heap's tie-break)."""
        n = len(tokens)
        nxt = list(range(1, n + 1))
        prv = list(range(-1, n - 1))
        alive = [True] * n
        heap: list[tuple[float, int, int, int, int]] = []

        def push(i: int) -> None:
            j = nxt[i]
            if j >= n:
                return
            tid = self._lookup.get(self.vocab[tokens[i]] + self.vocab[tokens[j]], -1)
            if tid != -1 and float(self.scores[tid]) > _NO_MERGE:
                heapq.heappush(heap, (-float(self.scores[tid]), i, tokens[i], tokens[j], tid))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, a, b, tid = heapq.heappop(heap)
            j = nxt[i] if alive[i] else n
            if j >= n or tokens[i] != a or tokens[j] != b:
                continue                   # stale: a neighbour was merged since this was pushed
            tokens[i] = tid
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            if prv[i] >= 0:
                push(prv[i])
            push(i)
        return [t for t, live in zip(tokens, alive) if live]

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
