"""Property tests of the host side of the serial protocol (hypothesis): framing round-trips,
every decoder is total (bytes in -> a message or ProtocolError, nothing else), the Device turns any
byte stream into messages or DeviceError within its timeout, hello() resynchronises whatever an
earlier host or line noise left, and GENERATE bodies carry exactly what they were given or are
refused by name. Then the same against the native firmware: whatever frames arrive, it answers
and keeps serving, and any sampling setting the protocol accepts gives golden's tokens."""

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reliability_helpers  # noqa: F401  (hypothesis's own files go to .pytest_cache)

from edgeslm.bridge import Device, DeviceError
from edgeslm.bridge import protocol as P
from edgeslm.quant.golden import GoldenEngine
from edgeslm.verify import expected_tokens

from firmware_helpers import device, native_firmware

EXAMPLES = 300
FIRMWARE_EXAMPLES = 200
fast = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None)
slow = settings(max_examples=FIRMWARE_EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Scripted:
    """A transport that plays back bytes in given chunks, and answers writes through `on_write`."""
    url = "scripted"
    stall_hint = None
    elf = None

    def __init__(self, chunks=(), on_write=None):
        self.chunks, self.on_write, self.written = list(chunks), on_write, bytearray()

    def write(self, data: bytes) -> None:
        self.written += data
        if self.on_write:
            self.chunks += self.on_write(bytes(data))

    def read(self, timeout: float) -> bytes:
        return self.chunks.pop(0) if self.chunks else b""

    def close(self) -> None:
        pass


def token_payload(rid, pos, tok, cyc, piece):
    return bytes([P.TOKEN, rid]) + struct.pack("<HHQ", pos, tok, cyc) + piece


def info_body(vocab=512, seq=512, scheme=b"q8"):
    return struct.pack("<BBBBHH", P.PROTOCOL_VERSION, 2, 1, 32, vocab, seq) + bytes(8) + \
        struct.pack("<II", 7, 9) + scheme.ljust(8, b"\0") + b"board"


messages = st.one_of(
    st.builds(token_payload, st.integers(0, 255), st.integers(0, 65535), st.integers(0, 65535),
              st.integers(0, 2**64 - 1), st.binary(max_size=40)),
    st.builds(lambda rid, n, r, c, sp: bytes([P.DONE, rid]) + struct.pack("<HBQI", n, r, c, sp),
              st.integers(0, 255), st.integers(0, 65535), st.integers(0, 2), st.integers(0, 2**64 - 1),
              st.integers(0, 2**32 - 1)),
    st.builds(lambda rid, code, msg: bytes([P.ERROR, rid, code]) + msg,
              st.integers(0, 255), st.integers(1, 7), st.binary(max_size=60)),
    st.builds(lambda rid, ticks: bytes([P.PROFILE_DATA, rid]) + struct.pack(f"<IHHH{len(ticks)}Q", 3, len(ticks), 0,
                                                                          len(ticks), *ticks),
              st.integers(0, 255), st.lists(st.integers(0, 2**64 - 1), max_size=20)))


@fast
@given(st.binary(max_size=1200))
def test_cobs_round_trip(data):
    enc = P.cobs_encode(data)
    assert 0 not in enc and len(enc) <= len(data) + len(data) // 254 + 1
    assert P.cobs_decode(enc) == data


@fast
@given(st.binary(max_size=600))
def test_decoders_are_total(wire):
    try:
        payload = P.decode_payload(wire)
    except P.ProtocolError:
        return
    try:
        P.parse(payload)
    except P.ProtocolError:
        pass


@fast
@given(st.binary(min_size=0, max_size=P.MAX_PAYLOAD))
def test_parse_is_total(payload):
    try:
        msg = P.parse(payload)
    except P.ProtocolError:
        return
    assert isinstance(msg, (P.Info, P.Token, P.Done, P.DeviceErrorMsg, P.ProfileData))


@fast
@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=P.MAX_PAYLOAD - 2), st.data())
def test_frames_round_trip_and_any_flipped_bit_is_caught(msg_type, rid, body, data):
    frame = P.encode_frame(msg_type, rid, body)
    assert frame[-1] == 0 and 0 not in frame[:-1]
    assert P.decode_payload(frame[:-1]) == bytes([msg_type, rid]) + body
    i = data.draw(st.integers(0, len(frame) - 2))
    bit = data.draw(st.integers(0, 7))
    bad = bytearray(frame[:-1])
    bad[i] ^= 1 << bit
    with pytest.raises(P.ProtocolError):
        P.decode_payload(bytes(bad))


@fast
@given(st.lists(messages, min_size=1, max_size=12), st.data())
def test_device_reassembles_any_chunking(payloads, data):
    wire = b"".join(b"\0" * data.draw(st.integers(0, 2)) + P.encode_frame(p[0], p[1], p[2:]) for p in payloads)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    chunks = [wire[a:b] for a, b in zip([0] + cuts, cuts + [len(wire)])]
    dev = Device(Scripted(chunks), timeout=0.05)
    got = [dev.receive() for _ in payloads]
    assert got == [P.parse(p) for p in payloads]


@fast
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_device_turns_any_bytes_into_messages_or_device_error(chunks):
    dev = Device(Scripted(chunks), timeout=0.005)
    for _ in range(20):
        try:
            dev.receive()
        except DeviceError:
            return


