"""Emulated boards: start the board's emulator with its UART on a local TCP socket, hand back a
pyserial transport (socket://), and always clean up (terminate, then kill after a grace period)."""

from .qemu import Emulator, EmulatorError, qemu_command

__all__ = ["Emulator", "EmulatorError", "qemu_command"]
