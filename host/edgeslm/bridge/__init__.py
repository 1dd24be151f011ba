"""The pyserial bridge: frames over a UART (or the native build's pipes), prompt in, tokens out.

    protocol   frame and message formats (same words as firmware/include/esl_protocol.h)
    transport  pyserial URL / native process byte links, all with timeouts
    device     Device: hello(), generate(), abort()
"""

from .device import Device, DeviceError
from .transport import LinkError, ProcessTransport, SerialTransport

__all__ = ["Device", "DeviceError", "LinkError", "ProcessTransport", "SerialTransport"]
