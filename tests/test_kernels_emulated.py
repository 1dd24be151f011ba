"""Verification tier 2, kernel by kernel, on the emulated boards: every kernel variant against its
golden function at tolerance zero. For each board the kernel-check firmware (tests/c/kernel_check.c
+ the vectors of tests/kernel_vectors.py) is built with the board's own compiler, flags and ISA
variant (the DSP branch on the Cortex-M4F and M7, the portable branch soft-float on the M3 and in
the ARMv6-M build of mps2_an385_m0; the vectors do not fit the micro:bit's 16 KB of RAM), run
under QEMU, and every case's output bytes are compared with golden's. The disassembly proves which
branch ran. The same firmware is also built natively (the portable branch on the host's gcc).

Each case also runs with exactly the scratch its KernelSpec rule grants, with guard bytes after it
and after its outputs: a kernel writing outside them fails here."""

import re
import shutil
import subprocess
import time

import numpy as np
import pytest

from edgeslm.lower.boards import load_board
from edgeslm.lower.native import CFLAGS, FIRMWARE, kernel_sources

from board_firmware import FIRMWARE_CFLAGS, link_script
from kernel_vectors import Case, build_cases, write_header

TESTS = FIRMWARE.parent / "tests"
BOARDS = ["mps2_an386", "mps2_an500", "mps2_an385", "mps2_an505", "mps3_an547", "mps2_an385_m0"]
QEMU_TIMEOUT = 60.0




@pytest.fixture(scope="module")
def vectors():
    """(cases, header declarations): generated once per module."""
    return build_cases()


