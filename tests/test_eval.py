"""`edgeslm eval`: the Wilson interval, comparing several schemes in one pass, and --compare."""

import json
import subprocess
import sys

import pytest

from edgeslm.errors import UsageError
from edgeslm.evaluate import (DEFAULT_COMPARE, Variant, compare, compare_many, compare_on_model_text,
                              model_text, parse_variants, variant_engine, wilson_interval)
from edgeslm.reference import FloatEngine

from conftest import shared


@pytest.mark.parametrize("hits,n,lo,hi", [
    (98, 100, 0.92999, 0.99450),      # p = 0.98: the interval is lopsided towards 0.5
    (0, 10, 0.0, 0.27753),            # no hit: still a non-empty interval
    (10, 10, 0.72247, 1.0),
    (11880, 12000, 0.98806, 0.99163),  # 99% at the default 12,000 positions: about +-0.2%
])
def test_wilson_interval(hits, n, lo, hi):
    got = wilson_interval(hits, n)
    assert got == pytest.approx((lo, hi), abs=2e-5)


def test_parse_variants():
    assert parse_variants("q8:rtn, q4:gptq:kv8 ,i8,q8:g16") == [
        Variant("q8", "rtn"), Variant("q4", "gptq", "i8"), Variant("i8", None, "i8"), Variant("q8", None, "f32", 16)]
    assert [v.label() for v in parse_variants(DEFAULT_COMPARE)] == [
        "q8 rtn", "q8 gptq, act int8", "q8 gptq", "q4 rtn, last 2 layers int8", "q4 gptq, every layer int4",
        "q4 gptq, last 2 layers int8", "i8, every activation int8", "i8, int16 ffn", "i8, int16 keys and ffn"]
    assert parse_variants("i8:keys16")[0] == Variant("i8", None, "i8", int16=("keys",))
    assert parse_variants("i8:x8")[0].int16 == () and parse_variants("i8")[0].int16 is None
    assert parse_variants("q8:x8:kv8")[0] == Variant("q8", None, "i8", 32, 0, 8)
    assert parse_variants("q4:gptq:kv8:g16")[0].label() == "q4 gptq, group 16, last 2 layers int8, kv i8"
    assert parse_variants("q4:l1")[0] == Variant("q4", None, "f32", 32, 0, None, 1)
    assert parse_variants("q8:a16")[0] == Variant("q8", None, "f32", 32, 16)
    assert parse_variants("q8:a16")[0].label() == "q8 gptq, act group 16"
    for bad, msg in [("q5", "unknown scheme"), ("q8:round", "unknown option"), ("i8:gptq", "q8 and q4"),
                     ("q8:g3", "group size"), (",", "no scheme"), ("q8:a12", "activation group"),
                     ("i8:a16", "activation group"), ("q4:x16", "16-bit activations"),
                     ("q8:x16:g1024", "overflow"), ("q8:l1", "int8-layers 1 does not apply"),
                     ("q8:keys16", "an i8 option")]:
        with pytest.raises(UsageError, match=msg):
            parse_variants(bad)


def test_compare_many_equals_one_at_a_time(aidreams):
    model, _ = aidreams
    seqs = [[1, 403, 30, 64, 90, 11], [1, 5, 6, 7]]
    engines = [variant_engine(model, v) for v in parse_variants("q8:rtn,q4:rtn")]
    many = compare_many(FloatEngine(model), engines, seqs)
    for acc, eng in zip(many, engines):
        assert acc == compare(FloatEngine(model), eng, seqs)
    assert many[0].tokens == 8 and many[1].kl_mean > many[0].kl_mean


def test_one_pass_over_model_text_equals_two(aidreams):
    """Scoring while the float model writes the text gives the figures of writing, then scoring."""
    model, tok = aidreams
    engines = [variant_engine(model, v) for v in parse_variants("q4:rtn,q8:rtn:kv8")]
    seqs, accs = compare_on_model_text(FloatEngine(model), engines, tok, 200)
    assert seqs == model_text(FloatEngine(model), tok, 200)
    assert any(len(s) < 129 for s in seqs)             # some end early (BOS): that edge is covered
    assert accs == compare_many(FloatEngine(model), engines, seqs)


def test_cli_compare_writes_one_table(tmp_path):
    out = tmp_path / "cmp.json"
    r = subprocess.run([sys.executable, "-m", "edgeslm", "eval", str(shared("aidreams260K/aidreams260K.bin")),
                        "-z", str(shared("aidreams260K/tok512.bin")), "--tokens", "150",
                        "--compare", "q8:rtn,q4:rtn,q4:gptq", "--json", str(out)],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    text = r.stdout.decode()
    assert text.index("mean KL") < text.index("top-1") < text.index("95% interval")
    for label in ("q8 rtn", "q4 rtn", "q4 gptq"):
        assert label in text
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert [row["label"] for row in rows] == ["q8 rtn", "q4 rtn, last 2 layers int8", "q4 gptq, last 2 layers int8"]
    assert rows[2]["rounding"] == "gptq" and "own samples" in rows[2]["hessians"]
    assert [row["int8_layers"] for row in rows] == [0, 2, 2]
    assert len({row["tokens"] for row in rows}) == 1 and rows[0]["tokens"] >= 150
    for row in rows:
        lo, hi = row["top1_wilson95"]
        assert lo <= row["top1_agreement"] <= hi
