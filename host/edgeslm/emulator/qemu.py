"""QEMU for a board described by its `edgeslm.emulator` section.

Facts this relies on (QEMU 7.2, mps2-an386): the UART on `-chardev socket,server=on,wait=on,
nodelay=on` (wait=on: the guest starts only once we are connected, so no early byte is lost;
nodelay: no 40 ms per round trip); `-icount shift=N,sleep=off` makes SysTick advance exactly with
instructions, so cycle counts repeat run to run; exit codes come back through semihosting.

QEMU never outlives edgeslm: it runs in a process group of its own that stop() ends on every exit
path (the CLI turns SIGTERM and SIGHUP into exceptions, so `with Emulator` unwinds), and Linux kills
it if edgeslm dies without unwinding (children.spawn).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from .. import children
from ..bridge.transport import LinkError, SerialTransport
from ..errors import EdgeslmError
from ..lower.boards import Board


class EmulatorError(EdgeslmError):
    """The emulator is missing, would not start, or died."""


def free_port() -> int:
    """A TCP port on localhost that is free now (the emulator's UART socket)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serial_nulls(board: Board) -> list[str]:
    """`-serial null` for each UART the machine connects before the console: QEMU hands its
    -serial options to the machine's UARTs in order, and emulator.serial_index says which one is
    the board's console (netduinoplus2: 5, USART6; default 0)."""
    return ["-serial", "null"] * int(board.emulator.get("serial_index", 0))


def qemu_command(board: Board, elf: Path, port: int) -> list[str]:
    emu = board.emulator
    if emu.get("kind") != "qemu":
        raise EmulatorError(f"board {board.id} has no QEMU emulator in its board file",
                            "run it on hardware with --port instead of --emulate")
    return [emu["binary"], "-M", emu["machine"], "-display", "none", "-monitor", "none",
            "-chardev", f"socket,id=uart0,host=127.0.0.1,port={port},server=on,wait=on,nodelay=on",
            *serial_nulls(board), "-serial", "chardev:uart0", *emu.get("args", []), "-kernel", str(elf),
            "-semihosting-config", "enable=on,target=native",
            "-icount", f"shift={emu.get('icount_shift', 7)},sleep=off"]


class SocketEmulator:
    """An emulator process with the board's UART on a local TCP socket: started with its output in a
    log, connected to, and ended on every exit path. A subclass checks what it needs (`_check`) and
    starts its command (`_start`, which calls `_launch`); QEMU's is `Emulator`, Renode's
    `emulator.renode.RenodeEmulator`."""

    name = "the emulator"                   # in messages
    error: type[EdgeslmError] = EmulatorError
    poll_seconds = 0.05                     # between attempts to connect while it starts

    def __init__(self, board: Board, elf: Path, log_path: Path, start_timeout: float):
        self.board, self.elf, self.start_timeout = board, Path(elf), start_timeout
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        self.transport: SerialTransport | None = None
        self._log = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        self._check()
        if not self.elf.is_file():
            raise self.error(f"no firmware at {self.elf}", "run `edgeslm build` first")
        try:
            self._start()
        except BaseException:
            self.stop()                   # half started (an error, Ctrl-C, a signal): nothing stays
            raise

    def _check(self) -> None:
        """What must be there before anything starts: raise self.error with the fix."""

    def _start(self) -> None:
        raise NotImplementedError

    def _launch(self, cmd: list[str], port: int, stall_hint: str) -> None:
        """Run cmd (its output to the log) and connect to its UART on `port` once it listens."""
        self._log = open(self.log_path, "wb")
        self._log.write((" ".join(cmd) + "\n").encode())
        self._log.flush()
        self.proc = children.spawn(cmd, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while self.transport is None:        # it listens once it is up; the guest waits for us
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.stop()
                raise self.error(f"{self.name} exited at start (code {code}): {self._failure_detail()}")
            try:
                transport = SerialTransport(f"socket://127.0.0.1:{port}")
            except LinkError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise self.error(f"{self.name} did not open its UART socket within "
                                     f"{self.start_timeout:g} s: {self._failure_detail()}") from None
                time.sleep(self.poll_seconds)
                continue
            # what a Device says when this board stops answering, and which firmware it runs
            transport.stall_hint = stall_hint
            transport.elf = self.elf
            transport.emulator_log = self.log_path     # what the firmware printed there (bench)
            self.transport = transport

    def _failure_detail(self) -> str:
        return self.log_tail()

    def log_tail(self, n: int = 400) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def exit_code(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self, grace: float = 2.0) -> None:
        """Close the link, then end the process group: SIGTERM, SIGKILL if it ignores that."""
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if self.proc is not None:
            children.stop(self.proc, grace)
        if self._log:
            self._log.close()
            self._log = None


class Emulator(SocketEmulator):
    """with Emulator(board, elf) as emu: Device(emu.transport) ..."""

    name = "QEMU"

    def __init__(self, board: Board, elf: Path, log: Path | None = None, start_timeout: float = 20.0):
        super().__init__(board, elf, log or Path(elf).with_suffix(".qemu.log"), start_timeout)

    def _check(self) -> None:
        binary = self.board.emulator.get("binary", "")
        if shutil.which(binary) is None:
            raise EmulatorError(f"{binary or 'the emulator'} is not installed",
                                f"apt-get install {self.board.emulator.get('apt_package', 'qemu-system-arm')} "
                                "(Debian/Ubuntu)")

    def _start(self) -> None:
        port = free_port()
        self._launch(qemu_command(self.board, self.elf, port), port,
                     f"the emulated {self.board.id} stopped answering: its firmware is stuck "
                     f"(QEMU's log: {self.log_path})")
