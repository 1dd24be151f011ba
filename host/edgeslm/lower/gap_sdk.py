"""Building for a PMSIS board (GAP9) with GreenWaves' GAP SDK instead of PlatformIO.

    build_gap_sdk(board, project_dir) -> Path to the image

From what `compile_model` generated (build/<board>/gen, build.json among it) it writes a make
project, build/<board>/gap_sdk/Makefile, in the SDK's convention (APP, APP_SRCS, APP_CFLAGS, then
`include $(RULES_DIR)/pmsis_rules.mk`, as the SDK's examples do), and runs `make all` there. The
GAP SDK is not public and not installed here: where its configuration has not been sourced (no
RULES_DIR in the environment) the project is written and the build stops with what to run. Nothing
of this has been built or run here; tests/test_gap9_pmsis.py compiles the PMSIS back end against
GreenWaves' public pmsis_api headers where they are given (EDGESLM_PMSIS_API).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .. import __version__, children
from ..errors import EdgeslmError
from ..fileio import write_atomic
from .boards import Board
from .codegen import ARITHMETIC_CFLAGS, _env

APP = "edgeslm"


def project_sources(settings: dict, firmware: Path, gen_dir: Path) -> list[Path]:
    """The C files of build.json's source folders (recursively, as PlatformIO's filter takes them)
    but its "exclude", then the generated ones."""
    excluded = {(firmware / f).resolve() for f in settings.get("exclude", [])}
    files = [f for folder in settings["sources"] for f in sorted((firmware / folder).rglob("*.c"))
             if f.resolve() not in excluded]
    return files + sorted(gen_dir.glob("*.c"))


def write_project(board: Board, project_dir: Path, out_dir: Path) -> Path:
    """build/<board>/gap_sdk/Makefile from build/<board>/gen; returns its path."""
    gen = out_dir / "gen"
    settings = json.loads((gen / "build.json").read_text())
    if settings.get("board") != board.id:
        raise EdgeslmError(f"{gen / 'build.json'} is for board {settings.get('board')}, not {board.id}",
                           f"compile for {board.id} again: edgeslm compile --board {board.id}")
    firmware = project_dir / "firmware"
    project = out_dir / "gap_sdk"
    text = _env().get_template("gap_sdk_Makefile.j2").render(
        version=__version__, template="gap_sdk_Makefile.j2", board=board.id, app=APP, project=project,
        sources=[str(f) for f in project_sources(settings, firmware, gen)],
        excluded=", ".join(settings.get("exclude", [])) or "nothing",
        include_dirs=[str(firmware / "include"), str(gen)],
        defines=sorted(settings["defines"].items()), arithmetic=" ".join(ARITHMETIC_CFLAGS))
    project.mkdir(parents=True, exist_ok=True)
    return write_atomic(project / "Makefile", text)


def build_gap_sdk(board: Board, project_dir: Path, out_dir: Path, env: dict | None = None) -> Path:
    """Write the make project and, with the GAP SDK's configuration sourced, build it; returns the
    image (the newest file named APP under the project's BUILD folder). Every array is in L2 (the
    board's only region for them: the SDK's linker script places .rodata and .bss there)."""
    mk = write_project(board, project_dir, out_dir)
    env = dict(os.environ if env is None else env)
    if not env.get("RULES_DIR"):
        raise EdgeslmError(f"board {board.id} builds with GreenWaves' GAP SDK (not public, not installed here); "
                           f"the project is written: {mk}",
                           f"source the GAP SDK's configuration for the board (it sets RULES_DIR), then run "
                           f"`make -C {mk.parent} all` (add `run platform=gvsoc` to run it on GVSoC)")
    code, out = children.run(["make", "-C", str(mk.parent), "all"], env=env)
    if code != 0:
        raise EdgeslmError(f"GAP SDK build for {board.id} failed:\n{out[-3000:]}",
                           f"run `make -C {mk.parent} all` for the full log")
    images = sorted((p for p in (mk.parent / "BUILD").rglob(APP) if p.is_file()), key=lambda p: p.stat().st_mtime)
    if not images:
        raise EdgeslmError(f"the GAP SDK build for {board.id} succeeded but left no image named {APP} under "
                           f"{mk.parent / 'BUILD'}", f"look for it in the output of `make -C {mk.parent} all`")
    return images[-1]
