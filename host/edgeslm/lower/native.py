"""Build the firmware natively (gcc) for the host: the same C, speaking the protocol on
stdin/stdout (verification tier 3). Strict warnings: the generated code must compile clean."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .. import paths
from ..errors import EdgeslmError

FIRMWARE = paths.FIRMWARE
CFLAGS = ["-std=c11", "-O2", "-ffp-contract=off", "-fno-fast-math", "-Wall", "-Wextra", "-Werror",
          "-Wdouble-promotion", "-Wshadow"]


def kernel_sources() -> list[Path]:
    """Every kernel (firmware/kernels/<op>/*.c and the shared helpers), portable branches."""
    return sorted((FIRMWARE / "kernels").rglob("*.c"))


def firmware_sources(port: str) -> list[Path]:
    """The runtime and the kernels, plus one port's files."""
    return sorted((FIRMWARE / "runtime").glob("*.c")) + kernel_sources() + \
        sorted((FIRMWARE / "ports" / port).glob("*.c"))


def _scheme_defines(gen_dir: Path) -> list[str]:
    """-D flags for what the kernels take from the scheme (codegen.scheme_defines, in build.json)."""
    import json
    try:
        settings = json.loads((gen_dir / "build.json").read_text())
    except (OSError, ValueError) as e:
        raise EdgeslmError(f"cannot read {gen_dir / 'build.json'}: {e}", "compile the model again") from None
    return [f"-D{k}={v}" for k, v in settings.get("scheme_defines", {}).items()]


def build_native(gen_dir: Path, out: Path, cc: str = "gcc") -> Path:
    if shutil.which(cc) is None:
        raise EdgeslmError(f"no C compiler '{cc}' found", "install gcc (apt-get install gcc)")
    srcs = firmware_sources("host") + sorted(gen_dir.glob("*.c"))
    defines = _scheme_defines(gen_dir)
    cmd = [cc, *CFLAGS, *defines, f"-I{FIRMWARE / 'include'}", f"-I{gen_dir}", "-o", str(out), *map(str, srcs), "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise EdgeslmError(f"native firmware build failed:\n{r.stderr[-4000:]}",
                           "this is a bug in edgeslm's generated or runtime C; please report it")
    return out
