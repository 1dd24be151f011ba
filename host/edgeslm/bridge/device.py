"""The host side of the protocol: talk to one device over a transport.

    with Device(transport) as dev:
        info = dev.hello()
        for msg in dev.generate("Tom and Lily", steps=64): ...   # Token..., then Done

Every wait has a timeout; a device that stalls, resets or disconnects raises DeviceError with
what happened, never hangs. hello() resynchronises a device whatever an earlier host left it doing
(protocol item 7), and every request starts with a 0x00 (item 1). A device that faulted is reported
as "the board crashed at <function>+<offset>", symbolized against the firmware's ELF when known.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator

from ..errors import EdgeslmError
from . import protocol as P
from .transport import LinkError


class DeviceError(EdgeslmError):
    """The device answered with an error, said something we cannot parse, or stopped answering."""


class DeviceTimeout(DeviceError):
    """Nothing (or nothing useful) from the device within the timeout."""


EXCEPTIONS = {2: "NMI", 3: "HardFault", 4: "MemManage fault", 5: "BusFault", 6: "UsageFault",
              11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}
CFSR_BITS = {0: "IACCVIOL", 1: "DACCVIOL", 3: "MUNSTKERR", 4: "MSTKERR", 5: "MLSPERR", 7: "MMARVALID",
             8: "IBUSERR", 9: "PRECISERR", 10: "IMPRECISERR", 11: "UNSTKERR", 12: "STKERR", 13: "LSPERR",
             15: "BFARVALID", 16: "UNDEFINSTR", 17: "INVSTATE", 18: "INVPC", 19: "NOCP", 20: "STKOF",
             24: "UNALIGNED", 25: "DIVBYZERO"}
HFSR_BITS = {1: "VECTTBL", 30: "FORCED", 31: "DEBUGEVT"}
FRAMING_ERRORS = ("BAD_FRAME", "BAD_CRC", "TOO_LONG")    # about bytes the device could not read
# RISC-V (firmware/arch/riscv_pulp): the fault report carries mcause in CFSR and mtval in HFSR
# (RISC-V privileged spec, table "machine cause register values after trap", exceptions)
RISCV_CAUSES = {0: "instruction address misaligned", 1: "instruction access fault", 2: "illegal instruction",
                3: "breakpoint", 4: "load address misaligned", 5: "load access fault",
                6: "store address misaligned", 7: "store access fault", 11: "environment call from M-mode"}


def _is_riscv(elf: str | Path | None) -> bool:
    """ELF e_machine 243 (EM_RISCV): the fault's registers are mcause/mtval, not Arm's."""
    try:
        with open(elf, "rb") as f:
            head = f.read(20)
    except (OSError, TypeError):
        return False
    return len(head) == 20 and head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == 243


def _bits(value: int, names: dict[int, str]) -> str:
    set_ = [n for b, n in names.items() if value >> b & 1]
    return f"0x{value:08x}" + (f" ({' '.join(set_)})" if set_ else "")


def crash_message(fault: P.DeviceFault, elf: str | Path | None) -> str:
    """"the board crashed at <function>+<offset>" with the registers the device reported."""
    from ..lower.elfsize import symbolize
    where = symbolize(elf, fault.pc) if elf else None
    caller = symbolize(elf, fault.lr & ~1) if elf else None
    if _is_riscv(elf):
        cause = RISCV_CAUSES.get(fault.cfsr, f"mcause 0x{fault.cfsr:08x}")
        return (f"the board crashed at {where or f'0x{fault.pc:08x}'}: {cause}, PC 0x{fault.pc:08x}, "
                f"RA 0x{fault.lr:08x}{f' ({caller})' if caller else ''}, mcause 0x{fault.cfsr:08x}, "
                f"mtval 0x{fault.hfsr:08x}")
    exc = EXCEPTIONS.get(fault.exception, f"IRQ {fault.exception - 16}" if fault.exception >= 16
                         else f"exception {fault.exception}")
    return (f"the board crashed at {where or f'0x{fault.pc:08x}'}: {exc}, PC 0x{fault.pc:08x}, "
            f"LR 0x{fault.lr:08x}{f' ({caller})' if caller else ''}, CFSR {_bits(fault.cfsr, CFSR_BITS)}, "
            f"HFSR {_bits(fault.hfsr, HFSR_BITS)}")


class Device:
    resend_after = 0.5                    # hello(): first wait before sending again (doubles)

    def __init__(self, transport, timeout: float = 10.0, elf: str | Path | None = None):
        self.t = transport
        self.timeout = timeout
        self.elf = elf if elf is not None else getattr(transport, "elf", None)
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
        """One request, after a 0x00 that ends whatever partial frame the device holds (item 1)."""
        rid = self._req_id() if req_id is None else req_id
        self.t.write(b"\0" + P.encode_frame(msg_type, rid, body))
        return rid

    def _stall_hint(self) -> str:
        return getattr(self.t, "stall_hint", None) or \
            ("is it running and flashed with edgeslm firmware? (edgeslm run --emulate starts one in QEMU)")

    def receive(self, timeout: float | None = None, skip_garbage: bool = False):
        """The next message; DeviceError on silence past `timeout` (DeviceTimeout), a closed link,
        or bad frames (skipped instead with `skip_garbage`). A FAULT report raises DeviceError."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if 0 in self._buf:
                i = self._buf.index(0)
                wire, self._buf = bytes(self._buf[:i]), self._buf[i + 1:]
                if not wire:
                    continue
                try:
                    msg = P.parse(P.decode_payload(wire))
                except P.ProtocolError as e:
                    if skip_garbage:
                        continue
                    raise DeviceError(f"garbage from the device on {self.t.url}: {e}",
                                      "check the baud rate and that the board runs edgeslm firmware") from None
                if isinstance(msg, P.DeviceFault):
                    raise DeviceError(crash_message(msg, self.elf),
                                      "a firmware fault: reset the board, and report this line with the "
                                      "firmware's ELF") from None
                return msg
            if len(self._buf) > 4 * P.MAX_PAYLOAD:
                raise DeviceError(f"{len(self._buf)} bytes from {self.t.url} without a frame delimiter",
                                  "the device is not speaking the edgeslm protocol (wrong firmware or baud rate?)")
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(f"no answer from the device on {self.t.url} within {timeout:g} s",
                                    self._stall_hint())
            try:
                self._buf += self.t.read(min(left, 0.5))
            except LinkError as e:
                raise DeviceError(f"lost the device: {e}", "check the cable / emulator; nothing was "
                                  "reported as complete") from None

    def hello(self) -> P.Info:
        """Connect (protocol item 7): 0x00, ABORT, HELLO; the INFO that answers one of our HELLOs,
        skipping what an earlier host or line noise left. Sent again after 0.5, 1, 2, ... s
        (resend_after, doubling) without it, until `timeout` in all."""
        deadline = time.monotonic() + self.timeout
        ours: set[int] = set()
        refused = None
        wait = self.resend_after
        while True:
            self.send(P.ABORT)                # stops a generation an earlier host left running
            ours.add(self.send(P.HELLO))
            until = min(deadline, time.monotonic() + wait)
            while True:
                left = until - time.monotonic()
                if left <= 0:
                    break
                try:
                    msg = self.receive(left, skip_garbage=True)
                except DeviceTimeout:
                    break
                if isinstance(msg, P.Info) and msg.req_id in ours:
                    if msg.protocol != P.PROTOCOL_VERSION:
                        raise DeviceError(f"device speaks protocol version {msg.protocol}, this host "
                                          f"speaks {P.PROTOCOL_VERSION}", "rebuild the firmware with this edgeslm")
                    return msg
                if isinstance(msg, P.DeviceErrorMsg) and msg.req_id in ours:
                    refused = msg                 # ours, or an earlier host's with the same id: retry
                # anything else is stale: an earlier host's tokens, BUSY before our ABORT landed,
                # errors about the noise our leading 0x00 ended
            if time.monotonic() >= deadline:
                said = f"; its last word: {refused.name}: {refused.message}" if refused else ""
                raise DeviceTimeout(f"no answer from the device on {self.t.url} within {self.timeout:g} s "
                                    f"(HELLO sent {len(ours)} times{said})", self._stall_hint())
            wait *= 2

    def generate(self, prompt: str | bytes | list[int], steps: int, temperature: float = 0.0,
                 topp: float = 0.9, seed: int = 1, token_timeout: float | None = None,
                 profile_each: bool = False) -> Iterator[P.Token | P.ProfileData | P.Done]:
        """Yields each Token as it arrives (with profile_each, then that forward pass's per-step
        ticks as one ProfileData), then the Done. Raises DeviceError on an ERROR answer, and
        RequestError (before sending anything) for values the protocol does not carry."""
        body = P.generate_body(steps, temperature, topp, seed, prompt, profile_each)
        rid = self.send(P.GENERATE, body)
        while True:
            msg = self._answer(rid, token_timeout)
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

    def _answer(self, rid: int, timeout: float | None):
        """The next message about request `rid`, skipping framing errors: they are about bytes
        before our frame (line noise our leading 0x00 ended), or about our frame, in which case
        silence follows and the timeout says so."""
        garbled = None
        while True:
            try:
                msg = self.receive(timeout)
            except DeviceTimeout as e:
                if garbled is None:
                    raise
                raise DeviceError(f"the device could not read request {rid} ({garbled.name}: "
                                  f"{garbled.message}) and said nothing more", e.hint) from None
            if isinstance(msg, P.DeviceErrorMsg) and msg.name in FRAMING_ERRORS:
                garbled = msg
                continue
            return msg

    def profile(self) -> P.ProfileData:
        """The per-step counter ticks of the last generation (all frames joined)."""
        rid = self.send(P.PROFILE)
        ticks: list[int] = []
        while True:
            msg = self._answer(rid, None)
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
