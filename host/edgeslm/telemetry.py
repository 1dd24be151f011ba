"""Telemetry: one JSON record per inference on a device, appended to a JSON Lines file.

    inference_record(run, ...)      -> dict (the record below)
    append_records(path, records)   -> appends one line per record
    read_records(paths)             -> the records of JSON Lines files (or folders of them), checked

`edgeslm run --record FILE` and `edgeslm bench --record FILE` append one line per generation (bench:
per prompt, and per prompt of the baseline); `edgeslm report FILE...` plots them. A record is plain
JSON (schema RECORD_SCHEMA, checked before anything else is read):

    schema, kind ("run" | "bench"), time (UTC, ISO 8601), edgeslm (version), protocol
    board, board_name, core, target, clock_hz, emulated, port
    model {name, hash, params}, scheme, kv, group_size, act_group_size, act_bits, int8_layers, int16, rounding,
    scheme_options (Scheme.options_label: "g32 a16 gptq"; reports group by it), kernels, max_seq,
    build_id (hex), weights_ok
    request {prompt, prompt_tokens, steps, temperature, topp, seed}
    tokens (ids, one per forward pass that sent one), text, done_reason, tokens_match, first_mismatch
    unit ("instructions" under the emulator, "cycles" on silicon, "host ns" natively)
    counts (per token, in `unit`; index = position)
    time_to_first_token {count, seconds}: the prompt's forward passes up to and including the one
        that sampled the first new token; seconds at the board's clock
    tokens_per_s {decode, all, basis}: decode = the positions after the prompt
    steps (per step of the step table: op, kernel, layer, operand, measured per forward pass, mean
        over this generation; null where the device sent no profile), by_kind_position (with
        bench --profile: per step kind, the count at each position)
    memory {regions: per region {length, planned (bytes by item), image, zero}, arena_bytes,
        kv_cache_bytes, scratch_bytes}
    stack {peak_bytes (painted, measured by the device; 0 = not measured), reserved_bytes}
    energy: null, or {estimate: true, per_token_j, first_token_j, total_j, current_ma, supply_v,
        basis, source} from the board file's `power` (a datasheet figure, not a measurement)

Counts are converted to seconds assuming one count per core cycle at the board's nominal clock
(exact for cycles on silicon; under the emulator an instruction is taken as a cycle).
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
from pathlib import Path

from . import __version__
from .errors import EdgeslmError

RECORD_SCHEMA = 1
RECORD_SUFFIX = ".jsonl"
TABLE_ITEMS = ("tokenizer", "rope tables", "step table", "integer tables")   # weights-kind items kept by name


class RecordError(EdgeslmError):
    """A records file that cannot be read, or a line that is not a record of this schema."""


def board_power(board) -> dict:
    """The board file's optional `edgeslm.power`: a datasheet's typical run current, for energy
    estimates. {} when the file has none. Read from the file itself (the Board keeps what the
    build needs); RecordError names a malformed field."""
    if not board.path:
        return {}
    try:
        power = json.loads(Path(board.path).read_text()).get("edgeslm", {}).get("power")
    except (OSError, ValueError):
        return {}
    if power is None:
        return {}
    where = f"{board.path}: edgeslm.power"
    if not isinstance(power, dict):
        raise RecordError(f"{where} must be an object")
    for key in ("current_ma", "supply_v"):
        v = power.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise RecordError(f"{where}: '{key}' must be a positive number, got {v!r}")
    if power.get("estimate") is not True or not power.get("source"):
        raise RecordError(f"{where}: needs \"estimate\": true and the \"source\" it was read from",
                          "a datasheet figure is an estimate of this workload's current: cite it")
    return power


def _seconds(count: float, unit: str, clock_hz: int) -> float | None:
    if unit == "host ns":
        return count * 1e-9
    return count / clock_hz if clock_hz else None


def _energy(power: dict, seconds: float | None) -> float | None:
    if not power or seconds is None:
        return None
    return power["current_ma"] * 1e-3 * power["supply_v"] * seconds


def inference_record(kind: str, run, info, plan, board, tok, factor: float, unit: str, *,
                     usage: dict | None, emulated: bool, port: str | None, model, request: dict) -> dict:
    """One generation (a bench.PromptRun) as a record. `factor` converts the device's counts to
    `unit` (bench.count_to_instructions); `usage` is elfsize.region_usage of the ELF, if known."""
    counts = [c * factor for c in run.counts]
    n_prompt = len(tok.encode(request["prompt"], bos=True))
    clock = board.clock_hz
    first = sum(counts[:n_prompt]) if len(counts) >= n_prompt else None
    decode = counts[n_prompt:]
    steps = None
    if run.profile is not None and run.profile.forwards:
        steps = [{"index": i, "op": ps.step.op, "kernel": ps.kernel.name, "variant": ps.kernel.variant,
                  "layer": ps.step.layer, "operand": ps.step.weight or ps.step.norm or "",
                  "measured": run.profile.ticks[i] * factor / run.profile.forwards}
                 for i, ps in enumerate(plan.steps)]
    by_kind = None
    if run.token_profiles:
        kinds = list(dict.fromkeys(ps.step.op for ps in plan.steps))
        by_kind = {k: [sum(row[i] for i, ps in enumerate(plan.steps) if ps.step.op == k) * factor
                       for row in run.token_profiles] for k in kinds}
    planned: dict[str, dict[str, int]] = {r.name: {} for r in board.memory}
    for it in plan.items:                     # the model's tensors as one "weights" item
        if it.region:
            name = "weights" if it.kind == "weights" and it.name not in TABLE_ITEMS else it.name
            planned[it.region][name] = planned[it.region].get(name, 0) + it.nbytes
    regions = {r.name: {"origin": r.origin, "length": r.length_bytes, "holds": list(r.holds),
                        "planned": planned[r.name],
                        "image": (usage or {}).get(r.name, {}).get("image"),
                        "zero": (usage or {}).get(r.name, {}).get("zero")} for r in board.memory}
    kv = sum(it.nbytes for it in plan.items if it.name == "KV cache")
    power = board_power(board)
    mean = statistics.fmean(counts) if counts else None
    t_first = _seconds(first, unit, clock) if first is not None else None
    t_token = _seconds(mean, unit, clock) if mean else None
    t_total = _seconds(sum(counts), unit, clock)
    energy = None
    if power:
        energy = {"estimate": True, "per_token_j": _energy(power, t_token), "first_token_j": _energy(power, t_first),
                  "total_j": _energy(power, t_total), "current_ma": power["current_ma"],
                  "supply_v": power["supply_v"],
                  "basis": f"{power['current_ma']} mA x {power['supply_v']} V x the time at "
                           f"{clock / 1e6:g} MHz ({power.get('condition', 'datasheet run current')})",
                  "source": power.get("source", "")}
    basis = ("host nanoseconds" if unit == "host ns" else
             f"1 {unit[:-1]} per cycle at {clock / 1e6:g} MHz" if unit == "instructions" else
             f"core cycles at {clock / 1e6:g} MHz")
    return {
        "schema": RECORD_SCHEMA, "kind": kind,
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "edgeslm": __version__, "protocol": info.protocol,
        "board": board.id, "board_name": board.name, "core": board.core.id, "target": board.target.name,
        "clock_hz": clock, "emulated": emulated, "port": port,
        "model": {"name": Path(model.source).name, "hash": info.model_hash, "params": model.n_params()},
        "scheme": plan.scheme.name, "kv": plan.scheme.kv, "group_size": plan.scheme.group_size,
        "act_group_size": plan.scheme.kernel_group_size, "act_bits": plan.scheme.act_bits,
        "int8_layers": plan.scheme.int8_layers, "int16": list(plan.scheme.int16), "rounding": plan.scheme.rounding,
        "scheme_options": plan.scheme.options_label(),
        "kernels": plan.kernel_variant, "max_seq": plan.max_seq,
        "build_id": f"{info.build_id:08x}", "weights_ok": info.weights_ok,
        "request": {**request, "prompt": request["prompt"] if isinstance(request["prompt"], str)
                    else request["prompt"].decode("utf-8", "replace"), "prompt_tokens": n_prompt},
        "tokens": list(run.tokens), "text": run.text.decode("utf-8", "replace"),
        "done_reason": run.done.reason if run.done else None,
        "tokens_match": run.ok, "first_mismatch": run.mismatch,
        "unit": unit, "counts": counts,
        "time_to_first_token": {"count": first, "seconds": t_first},
        "tokens_per_s": {"decode": 1 / _seconds(statistics.fmean(decode), unit, clock) if decode else None,
                         "all": 1 / t_token if t_token else None, "basis": basis},
        "steps": steps, "by_kind_position": by_kind,
        "memory": {"regions": regions, "arena_bytes": plan.arena_bytes, "kv_cache_bytes": kv,
                   "scratch_bytes": plan.scratch_bytes},
        "stack": {"peak_bytes": run.done.stack_peak if run.done else 0, "reserved_bytes": board.stack_bytes,
                  "method": "painted"},
        "energy": energy,
    }


def check_record_path(path: str | Path) -> Path:
    """--record's path: a file to append to in a folder that exists (refused before any work)."""
    p = Path(path)
    if p.is_dir():
        raise RecordError(f"--record {p} is a folder", f"name a file, e.g. {p / ('records' + RECORD_SUFFIX)}")
    if not p.parent.is_dir():
        raise RecordError(f"--record {p}: the folder {p.parent} does not exist", f"mkdir -p {p.parent}")
    return p


