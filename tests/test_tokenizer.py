"""Tokenizer: encode/decode as llama2.c run.c does. The 32K expectations are Meta's Llama 2
sentencepiece encodings, as llama2.c's test.c quotes them (an independent reference)."""

import pytest

from edgeslm.model import load_tokenizer
from edgeslm.model.tokenizer import Tokenizer

from conftest import shared

LLAMA2_ENCODINGS = [
    ("", [1]),
    ("I believe the meaning of life is", [1, 306, 4658, 278, 6593, 310, 2834, 338]),
    ("Simply put, the theory of relativity states that ",
     [1, 3439, 17632, 1925, 29892, 278, 6368, 310, 14215, 537, 5922, 393, 29871]),
    ("A brief message congratulating the team on the launch:\n\n        Hi everyone,\n\n        I just ",
     [1, 319, 11473, 2643, 378, 629, 271, 18099, 278, 3815, 373, 278, 6826, 29901, 13, 13, 4706,
      6324, 14332, 29892, 13, 13, 4706, 306, 925, 29871]),
    ("Translate English to French:\n\n        sea otter => loutre de mer\n        peppermint => "
     "menthe poivrée\n        plush girafe => girafe peluche\n        cheese =>",
     [1, 4103, 9632, 4223, 304, 5176, 29901, 13, 13, 4706, 7205, 4932, 357, 1149, 301, 449, 276,
      316, 2778, 13, 4706, 1236, 407, 837, 524, 1149, 6042, 354, 772, 440, 29878, 1318, 13, 4706,
      715, 1878, 330, 3055, 1725, 1149, 330, 3055, 1725, 4639, 28754, 13, 4706, 923, 968, 1149]),
]


@pytest.fixture(scope="module")
def llama_tok() -> Tokenizer:
    return load_tokenizer(shared("tokenizer.bin"))


@pytest.mark.parametrize("text,expected", LLAMA2_ENCODINGS)
def test_llama2_32k_encodings(llama_tok, text, expected):
    assert llama_tok.encode(text, bos=True) == expected


def test_bos_dummy_prefix_and_eos(stories):
    tok = stories[1]
    ids = tok.encode("Tom", bos=True, eos=True)
    assert ids[0] == 1 and ids[-1] == 2
    assert tok.vocab[ids[1]].startswith(b" ")          # the dummy space is merged into " Tom"
    assert tok.encode("", bos=False) == []


def test_byte_fallback_and_split_utf8(stories):
    tok = stories[1]
    text = "Lily saw a 🐉."                              # no dragon in a 512-token vocab
    ids = tok.encode(text)
    dragon = "🐉".encode()
    assert [t - 3 for t in ids if 3 <= t < 259][-4:] == list(dragon)
    # reassembling the raw pieces gives the text back, the dragon's 4 bytes across 4 tokens
    # (the dummy-prefix space is dropped after BOS, as run.c does)
    assert tok.decode_all(ids).decode() == text
    # ...but run.c's safe_printf drops lone non-printable bytes, so run.c prints no dragon
    printed = b"".join(tok.printable(tok.decode(a, b)) for a, b in zip(ids, ids[1:]))
    assert printed == b"Lily saw a ."


def test_leading_space_dropped_only_after_bos(stories):
    tok = stories[1]
    ids = tok.encode("Lily and Lily")
    assert tok.vocab[ids[1]] == b" Lily" and ids[1] == ids[3]
    assert tok.decode(1, ids[1]) == b"Lily"
    assert tok.decode(ids[2], ids[3]) == b" Lily"


def test_byte_piece_decodes_to_the_byte(stories):
    tok = stories[1]
    assert tok.decode(5, 3 + 0x0A) == b"\n"
    assert tok.printable(b"\x07") == b""
    assert tok.printable(b"\t") == b"\t"
