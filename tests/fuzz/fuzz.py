"""Build and run the libFuzzer target over the firmware's request path (tests/fuzz/fuzz_serve.c).

    python tests/fuzz/fuzz.py --seconds 600          (what `make fuzz` runs)

The firmware (runtime + kernels + a generated stories260K q8 model with a 16-position context, so
a GENERATE costs little) is built natively with clang's -fsanitize=fuzzer,address,undefined; the
seed corpus is valid frames of every request type, written with the host's own encoder. A crash,
a sanitizer report or a leak stops the run with a non-zero exit and the input in the work folder.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "host"))

from edgeslm.bridge import protocol as P          # noqa: E402
from edgeslm.lower.native import FIRMWARE, kernel_sources   # noqa: E402

CLANG = ("clang-14", "clang")
MODELS = ROOT.parent / "shared" / "models"


def clang() -> str:
    cc = next((c for c in CLANG if shutil.which(c)), None)
    if cc is None:
        raise SystemExit("clang is missing: apt-get install clang-14 libclang-rt-14-dev (make setup does)")
    return cc


def seeds(out: Path) -> int:
    """Valid frames (and a few multi-frame sequences) as the starting corpus."""
    out.mkdir(parents=True, exist_ok=True)
    gen = lambda *a: P.encode_frame(P.GENERATE, 2, P.generate_body(*a))   # noqa: E731
    frames = {
        "hello": P.encode_frame(P.HELLO, 1),
        "profile": P.encode_frame(P.PROFILE, 3),
        "abort": P.encode_frame(P.ABORT, 4),
        "gen_text": gen(4, 0.0, 0.9, 1, "Tom and Lily"),
        "gen_sampled": gen(6, 0.8, 0.9, 42, "Once"),
        "gen_ids": gen(3, 1.0, 0.5, 7, [1, 300, 301]),
        "gen_profile_each": P.encode_frame(P.GENERATE, 5, P.generate_body(3, 0.0, 0.9, 1, "a", True)),
        "gen_tiny_t": gen(3, 1e-38, 0.9, 9, "x"),
        "unknown_type": P.encode_frame(0x7F, 6, b"zz"),
    }
    frames["sequence"] = frames["hello"] + frames["gen_text"] + frames["profile"] + frames["abort"]
    for name, data in frames.items():
        (out / name).write_bytes(data)
    return len(frames)


def build(work: Path) -> Path:
    """Compile the model for the host build and link the fuzzer; returns the executable."""
    gen = work / "model"
    if not (gen / "gen" / "esl_model.c").is_file():
        subprocess.run([sys.executable, "-m", "edgeslm", "compile", str(MODELS / "stories260K.bin"),
                        "-z", str(MODELS / "tok512.bin"), "--quant", "q8", "--kv", "i8", "--max-seq", "16",
                        "-o", str(gen)], check=True, capture_output=True, cwd=ROOT)
    runtime = [p for p in sorted((FIRMWARE / "runtime").glob("*.c")) if p.name != "main.c"]
    exe = work / "fuzz_serve"
    cmd = [clang(), "-std=c11", "-O1", "-g", "-ffp-contract=off", "-fno-fast-math",
           "-fsanitize=fuzzer,address,undefined", "-fno-sanitize-recover=undefined",
           f"-I{FIRMWARE / 'include'}", f"-I{gen / 'gen'}", "-o", str(exe),
           *map(str, runtime + kernel_sources() + sorted((gen / "gen").glob("*.c"))),
           str(ROOT / "tests" / "fuzz" / "fuzz_serve.c"), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"fuzzer build failed:\n{r.stderr[-3000:]}")
    return exe


def run(exe: Path, corpus: Path, seconds: int, work: Path) -> dict:
    """Fuzz for `seconds` (libFuzzer's budget) on 1 job; returns executions and the exit code."""
    r = subprocess.run([str(exe), str(corpus), f"-max_total_time={seconds}", "-max_len=2048",
                        f"-artifact_prefix={work}/", "-print_final_stats=1"],
                       capture_output=True, text=True, timeout=seconds + 120)
    execs = re.search(r"stat::number_of_executed_units:\s*(\d+)", r.stderr)
    frames = re.search(r"edgeslm_fuzz::frames_delivered:\s*(\d+)", r.stderr)
    return {"returncode": r.returncode, "executions": int(execs.group(1)) if execs else 0,
            "frames": int(frames.group(1)) if frames else 0, "log_tail": r.stderr[-2000:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=600)
    ap.add_argument("--work", default=str(ROOT / "build" / "fuzz"))
    args = ap.parse_args()
    work = Path(args.work)
    corpus = work / "corpus"
    n = seeds(corpus)
    exe = build(work)
    res = run(exe, corpus, args.seconds, work)
    print(f"{res['executions']:,} inputs, {res['frames']:,} frames through the whole request path "
          f"in {args.seconds} s, under ASan + UBSan "
          f"(seed corpus {n} inputs; corpus now {len(list(corpus.iterdir()))} inputs)")
    if res["returncode"] != 0:
        print(res["log_tail"])
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
