"""Issue 15 on the emulated boards and the PlatformIO build: signals and kill -9 leave no QEMU and
no PlatformIO behind, a truncated firmware.elf is rebuilt, two configurations build at once, a
board an earlier host left generating (or line noise) is resynchronised, the sampling that wedged
the board gives golden's tokens, a HardFault is reported with the function it hit, and a stalled
board is named as the emulator it is. Every test that starts QEMU proves no process of it is left:
each tags its processes through their environment (reliability_helpers) and looks for the tag.

One module, so pytest-xdist (--dist loadscope) runs these one after another on one worker; other
workers' builds of the same boards are kept apart by the build locks this issue added."""

import os
import select
import shutil
import signal
import subprocess
import sys
import time

import pytest

from edgeslm.bridge import Device, DeviceError
from edgeslm.bridge import protocol as P
from edgeslm.emulator import Emulator
from edgeslm.lower.boards import load_board
from edgeslm.lower.compile import PROJECT_DIR, build_dir, build_firmware, compile_model, config_lock, snapshot_elf
from edgeslm.lower.elfsize import check_elf
from edgeslm.lower.native import FIRMWARE
from edgeslm.quant import get_scheme
from edgeslm.quant.golden import GoldenEngine
from edgeslm.verify import expected_tokens

from board_firmware import FIRMWARE_CFLAGS, link_script
from reliability_helpers import TAG, assert_none_left, new_tag, processes_with_tag, tagged_env

TESTS = FIRMWARE.parent / "tests"
BUILD_TIMEOUT = 600


@pytest.fixture(scope="module", autouse=True)
def toolchain():
    for tool, pkg in (("qemu-system-arm", "qemu-system-arm"), ("arm-none-eabi-gcc", "gcc-arm-none-eabi")):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: apt-get install {pkg} (.ci/run installs it)")


def cli(*args, tag: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeslm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=tagged_env(tag), **kw)


