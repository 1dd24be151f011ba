"""The serial protocol under bad input, both ways: the device survives garbage, truncated and
oversized frames and says so; the host survives a device that dies, stalls or babbles."""

import struct
import sys
import time
import zlib

import pytest

from edgeslm.bridge import Device, DeviceError, ProcessTransport
from edgeslm.bridge import protocol as P

from firmware_helpers import device, native_firmware


@pytest.mark.parametrize("data", [b"", b"\0", b"\0\0\0", bytes(range(1, 255)), bytes(range(1, 256)) * 3,
                                  b"\x01" * 254 + b"\0" + b"\x02" * 300, bytes(1000)])
def test_cobs_round_trip(data):
    enc = P.cobs_encode(data)
    assert 0 not in enc
    assert P.cobs_decode(enc) == data


def test_frame_layout_by_hand():
    # HELLO, id 7: payload 01 07, crc32 little-endian after it, COBS, then the 0x00 delimiter
    crc = struct.pack("<I", zlib.crc32(b"\x01\x07"))
    assert P.decode_payload(P.encode_frame(P.HELLO, 7)[:-1]) == b"\x01\x07"
    assert P.encode_frame(P.HELLO, 7) == P.cobs_encode(b"\x01\x07" + crc) + b"\0"


@pytest.fixture(scope="module")
def exe(stories, tmp_path_factory):
    model, tok = stories
    return native_firmware(model, tok, tmp_path_factory.mktemp("proto"), "q8")[1]


def _error_then_alive(dev: Device, raw: bytes, code: str) -> None:
    dev.t.write(raw)
    msg = dev.receive()
    assert isinstance(msg, P.DeviceErrorMsg) and msg.name == code, msg
    assert dev.hello().vocab_size == 512          # and it still serves requests


def test_garbage_is_answered_and_survived(exe):
    with device(exe) as dev:
        _error_then_alive(dev, bytes([0x55, 0xAA, 0x13, 0x37, 0xFF]) + b"\0", "BAD_FRAME")


