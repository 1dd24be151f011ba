"""Renode (issue 16): the generated platform, script and Robot test of every board Renode can run.
Renode itself is not installed on this machine (it is not a Debian or PyPI package): what can be
checked without it is checked here against the facts read from Renode's repository at one commit
(host/edgeslm/emulator/renode_platforms.json); the test that runs Renode skips without it."""

import json
import re
import shutil
import subprocess
import sys

import pytest

from edgeslm.cli import main
from edgeslm.emulator.renode import RenodeError, renode_facts, renode_support, write_renode_files
from edgeslm.lower.boards import list_boards, load_board

FACTS = renode_facts()
MPS2_BOARDS = [b for b in list_boards() if load_board(b).port == "mps2"]


def test_the_facts_name_a_renode_commit_and_its_files():
    assert re.fullmatch(r"[0-9a-f]{40}", FACTS["renode"]["commit"])
    assert "platforms/cpus/stm32f4.repl" in FACTS["platform_files"]
    assert "platforms/cpus/nrf52840.repl" in FACTS["platform_files"]
    assert all(re.fullmatch(r"platforms/(cpus|boards)/[\w.-]+\.repl", p) for p in FACTS["platform_files"])
    assert set(FACTS["platform_uarts"]) <= set(FACTS["platform_files"])
    assert {"cortex-m0", "cortex-m3", "cortex-m4f", "cortex-m7", "cortex-m33", "cortex-m55"} <= set(FACTS["cpu_types"])


@pytest.mark.parametrize("board_id", MPS2_BOARDS)
def test_generated_files_render_and_use_only_what_renode_has(board_id, tmp_path):
    board = load_board(board_id)
    files = write_renode_files(board, tmp_path / "firmware.elf", tmp_path, port=4567)
    repl = files.repl.read_text()
    models = re.findall(r"^\w+: ([\w.]+) @ sysbus", repl, re.M)
    assert set(models) <= set(FACTS["peripheral_models"]), models
    assert re.search(r'cpuType: "([\w+-]+)"', repl).group(1) in FACTS["cpu_types"]
    for r in board.memory:                                   # the board's own memory map
        assert f"{r.name}: Memory.MappedMemory @ sysbus 0x{r.origin:08X}\n    size: 0x{r.length_bytes:X}" in repl
    assert f"UART.CMSDK_APB_UART @ sysbus {board.console['base']}" in repl
    # SysTick ticks per instruction as under QEMU's -icount, so counts convert the same way
    mips = int(re.search(r"PerformanceInMips (\d+)", files.resc.read_text()).group(1))
    freq = int(re.search(r"systickFrequency: (\d+)", repl).group(1))
    emu = board.emulator
    assert freq / (mips * 1e6) == pytest.approx((1 << emu["icount_shift"]) * emu["systick_hz"] / 1e9)
    resc = files.resc.read_text()
    commands = [line.split()[0] + " " + line.split()[1] for line in resc.splitlines()
                if line and not line.startswith((":", "$", "#", '"', "using", "runMacro", "start", "macro"))]
    assert set(commands) <= set(FACTS["monitor_commands"]), commands
    assert f"@{files.repl.resolve()}" in resc and "$port?=4567" in resc
    assert "connector Connect sysbus.uart0 edgeslm" in resc


def _robot_errors(path):
    from robot.api import get_model
    from robot.api.parsing import ModelVisitor

    class Errors(ModelVisitor):
        def __init__(self):
            self.found = []

        def generic_visit(self, node):
            self.found += [f"{type(node).__name__}: {e}" for e in getattr(node, "errors", ()) or ()]
            super().generic_visit(node)

    v = Errors()
    v.visit(get_model(str(path)))
    return v.found


def test_the_robot_test_parses_with_robotframework(tmp_path):
    from robot.api import TestSuite
    files = write_renode_files(load_board("mps2_an386"), tmp_path / "firmware.elf", tmp_path,
                               run_args=["--board", "mps2_an386", "--quant", "q8"])
    assert _robot_errors(files.robot) == []
    suite = TestSuite.from_file_system(str(files.robot))
    assert [t.name for t in suite.tests] == ["Should Generate Tokens Equal To Golden"]
    used = {kw.name for t in suite.tests for kw in t.body if hasattr(kw, "name")}
    assert {"Create Machine", "Start Emulation"} <= used
    renode_kw = set(re.findall(r"^    (Execute Command|Create Terminal Tester|Start Emulation)", files.robot.read_text(), re.M))
    assert renode_kw <= set(FACTS["robot_keywords"])
    text = files.robot.read_text()
    assert "edgeslm    run    --board    mps2_an386    --quant    q8" in text
    assert "--port    socket://127.0.0.1:${PORT}" in text


def _board_dir(tmp_path, renode: dict) -> str:
    data = json.loads(open(load_board("mps2_an386").path).read())
    data["edgeslm"]["renode"] = renode
    d = tmp_path / "boards"
    d.mkdir()
    (d / "my_stm32f4.json").write_text(json.dumps(data))
    return str(d)


def test_a_board_naming_a_renode_platform_file_loads_it_by_path(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESLM_BOARDS_DIR", _board_dir(tmp_path, {"platform": "platforms/cpus/stm32f4.repl",
                                                                   "uart": "sysbus.usart1"}))
    files = write_renode_files(load_board("my_stm32f4"), tmp_path / "firmware.elf", tmp_path / "out")
    assert files.repl is None
    resc = files.resc.read_text()
    assert "machine LoadPlatformDescription @platforms/cpus/stm32f4.repl" in resc
    assert "connector Connect sysbus.usart1 edgeslm" in resc
    assert "${PLATFORM}                   @platforms/cpus/stm32f4.repl" in files.robot.read_text()


@pytest.mark.parametrize("renode,message", [({"platform": "platforms/cpus/stm32f9.repl", "uart": "sysbus.usart1"},
                                              "not one of the files checked"),
                                             ({"platform": "platforms/cpus/stm32f4.repl", "uart": "sysbus.uart9"},
                                              "has no UART")])
def test_a_wrong_renode_section_is_refused(tmp_path, monkeypatch, renode, message):
    monkeypatch.setenv("EDGESLM_BOARDS_DIR", _board_dir(tmp_path, renode))
    with pytest.raises(RenodeError, match=message):
        renode_support(load_board("my_stm32f4"))


def test_a_board_renode_cannot_model_is_refused():
    with pytest.raises(RenodeError, match="Renode has no platform for microbit"):
        renode_support(load_board("microbit"))


@pytest.mark.skipif(shutil.which("renode") is not None, reason="renode is installed here")
def test_without_renode_run_says_so_before_building(capsys):
    assert main(["run", "--emulate", "--emulator", "renode", "-n", "2"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "renode is not on PATH" in err and "--emulator qemu" in err


@pytest.mark.skipif(shutil.which("renode") is None,
                    reason="Renode is not installed on this machine (not a Debian or PyPI package: "
                    "https://renode.io); install it and put `renode` on PATH to run this test")
def test_tokens_under_renode_equal_golden():
    r = subprocess.run([sys.executable, "-m", "edgeslm", "run", "--emulate", "--emulator", "renode",
                        "--board", "mps2_an386", "-n", "8"], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    assert b"all 8 tokens equal the golden model's" in r.stderr
