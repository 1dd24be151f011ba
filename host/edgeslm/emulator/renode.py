"""Renode for a board: a platform (.repl), a script (.resc) and a Robot test (.robot) per board,
and `edgeslm run/bench --emulate --emulator renode` through them when `renode` is on PATH.

    renode_support(board)                  -> RenodePlatform, or RenodeError saying why not
    write_renode_files(board, elf, out)    -> RenodeFiles (paths of .repl, .resc, .robot)
    RenodeEmulator(board, elf)             -> the same interface as emulator.qemu.Emulator

Which platform: a board whose `edgeslm.renode` names a platform file of Renode's tree (for example
{"platform": "platforms/cpus/stm32f4.repl", "uart": "sysbus.usart1"}) loads that file, which must be
one of the files checked in renode_platforms.json. A board on the MPS2 port (the CMSDK APB UART that
the firmware's mps2 port drives, which Renode models) gets a platform generated from its own board
file: core, memory regions, console UART. Other boards (the nRF51 port: Renode has no nRF51 model
of ours) have none, and RenodeError says so.

Counts: the firmware counts SysTick ticks and edgeslm converts them at the rate QEMU's -icount gives
(board.emulator: 2^icount_shift ns per instruction, SysTick at systick_hz). The generated platform
sets SysTick's frequency and the CPU's MIPS so that Renode gives the same ticks per instruction. Renode
advances SysTick with virtual time, whose instruction accounting was not checked here (Renode is not
installed on the machine that wrote this): treat Renode's counts as approximate until compared with
QEMU's on a machine that has both.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .. import __version__
from ..errors import EdgeslmError
from ..lower.boards import Board
from .qemu import SocketEmulator, free_port

DATA_FILE = Path(__file__).with_name("renode_platforms.json")
TEMPLATES_DIR = paths.TEMPLATES
INSTALL_HINT = ("install Renode (its portable Linux package or .deb from https://renode.io) and put `renode` "
                "on PATH, or use --emulator qemu")

# edgeslm's core names -> Renode's cpuType (with the FPU where Renode names it apart)
CPU_TYPES = {("cortex-m0", False): "cortex-m0", ("cortex-m0plus", False): "cortex-m0+",
             ("cortex-m3", False): "cortex-m3", ("cortex-m4", False): "cortex-m4",
             ("cortex-m4", True): "cortex-m4f", ("cortex-m7", True): "cortex-m7", ("cortex-m7", False): "cortex-m7",
             ("cortex-m33", True): "cortex-m33", ("cortex-m33", False): "cortex-m33",
             ("cortex-m55", True): "cortex-m55", ("cortex-m55", False): "cortex-m55"}


class RenodeError(EdgeslmError):
    """Renode is not installed, has no platform for the board, or would not start."""


def renode_facts() -> dict:
    """renode_platforms.json: the Renode commit read and what was found there."""
    return json.loads(DATA_FILE.read_text())


@dataclass(frozen=True)
class RenodePlatform:
    board: Board
    platform_file: str | None      # a file of Renode's tree, or None: generate one from the board
    uart: str                      # the console's peripheral, e.g. sysbus.uart0
    cpu_type: str | None = None    # for a generated platform
    systick_frequency: int = 0
    mips: int = 0


def _board_renode_section(board: Board) -> dict:
    if not board.path:
        return {}
    try:
        return json.loads(Path(board.path).read_text()).get("edgeslm", {}).get("renode") or {}
    except (OSError, ValueError):
        return {}


def renode_support(board: Board) -> RenodePlatform:
    facts = renode_facts()
    own = _board_renode_section(board)
    if own:
        platform, uart = own.get("platform"), own.get("uart")
        if platform not in facts["platform_files"]:
            raise RenodeError(f"boards/{board.id}.json names Renode platform {platform!r}, which is not one of "
                              f"the files checked in {DATA_FILE.name}",
                              f"use one of: {', '.join(facts['platform_files'])}")
        known = facts["platform_uarts"].get(platform, {})
        if known and uart not in known:
            raise RenodeError(f"boards/{board.id}.json: {platform} has no UART {uart!r}",
                              f"its UARTs: {', '.join(known)}")
        return RenodePlatform(board, platform, uart)
    if board.port != "mps2" or board.target.name != "cortex_m":
        raise RenodeError(f"Renode has no platform for {board.id}: its console ({board.console.get('uart', board.port)}) "
                          "is not a UART that a generated platform can model",
                          "add an `edgeslm.renode` section naming a Renode platform file and its UART, or use QEMU")
    core = board.core.core.name
    cpu_type = CPU_TYPES.get((core, bool(board.core.fpu)))
    if cpu_type is None or cpu_type not in facts["cpu_types"]:
        raise RenodeError(f"Renode has no cpuType for {core} (checked: {', '.join(facts['cpu_types'])})")
    emu = board.emulator or {}
    shift = emu.get("icount_shift", 7)
    systick_hz = emu.get("systick_hz", board.clock_hz)
    mips = max(1, round(board.clock_hz / 1e6))
    # ticks per instruction under QEMU: SysTick at systick_hz, one instruction per 2^shift ns
    frequency = round((1 << shift) * systick_hz * mips / 1000)
    return RenodePlatform(board, None, "sysbus.uart0", cpu_type, frequency, mips)


@dataclass(frozen=True)
class RenodeFiles:
    repl: Path | None              # None: the board uses a platform file of Renode's tree
    resc: Path
    robot: Path
    port: int


def _env():
    import jinja2
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def write_renode_files(board: Board, elf: str | Path, out_dir: str | Path, port: int = 3456,
                       run_args: list[str] | None = None) -> RenodeFiles:
    """Render the board's .repl (when generated), .resc and .robot into out_dir. `run_args` are the
    `edgeslm run` options the Robot test passes (board, model, scheme: what built the ELF)."""
    from ..fileio import write_atomic
    sup = renode_support(board)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    env = _env()
    elf = Path(elf).resolve()
    repl = None
    if sup.platform_file is None:
        emu = board.emulator or {}
        regions = [r for r in board.memory]
        repl = write_atomic(out / f"{board.id}.repl", env.get_template("renode_platform.repl.j2").render(
            version=__version__, template="renode_platform.repl.j2", board=board, cpu_type=sup.cpu_type,
            systick_frequency=sup.systick_frequency, mips=sup.mips, icount_shift=emu.get("icount_shift", 7),
            ticks_per_instruction=f"{sup.systick_frequency / (sup.mips * 1e6):g}", regions=regions,
            uart_base=board.console["base"]))
        platform = str(repl.resolve())
    else:
        platform = sup.platform_file          # relative to Renode's installation, as its own scripts write it
    code = board.regions_for("code")[0].origin
    common = dict(version=__version__, board=board, elf=str(elf), port=port, platform=platform, uart=sup.uart,
                  mips=sup.mips, vector_table=code)
    resc = write_atomic(out / f"{board.id}.resc", env.get_template("renode_board.resc.j2").render(
        template="renode_board.resc.j2", **common))
    robot = write_atomic(out / f"{board.id}.robot", env.get_template("renode_board.robot.j2").render(
        template="renode_board.robot.j2", robot_name=f"{board.id}.robot", resc_name=f"{board.id}.resc",
        python=sys.executable, run_args=run_args or ["--board", board.id], **common))
    return RenodeFiles(repl, resc, robot, port)


def renode_binary() -> str:
    path = shutil.which("renode")
    if path is None:
        raise RenodeError("renode is not on PATH", INSTALL_HINT)
    return path


class RenodeEmulator(SocketEmulator):
    """with RenodeEmulator(board, elf) as emu: Device(emu.transport) ... (as emulator.Emulator)."""

    name = "Renode"
    error = RenodeError
    poll_seconds = 0.1

    def __init__(self, board: Board, elf: Path, start_timeout: float = 60.0):
        super().__init__(board, elf, Path(elf).with_suffix(".renode.log"), start_timeout)

    def _check(self) -> None:
        self._binary = renode_binary()       # before anything else: the clearest error first
        renode_support(self.board)

    def _start(self) -> None:
        port = free_port()
        files = write_renode_files(self.board, self.elf, self.elf.parent / "renode", port)
        self._launch([self._binary, "--disable-gui", "--console", "--plain", str(files.resc)], port,
                     f"the board {self.board.id} in Renode stopped answering (Renode's log: {self.log_path})")

    def _failure_detail(self) -> str:
        return f"its log: {self.log_path}"