def test_truncated_frame(exe):
    with device(exe) as dev:
        frame = P.encode_frame(P.GENERATE, 3, P.generate_body(10, 0.0, 0.9, 1, "Tom"))
        _error_then_alive(dev, frame[:len(frame) // 2] + b"\0", "BAD_CRC")


def test_flipped_bit_is_a_crc_error(exe):
    with device(exe) as dev:
        frame = bytearray(P.encode_frame(P.HELLO, 4))
        frame[2] ^= 0x02          # the request id byte: 4 -> 6, still nonzero
        _error_then_alive(dev, bytes(frame), "BAD_CRC")


def test_oversized_frame(exe):
    with device(exe) as dev:
        _error_then_alive(dev, b"\x42" * 5000 + b"\0", "TOO_LONG")


def test_unknown_type_and_bad_request(exe):
    with device(exe) as dev:
        _error_then_alive(dev, P.encode_frame(0x55, 9), "UNKNOWN_TYPE")
        _error_then_alive(dev, P.encode_frame(P.GENERATE, 9, b"\x01\x02"), "BAD_REQUEST")
        _error_then_alive(dev, P.encode_frame(P.GENERATE, 9, P.generate_body(5, -1.0, 0.9, 1, "a", check=False)),
                          "BAD_REQUEST")
        _error_then_alive(dev, P.encode_frame(P.GENERATE, 9, P.generate_body(5, 0.0, 0.9, 1, [1, 9999])),
                          "BAD_REQUEST")


def test_device_error_surfaces_as_exception(exe):
    with device(exe) as dev:
        with pytest.raises(DeviceError, match="BAD_REQUEST: prompt token id out of range"):
            list(dev.generate([1, 9999], 10))           # the host does not know the vocabulary


def test_host_refuses_what_the_protocol_cannot_carry():
    for args, field in [((-5, 0.0, 0.9), "steps -5"), ((5, float("nan"), 0.9), "temperature nan"),
                        ((5, -2.0, 0.9), "temperature -2"), ((5, float("inf"), 0.9), "temperature inf"),
                        ((5, 0.0, float("nan")), "top-p nan"), ((5, 0.0, 2.0), "top-p 2")]:
        with pytest.raises(P.RequestError, match=field):
            P.generate_body(*args, 1, "Tom")
    with pytest.raises(P.RequestError, match="start with BOS"):
        P.generate_body(5, 0.0, 0.9, 1, [5, 6])
    with pytest.raises(P.RequestError, match="a request holds at most 491"):
        P.generate_body(5, 0.0, 0.9, 1, "x" * 492)
    assert P.generate_body(70000, 0.0, 0.9, 1, "a")[:2] == b"\0\0"   # > 65535: the whole context, as 0


def _refused(dev: Device, body: bytes, message: str) -> None:
    dev.send(P.GENERATE, body)
    msg = dev.receive()
    assert isinstance(msg, P.DeviceErrorMsg) and msg.name == "BAD_REQUEST" and message in msg.message, msg
    assert dev.hello().vocab_size == 512


def test_device_names_each_bad_field(exe):
    """Issue 15: an odd-length token-id prompt was refused as "prompt kind must be 0 or 1", and ids
    not starting with BOS were accepted."""
    raw = lambda prompt_bytes, kind=1, t=0.0, p=0.9: struct.pack("<HffQB", 5, t, p, 1, kind) + prompt_bytes
    with device(exe) as dev:
        _refused(dev, raw(b"\x01\x00\x05"), "even byte count")
        _refused(dev, raw(b"\x05\x00\x06\x00"), "start with BOS")
        _refused(dev, raw(b""), "start with BOS")
        _refused(dev, raw(b"Tom", kind=7), "prompt kind must be 0 (text) or 1")
        _refused(dev, raw(b"Tom", kind=0, t=float("inf")), "temperature must be finite")
        _refused(dev, raw(b"Tom", kind=0, t=float("nan")), "temperature must be finite")
        _refused(dev, raw(b"Tom", kind=0, p=1.5), "top-p must be in [0, 1]")


def test_next_host_after_one_died_mid_generation(exe):
    """Issue 15: the next host got the old request's TOKEN frames (BUSY on HELLO). hello() sends
    0x00, ABORT, HELLO and skips what the dead host's request still sends."""
    with device(exe) as first:
        gen = first.generate("Once upon a time", 500, 0.8, 0.9, 5)
        next(gen)                                  # ... and the first host is gone, mid-generation
        second = Device(first.t, timeout=10)
        assert second.hello().scheme == "q8"
        toks = [m.token for m in second.generate("Tom", 6) if isinstance(m, P.Token)]
        assert len(toks) == 6


def test_next_frame_survives_line_noise_without_a_delimiter(exe):
    """Issue 15: after noise without a 0x00 the next frame was swallowed; every request now starts
    with a 0x00, and hello() skips the errors the noise earns."""
    with device(exe) as dev:
        dev.t.write(bytes([0x13, 0x37, 0x55, 0xAA, 0x42]))
        assert dev.hello().vocab_size == 512
        dev.t.write(b"\x42" * 7)                  # noise between requests, no delimiter
        assert [m.token for m in dev.generate("Tom", 3) if isinstance(m, P.Token)]


def test_abort_mid_stream_then_serve_again(exe):
    with device(exe) as dev:
        gen = dev.generate("Once upon a time", 500, 0.8, 0.9, 5)
        got = [next(gen) for _ in range(5)]
        dev.abort()
        rest = list(gen)
        done = rest[-1]
        assert isinstance(done, P.Done) and done.reason == "aborted"
        assert done.tokens == len(got) + len(rest) - 1 < 500
        assert dev.hello().scheme == "q8"
        assert len([m for m in dev.generate("Tom", 8) if isinstance(m, P.Token)]) == 8


def test_busy_during_generation(exe):
    with device(exe) as dev:
        rid = dev.send(P.GENERATE, P.generate_body(60, 0.0, 0.9, 1, "Tom"))
        dev.send(P.HELLO)
        msgs = []
        while not msgs or not isinstance(msgs[-1], P.Done):
            msgs.append(dev.receive())
        errors = [m for m in msgs if isinstance(m, P.DeviceErrorMsg)]
        assert [e.name for e in errors] == ["BUSY"]
        assert msgs[-1].req_id == rid and msgs[-1].tokens == 60


def test_device_killed_mid_generation(exe):
    dev = device(exe, timeout=5)
    gen = dev.generate("Once upon a time", 500, 0.8, 0.9, 5)
    next(gen)
    dev.t.proc.kill()
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="lost the device"):
        list(gen)
    assert time.monotonic() - t0 < 5
    dev.t.close()


def test_silent_device_times_out():
    silent = [sys.executable, "-c", "import time; time.sleep(60)"]
    with Device(ProcessTransport(silent), timeout=1.0) as dev:
        t0 = time.monotonic()
        with pytest.raises(DeviceError, match="no answer from the device"):
            dev.hello()
        assert time.monotonic() - t0 < 5
        dev.t.proc.kill()


def test_babbling_device_is_reported():
    babble = [sys.executable, "-c", "import sys\nwhile True: sys.stdout.buffer.write(b'noise!')"]
    with Device(ProcessTransport(babble), timeout=5.0) as dev:
        with pytest.raises(DeviceError, match="without a frame delimiter"):
            dev.hello()
        dev.t.proc.kill()


def test_corrupt_frame_from_device_is_reported():
    """A corrupt frame is reported as garbage, except while connecting: hello() skips what a
    device says before it has heard us (it may be the tail of a frame), and then times out."""
    bad = P.encode_frame(P.INFO, 1, b"\x01" * 40)[:-3] + b"\x07\x07\0"
    script = f"import sys,time; sys.stdout.buffer.write({bad!r}); sys.stdout.flush(); time.sleep(30)"
    with Device(ProcessTransport([sys.executable, "-c", script]), timeout=5.0) as dev:
        with pytest.raises(DeviceError, match="garbage from the device"):
            list(dev.generate("Tom", 3))
        dev.t.proc.kill()
    with Device(ProcessTransport([sys.executable, "-c", script]), timeout=1.0) as dev:
        with pytest.raises(DeviceError, match="no answer from the device"):
            dev.hello()
        dev.t.proc.kill()


def test_fault_report_names_the_function(exe):
    """Item 3, host side: ERROR FAULT becomes "the board crashed at <function>+<offset>" when the
    ELF is known (here the native firmware's own esl_sample), the raw PC otherwise."""
    from reliability_helpers import fault_frame, symbol_address
    at = symbol_address(exe, "esl_sample")
    frame = fault_frame(pc=at + 6, lr=at + 1, cfsr=1 << 16, hfsr=1 << 30, exception=3)
    script = f"import sys,time; sys.stdout.buffer.write({frame!r}); sys.stdout.flush(); time.sleep(30)"
    for elf, where in ((exe, "esl_sample+0x6"), (None, f"0x{at + 6:08x}")):
        with Device(ProcessTransport([sys.executable, "-c", script]), timeout=5.0, elf=elf) as dev:
            with pytest.raises(DeviceError) as e:
                dev.hello()
            dev.t.proc.kill()
        text = str(e.value)
        assert f"the board crashed at {where}: HardFault" in text, text
        assert "UNDEFINSTR" in text and "FORCED" in text and "Traceback" not in text
