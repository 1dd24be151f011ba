"""Issue 15, on the host and the native firmware: every case the issue lists, one test each (the
emulated and PlatformIO cases are in tests/test_reliability_emulated.py). No input gives a
traceback, no interruption leaves a file or a process behind."""

import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeslm import children
from edgeslm.bridge import protocol as P
from edgeslm.errors import ModelFormatError
from edgeslm.fileio import OutputError, write_atomic
from edgeslm.generate import ArithmeticOverflow, generate
from edgeslm.lower.elfsize import ElfError, check_elf
from edgeslm.lower.native import CFLAGS, FIRMWARE, firmware_sources
from edgeslm.model import load_model
from edgeslm.model.ir import make_model
from edgeslm.model.tokenizer import BOS, PromptTooLong
from edgeslm.quant import get_scheme
from edgeslm.quant.golden import golden_engine
from edgeslm.reference import FloatEngine
from edgeslm.sampler import Sampler

from conftest import shared
from firmware_helpers import native_firmware
from reliability_helpers import assert_none_left, new_tag, tagged_env

MODEL, TOK = str(shared("stories260K.bin")), str(shared("tok512.bin"))
TOKENIZER_EXAMPLES = 300


def edgeslm(*args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "edgeslm", *args], capture_output=True, timeout=timeout, env=env)


def refused(r, *words):
    """Exit 2 with an error and a fix naming the problem, never a traceback."""
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 2, (r.returncode, err)
    assert "Traceback" not in err and "error:" in err and "fix:" in err, err
    for w in words:
        assert w in " ".join(err.split()), (w, err)


# ---- the CLI's tracebacks -----------------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["run", "--emulate", "-n", "-5"], ["--steps -5 is negative"]),            # was struct.error
    (["generate", "-t", "nan"], ["--temperature nan"]),                          # was IndexError
    (["generate", "-p", "nan"], ["--topp nan"]),
    (["run", "--emulate", "-p", "2"], ["--topp 2.0 is not in [0, 1]"]),          # was refused by the device only
    (["generate", "-t", "inf"], ["--temperature inf"]),
    (["compile", "--max-seq", "0"], ["--max-seq 0 is outside 1 .. 512"]),        # was the full context, silently
    (["inspect", "--max-seq", "-3"], ["--max-seq -3"]),
])
def test_bad_values_are_refused_where_they_enter(args, words):
    r = edgeslm(*args)
    refused(r, *words)
    assert b"building" not in r.stderr and b"compiling" not in r.stderr


def test_tiny_temperature_is_greedy_not_a_crash():
    """-t 1e-38 made every probability NaN (IndexError in sampler.py; an out-of-bounds read on the
    device). The sampler is total now: logits / T overflow -> the greedy token, its limit."""
    tiny = edgeslm("generate", "--engine", "golden", "-t", "1e-38", "-p", "0.9", "-s", "5", "-n", "40", "--quiet")
    greedy = edgeslm("generate", "--engine", "golden", "-t", "0", "-n", "40", "--quiet")
    assert tiny.returncode == 0, tiny.stderr.decode()
    assert tiny.stdout == greedy.stdout and len(tiny.stdout) > 20