def wait_for(what, timeout: float, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = what()
        if got:
            return got
        time.sleep(every)
    return None


@pytest.fixture
def tag(monkeypatch):
    """A tag for this test's processes, also in our own environment (QEMU started in-process
    inherits it); afterwards, none of them may be left."""
    t = new_tag()
    monkeypatch.setenv(TAG, t)
    yield t
    assert_none_left(t)


# ---- signals and kill -9 --------------------------------------------------------------------

def _story_started(proc: subprocess.Popen, timeout: float = BUILD_TIMEOUT) -> bytes:
    """The first bytes of the story on stdout: QEMU is up and generating."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "no story within the timeout"
    out = os.read(proc.stdout.fileno(), 64)
    assert out, proc.stderr.read().decode(errors="replace")
    return out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["TERM", "HUP", "INT"])
def test_signal_to_run_stops_the_emulator(tag, sig):
    """SIGTERM or SIGHUP to `edgeslm run` left QEMU running (re-parented to init)."""
    proc = cli("run", "--emulate", "-n", "400", "-i", "Once upon a time", tag=tag)
    try:
        assert _story_started(proc).startswith(b"Once")
        assert any("qemu-system-arm" in cmd for _, cmd in processes_with_tag(tag))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 128 + sig, err.decode(errors="replace")
    assert b"Traceback" not in err
    assert_none_left(tag)


def test_kill_9_of_run_takes_the_emulator_along(tag):
    """SIGKILL cannot be caught: Linux kills QEMU when edgeslm dies (PR_SET_PDEATHSIG)."""
    proc = cli("run", "--emulate", "-n", "400", "-i", "Once upon a time", tag=tag)
    try:
        _story_started(proc)
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert_none_left(tag)


def test_kill_9_of_build_leaves_no_platformio(tag):
    """kill -9 of `build` left a PlatformIO child blocked forever (its output pipe's reader was
    gone); now the whole build's process group dies with it, and the next build succeeds."""
    board = "mps2_an385"
    with config_lock(build_dir(board)):
        shutil.rmtree(PROJECT_DIR / "build" / "pio" / board / "src", ignore_errors=True)   # a real compile
    proc = cli("build", "--board", board, tag=tag)
    try:
        pio = wait_for(lambda: [p for p in processes_with_tag(tag) if "platformio" in p[1]], BUILD_TIMEOUT)
        assert pio, proc.communicate(timeout=60)[1].decode(errors="replace")
        time.sleep(0.5)                      # into the build
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert_none_left(tag, timeout=20)
    again = cli("build", "--board", board, tag=tag)
    out, err = again.communicate(timeout=BUILD_TIMEOUT)
    assert again.returncode == 0, err.decode(errors="replace")
    check_elf(out.decode().strip())


def test_truncated_firmware_elf_is_rebuilt(tag):
    """A truncated firmware.elf made `build` die with "not a 32-bit ELF file", and it was never
    rebuilt (SCons trusts its own record): it is checked, deleted and relinked."""
    board = "mps2_an385"
    first = cli("build", "--board", board, tag=tag)
    out, err = first.communicate(timeout=BUILD_TIMEOUT)
    assert first.returncode == 0, err.decode(errors="replace")
    elf = PROJECT_DIR / "build" / "pio" / board / "firmware.elf"
    with config_lock(build_dir(board)):
        data = elf.read_bytes()
        elf.write_bytes(data[:len(data) // 2])
    again = cli("build", "--board", board, tag=tag)
    out, err = again.communicate(timeout=BUILD_TIMEOUT)
    assert again.returncode == 0, err.decode(errors="replace")
    assert b"Traceback" not in err and check_elf(elf) and len(elf.read_bytes()) >= len(data) * 0.9


def test_two_configurations_build_and_run_at_once(tag):
    """Two runs with different configurations shared build/pio/<board> without a lock: one failed
    at link time ("serve.o: No such file or directory"). Now both build in turn and each runs its
    own ELF."""
    procs = [cli("run", "--emulate", "--board", "mps2_an385", "--quant", q, "-n", "3", "-i", "", tag=tag)
             for q in ("q8", "f32")]
    for p in procs:
        out, err = p.communicate(timeout=BUILD_TIMEOUT)
        assert p.returncode == 0, err.decode(errors="replace")
        assert b"all 3 tokens equal the golden model's" in err


# ---- resynchronising, the wedging sampling, faults and stalls -----------------------------------

@pytest.fixture(scope="module")
def q8_elf(stories):
    """mps2_an386's q8 firmware, built as the CLI builds it (under the lock, then a snapshot)."""
    model, tok = stories
    board = load_board("mps2_an386")
    with config_lock(build_dir(board.id)):
        comp = compile_model(model, tok, board, get_scheme("q8", 32, "f32"), None, build_dir(board.id))
        elf = snapshot_elf(board, build_firmware(board))
    return board, comp, elf


def test_emulated_board_is_resynchronised_and_samples_totally(tag, q8_elf, stories):
    """After a host died mid-generation the next got its TOKEN frames (BUSY on HELLO); after line
    noise the next frame was swallowed; temperature 1e-38 with top-p 0.9 wedged the board."""
    board, comp, elf = q8_elf
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    tok = stories[1]
    with Emulator(board, elf) as emu:
        first = Device(emu.transport, timeout=30)
        assert first.hello().scheme == "q8"
        gen = first.generate("Once upon a time", 400, 0.8, 0.9, 5)
        next(gen)                                    # the first host goes away mid-generation
        second = Device(emu.transport, timeout=30)
        assert second.hello().scheme == "q8"
        for temp, topp in ((1e-38, 0.9), (1e30, 1e-6)):
            got = [m.token for m in second.generate("Once upon a time", 20, temp, topp, 3) if isinstance(m, P.Token)]
            assert got == expected_tokens(golden, tok, "Once upon a time", 20, temp, topp, 3), (temp, topp)
        emu.transport.write(b"\x13\x37\x55" * 50)    # line noise, no delimiter
        third = Device(emu.transport, timeout=30)
        assert third.hello().scheme == "q8"
        assert len([m for m in third.generate("Tom", 5) if isinstance(m, P.Token)]) == 5
        proc = emu.proc
    assert proc.poll() is not None


def test_real_firmware_reports_its_faults(q8_elf):
    """The built firmware has the fault report linked in, and its fault vectors lead to it."""
    from elftools.elf.elffile import ELFFile
    _, _, elf = q8_elf
    with open(elf, "rb") as f:
        e = ELFFile(f)
        syms = e.get_section_by_name(".symtab")
        report = syms.get_symbol_by_name("esl_report_fault")
        handler = syms.get_symbol_by_name("Fault_Handler")
        at = syms.get_symbol_by_name("vectors")[0]["st_value"]
        sec = next(s for s in e.iter_sections() if s["sh_addr"] <= at < s["sh_addr"] + s["sh_size"])
        vectors = sec.data()[at - sec["sh_addr"]:at - sec["sh_addr"] + 64]
    assert report and report[0]["st_value"] != 0 and handler
    hardfault = int.from_bytes(vectors[12:16], "little")
    assert hardfault & ~1 == handler[0]["st_value"] & ~1


def _test_firmware(board_id: str, out, *defines: str):
    """tests/c/fault_main.c with the board's startup, port and the runtime's fault report."""
    board = load_board(board_id)
    target = board.target
    (out / "link.ld").write_text(link_script(board))
    if "base" in board.console:
        defines += (f"-DESL_CONSOLE_BASE={int(str(board.console['base']), 0):#x}u",)
    srcs = sorted((FIRMWARE / board.arch_dir).glob("*.c")) \
        + sorted((FIRMWARE / "ports" / board.port).glob("*.c")) + [FIRMWARE / "runtime" / "protocol.c", FIRMWARE / "runtime" / "fault.c", TESTS / "c" / "fault_main.c"]
    elf = out / ("stall.elf" if "-DSTALL" in defines else "fault.elf")
    r = subprocess.run([target.toolchain_prefix + "gcc", *target.flags(board.core), *FIRMWARE_CFLAGS, *defines,
                        f"-I{FIRMWARE / 'include'}", *map(str, srcs), *target.link_flags, f"-T{out / 'link.ld'}",
                        "-o", str(elf), *[f"-l{lib}" for lib in target.libs]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return board, elf


@pytest.mark.parametrize("board_id", ["mps2_an386", "mps2_an385", "mps3_an547"])
def test_hardfault_is_reported_with_the_function(tag, tmp_path, board_id):
    """Item 3: a board that faults says so: ERROR FAULT with PC, LR and the fault status, which
    the host symbolizes from the ELF, instead of "lost the device, check the cable"."""
    board, elf = _test_firmware(board_id, tmp_path)
    with Emulator(board, elf) as emu:
        with pytest.raises(DeviceError) as e:
            Device(emu.transport, timeout=20).hello()
        proc = emu.proc
        assert wait_for(lambda: proc.poll() is not None, 20)     # then it stops (semihosting exit)
    text = str(e.value)
    assert "the board crashed at crash_here+0x2: HardFault" in text, text
    assert "(main+0x" in text and "UNDEFINSTR" in text and "FORCED" in text, text
    assert "check the cable" not in text and "reset the board" in e.value.hint


def test_stalled_emulator_is_named_with_its_log(tag, tmp_path):
    """A stalled emulator was reported with a hint about flashing the board."""
    board, elf = _test_firmware("mps2_an386", tmp_path, "-DSTALL")
    with Emulator(board, elf) as emu:
        with pytest.raises(DeviceError) as e:
            Device(emu.transport, timeout=3).hello()
    assert "no answer from the device" in str(e.value)
    assert "the emulated mps2_an386 stopped answering" in e.value.hint and str(emu.log_path) in e.value.hint
    assert "flash" not in e.value.hint
