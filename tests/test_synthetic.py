"""Synthetic checkpoints (edgeslm.model.synthetic): llama2.c's own layout, read back by the importer."""

import numpy as np

from edgeslm.model import load_model
from edgeslm.model.ir import ModelConfig
from edgeslm.model.synthetic import SHAPES, write_synthetic

from conftest import shared


def test_a_synthetic_checkpoint_imports_with_its_shape(tmp_path):
    cfg = ModelConfig(dim=48, hidden_dim=96, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300,
                      max_seq_len=32, shared_classifier=False)
    m = load_model(write_synthetic(tmp_path / "s.bin", cfg, seed=3))
    assert m.config == cfg
    assert m.tensors["layers.1.attention.wk"].shape == (24, 48)        # kv heads x head size, dim
    assert m.tensors["output"].shape == (300, 48)
    assert np.all(m.tensors["norm"] == 1.0)
    assert 0.015 < float(np.std(m.tensors["layers.0.feed_forward.w2"])) < 0.025
    again = load_model(write_synthetic(tmp_path / "t.bin", cfg, seed=3))
    assert again.fingerprint() == m.fingerprint()



def test_the_stories15m_shape_is_llama2c_s():
    c = SHAPES["stories15M"]                # llama2.c README: dim 288, 6 layers, 6 heads, context 256
    assert (c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.max_seq_len, c.vocab_size) == (288, 6, 6, 6, 256, 32000)
    assert c.hidden_dim == 768 and c.shared_classifier


def test_truncated_tokenizer_is_a_tokenizer_of_the_first_tokens(tmp_path):
    from edgeslm.model.synthetic import write_truncated_tokenizer
    from edgeslm.model.tokenizer import read_tokenizer
    src = read_tokenizer(shared("tok512.bin"))
    out = read_tokenizer(write_truncated_tokenizer(shared("tok512.bin"), 320, tmp_path / "tok320.bin"))
    assert out.vocab_size == 320 and b" " in out.vocab
    assert out.vocab[:319] == src.vocab[:319]
    # what it encodes only uses the kept tokens and decodes back to the text
    ids = out.encode("Once upon a time, Lily", bos=False)
    assert max(ids) < 320 and b"".join(out.decode(0, i) for i in ids).strip() == b"Once upon a time, Lily"