def append_records(path: str | Path, records: list[dict]) -> Path:
    """Append one line per record. One write per record: runs appending to the same file (pytest-xdist
    workers, a board farm) interleave whole lines."""
    p = check_record_path(path)
    try:
        with open(p, "a", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, separators=(",", ":")) + "\n")
                f.flush()
    except OSError as e:
        raise RecordError(f"cannot append to {p}: {e.strerror or e}") from None
    return p


REQUIRED = ("board", "scheme", "kv", "kernels", "unit", "counts", "build_id", "memory", "stack",
            "time_to_first_token", "tokens_per_s", "tokens_match")


def check_record(r, where: str) -> dict:
    if not isinstance(r, dict):
        raise RecordError(f"{where}: not a JSON object")
    if r.get("schema") != RECORD_SCHEMA:
        raise RecordError(f"{where}: record schema {r.get('schema')!r}, this edgeslm reads {RECORD_SCHEMA}",
                          "write the records again with this edgeslm (run/bench --record)")
    missing = [k for k in REQUIRED if k not in r]
    if missing:
        raise RecordError(f"{where}: record without {', '.join(missing)}")
    if not isinstance(r["counts"], list) or not all(isinstance(c, (int, float)) for c in r["counts"]):
        raise RecordError(f"{where}: 'counts' must be a list of numbers")
    return r


def read_records(paths: list[str | Path]) -> list[dict]:
    """Every record in the files given (a folder: its *.jsonl files), in order; blank lines skipped."""
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(p.glob(f"*{RECORD_SUFFIX}"))
        elif p.is_file():
            files.append(p)
        else:
            raise RecordError(f"no records file {p}", "pass files written by run/bench --record")
    out = []
    for f in files:
        try:
            lines = f.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise RecordError(f"cannot read {f}: {e}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except json.JSONDecodeError as e:
                raise RecordError(f"{f}:{n}: not JSON ({e.msg})", "one JSON record per line") from None
            out.append(check_record(r, f"{f}:{n}"))
    if not out:
        raise RecordError(f"no records in {', '.join(map(str, paths))}")
    return out
