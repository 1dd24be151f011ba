"""The lowering pipeline: model -> quantized -> planned -> generated sources -> firmware.elf.

    compile_model(model, tokenizer, board, scheme, max_seq, out_dir) -> Compiled
    build_firmware(board, project_dir) -> Path to firmware.elf   (PlatformIO, offline; a PMSIS
                                          board: the GAP SDK's make, edgeslm.lower.gap_sdk)

Compilation is skipped when nothing it depends on changed (a stamp in the gen folder).

Concurrent edgeslm processes: one at a time writes build/<board>/gen and builds from it
(`config_lock`, held by `compile_model` and `build_firmware`, and by the CLI around both), and one
PlatformIO build at a time runs in the project (they share build/pio-core). `snapshot_elf` copies
the ELF of the configuration just built, under the lock, to a file of its own that a later build of
another configuration does not replace while the emulator loads it. A killed build leaves no
PlatformIO process behind (children.run), and a firmware.elf that fails `check_elf` is deleted
before the build (so it is relinked) and refused after it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from .. import paths
from .. import __version__, children
from ..errors import EdgeslmError, UsageError
from ..model import Model, Tokenizer
from ..quant import Scheme, quantize
from ..quant.quantize import QuantModel
from .boards import Board
from .codegen import TEMPLATES_DIR, generate_sources, vocab_tables
from .elfsize import ElfError, check_elf
from .plan import Plan, plan

PROJECT_DIR = paths.project()            # the checkout, or an installed edgeslm's working copy


@dataclass
class Compiled:
    plan: Plan
    qmodel: QuantModel           # or, for the integer scheme, quant.int8.I8Model
    gen_dir: Path
    fresh: bool                  # True if the sources were (re)written this time


def build_dir(board_id: str, root: Path | None = None) -> Path:
    return (root or PROJECT_DIR) / "build" / board_id


_held: dict[str, list] = {}          # lock file -> [open file, depth]: reentrant within a process


@contextlib.contextmanager
def _flock(path: Path, on_wait=None) -> Iterator[None]:
    key = str(path.resolve())
    if key in _held:
        _held[key][1] += 1
        try:
            yield
        finally:
            _held[key][1] -= 1
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait:
                on_wait()                 # say why nothing happens, then wait our turn
            fcntl.flock(f, fcntl.LOCK_EX)
        _held[key] = [f, 1]
        try:
            yield
        finally:
            del _held[key]
    finally:
        f.close()                         # releases the lock


def config_lock(out_dir: Path, on_wait=None) -> contextlib.AbstractContextManager:
    """Exclusive use of a compile folder (build/<board>): its gen/ and what is built from it.
    Reentrant within a process; released on any exit, the process's death included. `on_wait()`
    is called once if another process holds it."""
    return _flock(Path(out_dir) / ".lock", on_wait)


def _stamp(model: Model, tok: Tokenizer, board: Board, scheme: Scheme, max_seq: int, kernels: str,
           calib=None) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([__version__, model.fingerprint(), scheme.name, scheme.group_size, scheme.kv, scheme.rounding,
                         scheme.act_group_size, scheme.act_bits, scheme.int8_layers, list(scheme.int16),
                         max_seq, kernels, Path(board.path).read_text() if board.path else board.id,
                         board.cluster, [(r.name, r.origin) for r in board.memory],
                         sorted(calib.ranges.items()) if calib else None]).encode())
    h.update(b"".join(tok.vocab) + tok.scores.tobytes())
    for t in sorted(TEMPLATES_DIR.glob("*.j2")):
        h.update(t.read_bytes())
    for p in sorted(Path(__file__).parents[1].rglob("*.py")):     # the whole package: quantizer too
        h.update(p.read_bytes())
    return h.hexdigest()


def compile_model(model: Model, tok: Tokenizer, board: Board, scheme: Scheme, max_seq: int | None,
                  out_dir: Path, kernels: str | None = None, calib=None) -> Compiled:
    """Plan (raises FitError with the table if it does not fit) and render build/<board>/gen.
    `kernels` caps the kernels' ISA variant (e.g. "portable"); default: the best the core has.
    The integer scheme needs `calib` (quant.calibrate.Calibration)."""
    check_max_seq(max_seq, model.config.max_seq_len)
    max_seq = max_seq or model.config.max_seq_len
    if scheme.integer and calib is None:
        raise UsageError("--quant i8 needs a calibration", "make one: edgeslm calibrate MODEL -o calib.json")
    p = plan(model.config, scheme, board, max_seq, len(vocab_tables(tok)["blob"]), kernels=kernels)
    if scheme.integer:
        from ..quant.int8 import quantize_int8
        qm = quantize_int8(model, calib, scheme.int16)
    else:
        qm = quantize(model, scheme)
    gen = out_dir / "gen"
    stamp_file = gen / ".stamp"
    stamp = _stamp(model, tok, board, scheme, max_seq, p.kernel_variant, calib)
    with config_lock(out_dir):
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return Compiled(p, qm, gen, fresh=False)
        stamp_file.unlink(missing_ok=True)       # a half-written gen folder is never taken as current
        generate_sources(qm, tok, p, gen)
        stamp_file.write_text(stamp)
    return Compiled(p, qm, gen, fresh=True)


MAX_CONTEXT = 0xFFFF                  # INFO carries max seq as a u16


def check_max_seq(max_seq: int | None, model_max: int) -> None:
    """None means the model's context; otherwise 1 .. the model's context (at most 65535)."""
    if max_seq is None:
        if model_max > MAX_CONTEXT:
            raise UsageError(f"the model's context is {model_max:,} positions; the firmware holds at most "
                             f"{MAX_CONTEXT:,}", f"pass --max-seq {MAX_CONTEXT} or less")
        return
    if not 1 <= max_seq <= min(model_max, MAX_CONTEXT):
        raise UsageError(f"--max-seq {max_seq} is outside 1 .. {min(model_max, MAX_CONTEXT):,} "
                         f"(the model's context is {model_max:,})",
                         "leave it out for the model's whole context, or pass a smaller positive length")


def pio_env() -> dict:
    env = dict(os.environ)
    env.update(PLATFORMIO_SETTING_ENABLE_TELEMETRY="no", PLATFORMIO_DISABLE_UPGRADE_CHECK="true",
               PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL="3650")
    return env


def build_firmware(board: Board, project_dir: Path = PROJECT_DIR, verbose: bool = False) -> Path:
    """`pio run -e <board>` with the local platform, offline, from what `compile_model` generated
    (build/<board>/gen, including build.json: the target's toolchain and flags); returns firmware.elf,
    checked whole (`check_elf`)."""
    import configparser
    if project_dir == PROJECT_DIR:
        paths.ensure_project()              # an installed edgeslm: its working copy of the sources
    if board.cluster.get("backend") == "pmsis":        # GAP9: the GAP SDK's make, not PlatformIO
        from .gap_sdk import build_gap_sdk
        with config_lock(build_dir(board.id, project_dir)):
            return build_gap_sdk(board, project_dir, build_dir(board.id, project_dir))
    ini = configparser.ConfigParser()
    ini.read(project_dir / "platformio.ini")
    if f"env:{board.id}" not in ini:
        raise EdgeslmError(f"board {board.id} has no environment in {project_dir / 'platformio.ini'}",
                           f"add [env:{board.id}] with board = {board.id} there, and its JSON to boards/ "
                           "(PlatformIO reads boards from there)")
    port = project_dir / "firmware" / "ports" / board.port
    if not port.is_dir():            # a board planned here whose firmware port needs a vendor SDK (gap9)
        raise EdgeslmError(f"board {board.id} cannot be built here: its port firmware/ports/{board.port} "
                           "does not exist", board.unverified or "write the port (console, clocks) first")
    cmd = [sys.executable, "-m", "platformio", "run", "-e", board.id, "-d", str(project_dir)]
    elf = project_dir / "build" / "pio" / board.id / "firmware.elf"
    # this board's gen folder stays as it is while we build from it; one PlatformIO build at a time
    # in this project: they share build/pio-core's state files
    with config_lock(build_dir(board.id, project_dir)), _flock(project_dir / "build" / ".pio.lock"):
        if elf.exists():
            try:
                check_elf(elf)
            except ElfError:
                elf.unlink()              # SCons trusts its own record of the file: make it relink
        code, out = children.run(cmd, env=pio_env())
        if verbose:
            sys.stderr.write(out)
    if code != 0:
        raise EdgeslmError(f"firmware build for {board.id} failed:\n{out[-3000:]}",
                           "run `pio run -e %s -v` for the full log" % board.id)
    check_elf(elf)
    return elf


def snapshot_elf(board: Board, elf: Path, project_dir: Path = PROJECT_DIR, keep: int = 4) -> Path:
    """A copy of the ELF just built for the configuration in build/<board>/gen, named by its stamp
    (build/<board>/elf/<stamp>.elf), that later builds of other configurations leave alone. Call it
    under `config_lock`. The newest `keep` snapshots (and their QEMU logs) are kept."""
    out = build_dir(board.id, project_dir)
    stamp = (out / "gen" / ".stamp").read_text().strip()[:16]
    snaps = out / "elf"
    snaps.mkdir(parents=True, exist_ok=True)
    dest = snaps / f"{stamp}.elf"
    tmp = snaps / f".{stamp}.{os.getpid()}.tmp"
    try:
        shutil.copyfile(elf, tmp)
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)
    for old in sorted(snaps.glob("*.elf"), key=lambda p: p.stat().st_mtime, reverse=True)[keep:]:
        old.unlink(missing_ok=True)
        old.with_suffix(".qemu.log").unlink(missing_ok=True)
    return dest
