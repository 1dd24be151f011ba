"""Byte transports to a device: a pyserial URL (a real port, or socket:// for an emulator's UART),
or the pipes of a natively built firmware process. All reads take a timeout; none blocks forever.

Every transport has `url` (for messages), `stall_hint` (what to tell a user whose device stopped
answering; None: the generic advice) and `elf` (the firmware on the other end, if known: a fault
report is then symbolized against it)."""

from __future__ import annotations

import os
import select
import subprocess
import time

from ..errors import EdgeslmError


class LinkError(EdgeslmError):
    """The link to the device failed: it closed, or it could not be opened."""


class SerialTransport:
    stall_hint: str | None = None
    elf = None

    def __init__(self, url: str, baud: int = 115200):
        import serial
        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0.05)
        except (serial.SerialException, OSError, ValueError) as e:
            raise LinkError(f"cannot open {url}: {e}",
                            "check the port name (ls /dev/tty*) or the emulator's socket") from None
        self.url = url

    def write(self, data: bytes) -> None:
        import serial
        try:
            self.port.write(data)
            self.port.flush()
        except (serial.SerialException, OSError) as e:
            raise LinkError(f"{self.url}: write failed: {e}") from None

    def read(self, timeout: float) -> bytes:
        """Whatever arrives within `timeout` seconds (b"" if nothing); LinkError if the link closed."""
        import serial
        deadline = time.monotonic() + timeout
        while True:
            try:
                n = max(1, self.port.in_waiting)
                data = self.port.read(n)
            except (serial.SerialException, OSError) as e:
                raise LinkError(f"{self.url}: the device went away ({e})") from None
            if data or time.monotonic() >= deadline:
                return data

    def close(self) -> None:
        try:
            self.port.close()
        except Exception:       # closing a dead port must not hide the original error
            pass


class ProcessTransport:
    """The native firmware build: the protocol on the child's stdin/stdout."""
    stall_hint: str | None = None
    elf = None

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.url = f"process {argv[0]}"

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise LinkError(f"{self.url} exited (code {self.proc.poll()})") from None

    def read(self, timeout: float) -> bytes:
        fd = self.proc.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return b""
        data = os.read(fd, 4096)
        if not data:
            raise LinkError(f"{self.url} closed its output (exit code {self.proc.wait(timeout=5)})")
        return data

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
