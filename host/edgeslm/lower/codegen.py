"""Codegen: render templates/*.j2 into build/<board>/gen/ for a planned, quantized model.

    generate_sources(qmodel, tokenizer, plan, out_dir) -> GeneratedSources

Writes the model's C (weights, step table with each step's kernel entry, buffers, tokenizer), the
linker script, and build.json: what the firmware build needs from the target (toolchain, flags,
defines, source folders), so the PlatformIO builder decides nothing itself.
Every number is computed and checked here; the templates only lay out declarations.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import jinja2
import numpy as np

from .. import paths
from .. import __version__
from ..errors import EdgeslmError
from ..fileio import write_atomic
from ..model.tokenizer import Tokenizer
from ..quant.golden import rope_tables
from ..quant.quantize import QuantModel
from . import cdata
from .plan import Plan

TEMPLATES_DIR = paths.TEMPLATES
# What every firmware build of the kernels needs, whatever builds it (PlatformIO, the GAP SDK's
# make): golden's float arithmetic, one rounding per operation (no fused multiply-add), no errno.
ARITHMETIC_CFLAGS = ("-ffp-contract=off", "-fno-math-errno")
BUILD_SETTINGS_SCHEMA = 1         # build/<board>/gen/build.json, read by firmware/pio/platform/builder
FIRMWARE_DIR = paths.FIRMWARE


@dataclass
class GeneratedSources:
    out_dir: Path
    files: list[Path]
    weights_crc32: int
    build_id: int


@dataclass
class _Array:
    name: str
    ctype: str
    length: int
    body: str
    section: str
    raw: bytes               # little-endian bytes, for the checksum


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), undefined=jinja2.StrictUndefined,
                              keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def _array(name: str, a: np.ndarray, section: str) -> _Array:
    a = np.ascontiguousarray(a)
    if a.dtype == np.float32:
        return _Array(name, "float", a.size, cdata.f32_body(a), section, a.astype("<f4").tobytes())
    ctype = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t"}[a.dtype]
    return _Array(name, ctype, a.size, cdata.int_body(a), section, a.tobytes())


MERGE_FLOOR = np.float32(-1e10)      # run.c's starting best score: a merge must score above it


def merge_ranks(scores: np.ndarray) -> np.ndarray:
    """The merge scores as dense int32 ranks (equal scores, equal ranks; higher score, higher rank),
    so the firmware compares integers and picks exactly the merges run.c's float `>` picks. A
    score not above run.c's -1e10 start can never be merged: rank -1 (the firmware's start)."""
    s = np.asarray(scores, np.float32)
    uniq = np.unique(s[s > MERGE_FLOOR])
    return np.where(s > MERGE_FLOOR, np.searchsorted(uniq, s), -1).astype(np.int32)


def vocab_tables(tok: Tokenizer) -> dict:
    """The tokenizer as C tables; refuses a vocabulary whose byte tokens are not ids 3..258."""
    for b in range(256):
        if tok.vocab[3 + b] != f"<0x{b:02X}>".encode():
            raise EdgeslmError(f"tokenizer {tok.source}: token {3 + b} is {tok.vocab[3 + b]!r}, "
                               f"expected <0x{b:02X}> (byte-fallback tokens must be ids 3..258)")
    if tok.vocab_size > 65535:
        raise EdgeslmError(f"tokenizer {tok.source}: {tok.vocab_size} tokens do not fit 16-bit ids")
    blob = b"".join(tok.vocab)
    offsets = np.cumsum([0] + [len(v) for v in tok.vocab]).astype(np.uint32)
    first: dict[bytes, int] = {}
    for i, v in enumerate(tok.vocab):
        first.setdefault(v, i)
    sorted_ids = [first[s] for s in sorted(first)]
    return {"blob": blob, "offsets": offsets, "ranks": merge_ranks(tok.scores),
            "sorted": np.array(sorted_ids, np.uint16)}


def build_settings(plan: Plan) -> dict:
    """What the firmware build takes from the target: toolchain, flags, defines, source folders
    (relative to firmware/). Read by firmware/pio/platform/builder/main.py."""
    board, target = plan.board, plan.board.target
    flags = target.flags(board.core)
    backend = board.cluster.get("backend")             # a cluster's back end (Board.arch_dir)
    return {
        "schema": BUILD_SETTINGS_SCHEMA,
        "board": board.id, "target": target.name, "core": board.core.id,
        "kernel_variant": plan.kernel_variant,
        "toolchain_prefix": target.toolchain_prefix,
        "cflags": flags + list(ARITHMETIC_CFLAGS), "link_flags": flags + list(target.link_flags),
        "libs": list(target.libs),
        "defines": {"ESL_TARGET": 1, **target.defines(plan.kernel_variant),
                    **({"ESL_CONSOLE_BASE": f"{int(str(board.console['base']), 0):#010x}u"}
                       if "base" in board.console else {}),
                    **({"ESL_CLUSTER_CORES": board.cores} if board.cluster else {}),
                    **({"ESL_CLINT_BASE": f"{int(str(board.cluster['clint_base']), 0):#010x}u"}
                       if "clint_base" in board.cluster else {}),
                    **(_cluster_defines(plan) if plan.cluster and backend == "qemu" else {}),
                    **(_pmsis_defines(plan) if plan.cluster and backend == "pmsis" else {}),
                    **scheme_defines(plan.scheme)},
        "scheme_defines": scheme_defines(plan.scheme),
        "sources": ["runtime", "kernels", board.arch_dir, f"ports/{board.port}"],
        # files of those folders that this build leaves out: under PMSIS the OS starts the program
        # (pmsis_kickoff in the port's main.c), not runtime/main.c
        "exclude": ["runtime/main.c"] if backend == "pmsis" else [],
    }


def scheme_defines(scheme) -> dict[str, int]:
    """What the kernels take from the scheme at build time: the w8f matmuls' int16 activations, and
    the group size the quantized matmuls work in (their DSP fast paths link only that one's routines)."""
    out = {"ESL_MATMUL_X16": 1} if scheme.act_bits == 16 else {}
    if scheme.name in ("q8", "q4"):
        out["ESL_MATMUL_GROUP_SIZE"] = scheme.kernel_group_size
    return out


def _cluster_defines(plan: Plan) -> dict[str, int]:
    """The cluster's DMA model for the QEMU back end (firmware/arch/riscv_pulp/cluster_qemu.c):
    the board's DMA figures in cycles, and clock ticks per cycle (one instruction per cycle; under
    -icount the clock advances 2^icount_shift ns per instruction, read at emulator.systick_hz)."""
    t, emu = plan.cluster.timing, plan.board.emulator
    ticks = 1
    if emu.get("icount_shift") is not None:
        per_instruction = (1 << int(emu["icount_shift"])) * int(emu.get("systick_hz", 10**9))
        if per_instruction % 10**9:
            raise EdgeslmError(f"board {plan.board.id}: 2^icount_shift ns at systick_hz is not a whole "
                               "number of clock ticks per instruction")
        ticks = per_instruction // 10**9
    return {"ESL_CL_DMA_SETUP_CYCLES": t.dma_setup_cycles, "ESL_CL_DMA_BYTES_PER_CYCLE": t.dma_bytes_per_cycle,
            "ESL_CL_TICKS_PER_CYCLE": ticks}


def _pmsis_defines(plan: Plan) -> dict[str, int]:
    """The cluster's L1 layout for the PMSIS back end (firmware/arch/riscv_pulp/pmsis/), which sizes
    its static L1 array from these (the QEMU back end has them from the linker script), the stacks
    of the cluster task it sends each token, and the console's baud rate."""
    c = plan.board.cluster
    return {"ESL_CLUSTER_PMSIS": 1, "ESL_CL_SCRATCH_BYTES": plan.l1_scratch_bytes,
            "ESL_CL_TILES_AT": plan.cluster.tiles_at, "ESL_CL_SLOT0_BYTES": plan.cluster.slot_bytes[0],
            "ESL_CL_WORKER_STACK_BYTES": c["worker_stack_bytes"],
            "ESL_CL_CONTROLLER_STACK_BYTES": c["controller_stack_bytes"],
            "ESL_CONSOLE_BAUD": int(plan.board.console.get("baud", 115200))}


def _float_tensors(qm: QuantModel, plan: Plan, ro) -> tuple[list[_Array], list[dict], dict[str, str]]:
    """Arrays, esl_weight_t's and norm-weight names of a float scheme (f32, q8, q4)."""
    arrays: list[_Array] = []
    weights: list[dict] = []
    norms: dict[str, str] = {}
    for name, t in qm.tensors.items():
        cname = cdata.ident(name)
        if isinstance(t, np.ndarray):
            arrays.append(_array(f"n_{cname}", t, ro(name)))
            norms[name] = f"n_{cname}"
            continue
        data = t.packed() if t.bits == 4 else t.values
        arrays.append(_array(f"d_{cname}", data, ro(name)))
        if t.scales is not None:
            arrays.append(_array(f"s_{cname}", t.scales, ro(name)))
        weights.append({"name": f"w_{cname}", "data": f"d_{cname}",
                        "scales": f"s_{cname}" if t.scales is not None else "NULL",
                        "rows": t.shape[0], "cols": t.shape[1], "group_size": t.group_size,
                        "n_groups": t.n_groups, "bits": t.bits})
    cos, sin = rope_tables(qm.config.head_size, plan.max_seq, qm.config.rope_theta)
    arrays += [_array("rope_cos", cos, ro("rope tables")), _array("rope_sin", sin, ro("rope tables"))]
    return arrays, weights, norms


# Where each s8 step's arrays live: the plan item they are counted in (sizes.weight_bytes).
def _s8_item(step) -> str:
    if step.op in ("attention", "swiglu"):
        return "integer tables"
    return {"embed": step.weight, "matmul": step.weight, "rmsnorm": step.norm}[step.op]


def _integer_tensors(qm, plan: Plan, ro) -> tuple[list[_Array], list[dict], list[dict]]:
    """Arrays, esl_weight_t's and per-step parameter structs of the integer scheme (i8): each s8
    step's integers (quant/golden_s8.step_params) as a const esl_<op>_s8_t beside its arrays."""
    from ..quant.golden_s8 import rope_tables_s8, step_params
    arrays: list[_Array] = []
    weights: dict[str, dict] = {}
    cos, sin = rope_tables_s8(qm.rope[:plan.max_seq])
    arrays += [_array("rope_cos_s8", cos, ro("rope tables")), _array("rope_sin_s8", sin, ro("rope tables"))]
    params = []
    for i, ps in enumerate(plan.steps):
        s = ps.step
        p = step_params(qm, s)
        if s.weight and s.weight not in weights:
            cname = cdata.ident(s.weight)
            arrays.append(_array(f"d_{cname}", p["w"], ro(s.weight)))
            weights[s.weight] = {"name": f"w_{cname}", "data": f"d_{cname}", "scales": "NULL",
                                 "rows": p["w"].shape[0], "cols": p["w"].shape[1], "group_size": 0,
                                 "n_groups": 0, "bits": 8}
        if not p:
            params.append(None)
            continue
        fields = []
        for key, v in p.items():
            if key == "w":
                continue                                   # the step's esl_weight_t
            if isinstance(v, np.ndarray):
                arrays.append(_array(f"sp{i}_{key}", v, ro(_s8_item(s))))
                fields.append(f".{key} = sp{i}_{key}")
            else:
                fields.append(f".{key} = {cdata.i32(v)}")
        if s.op == "rope":
            fields += [".cos = rope_cos_s8", ".sin = rope_sin_s8"]
        params.append({"name": f"sp{i}", "type": f"esl_{s.kernel}_t", "init": ", ".join(fields)})
    return arrays, list(weights.values()), params


def _logit_k(qm) -> int:
    from ..sampler import logit_k
    return logit_k(qm.params["logits"][0])


def generate_sources(qm, tok: Tokenizer, plan: Plan, out_dir: Path) -> GeneratedSources:
    """qm: the QuantModel of a float scheme, or the I8Model of the integer scheme."""
    cfg, scheme = qm.config, qm.scheme
    region = {it.name: it.region for it in plan.items}
    ro = lambda item: f".esl.weights.{region[item]}"          # noqa: E731
    rw = lambda item: f".esl.ram.{region[item]}"              # noqa: E731
    if scheme.integer:
        arrays, weights, params = _integer_tensors(qm, plan, ro)
        norms: dict[str, str] = {}
    else:
        arrays, weights, norms = _float_tensors(qm, plan, ro)
        params = [None] * len(plan.steps)

    crc = 0
    for a in arrays:
        crc = zlib.crc32(a.raw, crc)
    steps = []
    for i, ps in enumerate(plan.steps):
        s, k = ps.step, ps.kernel
        if not (FIRMWARE_DIR / k.c_file).is_file():
            raise EdgeslmError(f"kernel {k.name} has no C file firmware/{k.c_file}")
        off = lambda v: plan.offsets[v] if v else 0    # noqa: E731
        # a matmul's n: bit 16 (ESL_MATMUL_X_READY, esl_types.h) when the step before left its input
        # prepared in the scratch; on a cluster (esl_cluster.h) also its tiling: rows per DMA tile,
        # bit 17 its first tile's L1 slot, bits 18-31 1 + the step whose first tile it prefetches
        n, tiling = s.n, ""
        if s.op == "matmul":
            n = int(s.input_prepared) << 16
            tiling = " (input prepared by the step before)" if s.input_prepared else ""
        if ps.tile_rows:
            nxt = plan.cluster.next_matmul.get(i)
            if not 0 < ps.tile_rows < 1 << 16 or len(plan.steps) >= (1 << 14) - 1:
                raise EdgeslmError(f"step {i}: {ps.tile_rows} rows per DMA tile or {len(plan.steps)} steps "
                                   "do not fit the step's n (16 and 14 bits)")
            n |= ps.tile_rows | (ps.slot << 17) | ((nxt + 1 if nxt is not None else 0) << 18)
            tiling = (f" (DMA tiles of {ps.tile_rows} rows{', x quantized before' if s.input_prepared else ''}"
                      f"{f', prefetches step {nxt}' if nxt is not None else ''})")
        steps.append({"run": k.step_symbol, "layer": s.layer, "out": off(s.out), "in": off(s.inp),
                      "in2": off(s.in2), "n": n,
                      "index": f"{i}: {k.name} {s.weight or s.norm or ''}".strip() + tiling,
                      "w": f"&w_{cdata.ident(s.weight)}" if s.weight else "NULL",
                      "norm": norms[s.norm] if s.norm in norms else "NULL",
                      "p": f"&{params[i]['name']}" if params[i] else "NULL"})
    kernels = [{"symbol": k.step_symbol, "file": k.c_file, "variant": k.variant} for k in plan.kernels()]
    v = vocab_tables(tok)
    vocab = {"blob": _array("vocab_blob", np.frombuffer(v["blob"], np.uint8), ro("tokenizer")),
             "offsets": cdata.int_body(v["offsets"], 12), "ranks": cdata.int_body(v["ranks"], 16),
             "sorted": cdata.int_body(v["sorted"], 16), "n_sorted": len(v["sorted"]),
             "size": tok.vocab_size, "max_token_length": tok.max_token_length}
    kv_len = cfg.n_layers * plan.max_seq * cfg.kv_dim
    ctx = {
        "version": __version__, "fingerprint": qm.model_fingerprint, "scheme": scheme, "cfg": cfg,
        "board": plan.board, "plan": plan, "arrays": arrays, "weights": weights, "steps": steps,
        "kernels": kernels, "kernel_variant": plan.kernel_variant, "params": [p for p in params if p],
        "arena_words": max(1, -(-plan.arena_bytes // 4)), "logits_byte": plan.offsets["logits"] * scheme.activation_bytes,
        "scratch_words": max(1, plan.scratch_bytes // 8),
        "vocab": vocab, "kv_len": kv_len, "kv_scale_len": cfg.n_layers * plan.max_seq * cfg.n_kv_heads,
        "kv_section": rw("KV cache"), "table_section": ro("step table"), "arena_section": rw("activation arena"),
        "scratch_section": rw("kernel scratch"), "profile_section": rw("step profile"),
        "sampler_section": rw("sampler scratch"),
        "logit_k": _logit_k(qm) if scheme.integer else 0,
        "norm_eps": cdata.f32(cfg.norm_eps), "inv_sqrt_hs": cdata.f32(1.0 / np.sqrt(cfg.head_size)),
        "model_hash": ", ".join(f"0x{b:02x}" for b in bytes.fromhex(qm.model_fingerprint[:16])),
        "weights_crc32": crc,
        "regions": [{"name": r.name, "origin": r.origin, "length": r.length_bytes, "holds": r.holds}
                    for r in plan.board.memory],
        "ram_region": plan.board.regions_for("ram")[0].name,
        "code_region": plan.board.regions_for("code")[0].name,
        "stack_bytes": plan.board.stack_bytes,
        "cluster": {"cores": plan.board.cores, **plan.board.cluster,
                    "scratch_bytes": plan.l1_scratch_bytes,
                    "tiles_at": plan.cluster.tiles_at if plan.cluster else 0,
                    "slot0_bytes": plan.cluster.slot_bytes[0] if plan.cluster else 0},
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    env = _env()
    rendered = {}
    for tmpl, fname in [("esl_config.h.j2", "esl_config.h"), ("esl_weights.c.j2", "esl_weights.c"),
                        ("esl_vocab.c.j2", "esl_vocab.c"), (f"link_{plan.board.target.arch_dir}.ld.j2", "link.ld")]:
        rendered[fname] = env.get_template(tmpl).render(ctx, template=tmpl)
    rendered["build.json"] = json.dumps(build_settings(plan), indent=2) + "\n"
    build_id = zlib.crc32("".join(rendered[k] for k in sorted(rendered)).encode())
    rendered["esl_model.c"] = env.get_template("esl_model.c.j2").render(
        ctx, template="esl_model.c.j2", build_id=build_id)
    files = []
    for fname, text in rendered.items():
        files.append(write_atomic(out_dir / fname, text))
    return GeneratedSources(out_dir, files, crc, build_id)
