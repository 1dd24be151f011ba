"""The host side of the protocol: talk to one device over a transport.

    with Device(transport) as dev:
        info = dev.hello()
        for msg in dev.generate("Tom and Lily", steps=64): ...   # Token..., then Done

Every wait has a timeout; a device that stalls, resets or disconnects raises DeviceError with
what happened, never hangs.
"""

from __future__ import annotations

import time
from typing import Iterator

from ..errors import EdgeslmError
from . import protocol as P
from .transport import LinkError


class DeviceError(EdgeslmError):
    """The device answered with an error, said something we cannot parse, or stopped answering."""


class Device:
    def __init__(self, transport, timeout: float = 10.0):
        self.t = transport
        self.timeout = timeout
        self._buf = bytearray()
        self._next_id = 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.t.close()

    def _req_id(self) -> int:
        rid = self._next_id
        self._next_id = self._next_id % 255 + 1
        return rid

    def send(self, msg_type: int, body: bytes = b"", req_id: int | None = None) -> int:
        rid = self._req_id() if req_id is None else req_id
        self.t.write(P.encode_frame(msg_type, rid, body))
        return rid

    def receive(self, timeout: float | None = None):
        """The next message; DeviceError on silence past `timeout`, a closed link, or bad frames."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if 0 in self._buf:
                i = self._buf.index(0)
                wire, self._buf = bytes(self._buf[:i]), self._buf[i + 1:]
                if not wire:
                    continue
                try:
                    return P.parse(P.decode_payload(wire))
                except P.ProtocolError as e:
                    raise DeviceError(f"garbage from the device on {self.t.url}: {e}",
                                      "check the baud rate and that the board runs edgeslm firmware") from None
            if len(self._buf) > 4 * P.MAX_PAYLOAD:
                raise DeviceError(f"{len(self._buf)} bytes from {self.t.url} without a frame delimiter",
                                  "the device is not speaking the edgeslm protocol (wrong firmware or baud rate?)")
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceError(f"no answer from the device on {self.t.url} within {timeout:g} s",
                                  "is it running and flashed with edgeslm firmware? (edgeslm run --emulate "
                                  "starts one in QEMU)")
            try:
                self._buf += self.t.read(min(left, 0.5))
            except LinkError as e:
                raise DeviceError(f"lost the device: {e}", "check the cable / emulator; nothing was "
                                  "reported as complete") from None

    def hello(self) -> P.Info:
        rid = self.send(P.HELLO)
        while True:
            msg = self.receive()
            if isinstance(msg, P.Info):
                if msg.protocol != P.PROTOCOL_VERSION:
                    raise DeviceError(f"device speaks protocol version {msg.protocol}, this host "
                                      f"speaks {P.PROTOCOL_VERSION}", "rebuild the firmware with this edgeslm")
                return msg
            if isinstance(msg, P.DeviceErrorMsg) and msg.req_id in (rid, 0):
                raise DeviceError(f"device refused HELLO: {msg.name}: {msg.message}")

    def generate(self, prompt: str | list[int], steps: int, temperature: float = 0.0,
                 topp: float = 0.9, seed: int = 1, token_timeout: float | None = None,
                 profile_each: bool = False) -> Iterator[P.Token | P.ProfileData | P.Done]:
        """Yields each Token as it arrives (with profile_each, then that forward pass's per-step
        ticks as one ProfileData), then the Done. Raises DeviceError on an ERROR answer."""
        body = P.generate_body(steps, temperature, topp, seed, prompt, profile_each)
        if len(body) + 2 > P.MAX_PAYLOAD:
            raise DeviceError(f"the prompt is {len(body) - 19} bytes; a request holds at most "
                              f"{P.MAX_PAYLOAD - 21}", "shorten the prompt")
        rid = self.send(P.GENERATE, body)
        while True:
            msg = self.receive(token_timeout)
            if isinstance(msg, P.DeviceErrorMsg):
                if msg.req_id in (rid, 0):
                    raise DeviceError(f"device error {msg.name}: {msg.message}")
                continue
            if getattr(msg, "req_id", rid) != rid:
                continue                      # a stale answer to an earlier request
            if isinstance(msg, P.ProfileData):
                parts = [msg]                 # join the frames of one forward pass
                while sum(len(p.ticks) for p in parts) < msg.n_steps:
                    nxt = self.receive(token_timeout)
                    if not isinstance(nxt, P.ProfileData) or nxt.first != sum(len(p.ticks) for p in parts):
                        raise DeviceError("a per-token profile arrived incomplete or out of order")
                    parts.append(nxt)
                msg = P.ProfileData(rid, msg.forwards, msg.n_steps, 0, [t for p in parts for t in p.ticks])
            yield msg
            if isinstance(msg, P.Done):
                return

    def profile(self) -> P.ProfileData:
        """The per-step counter ticks of the last generation (all frames joined)."""
        rid = self.send(P.PROFILE)
        ticks: list[int] = []
        while True:
            msg = self.receive()
            if isinstance(msg, P.DeviceErrorMsg) and msg.req_id in (rid, 0):
                raise DeviceError(f"device refused PROFILE: {msg.name}: {msg.message}")
            if not isinstance(msg, P.ProfileData) or msg.req_id != rid:
                continue
            if msg.first != len(ticks):
                raise DeviceError(f"profile frames out of order: step {msg.first} after {len(ticks)}")
            ticks += msg.ticks
            if len(ticks) >= msg.n_steps:
                return P.ProfileData(rid, msg.forwards, msg.n_steps, 0, ticks[:msg.n_steps])

    def abort(self) -> None:
        self.send(P.ABORT)