@pytest.fixture(scope="module")
def toolchain():
    for tool, pkg in (("qemu-system-arm", "qemu-system-arm"),
                      ("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                      ("arm-none-eabi-objdump", "binutils-arm-none-eabi")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {pkg} (.ci/run installs it)")


def scratch_rule(board, variant):
    """The scratch the planner would grant each case: its kernel's KernelSpec rule, as resolved for
    this core and variant (0 for the helpers, which take none)."""
    def grant(case: Case) -> int:
        if case.step is None:
            return 0
        return board.target.resolve(case.step, board.core, variant).scratch(case.step, case.max_seq)
    return grant


def compare(stream: bytes, cases, where: str) -> None:
    """Header (index, bytes, guards), then the outputs, per case; tolerance zero."""
    at = 0
    for i, case in enumerate(cases):
        want = case.expected
        head = np.frombuffer(stream[at:at + 12], "<u4")
        assert head.size == 3, f"{where}: the output ends before case {i} ({case.name}): {len(stream)} bytes"
        assert head[0] == i, f"{where}: case {i} ({case.name}): the stream is out of step (index {head[0]})"
        assert head[1] == len(want), f"{where}: {case.name}: C sent {head[1]} bytes, golden has {len(want)}"
        assert head[2] == 0, (f"{where}: {case.name}: the kernel wrote past its "
                              + " and ".join(w for b, w in ((1, "outputs"), (2, "scratch grant")) if head[2] & b))
        at += 12
        for label, g in case.parts:
            g = np.ascontiguousarray(g).reshape(-1)
            c = np.frombuffer(stream[at:at + g.nbytes], g.dtype)
            at += g.nbytes
            bits = f"u{g.itemsize}"
            diff = np.nonzero(c.view(bits) != g.view(bits))[0]
            if diff.size:
                j = int(diff[0])
                raise AssertionError(
                    f"{where}: {case.name}: {label}: {diff.size} of {g.size} values differ, first at index {j}: "
                    f"C {c[j]!s} (0x{int(c.view(bits)[j]):0{2 * g.itemsize}x}), "
                    f"golden {g[j]!s} (0x{int(g.view(bits)[j]):0{2 * g.itemsize}x})")
    assert at == len(stream), f"{where}: {len(stream) - at} bytes after the last case"


def function_disassembly(dis: str, name: str, depth: int = 0) -> str:
    """One function's lines from `objdump -d` output, and (depth > 0) those of the functions it
    calls with BL, that deep (a kernel's static helpers the compiler kept out of line)."""
    start = dis.find(f"<{name}>:\n")
    assert start >= 0, f"no function {name} in the ELF"
    end = dis.find("\n\n", start)
    text = dis[start:end if end >= 0 else len(dis)]
    if depth:
        for callee in sorted(set(re.findall(r"\bbl\s+[0-9a-f]+ <([\w.]+)>", text)) - {name}):
            text += "\n" + function_disassembly(dis, callee, depth - 1)
    return text


def run_qemu(board, elf, out, where: str) -> float:
    emu = board.emulator
    cmd = [emu["binary"], "-M", emu["machine"], "-display", "none", "-monitor", "none",
           "-serial", f"file:{out}", "-kernel", str(elf), "-semihosting-config", "enable=on,target=native",
           "-icount", f"shift={emu.get('icount_shift', 7)},sleep=off"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        log, _ = proc.communicate(timeout=QEMU_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()                                 # this QEMU only, by its process
        proc.communicate(timeout=10)
        pytest.fail(f"{where}: the kernel check did not finish within {QEMU_TIMEOUT:g} s (killed QEMU)")
    assert proc.returncode == 0, (f"{where}: QEMU exited {proc.returncode} (1: the firmware faulted): "
                                  f"{log.decode(errors='replace')[-400:]}")
    return time.monotonic() - t0


@pytest.mark.parametrize("board_id", BOARDS)
def test_every_kernel_on_the_emulated_board_equals_golden(board_id, vectors, toolchain, tmp_path):
    board = load_board(board_id)
    target, variant = board.target, board.kernel_variant
    where = f"{board_id} ({board.core.id}, {variant} kernels)"
    cases, decls = vectors
    write_header(cases, decls, tmp_path / "kernel_cases.h", scratch_rule(board, variant))
    (tmp_path / "link.ld").write_text(link_script(board))
    flags = target.flags(board.core)
    console = {"ESL_CONSOLE_BASE": f"{int(str(board.console['base']), 0):#x}u"} if "base" in board.console else {}
    defines = [f"-D{k}={v}" for k, v in {"ESL_TARGET": 1, **target.defines(variant), **console}.items()]
    srcs = kernel_sources() + sorted((FIRMWARE / board.arch_dir).glob("*.c")) + \
        sorted((FIRMWARE / "ports" / board.port).glob("*.c")) + [TESTS / "c" / "kernel_check.c"]
    elf = tmp_path / "kernel_check.elf"
    t0 = time.monotonic()
    r = subprocess.run([target.toolchain_prefix + "gcc", *flags, *FIRMWARE_CFLAGS, *defines,
                        f"-I{FIRMWARE / 'include'}", f"-I{tmp_path}", *map(str, srcs),
                        *target.link_flags, f"-T{tmp_path / 'link.ld'}", "-o", str(elf),
                        *[f"-l{lib}" for lib in target.libs]], capture_output=True, text=True)
    assert r.returncode == 0, f"{where}: the kernel check did not build:\n{r.stderr[-4000:]}"
    built = time.monotonic() - t0

    # Which branch the build holds: the DSP one on the DSP cores, the FPU where the board has one.
    dis = subprocess.run([target.toolchain_prefix + "objdump", "-d", "--no-show-raw-insn", str(elf)],
                         capture_output=True, text=True, check=True).stdout
    int8_matmuls = {name: function_disassembly(dis, name, depth=2) for name in ("esl_matmul_w8f", "esl_matmul_s8")}
    if variant == "dsp":
        for name, fn in int8_matmuls.items():
            assert "smlad" in fn and "sxtb16" in fn, f"{where}: {name} has no SMLAD/SXTB16"
    elif variant == "mve":                    # binutils 2.40 does not name MVE instructions: the ELF
        attrs = subprocess.run([target.toolchain_prefix + "readelf", "-A", str(elf)], capture_output=True,
                               text=True, check=True).stdout         # says MVE, and w8f is not DSP code
        assert "Tag_MVE_arch: MVE Integer only" in attrs, f"{where}: not an integer-MVE build"
        for name, fn in int8_matmuls.items():
            assert "smlad" not in fn and "sxtb16" not in fn, f"{where}: {name} runs its DSP branch"
    else:
        assert "smlad" not in dis and "sxtb16" not in dis, f"{where}: DSP instructions in a {variant} build"
    if variant in ("dsp", "mve") and board.core.fpu:   # attention_f32's FPU assembly (pairs of heads of 8)
        assert "<esl_scores8x2_vfp" in dis and "<esl_values8x2_vfp" in dis, \
            f"{where}: attention_f32 without its VLDM branch"
        assert "vmov\ts0, s1, " in function_disassembly(dis, "esl_attention_f32"), \
            f"{where}: attention_f32 without its exp assembly"
    if variant in ("dsp", "mve"):              # attention_kv8's integer dot products and weighted sums
        assert "smlad" in function_disassembly(dis, "esl_attention_kv8") and "<esl_kv8_sum4x2>:" in dis, \
            f"{where}: attention_kv8 without its DSP branch"
    fpu = "vmul.f32" in function_disassembly(dis, "esl_matmul_f32")
    assert fpu == bool(board.core.fpu), f"{where}: FPU instructions {'missing' if board.core.fpu else 'present'}"
    if not board.core.fpu:
        assert not any(f"\tv{op}" in dis for op in ("add.f32", "mul.f32", "div.f32", "sqrt.f32")), \
            f"{where}: floating-point instructions in a soft-float build"

    out = tmp_path / "uart.bin"
    ran = run_qemu(board, elf, out, where)
    compare(out.read_bytes(), cases, where)
    print(f"{where}: {len(cases)} cases, build {built:.1f} s, QEMU {ran:.1f} s")


def test_every_kernel_natively_equals_golden(vectors, tmp_path):
    """The same firmware, portable branches, built by the host's gcc with the native flags."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is missing: apt-get install gcc")
    board = load_board("mps2_an385")                 # any core: the portable rules
    cases, decls = vectors
    write_header(cases, decls, tmp_path / "kernel_cases.h", scratch_rule(board, "portable"))
    exe = tmp_path / "kernel_check"
    srcs = kernel_sources() + [FIRMWARE / "ports" / "host" / "port.c", TESTS / "c" / "kernel_check.c"]
    r = subprocess.run(["gcc", *CFLAGS, f"-I{FIRMWARE / 'include'}", f"-I{tmp_path}", "-o", str(exe),
                        *map(str, srcs), "-lm"], capture_output=True, text=True)
    assert r.returncode == 0, f"native: the kernel check did not build:\n{r.stderr[-4000:]}"
    run = subprocess.run([str(exe)], stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    assert run.returncode == 0, f"native: the kernel check exited {run.returncode}"
    compare(run.stdout, cases, "native (portable)")
