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
        _error_then_alive(dev, P.encode_frame(P.GENERATE, 9, P.generate_body(5, -1.0, 0.9, 1, "a")),
                          "BAD_REQUEST")
        _error_then_alive(dev, P.encode_frame(P.GENERATE, 9, P.generate_body(5, 0.0, 0.9, 1, [1, 9999])),
                          "BAD_REQUEST")


def test_device_error_surfaces_as_exception(exe):
    with device(exe) as dev:
        with pytest.raises(DeviceError, match="BAD_REQUEST"):
            list(dev.generate("Tom", 10, temperature=-2.0))


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
    bad = P.encode_frame(P.INFO, 1, b"\x01" * 40)[:-3] + b"\x07\x07\0"
    script = f"import sys,time; sys.stdout.buffer.write({bad!r}); sys.stdout.flush(); time.sleep(30)"
    with Device(ProcessTransport([sys.executable, "-c", script]), timeout=5.0) as dev:
        with pytest.raises(DeviceError, match="garbage from the device"):
            dev.hello()
        dev.t.proc.kill()
