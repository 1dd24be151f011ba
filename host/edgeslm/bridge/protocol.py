"""The serial protocol, version 4. The device side is firmware/include/esl_protocol.h, same words.

1. A frame on the wire is COBS(payload + crc32(payload), little-endian) followed by one 0x00.
   crc32 is the IEEE/zlib CRC-32 (reflected, poly 0xEDB88320, init and final xor 0xFFFFFFFF).
   An empty frame (0x00 right after 0x00) is ignored: the host starts every request with one
   0x00, which ends whatever partial frame line noise left in the device's receiver.
2. A payload is: type (u8), request id (u8), body. Integers are little-endian, floats IEEE-754.
3. At most MAX_PAYLOAD payload bytes; longer frames are dropped with ERROR TOO_LONG.
4. Host -> device:
     HELLO    (no body)                                          -> INFO
     GENERATE steps u16 (0, or more than max seq: max seq), temperature f32 (finite, >= 0),
              topp f32 (in [0, 1]), seed u64, kind u8 (bits 0-6: 0 text, 1 token ids; bit 7: a
              PROFILE_DATA of that forward pass after every TOKEN), prompt (UTF-8 bytes, or an
              even number of bytes of u16 ids, the first BOS, each below vocab)
                                                                 -> TOKEN*, DONE | ERROR
              Anything else is ERROR BAD_REQUEST naming the field; a prompt longer than the
              context is ERROR PROMPT_TOO_LONG.
     ABORT    (no body): stops a running GENERATE                -> DONE (reason ABORTED)
     PROFILE  (no body): the step profile of the last GENERATE      -> PROFILE_DATA+
5. Device -> host:
     INFO     protocol u8, cycle unit u8, weights ok u8, kv bits u8, vocab u16, max seq u16,
              model hash [8], build id u32, weights crc u32, scheme [8] (NUL padded), board (rest)
     TOKEN    pos u16, token u16, cycles u64, piece (rest): one per forward step
     DONE     tokens u16, reason u8 (0 STEPS, 1 BOS, 2 ABORTED), cycles u64 (sum over tokens),
              stack peak u32 (the most stack bytes the generation used, below the stack's top,
              measured by painting; 0 = not measured)
     ERROR    code u8, message (rest, UTF-8). Code FAULT (request id 0) puts pc u32, lr u32,
              cfsr u32, hfsr u32, exception u8 before the message: the core faulted there and
              the device stops serving until it is reset.
     PROFILE_DATA forwards u32, n_steps u16, first u16, count u16, ticks u64[count]: counter ticks
              per step of the step table, summed over the `forwards` forward passes of the last
              GENERATE (steps first .. first+count-1); as many frames as needed, in order, the
              last one ending at n_steps.
6. Version 2 added PROFILE / PROFILE_DATA and GENERATE's per-token profile bit. With that bit
   set, PROFILE afterwards holds only the last forward pass. Version 3 added ERROR FAULT, refuses
   a non-finite temperature and token ids that do not start with BOS, and samples totally (the
   rules in firmware/runtime/sampler.c and host/edgeslm/sampler.py). Version 4 added DONE's
   stack peak (firmware/arch/<arch>/ paints the stack; an arch without painting sends 0).
7. Connecting: the host sends 0x00, ABORT and HELLO together, and takes the INFO that answers its
   HELLO, skipping whatever else arrives first (the TOKEN and DONE frames of a generation an
   earlier host left running, ERRORs about noise); without an INFO it sends them again, with a
   longer wait each time, until its timeout.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

from ..errors import EdgeslmError

PROTOCOL_VERSION = 4
MAX_PAYLOAD = 512
HELLO, GENERATE, ABORT, PROFILE = 0x01, 0x02, 0x03, 0x04
INFO, TOKEN, DONE, ERROR, PROFILE_DATA = 0x81, 0x82, 0x83, 0x84, 0x85
ERROR_NAMES = {1: "BAD_FRAME", 2: "BAD_CRC", 3: "TOO_LONG", 4: "UNKNOWN_TYPE", 5: "BAD_REQUEST",
               6: "PROMPT_TOO_LONG", 7: "BUSY", 8: "FAULT"}
FAULT = 8
BOS = 1
DONE_REASONS = {0: "steps", 1: "bos", 2: "aborted"}
CYCLE_UNITS = {0: "cycles", 1: "systick", 2: "ns"}


class ProtocolError(Exception):
    """Bytes from the device that are not a valid frame."""


class RequestError(EdgeslmError):
    """A request the protocol cannot carry: a value outside the range its field allows."""


def cobs_encode(data: bytes) -> bytes:
    out, block = bytearray([0]), 0
    code = 1
    for b in data:
        if b == 0:
            out[block] = code
            block, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[block] = code
                block, code = len(out), 1
                out.append(0)
    out[block] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(data):
        code = data[i]
        i += 1
        if code == 0:
            raise ProtocolError("zero byte inside a COBS frame")
        chunk = data[i:i + code - 1]
        if len(chunk) != code - 1 or 0 in chunk:
            raise ProtocolError("truncated COBS block")
        out += chunk
        i += code - 1
        if code != 0xFF and i < len(data):
            out.append(0)
    return bytes(out)


def encode_frame(msg_type: int, req_id: int, body: bytes = b"") -> bytes:
    payload = bytes([msg_type, req_id & 0xFF]) + body
    return cobs_encode(payload + struct.pack("<I", zlib.crc32(payload))) + b"\0"


def decode_payload(wire: bytes) -> bytes:
    """One frame's bytes (without the delimiter) -> its checked payload."""
    raw = cobs_decode(wire)
    if len(raw) < 6:
        raise ProtocolError(f"frame of {len(raw)} bytes is shorter than a header and CRC")
    payload, (crc,) = raw[:-4], struct.unpack("<I", raw[-4:])
    if zlib.crc32(payload) != crc:
        raise ProtocolError("frame CRC mismatch")
    return payload


