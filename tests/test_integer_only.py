"""The integer-only (i8) firmware sources use no floating point: no float or double, no float
literal, no libm in their text, and built for a Cortex-M0 (no FPU: any float would be a soft-float
call) their objects name only integer helpers. The whole linked ELF of each ARMv6-M board is
checked the same way in tests/test_emulator.py; this catches a float in any one source at once."""

import re
import subprocess

import pytest

from edgeslm.lower.elfsize import float_symbols
from edgeslm.lower.native import FIRMWARE

INTEGER_ONLY = sorted((FIRMWARE / "kernels").rglob("esl_*_s8.c")) + [
    FIRMWARE / "runtime" / "sampler_s8.c", FIRMWARE / "include" / "esl_fixedpoint.h"]
M0_FLAGS = ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-O2", "-Wall", "-Wextra", "-Werror", "-std=c11"]

# Every esl_fixedpoint.h function instantiated, so the header is compiled whole.
HEADER_UNIT = r"""
#include "esl_fixedpoint.h"
volatile int32_t va, vb;
volatile int64_t vl;
volatile int ve;
int32_t sink32[8];
int64_t sink64;
void use_all(void)
{
    int bits;
    sink32[0] = esl_srdhm(va, vb);
    sink32[1] = esl_rdbp(va, ve);
    sink64 = esl_rdbp64(vl, ve);
    sink32[2] = esl_mbqm(va, vb, ve);
    sink32[3] = esl_sat_rounding_mul_by_pot(va, ve);
    sink32[4] = esl_exp_on_negative_values(va, ve);
    sink32[5] = esl_one_over_one_plus_x_for_x_in_0_1(va);
    sink32[6] = esl_get_reciprocal(va, ve, &bits);
    sink32[7] = bits;
}
"""


def _code(path) -> str:
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", path.read_text(), flags=re.S)


def _m0_object(src, tmp_path):
    if src.suffix == ".h":
        unit = tmp_path / "header_unit.c"
        unit.write_text(HEADER_UNIT)
        src = unit
    obj = tmp_path / (src.stem + ".o")
    r = subprocess.run(["arm-none-eabi-gcc", *M0_FLAGS, f"-I{FIRMWARE / 'include'}", "-c", "-o", str(obj),
                        str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return obj


def test_the_list_covers_every_s8_kernel():
    from edgeslm.targets import TARGETS
    specs = {FIRMWARE / k.c_file for t in TARGETS.values() for k in t.kernels if k.contract == "s8"}
    assert specs and specs <= set(INTEGER_ONLY)


@pytest.mark.parametrize("src", INTEGER_ONLY, ids=lambda p: p.name)
def test_source_has_no_floating_point(src, tmp_path):
    code = _code(src)
    assert not re.search(r"\b(float|double)\b", code)
    assert not re.search(r"(?<![\w.])(\d+\.\d*|\.\d+|\d+[eE][+-]?\d+)[fF]?\b", code)
    assert "math.h" not in code
    assert float_symbols(_m0_object(src, tmp_path)) == []


def test_the_check_sees_soft_float(tmp_path):
    """The control: a float kernel built the same way names soft-float helpers."""
    assert "__aeabi_fmul" in float_symbols(_m0_object(FIRMWARE / "kernels" / "matmul" / "esl_matmul_w8f.c", tmp_path))
