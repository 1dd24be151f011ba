"""Hugging Face Llama checkpoints (config.json + safetensors + tokenizer.json) against the independent
oracle, transformers itself: small random LlamaForCausalLM models saved with save_pretrained, their
logits and greedy tokens; tokenizer.json files made with the tokenizers library the way
transformers converts sentencepiece tokenizers; one test per kind of refused input. No downloads."""

import json
import shutil

import numpy as np
import pytest

from edgeslm.errors import ModelFormatError
from edgeslm.model import load_model, load_tokenizer
from edgeslm.reference import FloatEngine

torch = pytest.importorskip("torch", reason="torch is a dev dependency: pip install -e '.[dev]'")
transformers = pytest.importorskip("transformers", reason="transformers is a dev dependency")
tokenizers = pytest.importorskip("tokenizers", reason="tokenizers is a dev dependency")

# Several shapes: GQA and MHA, tied and untied, odd sizes, rope_theta != 10000, fp32/bf16, sharded.
SHAPES = {
    "gqa6x2-untied-theta500": dict(hidden_size=48, intermediate_size=100, num_hidden_layers=2,
                                   num_attention_heads=6, num_key_value_heads=2, vocab_size=300,
                                   rope_theta=500.0, tie_word_embeddings=False),
    "mha4-tied": dict(hidden_size=32, intermediate_size=75, num_hidden_layers=1, num_attention_heads=4,
                      num_key_value_heads=4, vocab_size=261, tie_word_embeddings=True, rms_norm_eps=1e-5),
    "gqa5x1-odd-bf16-sharded": dict(hidden_size=40, intermediate_size=93, num_hidden_layers=3,
                                    num_attention_heads=5, num_key_value_heads=1, vocab_size=317,
                                    rope_theta=1e6, tie_word_embeddings=False),
}
PROMPT = [1, 5, 17, 200, 3, 99, 42, 250]


def random_llama(seed: int = 0, **kw):
    """A LlamaForCausalLM with weights large enough that its logits, and so its greedy tokens, are
    well separated (the default 0.02 init makes every logit nearly equal)."""
    cfg = transformers.LlamaConfig(max_position_embeddings=64, initializer_range=0.25, **kw)
    torch.manual_seed(seed)
    m = transformers.LlamaForCausalLM(cfg).eval()
    with torch.no_grad():
        for name, p in m.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    return m


def save(net, d, name: str):
    if "bf16" in name:
        net = net.to(torch.bfloat16)
    net.save_pretrained(d, **({"max_shard_size": "20KB"} if "sharded" in name else {}))
    if "bf16" in name:        # the oracle: the same bf16 weights, run in float32
        net = transformers.LlamaForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    return net


def hf_logits(net, tokens):
    with torch.no_grad():
        return net(torch.tensor([tokens])).logits[0].numpy()


@pytest.mark.parametrize("name", list(SHAPES))
def test_checkpoint_matches_transformers(tmp_path, name):
    kw = SHAPES[name]
    net = save(random_llama(**kw), tmp_path, name)
    if "sharded" in name:
        assert (tmp_path / "model.safetensors.index.json").is_file()
    m = load_model(tmp_path)
    c = m.config
    assert (c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size) == \
        (kw["hidden_size"], kw["intermediate_size"], kw["num_hidden_layers"], kw["num_attention_heads"],
         kw["num_key_value_heads"], kw["vocab_size"])
    assert c.shared_classifier == kw["tie_word_embeddings"]
    assert c.rope_theta == kw.get("rope_theta", 10000.0) and c.norm_eps == kw.get("rms_norm_eps", 1e-6)
    assert m.meta["tensor_sources"]["layers.0.attention.wk"].startswith("model.layers.0.self_attn.k_proj.weight")
    # logits at every position of a prompt
    ref = hf_logits(net, PROMPT)
    eng = FloatEngine(m)
    got = np.stack([eng.forward(t, i) for i, t in enumerate(PROMPT)])
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    # greedy continuation: the same tokens
    seq, ours = list(PROMPT), []
    for i in range(len(PROMPT), len(PROMPT) + 8):
        seq.append(int(np.argmax(hf_logits(net, seq)[-1])))
        ours.append(int(np.argmax(got[-1])))
        got = eng.forward(ours[-1], i)[None]
    assert ours == seq[len(PROMPT):]


# ---------------------------------------------------------------- refused checkpoints

@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("hf") / "base"
    random_llama(**SHAPES["mha4-tied"]).save_pretrained(d)
    return d


def _edit_config(d, **changes):
    cfg = json.loads((d / "config.json").read_text())
    cfg.update(changes)
    (d / "config.json").write_text(json.dumps(cfg))