def test_non_utf8_prompt_is_taken_as_bytes(stories):
    """A non-UTF-8 prompt was a UnicodeEncodeError: now its bytes go through byte fallback, as
    run.c takes argv's bytes."""
    prompt = b"Tom \xff\xfe and"
    r = subprocess.run([sys.executable, "-m", "edgeslm", "generate", "-i", prompt, "-t", "0", "-n", "20", "--quiet"],
                       capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    model, tok = stories
    want = generate(FloatEngine(model), tok, prompt, 20, Sampler(0.0, 0.9, 1))
    assert r.stdout == want.text + b"\n" and r.stdout.startswith(b"Tom ")


def test_info_with_a_non_utf8_scheme_is_parsed():
    """An INFO frame with a non-UTF-8 scheme field was a UnicodeDecodeError."""
    body = struct.pack("<BBBBHH", P.PROTOCOL_VERSION, 2, 1, 32, 512, 512) + bytes(8) + struct.pack("<II", 1, 2) + \
        b"q\xff\xfe\0\0\0\0\0" + b"bo\xffard"
    info = P.parse(bytes([P.INFO, 1]) + body)
    assert info.scheme == "q\ufffd\ufffd" and info.board == "bo\ufffdard"


def test_eval_of_a_model_with_a_huge_finite_weight_is_refused(tmp_path):
    """One finite weight of 3e38 was a traceback in eval (and garbage with numpy warnings in
    generate, a firmware that differed from golden): refused at load."""
    data = bytearray(shared("stories260K.bin").read_bytes())
    struct.pack_into("<f", data, 28 + 4 * 1000, 3e38)
    bad = tmp_path / "huge.bin"
    bad.write_bytes(bytes(data))
    for cmd in (["eval", str(bad), "-z", TOK, "--tokens", "20"], ["generate", str(bad), "-z", TOK, "-n", "5"]):
        refused(edgeslm(*cmd), "overflow the float32 arithmetic")


def test_overflow_inside_the_schemes_arithmetic_is_refused(stories):
    """Weights under the load bound that still overflow float32 on the way: the firmware's
    arithmetic (golden, every scheme) is refused at the position it happens, with no numpy
    warning; the float reference keeps run.c's IEEE answer."""
    model, tok = stories
    big = make_model(model.config, {k: v * 1e4 if k.startswith("layers") else v for k, v in model.tensors.items()})
    for name in ("q8", "q4", "f32"):
        with _no_warnings():
            with pytest.raises(ArithmeticOverflow, match="position 0 overflowed float32"):
                generate(golden_engine(big, get_scheme(name, 32, "f32")), tok, "Tom", 5, Sampler(0.0, 0.9, 1))
    assert len(generate(FloatEngine(big), tok, "Tom", 5, Sampler(0.0, 0.9, 1)).tokens) == 5


class _no_warnings:
    def __enter__(self):
        import warnings
        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self._w.__exit__(*exc)


def test_output_path_that_is_a_folder_or_in_a_missing_folder(tmp_path):
    """Was a traceback after the work was done: now refused before any."""
    refused(edgeslm("export-onnx", "-o", str(tmp_path)), "it is a folder")
    refused(edgeslm("eval", "--json", str(tmp_path / "nope" / "q8.json")), "does not exist")
    refused(edgeslm("calibrate", "-o", str(tmp_path / "nope" / "c.json")), "does not exist")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_leaves_nothing_behind(tmp_path, monkeypatch):
    """Ctrl-C during a write left X.tmp: the sibling goes on every exit path, and the old file
    stays whole."""
    out = tmp_path / "q8.json"
    out.write_text("old")

    def interrupted(self, data):
        with open(self, "wb") as f:
            f.write(data[:3])
        raise KeyboardInterrupt
    monkeypatch.setattr("pathlib.Path.write_bytes", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(out, b"new contents")
    assert out.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["q8.json"]
    monkeypatch.undo()
    with pytest.raises(OutputError, match="it is a folder"):
        write_atomic(tmp_path, b"x")
    write_atomic(out, b"new")
    assert out.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["q8.json"]


def test_sigterm_during_a_write_leaves_nothing_behind(tmp_path):
    """SIGTERM unwinds the CLI like an error: the half-written sibling goes, exit 128 + 15."""
    out = tmp_path / "m.onnx"
    script = ("import sys, pathlib, os, signal, time\n"
              "from edgeslm import cli\n"
              "real = pathlib.Path.write_bytes\n"
              "def slow(self, data):\n"
              "    real(self, data[:10]); os.kill(os.getpid(), signal.SIGTERM); time.sleep(30)\n"
              "pathlib.Path.write_bytes = slow\n"
              f"sys.exit(cli.main(['export-onnx', '-o', {str(out)!r}]))\n")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert r.returncode == 128 + signal.SIGTERM, r.stderr.decode()
    assert b"stopped by SIGTERM" in r.stderr and b"Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


# ---- the prompt and the context -----------------------------------------------------------------

def test_a_huge_prompt_is_refused_before_tokenizing(stories, monkeypatch):
    """A 100 KB prompt took ten minutes to be refused (the tokenizer was quadratic): its length
    alone says it cannot fit, and nothing is merged."""
    model, tok = stories
    monkeypatch.setattr(type(tok), "_merge", lambda self, t: pytest.fail("tokenized a prompt that cannot fit"))
    with pytest.raises(PromptTooLong, match="at least 14,287 tokens"):
        generate(FloatEngine(model), tok, "x" * 100_000, 10, Sampler(0.0, 0.9, 1))
    monkeypatch.undo()
    r = edgeslm("generate", "-i", "Once upon a time. " * 5_000, timeout=120)       # 90 KB, end to end
    refused(r, "the context holds 512")


def test_a_long_prompt_that_might_fit_is_tokenized_fast(stories):
    """20 KB took 24 s: the merges run from a heap now (same result, see the property below). A
    prompt short enough that it might fit is tokenized, then refused by its token count."""
    model, tok = stories
    assert len(tok.encode("Once upon a time, there was a little girl named Lily. " * 400)) > 2000
    text = "Once upon a time, there was a little girl named Lily. " * 50     # 2,700 bytes
    ids = tok.encode(text)
    with pytest.raises(PromptTooLong, match=f"the prompt is {len(ids):,} tokens, the context holds 512"):
        tok.encode(text, max_tokens=512)


def _run_c_encode(tok, data: bytes) -> list[int]:
    """run.c's encode as it is written there: rescan every pair after every merge (quadratic)."""
    tokens = [BOS] + ([tok._lookup[b" "]] if data else [])
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        tokens += [tok._lookup[data[i:j]]] if data[i:j] in tok._lookup else [b + 3 for b in data[i:j]]
        i = j
    while True:
        best, best_id, best_idx = np.float32(-1e10), -1, -1
        for k in range(len(tokens) - 1):
            tid = tok._lookup.get(tok.vocab[tokens[k]] + tok.vocab[tokens[k + 1]], -1)
            if tid != -1 and tok.scores[tid] > best:
                best, best_id, best_idx = tok.scores[tid], tid, k
        if best_idx == -1:
            return tokens
        tokens[best_idx:best_idx + 2] = [best_id]


@pytest.fixture(scope="module")
def llama_tok():
    from edgeslm.model.tokenizer import read_tokenizer
    return read_tokenizer(shared("tokenizer.bin"))


@settings(max_examples=TOKENIZER_EXAMPLES, deadline=None, derandomize=True, database=None)
@given(st.one_of(st.text(max_size=80), st.binary(max_size=80),
                 st.text(alphabet="Tom and Lily  ran.\n\té🐉", max_size=120)), st.booleans())
def test_heap_tokenizer_equals_run_c(stories, llama_tok, text, big_vocab):
    tok = llama_tok if big_vocab else stories[1]
    data = text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")
    assert tok.encode(data) == _run_c_encode(tok, data)


# ---- builds: ELF integrity, child processes ----------------------------------------------------

def test_truncated_elf_is_named_not_trusted(tmp_path):
    """`build` died with "not a 32-bit ELF file" on a truncated firmware.elf and never rebuilt
    it. check_elf names what is wrong (the rebuild: test_reliability_emulated.py)."""
    host = tmp_path / "host.out"
    subprocess.run(["gcc", "-x", "c", "-", "-o", str(host)], input=b"int main(void){return 0;}", check=True,
                   capture_output=True)
    with pytest.raises(ElfError, match="not a 32-bit little-endian ELF"):
        check_elf(host)                              # a 64-bit host program is no firmware either
    elf = tmp_path / "m4.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-specs=nosys.specs", "-x", "c", "-",
                    "-o", str(elf)], input=b"int main(void){for(;;){}}", check=True, capture_output=True)
    data = check_elf(elf)
    for cut in (0, 10, 52, len(data) // 2, len(data) - 1):
        bad = tmp_path / f"cut{cut}.elf"
        bad.write_bytes(data[:cut])
        with pytest.raises(ElfError, match="not a whole firmware image"):
            check_elf(bad)


def test_a_killed_parent_takes_its_process_tree_along():
    """kill -9 of `build` left a PlatformIO child blocked forever: every child edgeslm starts
    (children.spawn) dies with it, the whole tree of a build included."""
    tag = new_tag()
    script = ("import sys, time\nfrom edgeslm import children\n"
              "children.spawn([sys.executable, '-c', 'import subprocess, sys, time; "
              "subprocess.Popen([sys.executable, \"-c\", \"import time; time.sleep(300)\"]); "
              "time.sleep(300)'], tree=True)\n"
              "children.spawn([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
              "print('up', flush=True); time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, env=tagged_env(tag))
    assert parent.stdout.readline() == b"up\n"
    deadline = time.monotonic() + 30              # parent, tree guard, its child and grandchild, one
    while len(_tagged(tag)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(_tagged(tag)) == 5, _tagged(tag)
    parent.kill()
    parent.wait(timeout=10)
    assert_none_left(tag)


def _tagged(tag):
    from reliability_helpers import processes_with_tag
    return processes_with_tag(tag)


def test_an_interrupted_run_stops_the_whole_tree():
    tag = new_tag()
    os.environ["EDGESLM_TEST_TAG"] = tag
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            children.run([sys.executable, "-c", "import subprocess, sys, time; "
                          "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)']); time.sleep(300)"],
                         timeout=1.0)
    finally:
        del os.environ["EDGESLM_TEST_TAG"]
    assert_none_left(tag)
    code, out = children.run([sys.executable, "-c", "print('hello'); raise SystemExit(3)"])
    assert (code, out) == (3, "hello\n")


# ---- the native firmware's whole request path under AddressSanitizer and UBSan ----------------

@pytest.fixture(scope="module")
def sanitized(stories, tmp_path_factory):
    """The native firmware built with -fsanitize=address,undefined,float-cast-overflow (a report
    aborts it), from the same generated model code as the other native tests."""
    model, tok = stories
    out = tmp_path_factory.mktemp("asan")
    comp, _ = native_firmware(model, tok, out, "q8")
    exe = out / "firmware_asan"
    srcs = firmware_sources("host") + sorted(comp.gen_dir.glob("*.c"))
    r = subprocess.run(["gcc", *CFLAGS, "-g", "-fsanitize=address,undefined,float-cast-overflow",
                        "-fno-sanitize-recover=all", f"-I{FIRMWARE / 'include'}", f"-I{comp.gen_dir}",
                        "-o", str(exe), *map(str, srcs), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return comp, exe


def test_issue_frames_under_sanitizers(sanitized, stories):
    """The fuzzer's finding (temperature 1e-38, top-p 0.9: sample_topp read before esl_probindex)
    and the other frames of the issue, through the whole request path of the sanitized firmware:
    tokens equal golden, every bad request named, and no sanitizer report."""
    from edgeslm.bridge import Device, ProcessTransport
    from edgeslm.quant.golden import GoldenEngine
    from edgeslm.verify import expected_tokens
    comp, exe = sanitized
    _, tok = stories
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    t = ProcessTransport([str(exe)])
    dev = Device(t, timeout=60)
    try:
        dev.hello()
        for temp, topp in ((1e-38, 0.9), (1e-45, 0.5), (1e30, 1e-6), (3.4e38, 0.9), (0.8, 0.0)):
            got = [m.token for m in dev.generate("Once upon a time", 12, temp, topp, 7) if isinstance(m, P.Token)]
            assert got == expected_tokens(golden, tok, "Once upon a time", 12, temp, topp, 7), (temp, topp)
        for body in (struct.pack("<HffQB", 5, 0.0, 0.9, 1, 1) + b"\x01\x00\x05",
                     struct.pack("<HffQB", 5, 0.0, 0.9, 1, 1) + b"\x05\x00",
                     struct.pack("<HffQB", 5, float("inf"), 0.9, 1, 0) + b"Tom"):
            dev.send(P.GENERATE, body)
            assert dev.receive().name == "BAD_REQUEST"
        dev.t.write(b"\x13\x37" * 300)               # noise, then a host that died mid-generation
        dev.send(P.GENERATE, P.generate_body(400, 0.9, 0.9, 3, "Tom"))
        assert Device(t, timeout=60).hello().vocab_size == 512
    finally:
        t.close()
    assert t.proc.returncode == 0, f"the sanitized firmware exited {t.proc.returncode} (a report aborts it)"


def test_protocol_documents_say_the_same_words():
    """esl_protocol.h and protocol.py describe the protocol in the same numbered words."""
    h = (FIRMWARE / "include" / "esl_protocol.h").read_text()
    comment = h[h.index("/*") + 2:h.index("*/")]
    c_words = " ".join(line.strip().lstrip("*").strip() for line in comment.splitlines()).split()
    py_words = P.__doc__.split()
    norm = lambda ws: [w.replace("ESL_MAX_PAYLOAD", "MAX_PAYLOAD") for w in ws[ws.index("1."):]]
    assert norm(c_words) == norm(py_words)


def test_model_overflow_bound_is_named(stories, tmp_path):
    model, _ = stories
    t = dict(model.tensors)
    t["norm"] = t["norm"].copy()
    t["norm"][3] = 70000.0
    with pytest.raises(ModelFormatError, match=r"tensor norm holds 70000 at \[3\]"):
        make_model(model.config, t, "m")
    assert load_model(MODEL).config.dim == 64
