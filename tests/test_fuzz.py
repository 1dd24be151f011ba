"""The libFuzzer target over the firmware's whole request path (tests/fuzz/fuzz_serve.c), under
AddressSanitizer and UBSan: it builds, every seed frame replays clean, and a short fuzzing pass
finds nothing. `make fuzz` runs it for longer (FUZZ_SECONDS)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))

import fuzz  # noqa: E402


def test_request_path_survives_a_short_fuzzing_pass(tmp_path):
    corpus = tmp_path / "corpus"
    assert fuzz.seeds(corpus) >= 10
    exe = fuzz.build(tmp_path)
    res = fuzz.run(exe, corpus, 15, tmp_path)
    assert res["returncode"] == 0, res["log_tail"]
    assert res["executions"] > 100 and res["frames"] > res["executions"]
    assert not list(tmp_path.glob("crash-*")) and not list(tmp_path.glob("leak-*"))
