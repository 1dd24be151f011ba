"""Build helpers shared by the firmware tests."""

from pathlib import Path

from edgeslm.bridge import Device, ProcessTransport
from edgeslm.lower.boards import load_board
from edgeslm.lower.compile import compile_model
from edgeslm.lower.native import build_native
from edgeslm.quant import get_scheme


def native_firmware(model, tok, out: Path, quant="q8", kv="f32", max_seq=None, group_size=32, act_group_size=0):
    """Compile the model for mps2_an386's plan and build the native host firmware from it."""
    comp = compile_model(model, tok, load_board("mps2_an386"),
                         get_scheme(quant, group_size, kv, act_group_size=act_group_size), max_seq, out)
    return comp, build_native(comp.gen_dir, out / "firmware_host")


def device(exe: Path, timeout: float = 10.0) -> Device:
    return Device(ProcessTransport([str(exe)]), timeout)