PROFILE_EACH_TOKEN = 0x80


def generate_body(steps: int, temperature: float, topp: float, seed: int,
                  prompt: str | bytes | list[int], profile_each: bool = False, check: bool = True) -> bytes:
    """GENERATE's body. Every field is checked against the range item 4 gives it (RequestError
    names the field); steps above 65535 go as 0, which also means the whole context. `check=False`
    packs what it is given (tests use it to send the device bad requests)."""
    if isinstance(prompt, list):
        if check:
            if not prompt or prompt[0] != BOS:
                raise RequestError("a token-id prompt must start with BOS (1)",
                                   "put token 1 first, as the tokenizer's encode(..., bos=True) does")
            bad = next((t for t in prompt if not 0 <= t <= 0xFFFF), None)
            if bad is not None:
                raise RequestError(f"token id {bad} does not fit the protocol's u16",
                                   "pass ids of the model's vocabulary")
        kind, data = 1, struct.pack(f"<{len(prompt)}H", *prompt)
    else:
        from ..model.tokenizer import prompt_bytes
        kind, data = 0, prompt_bytes(prompt)
    if check:
        if steps < 0:
            raise RequestError(f"steps {steps} is negative", "pass 0 for the whole context, or a positive count")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise RequestError(f"temperature {temperature} is not a finite number >= 0",
                               "0 is greedy; 0.8-1.0 is usual")
        if not (math.isfinite(topp) and 0 <= topp <= 1):
            raise RequestError(f"top-p {topp} is not in [0, 1]", "0.9 is usual; 0 or 1 samples from every token")
        if 2 + 19 + len(data) > MAX_PAYLOAD:
            raise RequestError(f"the prompt is {len(data)} bytes; a request holds at most {MAX_PAYLOAD - 21}",
                               "shorten the prompt")
        steps = 0 if steps > 0xFFFF else steps
    kind |= PROFILE_EACH_TOKEN if profile_each else 0
    return struct.pack("<HffQB", steps, temperature, topp, seed & (2**64 - 1), kind) + data


@dataclass
class Info:
    protocol: int
    cycle_unit: str
    weights_ok: bool
    kv_bits: int
    vocab_size: int
    max_seq: int
    model_hash: str
    build_id: int
    weights_crc32: int
    scheme: str
    board: str
    req_id: int = 0


@dataclass
class Token:
    req_id: int
    pos: int
    token: int
    cycles: int
    piece: bytes


@dataclass
class Done:
    req_id: int
    tokens: int
    reason: str
    cycles: int
    stack_peak: int = 0         # bytes; 0 = the device did not measure it


@dataclass
class DeviceErrorMsg:
    req_id: int
    code: int
    message: str

    @property
    def name(self) -> str:
        return ERROR_NAMES.get(self.code, f"code {self.code}")


@dataclass
class DeviceFault(DeviceErrorMsg):
    """ERROR FAULT: where the core faulted (item 5)."""
    pc: int
    lr: int
    cfsr: int
    hfsr: int
    exception: int


@dataclass
class ProfileData:
    req_id: int
    forwards: int
    n_steps: int
    first: int
    ticks: list[int]


def parse(payload: bytes):
    """One checked payload -> its message. Total: anything else raises ProtocolError."""
    if len(payload) < 2:
        raise ProtocolError(f"payload of {len(payload)} bytes has no type and request id")
    t, rid, body = payload[0], payload[1], bytes(payload[2:])
    try:
        if t == INFO:
            proto, unit, ok, kvb, vocab, seq = struct.unpack_from("<BBBBHH", body, 0)
            if len(body) < 32:
                raise struct.error("INFO shorter than its fixed fields")
            return Info(proto, CYCLE_UNITS.get(unit, str(unit)), bool(ok), kvb, vocab, seq,
                        body[8:16].hex(), *struct.unpack_from("<II", body, 16),
                        body[24:32].rstrip(b"\0").decode(errors="replace"), body[32:].decode(errors="replace"),
                        req_id=rid)
        if t == TOKEN:
            pos, tok, cyc = struct.unpack_from("<HHQ", body, 0)
            return Token(rid, pos, tok, cyc, bytes(body[12:]))
        if t == DONE:
            n, reason, cyc, stack = struct.unpack_from("<HBQI", body, 0)
            return Done(rid, n, DONE_REASONS.get(reason, str(reason)), cyc, stack)
        if t == PROFILE_DATA:
            fwd, n_steps, first, count = struct.unpack_from("<IHHH", body, 0)
            if len(body) != 10 + 8 * count:
                raise struct.error("PROFILE_DATA count does not match its body")
            return ProfileData(rid, fwd, n_steps, first, list(struct.unpack_from(f"<{count}Q", body, 10)))
        if t == ERROR:
            if body[0] == FAULT:
                pc, lr, cfsr, hfsr, exc = struct.unpack_from("<IIIIB", body, 1)
                return DeviceFault(rid, FAULT, body[18:].decode(errors="replace"), pc, lr, cfsr, hfsr, exc)
            return DeviceErrorMsg(rid, body[0], body[1:].decode(errors="replace"))
    except (struct.error, IndexError):
        raise ProtocolError(f"message type 0x{t:02x} with a body of {len(body)} bytes") from None
    raise ProtocolError(f"unknown message type 0x{t:02x} from the device")
