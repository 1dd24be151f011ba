"""The serial protocol, version 2 — the same numbered words as firmware/include/esl_protocol.h.

1. A frame on the wire is COBS(payload + crc32(payload), little-endian) followed by one 0x00.
   crc32 is the IEEE/zlib CRC-32.
2. A payload is: type (u8), request id (u8), body. Integers little-endian, floats IEEE-754.
3. At most MAX_PAYLOAD payload bytes; the device drops longer frames with ERROR TOO_LONG.
4. Host -> device: HELLO (no body) -> INFO; GENERATE steps u16, temperature f32, topp f32,
   seed u64, kind u8 (bits 0-6: 0 text, 1 token ids; bit 7: a PROFILE_DATA of that forward pass
   after every TOKEN), prompt -> TOKEN*, DONE | ERROR; ABORT (no body);
   PROFILE (no body) -> PROFILE_DATA+.
5. Device -> host: INFO, TOKEN (pos u16, token u16, cycles u64, piece), DONE (tokens u16,
   reason u8, cycles u64), ERROR (code u8, message), PROFILE_DATA (forwards u32, n_steps u16,
   first u16, count u16, ticks u64[count]: per step, summed over the last GENERATE's forward
   passes; frames in order, the last ending at n_steps).
6. Version 2 added PROFILE / PROFILE_DATA and GENERATE's per-token profile bit. With that bit
   set, PROFILE afterwards holds only the last forward pass.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PROTOCOL_VERSION = 2
MAX_PAYLOAD = 512
HELLO, GENERATE, ABORT, PROFILE = 0x01, 0x02, 0x03, 0x04
INFO, TOKEN, DONE, ERROR, PROFILE_DATA = 0x81, 0x82, 0x83, 0x84, 0x85
ERROR_NAMES = {1: "BAD_FRAME", 2: "BAD_CRC", 3: "TOO_LONG", 4: "UNKNOWN_TYPE", 5: "BAD_REQUEST",
               6: "PROMPT_TOO_LONG", 7: "BUSY"}
DONE_REASONS = {0: "steps", 1: "bos", 2: "aborted"}
CYCLE_UNITS = {0: "cycles", 1: "systick", 2: "ns"}


class ProtocolError(Exception):
    """Bytes from the device that are not a valid frame."""


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
                  prompt: str | bytes | list[int], profile_each: bool = False) -> bytes:
    if isinstance(prompt, list):
        kind, data = 1, struct.pack(f"<{len(prompt)}H", *prompt)
    else:
        kind, data = 0, prompt.encode() if isinstance(prompt, str) else prompt
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


@dataclass
class DeviceErrorMsg:
    req_id: int
    code: int
    message: str

    @property
    def name(self) -> str:
        return ERROR_NAMES.get(self.code, f"code {self.code}")


@dataclass
class ProfileData:
    req_id: int
    forwards: int
    n_steps: int
    first: int
    ticks: list[int]


def parse(payload: bytes):
    t, rid, body = payload[0], payload[1], payload[2:]
    try:
        if t == INFO:
            proto, unit, ok, kvb, vocab, seq = struct.unpack_from("<BBBBHH", body, 0)
            return Info(proto, CYCLE_UNITS.get(unit, str(unit)), bool(ok), kvb, vocab, seq,
                        body[8:16].hex(), *struct.unpack_from("<II", body, 16),
                        body[24:32].rstrip(b"\0").decode(), body[32:].decode(errors="replace"))
        if t == TOKEN:
            pos, tok, cyc = struct.unpack_from("<HHQ", body, 0)
            return Token(rid, pos, tok, cyc, bytes(body[12:]))
        if t == DONE:
            n, reason, cyc = struct.unpack_from("<HBQ", body, 0)
            return Done(rid, n, DONE_REASONS.get(reason, str(reason)), cyc)
        if t == PROFILE_DATA:
            fwd, n_steps, first, count = struct.unpack_from("<IHHH", body, 0)
            if len(body) != 10 + 8 * count:
                raise struct.error("PROFILE_DATA count does not match its body")
            return ProfileData(rid, fwd, n_steps, first, list(struct.unpack_from(f"<{count}Q", body, 10)))
        if t == ERROR:
            return DeviceErrorMsg(rid, body[0], bytes(body[1:]).decode(errors="replace"))
    except (struct.error, IndexError):
        raise ProtocolError(f"message type 0x{t:02x} with a body of {len(body)} bytes") from None
    raise ProtocolError(f"unknown message type 0x{t:02x} from the device")
