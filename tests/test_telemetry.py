"""Telemetry records and `edgeslm report` without a device (the emulated run that writes real
records is tests/test_emulator.py: TestMps2An386.test_run_and_bench_records_make_a_report)."""

import json

import pytest

from edgeslm.cli import main
from edgeslm.lower.boards import load_board, parse_board
from edgeslm.telemetry import RecordError, board_power, read_records


def record(board="mps2_an386", scheme="q8", kernels="dsp", counts=(1000.0, 1100.0, 1200.0), energy=None):
    """A minimal record of schema 1, as telemetry.inference_record writes it."""
    return {
        "schema": 1, "kind": "run", "board": board, "model": {"name": "stories260K.bin"}, "scheme": scheme,
        "kv": "i8", "kernels": kernels, "unit": "instructions", "counts": list(counts), "clock_hz": 25_000_000,
        "build_id": "0000abcd", "tokens_match": True, "emulated": True,
        "time_to_first_token": {"count": counts[0], "seconds": counts[0] / 25e6},
        "tokens_per_s": {"decode": 25e6 / counts[-1], "all": 25e6 / counts[1], "basis": "test"},
        "steps": [{"op": "matmul", "measured": 0.8 * counts[0]}, {"op": "attention", "measured": 0.1 * counts[0]}],
        "memory": {"regions": {"code": {"length": 4096, "planned": {"weights": 2000, "code": 1000},
                                        "image": 2900, "zero": 0},
                               "sram": {"length": 2048, "planned": {"KV cache": 1024, "stack": 512},
                                        "image": 0, "zero": 1536}},
                   "arena_bytes": 256, "kv_cache_bytes": 1024, "scratch_bytes": 64},
        "stack": {"peak_bytes": 300, "reserved_bytes": 512, "method": "painted"},
        "energy": energy,
    }


def write_jsonl(path, recs):
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def test_report_renders_pngs_and_markdown(tmp_path):
    energy = {"estimate": True, "per_token_j": 2e-5, "source": "a datasheet, table 1"}
    f = write_jsonl(tmp_path / "a.jsonl", [record(), record(counts=(900.0, 950.0)),
                                            record(kernels="portable", counts=(2000.0, 2100.0, 2200.0, 2300.0)),
                                            record(board="nicla_voice", scheme="i8", energy=energy)])
    out = tmp_path / "out"
    assert main(["report", str(f), "-o", str(out)]) == 0
    for png in ("cost_per_token", "steps", "memory", "schemes"):
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "summary.md").read_text()
    assert "4 records of 3 configurations" in md
    # the dsp group: 2 records, 5 tokens, mean of every token's count
    assert "| mps2_an386 q8 kvi8 dsp | stories260K.bin | 2 | 5 | yes | 1,030 instructions |" in md
    assert "0.0200 mJ" in md and "a datasheet, table 1" in md and "**estimate**" in md
    assert "300 / 512" in md


def test_runs_of_one_scheme_with_other_options_are_other_configurations(tmp_path):
    from edgeslm.quant import get_scheme
    a16, a8 = get_scheme("q8").options_label(), get_scheme("q8", act_bits=8).options_label()
    assert a16 == "g32 a16 gptq" and a8 == "g32 a8 gptq"
    assert get_scheme("q4").options_label() == "g32 a8 l2 gptq" and get_scheme("f32").options_label() == ""
    f = write_jsonl(tmp_path / "a.jsonl", [{**record(), "scheme_options": a16}, {**record(), "scheme_options": a8},
                                            record()])        # the last: written before the options were
    out = tmp_path / "out"
    assert main(["report", str(f), "-o", str(out)]) == 0
    md = (out / "summary.md").read_text()
    assert "3 records of 3 configurations" in md
    assert "| mps2_an386 q8 kvi8 dsp (g32 a16 gptq) |" in md and "| mps2_an386 q8 kvi8 dsp (g32 a8 gptq) |" in md


def test_records_from_a_folder_and_schema_checks(tmp_path):
    write_jsonl(tmp_path / "one.jsonl", [record()])
    write_jsonl(tmp_path / "two.jsonl", [record(scheme="q4"), record(scheme="f32")])
    assert [r["scheme"] for r in read_records([tmp_path])] == ["q8", "q4", "f32"]
    bad = tmp_path / "bad"
    bad.mkdir()
    with pytest.raises(RecordError, match=r"record schema 99, this edgeslm reads 1"):
        read_records([write_jsonl(bad / "s.jsonl", [{**record(), "schema": 99}])])
    with pytest.raises(RecordError, match=r"x.jsonl:2: not JSON"):
        (bad / "x.jsonl").write_text(json.dumps(record()) + "\n{oops\n")
        read_records([bad / "x.jsonl"])
    with pytest.raises(RecordError, match="record without stack"):
        read_records([write_jsonl(bad / "m.jsonl", [{k: v for k, v in record().items() if k != "stack"}])])
    with pytest.raises(RecordError, match="no records file"):
        read_records([tmp_path / "missing.jsonl"])


def test_record_path_is_refused_before_any_work(tmp_path, capsys):
    assert main(["run", "--emulate", "--record", str(tmp_path)]) == 2
    assert "is a folder" in " ".join(capsys.readouterr().err.split())
    assert main(["bench", "--emulate", "--record", str(tmp_path / "no" / "r.jsonl")]) == 2
    assert "does not exist" in " ".join(capsys.readouterr().err.split())


def test_board_power_is_a_cited_estimate(tmp_path):
    p = board_power(load_board("nicla_voice"))
    assert p["estimate"] is True and p["current_ma"] == 3.7 and p["supply_v"] == 3.0 and "nRF52832" in p["source"]
    assert board_power(load_board("mps2_an386")) == {}          # an FPGA image: no datasheet current
    data = json.loads(open(load_board("nicla_voice").path).read())
    del data["edgeslm"]["power"]["source"]
    f = tmp_path / "b.json"
    f.write_text(json.dumps(data))
    with pytest.raises(RecordError, match="cite it|source"):
        board_power(parse_board("b", data, str(f)))