@fast
@given(st.lists(st.one_of(messages, st.binary(max_size=40).map(lambda b: b"\xff" + b)), max_size=10),
       st.booleans(), st.data())
def test_hello_resynchronises_whatever_came_before(stale, busy_first, data):
    """Whatever an earlier host left the device sending (its tokens, errors, garbage, even a BUSY
    for our first HELLO), hello() returns the INFO that answers one of its HELLOs."""
    answered = []

    def device_side(written: bytes):
        out = []
        for wire in written.split(b"\0"):
            if not wire:
                continue
            payload = P.decode_payload(wire)
            if payload[0] != P.HELLO:
                continue
            if not answered:                      # before our first answer: the stale stream
                out += [b"\0" + p if p[:1] == b"\xff" else P.encode_frame(p[0], p[1], p[2:]) for p in stale]
                if busy_first:
                    answered.append("busy")
                    out.append(P.encode_frame(P.ERROR, payload[1], bytes([7]) + b"busy"))
                    continue
            answered.append("info")
            out.append(P.encode_frame(P.INFO, payload[1], info_body()))
        return out

    dev = Device(Scripted(on_write=device_side), timeout=3.0)
    dev.resend_after = 0.01
    info = dev.hello()
    assert info.vocab_size == 512 and info.scheme == "q8"
    assert dev.t.written.startswith(b"\0")                # the leading delimiter, then ABORT
    assert P.decode_payload(dev.t.written[1:].split(b"\0")[0])[0] == P.ABORT


finite = st.floats(allow_nan=False, allow_infinity=False, width=32)
any_float = st.floats(width=32)


@fast
@given(st.integers(-10, 100_000), any_float, any_float, st.integers(-2**70, 2**70),
       st.one_of(st.text(max_size=600), st.binary(max_size=600),
                 st.lists(st.integers(-5, 70_000), max_size=300)), st.booleans())
def test_generate_body_carries_its_values_or_names_the_field(steps, temperature, topp, seed, prompt, each):
    try:
        body = P.generate_body(steps, temperature, topp, seed, prompt, each)
    except P.RequestError as e:
        assert str(e) and e.hint
        return
    assert 0 <= steps and math.isfinite(temperature) and temperature >= 0 and 0 <= topp <= 1
    s, t, p, sd, kind = struct.unpack_from("<HffQB", body)
    assert s == (0 if steps > 0xFFFF else steps) and t == temperature and p == topp
    assert sd == seed % 2**64 and bool(kind & 0x80) == each
    if isinstance(prompt, list):
        assert kind & 0x7F == 1 and prompt[0] == 1 and list(struct.unpack(f"<{len(prompt)}H", body[19:])) == prompt
    else:
        assert kind & 0x7F == 0 and body[19:] == (prompt if isinstance(prompt, bytes) else prompt.encode())
    assert len(body) + 2 <= P.MAX_PAYLOAD


# ---- the same properties against the native firmware ------------------------------------------

@pytest.fixture(scope="module")
def firmware(stories, tmp_path_factory):
    model, tok = stories
    comp, exe = native_firmware(model, tok, tmp_path_factory.mktemp("props"), "q8")
    return comp, exe, tok


frames = st.one_of(
    st.binary(max_size=700),                                             # noise, with or without 0x00
    st.builds(lambda t, r, b: P.encode_frame(t, r, b), st.integers(0, 255), st.integers(0, 255),
              st.binary(max_size=80)),                                   # well-formed, any type
    st.builds(lambda r, b: P.encode_frame(P.GENERATE, r, b), st.integers(0, 255),
              st.builds(lambda head, prompt: head + prompt,
                        st.builds(lambda n, t, p, s, k: struct.pack("<HffQB", n, t, p, s, k), st.integers(0, 4),
                                  any_float, any_float, st.integers(0, 2**64 - 1), st.integers(0, 255)),
                        st.binary(max_size=40))))                        # GENERATE with any fields


@slow
@given(st.lists(frames, min_size=1, max_size=6))
def test_firmware_survives_any_frames(firmware, burst):
    """Whatever arrives, the device keeps serving: afterwards hello() gets its INFO."""
    _, exe, _ = firmware
    with device(exe, timeout=20) as dev:
        for f in burst:
            dev.t.write(f)
        assert dev.hello().vocab_size == 512
        assert dev.t.proc.poll() is None
    assert dev.t.proc.poll() is not None                 # and it ended with its host: nothing left


@slow
@given(prompt=st.one_of(st.text(max_size=30), st.binary(max_size=30)),
       temperature=st.one_of(st.sampled_from([0.0, 1e-45, 1e-38, 1e-3, 1e30, 3.4e38]),
                             st.floats(0, 3.0, width=32)),
       topp=st.one_of(st.sampled_from([0.0, 1e-6, 0.9, 1.0]), st.floats(0, 1, width=32)),
       seed=st.integers(1, 2**64 - 1), steps=st.integers(1, 6))
def test_firmware_generation_equals_golden_for_any_accepted_setting(firmware, prompt, temperature, topp, seed,
                                                                    steps):
    comp, exe, tok = firmware
    golden = GoldenEngine(comp.qmodel, comp.plan.max_seq)
    with device(exe) as dev:
        got = [m.token for m in dev.generate(prompt, steps, temperature, topp, seed) if isinstance(m, P.Token)]
    assert got == expected_tokens(golden, tok, prompt, steps, temperature, topp, seed)
