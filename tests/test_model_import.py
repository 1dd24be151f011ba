"""llama2.c checkpoint import: the facts of ../shared/models/README.md, the v1/v2 export formats,
and one test per kind of bad file."""

import struct

import numpy as np
import pytest

from edgeslm.errors import ModelFormatError, ModelMismatchError
from edgeslm.model import load_model, load_tokenizer
from edgeslm.reference import FloatEngine

from conftest import shared
from writers import export_v1, export_v2


def test_stories260k_header_facts(stories):
    m, tok = stories
    c = m.config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len) \
        == (64, 172, 5, 8, 4, 512, 512)
    assert c.shared_classifier
    # 264,128 floats in the file, of which 4,096 are the unused freq_cis tables
    assert m.n_params() == 264_128 - 4_096
    assert tok.vocab_size == 512


def test_aidreams_header_facts(aidreams):
    c = aidreams[0].config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_seq_len) \
        == (64, 172, 4, 4, 4, 512, 128)


def test_v1_export_round_trips_exactly(stories, tmp_path):
    m, _ = stories
    p = tmp_path / "v1.bin"
    p.write_bytes(export_v1(m))
    m1 = load_model(p)
    assert m1.config == m.config
    for name, t in m.tensors.items():
        assert np.array_equal(m1.tensors[name], t), name
    assert m1.fingerprint() == m.fingerprint()


def test_v1_unshared_classifier(stories, tmp_path):
    m, _ = stories
    p = tmp_path / "v1u.bin"
    p.write_bytes(export_v1(m, shared=False))
    m1 = load_model(p)
    assert not m1.config.shared_classifier
    assert np.array_equal(m1.tensors["output"], m.tensors["tok_embeddings"])


def test_v2_q80_import_dequantizes_within_half_a_step(stories, tmp_path):
    m, tok = stories
    p = tmp_path / "v2.bin"
    p.write_bytes(export_v2(m))
    m2 = load_model(p)
    for name, t in m.tensors.items():
        if t.ndim == 1:
            assert np.array_equal(m2.tensors[name], t), name
        else:
            step = np.abs(t).max() / 127
            assert np.abs(m2.tensors[name] - t).max() <= step / 2 + 1e-7, name
    # and the Q8_0 model still tells the story (llama2.c's runq prints the same opening)
    from edgeslm.generate import generate
    from edgeslm.sampler import Sampler
    gen = generate(FloatEngine(m2), tok, "", 40, Sampler(0.0, 0.9, 1))
    assert gen.text.startswith(b"Once upon a time")


# ---- bad files: one fault each -------------------------------------------------------------

def _v1(stories):
    return bytearray(export_v1(stories[0]))


def corrupt_cases(stories):
    v0 = bytearray(shared("stories260K.bin").read_bytes())
    v1 = _v1(stories)
    nan_v0 = bytearray(v0)
    struct.pack_into("<f", nan_v0, 28 + 4 * 1000, float("nan"))
    inf_v1 = bytearray(v1)
    struct.pack_into("<f", inf_v1, 256 + 4 * 5000, float("inf"))
    wrong_magic = bytearray(v1)
    wrong_magic[0:4] = b"XXXX"
    wrong_version = bytearray(v1)
    struct.pack_into("<i", wrong_version, 4, 7)
    bad_heads = bytearray(v0)
    struct.pack_into("<i", bad_heads, 12, 7)           # n_heads=7 does not divide dim=64
    huge_v0 = bytearray(v0)                            # finite, but overflows float32 sums (issue 15)
    struct.pack_into("<f", huge_v0, 28 + 4 * 1000, 3e38)
    return {
        "truncated v0": (bytes(v0[:-100]), "truncated"),
        "truncated header": (bytes(v0[:20]), "truncated"),
        "truncated v1": (bytes(v1[:300_000]), "truncated"),
        "extra bytes": (bytes(v0 + b"\0" * 8), "do not add up"),
        "wrong magic": (bytes(wrong_magic), "not a llama2.c checkpoint"),
        "wrong version": (bytes(wrong_version), "version 7 is not supported"),
        "NaN weight": (bytes(nan_v0), "NaN/Inf"),
        "Inf weight": (bytes(inf_v1), "NaN/Inf"),
        "inconsistent heads": (bytes(bad_heads), "n_heads"),
        "empty": (b"", "truncated"),
        "huge finite weight": (bytes(huge_v0), "overflow the float32 arithmetic"),
    }


CASES = ["truncated v0", "truncated header", "truncated v1", "extra bytes", "wrong magic",
         "wrong version", "NaN weight", "Inf weight", "inconsistent heads", "empty", "huge finite weight"]


@pytest.mark.parametrize("case", CASES)
def test_corrupt_model_is_refused_with_a_message(stories, tmp_path, case):
    data, words = corrupt_cases(stories)[case]
    p = tmp_path / "bad.bin"
    p.write_bytes(data)
    with pytest.raises(ModelFormatError) as e:
        load_model(p)
    assert words in str(e.value)
    assert str(p) in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFormatError, match="cannot read model file"):
        load_model(tmp_path / "nope.bin")


def test_tokenizer_for_another_model_is_refused(stories):
    m, _ = stories
    with pytest.raises(ModelMismatchError, match="32000 tokens but the model"):
        load_tokenizer(shared("tokenizer.bin"), m)


@pytest.mark.parametrize("cut", [2, 100, 3000])
def test_truncated_tokenizer_is_refused(tmp_path, cut):
    p = tmp_path / "tok.bin"
    p.write_bytes(shared("tok512.bin").read_bytes()[:cut])
    with pytest.raises(ModelFormatError):
        load_tokenizer(p)


def test_model_file_given_as_tokenizer_is_refused():
    with pytest.raises(ModelFormatError):
        load_tokenizer(shared("stories260K.bin"))
