"""The lowering pipeline: model -> quantized -> planned -> generated sources -> firmware.elf.

    compile_model(model, tokenizer, board, scheme, max_seq, out_dir) -> Compiled
    build_firmware(board, project_dir) -> Path to firmware.elf   (PlatformIO, offline)

Compilation is skipped when nothing it depends on changed (a stamp in the gen folder).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .. import __version__
from ..errors import EdgeslmError
from ..model import Model, Tokenizer
from ..quant import Scheme, quantize
from ..quant.quantize import QuantModel
from .boards import Board
from .codegen import TEMPLATES_DIR, generate_sources, vocab_tables
from .plan import Plan, plan

PROJECT_DIR = Path(__file__).resolve().parents[3]


@dataclass
class Compiled:
    plan: Plan
    qmodel: QuantModel
    gen_dir: Path
    fresh: bool                  # True if the sources were (re)written this time


def build_dir(board_id: str, root: Path | None = None) -> Path:
    return (root or PROJECT_DIR) / "build" / board_id


def _stamp(model: Model, tok: Tokenizer, board: Board, scheme: Scheme, max_seq: int, kernels: str) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([__version__, model.fingerprint(), scheme.name, scheme.group_size, scheme.kv,
                         max_seq, kernels, Path(board.path).read_text() if board.path else board.id]).encode())
    h.update(b"".join(tok.vocab) + tok.scores.tobytes())
    for t in sorted(TEMPLATES_DIR.glob("*.j2")):
        h.update(t.read_bytes())
    for p in sorted(Path(__file__).parents[1].rglob("*.py")):     # the whole package: quantizer too
        h.update(p.read_bytes())
    return h.hexdigest()


def compile_model(model: Model, tok: Tokenizer, board: Board, scheme: Scheme, max_seq: int | None,
                  out_dir: Path, kernels: str | None = None) -> Compiled:
    """Plan (raises FitError with the table if it does not fit) and render build/<board>/gen.
    `kernels` caps the kernels' ISA variant (e.g. "portable"); default: the best the core has."""
    max_seq = max_seq or model.config.max_seq_len
    p = plan(model.config, scheme, board, max_seq, len(vocab_tables(tok)["blob"]), kernels=kernels)
    qm = quantize(model, scheme)
    gen = out_dir / "gen"
    stamp_file = gen / ".stamp"
    stamp = _stamp(model, tok, board, scheme, max_seq, p.kernel_variant)
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return Compiled(p, qm, gen, fresh=False)
    stamp_file.unlink(missing_ok=True)       # a half-written gen folder is never taken as current
    generate_sources(qm, tok, p, gen)
    stamp_file.write_text(stamp)
    return Compiled(p, qm, gen, fresh=True)


def pio_env() -> dict:
    env = dict(os.environ)
    env.update(PLATFORMIO_SETTING_ENABLE_TELEMETRY="no", PLATFORMIO_DISABLE_UPGRADE_CHECK="true",
               PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL="3650")
    return env


def build_firmware(board: Board, project_dir: Path = PROJECT_DIR, verbose: bool = False) -> Path:
    """`pio run -e <board>` with the local platform, offline, from what `compile_model` generated
    (build/<board>/gen, including build.json: the target's toolchain and flags); returns firmware.elf."""
    import configparser
    ini = configparser.ConfigParser()
    ini.read(project_dir / "platformio.ini")
    if f"env:{board.id}" not in ini:
        raise EdgeslmError(f"board {board.id} has no environment in {project_dir / 'platformio.ini'}",
                           f"add [env:{board.id}] with board = {board.id} there, and its JSON to boards/ "
                           "(PlatformIO reads boards from there)")
    cmd = [sys.executable, "-m", "platformio", "run", "-e", board.id, "-d", str(project_dir)]
    lock_path = project_dir / "build" / ".pio.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as lock:
        # one PlatformIO build at a time in this project: they share build/pio-core's state files
        fcntl.flock(lock, fcntl.LOCK_EX)
        r = subprocess.run(cmd, capture_output=not verbose, text=True, env=pio_env())
    if r.returncode != 0:
        out = (r.stdout or "") + (r.stderr or "")
        raise EdgeslmError(f"firmware build for {board.id} failed:\n{out[-3000:]}",
                           "run `pio run -e %s -v` for the full log" % board.id)
    return project_dir / "build" / "pio" / board.id / "firmware.elf"