FAULTS = {  # one fault per case: what to change, what the error must name
    "rope-scaling": (lambda d: _edit_config(d, rope_scaling={"rope_type": "llama3", "factor": 8.0}),
                     r"rope_scaling is .*llama3.*no frequency scaling"),
    "attention-bias": (lambda d: _edit_config(d, attention_bias=True), r"attention_bias is true"),
    "model-type": (lambda d: _edit_config(d, model_type="qwen2"), r"model_type is 'qwen2'"),
    "gelu": (lambda d: _edit_config(d, hidden_act="gelu"), r"hidden_act is \"gelu\""),
    "head-dim": (lambda d: _edit_config(d, head_dim=16), r"head_dim is 16"),
    "untied-but-no-head": (lambda d: _edit_config(d, tie_word_embeddings=False), r"no tensor lm_head.weight"),
    "kv-heads": (lambda d: _edit_config(d, num_key_value_heads=3), r"inconsistent heads"),
    "no-safetensors": (lambda d: (d / "model.safetensors").rename(d / "pytorch_model.bin"),
                       r"no model.safetensors.*pytorch_model.bin"),
    "truncated": (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-100]),
                  r"claims bytes"),
    "not-json": (lambda d: (d / "config.json").write_text("{"), r"not readable JSON"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_refused_checkpoint_names_the_field(base_dir, tmp_path, fault):
    d = tmp_path / "m"
    shutil.copytree(base_dir, d)
    change, message = FAULTS[fault]
    change(d)
    with pytest.raises(ModelFormatError, match=message):
        load_model(d)


# ---------------------------------------------------------------- tokenizer.json

CORPUS = ["Once upon a time there was a little girl named Lily.",
          "She liked to play outside in the sun with her dog.",
          "One day, the dog found a big red ball under the tree!",
          "\"Hello,\" said Tom. \"Do you want to play?\" They played all day."] * 4
TEXTS = ["", "a", "Hello world", "Once upon a time", "  two  spaces ", "the dog's ball, 42 times!",
         "Lily and Tom played", "tab\there\nnewline", "naïve café ü", "日本語 ok", "emoji 🙂 x",
         "ththththe", "aaaaaaaa", "playedplayedplayed", " leading", "trailing "]


def spm_style_tokenizer_json(path, n_pieces: int = 120, bytes_last: bool = False):
    """A tokenizer.json as transformers' LlamaConverter writes one from a sentencepiece model:
    <unk> <s> </s>, the 256 byte tokens, then pieces with falling scores; merges from
    transformers' own generate_merges. The pieces are learned by the tokenizers library's trainer."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers.convert_slow_tokenizer import generate_merges
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.Metaspace()
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=n_pieces, show_progress=False))
    learned = sorted(t.get_vocab().items(), key=lambda kv: kv[1])
    byte_pieces = [f"<0x{b:02X}>" for b in range(256)]
    learned = [p for p, _ in learned]
    pieces = ["<unk>", "<s>", "</s>"] + (learned + byte_pieces if bytes_last else byte_pieces + learned)
    vocab = {p: i for i, p in enumerate(pieces)}
    scores = {p: -float(i) for i, p in enumerate(learned)}
    merges = generate_merges(vocab, scores)
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.add_special_tokens([tokenizers.AddedToken(s, special=True, normalized=False) for s in pieces[:3]])
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.save(str(path))
    return tok


def test_tokenizer_json_encodes_as_hf_does(tmp_path):
    hf = spm_style_tokenizer_json(tmp_path / "tokenizer.json")
    tok = load_tokenizer(tmp_path)                      # the directory finds tokenizer.json
    assert tok.vocab_size == hf.get_vocab_size() and tok.byte_ids is None
    for text in TEXTS:
        want = hf.encode(text).ids
        if not text:
            want = [1]                                   # HF adds no BOS to an empty text; run.c does
        assert tok.encode(text) == want, text
        assert tok.decode_all(want).decode() == hf.decode(want, skip_special_tokens=True), text


def test_byte_tokens_elsewhere_work_on_the_host_and_the_firmware_refuses_them(tmp_path):
    from edgeslm.errors import EdgeslmError
    from edgeslm.lower.codegen import vocab_tables
    hf = spm_style_tokenizer_json(tmp_path / "tokenizer.json", bytes_last=True)
    tok = load_tokenizer(tmp_path / "tokenizer.json")
    assert tok.byte_ids is not None and tok.byte_ids[0] == hf.token_to_id("<0x00>")
    for text in TEXTS[1:]:
        assert tok.encode(text) == hf.encode(text).ids, text
    with pytest.raises(EdgeslmError, match=r"byte-fallback tokens must be ids 3..258"):
        vocab_tables(tok)


def test_tokenizer_pads_to_the_model_vocab(tmp_path):
    spm_style_tokenizer_json(tmp_path / "tokenizer.json", n_pieces=100)
    random_llama(**{**SHAPES["mha4-tied"], "vocab_size": 400}).save_pretrained(tmp_path)
    m = load_model(tmp_path)                             # vocab 400 > the tokenizer's 359
    tok = load_tokenizer(tmp_path / "tokenizer.json", m)
    assert tok.vocab_size == m.config.vocab_size and tok.vocab[-1] == b""
    assert tok.encode("Hello") == load_tokenizer(tmp_path / "tokenizer.json").encode("Hello")


def _byte_level(path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel()
    t.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300, show_progress=False,
                                                      special_tokens=["<unk>", "<s>", "</s>"]))
    t.save(str(path))


def _edit_tokenizer(path, edit):
    spm_style_tokenizer_json(path)
    tj = json.loads(path.read_text())
    edit(tj)
    path.write_text(json.dumps(tj))


def _drop_a_merge(tj):          # a piece made by merges from one split, not from another
    pairs = [x if isinstance(x, list) else x.split(" ") for x in tj["model"]["merges"]]
    made = [a + b for a, b in pairs]
    i = next(k for k in range(1, len(made)) if made[k] == made[k - 1])
    tj["model"]["merges"] = tj["model"]["merges"][:i] + tj["model"]["merges"][i + 1:]


TOKENIZER_FAULTS = {
    "byte-level": (_byte_level, r"byte-level \(GPT-2 style\)"),
    "nfkc": (lambda p: _edit_tokenizer(p, lambda tj: tj.update(normalizer={"type": "NFKC"})), r"normalizer NFKC"),
    "no-byte-token": (lambda p: _edit_tokenizer(p, lambda tj: tj["model"]["vocab"].update(
        {"<0x41>x": tj["model"]["vocab"].pop("<0x41>")})), r"no byte-fallback token <0x41>"),
    "bos-not-special": (lambda p: _edit_tokenizer(p, lambda tj: tj.update(
        added_tokens=[a for a in tj["added_tokens"] if a["id"] != 1])), r"id 1 is '<s>', not a special token"),
    "merge-missing": (lambda p: _edit_tokenizer(p, _drop_a_merge), r"but not from .* which are pieces too"),
    "unigram": (lambda p: _edit_tokenizer(p, lambda tj: tj["model"].update(type="Unigram")), r"model.type is 'Unigram'"),
}


@pytest.mark.parametrize("fault", list(TOKENIZER_FAULTS))
def test_refused_tokenizer_names_the_reason(tmp_path, fault):
    make, message = TOKENIZER_FAULTS[fault]
    make(tmp_path / "tokenizer.json")
    with pytest.raises(ModelFormatError, match=message):
        load_tokenizer(tmp_path / "tokenizer.json")


# ---------------------------------------------------------------- the whole way, on an emulated board

def test_hf_directory_runs_on_the_emulated_board_equal_to_golden(tmp_path):
    """`edgeslm run DIR`: the checkpoint and the tokenizer.json beside it (found without -z), q8 on
    the MPS2-AN386 under QEMU; `edgeslm inspect DIR` says how it was read."""
    import shutil
    import subprocess
    import sys

    from reliability_helpers import assert_none_left, new_tag, tagged_env
    if shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None:
        pytest.fail("qemu-system-arm or arm-none-eabi-gcc is missing (.ci/run installs them)")
    spm_style_tokenizer_json(tmp_path / "tokenizer.json")                      # 379 pieces
    random_llama(**{**SHAPES["gqa6x2-untied-theta500"], "vocab_size": 400}).save_pretrained(tmp_path)
    tag = new_tag()
    r = subprocess.run([sys.executable, "-m", "edgeslm", "run", str(tmp_path), "--emulate",
                        "--board", "mps2_an386", "--quant", "q8", "--prompt", "Once upon a time", "--steps", "12"],
                       capture_output=True, timeout=600, env=tagged_env(tag))
    assert_none_left(tag)
    assert r.returncode == 0, r.stderr.decode()
    assert b"all 12 tokens equal the golden model's" in r.stderr
    assert r.stdout.startswith(b"Once upon a time")
    r = subprocess.run([sys.executable, "-m", "edgeslm", "inspect", str(tmp_path)], capture_output=True, timeout=120,
                       env={**tagged_env(tag), "COLUMNS": "200"})
    assert r.returncode == 0, r.stderr.decode()
    out = r.stdout.decode()
    assert "rotate_half" in out and "lm_head.weight" in out and "where each tensor came from" in out
