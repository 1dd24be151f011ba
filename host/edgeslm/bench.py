"""Run prompts on a device (emulated or real) and check every token against the golden model.

    open_device(board, elf, emulate, port)            -> context manager yielding a Device
    run_prompt(device, golden, tok, prompt, ...)       -> PromptRun (tokens, per-token counts, verdict)
    summarize(runs, plan, board, elf)                  -> the bench figures (dict, JSON-ready)
    fit_costs(report, plan)                            -> the cost table these figures imply

Per-step figures come from the firmware's own counter around every step of the step table
(PROFILE after each generation), converted to instructions like the per-token counts.
"""

from __future__ import annotations

import contextlib
import json
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from .bridge import Device, SerialTransport
from .bridge import protocol as P
from .emulator import Emulator
from .errors import EdgeslmError
from .lower.boards import Board
from .lower.elfsize import region_usage
from .lower.plan import Plan
from .targets import work_units
from .model.tokenizer import Tokenizer
from .quant.golden import GoldenEngine
from .verify import expected_tokens, first_mismatch


@dataclass
class PromptRun:
    prompt: str
    tokens: list[int] = field(default_factory=list)
    counts: list[int] = field(default_factory=list)     # per token, in the device's unit
    text: bytes = b""
    expected: list[int] = field(default_factory=list)
    mismatch: int | None = None
    done: P.Done | None = None
    profile: P.ProfileData | None = None                # per-step ticks of this generation
    token_profiles: list[list[int]] = field(default_factory=list)   # per token (bench --profile)
    cluster: dict | None = None                          # an emulated cluster's counts this generation
                                                         # (cluster_report: forks, ticks, waits, DMA)

    @property
    def ok(self) -> bool:
        return self.mismatch is None


@contextlib.contextmanager
def open_device(board: Board, elf: Path | None, emulate: bool, port: str | None,
                timeout: float = 30.0, emulator: str = "qemu",
                labgrid: str | None = None) -> Iterator[tuple[Device, Emulator | None]]:
    """A connected Device: the emulator started for `emulate` (QEMU, or Renode with
    emulator="renode"), the console of a labgrid environment's target (edgeslm.farm), else the
    serial port / pyserial URL."""
    if labgrid:
        from .farm import labgrid_device
        with labgrid_device(labgrid, elf, timeout) as dev:
            yield dev, None
        return
    if emulate:
        if emulator == "renode":
            from .emulator.renode import RenodeEmulator
            start = RenodeEmulator(board, elf)
        else:
            start = Emulator(board, elf)
        with start as emu:
            dev = Device(emu.transport, timeout)
            try:
                yield dev, emu
            except EdgeslmError as e:
                code = emu.exit_code()
                if code is not None:          # say why the link died; keep the error's type
                    e.args = (f"{e} (the emulator exited with code {code}: "
                              f"{'killed or firmware fault' if code else 'firmware stopped'})",)
                raise
    else:
        if not port:
            raise EdgeslmError("no device: pass --emulate or --port /dev/ttyXXX (any pyserial URL)")
        with Device(SerialTransport(port), timeout) as dev:
            yield dev, None


def run_prompt(dev: Device, golden: GoldenEngine, tok: Tokenizer, prompt: str, steps: int,
               temperature: float, topp: float, seed: int,
               on_token: Callable[[P.Token, bool], None] | None = None,
               profile_each: bool = False) -> PromptRun:
    """Generate on the device; every token is compared with the golden model's as it arrives
    (on_token(token, matches) streams it). profile_each: also the per-step ticks of every token."""
    run = PromptRun(prompt)
    run.expected = expected_tokens(golden, tok, prompt, steps, temperature, topp, seed)
    pieces = []
    for msg in dev.generate(prompt, steps, temperature, topp, seed, profile_each=profile_each):
        if isinstance(msg, P.ProfileData):
            run.token_profiles.append(msg.ticks)
            continue
        if isinstance(msg, P.Done):
            run.done = msg
            break
        i = len(run.tokens)
        run.tokens.append(msg.token)
        run.counts.append(msg.cycles)
        pieces.append(Tokenizer.printable(msg.piece))
        if on_token:
            on_token(msg, i < len(run.expected) and run.expected[i] == msg.token)
    run.text = b"".join(pieces)
    run.mismatch = first_mismatch(run.tokens, run.expected)
    if profile_each:                          # PROFILE would hold only the last forward pass
        run.profile = P.ProfileData(0, len(run.token_profiles), len(golden.steps), 0,
                                    [sum(col) for col in zip(*run.token_profiles)] or [0] * len(golden.steps))
        if run.done:                          # a BOS-ending forward sent no token and no profile
            run.done.cycles = sum(run.counts)
    else:
        run.profile = dev.profile()
    run.cluster = cluster_report(getattr(dev.t, "emulator_log", None))
    if run.profile.n_steps != len(golden.steps):
        raise EdgeslmError(f"the device's step table has {run.profile.n_steps} steps, the plan has "
                           f"{len(golden.steps)}", "rebuild and flash the firmware for this plan")
    return run


_CLUSTER_LINE = re.compile(rb"esl-cluster: cores (\d+) forks (\d+) ticks ([\d,]+) waits ([\d,]+) "
                           rb"dma (\d+) cmds (\d+) wait (\d+)")


def cluster_report(log: Path | None) -> dict | None:
    """The last generation's cluster counts from the emulator's log: a cluster target's firmware
    prints `esl-cluster: cores N forks F ticks T1,...,TN waits W1,...,WN dma B cmds C wait D`
    there as each generation ends (firmware/arch/riscv_pulp/cluster_qemu.c): forks, each worker's
    instructions and modelled DMA waits (ticks), DMA bytes and commands, and the modelled DMA wait
    on the forks' busiest paths (ticks). None if there is none."""
    if log is None:
        return None
    try:
        found = _CLUSTER_LINE.findall(Path(log).read_bytes())
    except OSError:
        return None
    if not found:
        return None
    _, forks, ticks, waits, dma, cmds, wait = found[-1]
    return {"forks": int(forks), "ticks": [int(t) for t in ticks.split(b",")],
            "waits": [int(t) for t in waits.split(b",")], "dma_bytes": int(dma), "dma_commands": int(cmds),
            "dma_wait": int(wait)}


def cluster_summary(runs: list[PromptRun], plan: Plan, factor: float, forwards: int,
                    instructions_per_token: float) -> dict | None:
    """Per cluster worker: instructions per token (means over every forward pass), the busiest
    one's, and the balance (mean over max: 1.0 when every core does the same work); the DMA
    traffic per token (measured) against the plan's; and the time model: the busiest core's
    instructions (instructions_per_token) plus, per fork, the board's dispatch and barrier cycles
    and the DMA waits the double buffering could not hide (modelled by the firmware from the
    board's DMA figures), at one instruction per cycle."""
    counted = [r.cluster for r in runs if r.cluster]
    if not counted or not forwards or plan.cluster is None:
        return None
    n = max(len(c["ticks"]) for c in counted)
    per_core = [sum(c["ticks"][k] for c in counted if k < len(c["ticks"])) * factor / forwards for k in range(n)]
    waits = [sum(c["waits"][k] for c in counted if k < len(c["waits"])) * factor / forwards for k in range(n)]
    busiest = max(per_core)
    t = plan.cluster.timing
    forks = sum(c["forks"] for c in counted) / forwards
    fork_cycles = forks * (t.fork_cycles + t.barrier_cycles)
    dma_wait = sum(c["dma_wait"] for c in counted) * factor / forwards
    cycles = instructions_per_token + fork_cycles + dma_wait
    return {"cores": n, "forks_per_token": forks, "forks_per_token_planned": plan.cluster.forks_per_token,
            "instructions_per_token_per_core": per_core, "busiest_core": per_core.index(busiest),
            "busiest_core_instructions_per_token": busiest,
            "balance": (sum(per_core) / n / busiest) if busiest else None,
            "dma_bytes_per_token": sum(c["dma_bytes"] for c in counted) / forwards,
            "dma_bytes_per_token_planned": plan.cluster.dma_bytes_per_token,
            "dma_commands_per_token": sum(c["dma_commands"] for c in counted) / forwards,
            "dma_wait_cycles_per_token_per_core": waits,
            "time_model": {
                "busiest_core_instructions": instructions_per_token,
                "fork_barrier_cycles": fork_cycles, "dma_wait_cycles": dma_wait,
                "dma_wait_cycles_planned": sum(c.overhead_cycles for c in plan.cluster.per_step)
                - plan.cluster.fork_cycles_per_token,
                "cycles_per_token": cycles,
                "tokens_per_s_at_cluster_clock": plan.board.clock_hz / cycles if cycles else None,
                "figures": {"fork_cycles": t.fork_cycles, "barrier_cycles": t.barrier_cycles,
                            "dma_bytes_per_cycle": t.dma_bytes_per_cycle,
                            "dma_setup_cycles": t.dma_setup_cycles,
                            "source": plan.board.path or plan.board.id}}}


def count_to_instructions(board: Board, unit: str) -> tuple[float, str]:
    """(factor, name): device counts x factor = the figure we report."""
    if unit == "systick":
        emu = board.emulator
        ns_per_tick = 1e9 / emu.get("systick_hz", board.clock_hz)
        return ns_per_tick / (1 << emu.get("icount_shift", 7)), "instructions"
    if unit == "ns":
        return 1.0, "host ns"
    return 1.0, "cycles"


def step_profile(runs: list[PromptRun], plan: Plan, factor: float) -> list[dict]:
    """Per step of the table: measured and predicted instructions per forward pass (means over
    every forward of every run), with the step's kernel and its mean work units."""
    forwards = sum(r.profile.forwards for r in runs if r.profile)
    if not forwards:
        return []
    positions = [p for r in runs if r.profile for p in range(r.profile.forwards)]
    out = []
    for i, ps in enumerate(plan.steps):
        ticks = sum(r.profile.ticks[i] for r in runs if r.profile)
        pred = [plan.predicted_step(i, p) for p in positions]
        units: dict[str, float] = {}
        for p in positions:
            for u, v in work_units(ps.step, plan.config, p).items():
                units[u] = units.get(u, 0.0) + v / len(positions)
        out.append({"index": i, "op": ps.step.op, "kernel": ps.kernel.name, "variant": ps.kernel.variant,
                    "cost_key": ps.kernel.cost_key, "layer": ps.step.layer,
                    "operand": ps.step.weight or ps.step.norm or "",
                    "measured": ticks * factor / forwards,
                    "predicted": None if pred[0] is None else sum(pred) / len(pred), "units": units})
        if plan.cluster:        # the step's time: its busiest core's count plus the planner's overheads
            c = plan.cluster.per_step[i]
            out[-1]["cluster"] = {"forks": ps.forks, "tile_rows": ps.tile_rows, "dma_bytes": c.dma_bytes,
                                  "overhead_cycles": c.overhead_cycles,
                                  "time_cycles": out[-1]["measured"] + c.overhead_cycles}
    return out


def kind_profile(runs: list[PromptRun], plan: Plan, factor: float) -> dict:
    """Instructions per token by step kind (the op) and position, averaged over the runs that
    reached each position: {"kinds": [...], "by_position": {kind: [per position]}, "weight_macs": n,
    "units_by_position": {kind: {unit: [per position]}}} (the last for kinds whose work grows with
    the position, attention: what lets fit_costs separate its per-call and per-score costs)."""
    kinds = list(dict.fromkeys(ps.step.op for ps in plan.steps))
    depth = max((len(r.token_profiles) for r in runs), default=0)
    by_pos = {k: [] for k in kinds}
    units_by_pos: dict[str, dict[str, list[float]]] = {}
    for pos in range(depth):
        rows = [r.token_profiles[pos] for r in runs if len(r.token_profiles) > pos]
        for k in kinds:
            idx = [i for i, ps in enumerate(plan.steps) if ps.step.op == k]
            by_pos[k].append(sum(row[i] for row in rows for i in idx) * factor / len(rows))
    for k in kinds:
        steps = [ps.step for ps in plan.steps if ps.step.op == k]
        if depth > 1 and work_units(steps[0], plan.config, 0) != work_units(steps[0], plan.config, 1):
            series: dict[str, list[float]] = {}
            for pos in range(depth):
                for st in steps:
                    for u, v in work_units(st, plan.config, pos).items():
                        series.setdefault(u, [0.0] * depth)[pos] += v
            units_by_pos[k] = series
    return {"kinds": kinds, "by_position": by_pos, "weight_macs": plan.weight_macs,
            "units_by_position": units_by_pos}


def plot_profile(profile: dict, title: str, out: Path) -> Path:
    """A PNG of instructions per token against position, stacked by step kind."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeslmError("bench --profile draws its plot with matplotlib, which is not installed",
                           "pip install matplotlib (or pip install -e '.[dev]')") from None
    from .fileio import write_atomic
    kinds = sorted(profile["kinds"], key=lambda k: -sum(profile["by_position"][k]))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    pos = range(len(profile["by_position"][kinds[0]]))
    ax.stackplot(pos, *[profile["by_position"][k] for k in kinds], labels=kinds)
    ax.set_xlabel("position")
    ax.set_ylabel("instructions per token")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    ax.grid(alpha=0.3)
    import io
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_atomic(out, buf.getvalue())


def by_kernel(steps: list[dict]) -> dict[str, dict]:
    """The per-step figures summed per kernel variant (per forward pass)."""
    out: dict[str, dict] = {}
    for s in steps:
        k = out.setdefault(s["cost_key"], {"steps": 0, "measured": 0.0, "predicted": 0.0})
        k["steps"] += 1
        k["measured"] += s["measured"]
        k["predicted"] = None if k["predicted"] is None or s["predicted"] is None else k["predicted"] + s["predicted"]
    return out


def summarize(runs: list[PromptRun], plan: Plan, board: Board, elf: Path | None, info: P.Info) -> dict:
    factor, unit = count_to_instructions(board, info.cycle_unit)
    per_tok = [c * factor for r in runs for c in r.counts]
    by_pos: dict[int, list[float]] = {}
    for r in runs:
        for pos, c in enumerate(r.counts):
            by_pos.setdefault(pos, []).append(c * factor)
    mean = statistics.fmean(per_tok) if per_tok else 0.0
    max_steps = max((len(r.counts) for r in runs), default=1)
    predicted = plan.predicted_mean(max_steps)
    mismatch = next((r for r in runs if not r.ok), None)
    usage = region_usage(elf, board) if elf else {}
    flash = sum(u["image"] for u in usage.values())
    ram = sum(u["zero"] for u in usage.values())
    macs = plan.weight_macs
    steps = step_profile(runs, plan, factor)
    forwards = sum(r.profile.forwards for r in runs if r.profile)
    total = sum(r.done.cycles for r in runs if r.done) * factor
    cluster = cluster_summary(runs, plan, factor, forwards, mean)
    return {
        "board": board.id, "core": board.core.id, "scheme": plan.scheme.name, "kv": plan.scheme.kv,
        "kernels": plan.kernel_variant,
        "group_size": plan.scheme.group_size, "act_group_size": plan.scheme.kernel_group_size,
        "act_bits": plan.scheme.act_bits, "int8_layers": plan.scheme.int8_layers, "int16": list(plan.scheme.int16),
        "max_seq": plan.max_seq, "unit": unit,
        "tokens_match": mismatch is None,
        "first_mismatch": None if mismatch is None else mismatch.mismatch,
        "first_mismatch_prompt": None if mismatch is None else mismatch.prompt,
        "prompts": len(runs), "tokens": len(per_tok),
        "instructions_per_token": {"mean": mean, "min": min(per_tok, default=0),
                                   "max": max(per_tok, default=0)},
        "instructions_per_mac": mean / macs if macs else None,
        "instructions_by_position": {str(p): statistics.fmean(v) for p, v in sorted(by_pos.items())},
        "predicted_instructions_per_token": predicted,
        "steps": steps, "by_kernel": by_kernel(steps),
        "profile": kind_profile(runs, plan, factor) if any(r.token_profiles for r in runs) else None,
        "outside_steps_per_token": (total - sum(s["measured"] for s in steps) * forwards) / forwards
        if forwards else None,
        "tokens_per_s_at_nominal_clock": board.clock_hz / mean if mean else None,
        # a cluster: instructions_per_token is the busiest core's (the FC's serial part plus, per
        # fork, the worker with the most); "cluster" has each worker's, the DMA traffic and the
        # time model (those instructions plus modelled fork, barrier and DMA-wait cycles)
        "cluster": cluster,
        "dma_bytes_per_token": cluster["dma_bytes_per_token"] if cluster else None,
        "clock_hz": board.clock_hz,
        "flash_bytes": flash, "ram_bytes": ram,
        "regions": usage,
        "weights_ok": info.weights_ok, "build_id": info.build_id, "model_hash": info.model_hash,
    }


def _fit(points: list[tuple[dict[str, float], float]]) -> dict[str, float]:
    """Least squares: measured = sum(units[u] * coef[u]), over the sets of units that hold the main
    one (a matmul's MACs, attention's scores or their elements), that the points can separate and that give no
    negative coefficient: the set with the smallest squared error wins (a kernel with two code
    paths, as the DSP matmuls' four-row and two-row ones, may need a per-row or per-call term that
    another kernel's fit would make negative)."""
    import itertools

    import numpy as np
    names = sorted({u for units, _ in points for u in units}, key=lambda u: (u == "call", u != "mac", u))
    y = np.array([m for _, m in points])
    best: tuple[float, dict[str, float]] | None = None
    def holding(main: str, others: list[str], alternative: bool) -> list[tuple[list[str], bool]]:
        """Every set of main and some of others, largest first."""
        return [([main, *rest], alternative) for size in range(len(others), -1, -1)
                for rest in itertools.combinations(others, size)]

    subsets = holding(names[0], names[1:], False)
    if names[0] == "score" and "score_element" in names:
        # or attention per element alone (only where clearly better: one head size's runs cannot tell
        # the two apart): a head size with its own fast path can make the per-score term negative
        subsets += holding("score_element", [u for u in names[1:] if u != "score_element"], True)
    margin = 1e-9 * float((y ** 2).sum())
    for subset, alternative in subsets:
        a = np.array([[units.get(u, 0.0) for u in subset] for units, _ in points])
        coef, _, rank, _ = np.linalg.lstsq(a, y, rcond=None)
        if rank < len(subset) or (coef < 0).any():
            continue
        err = float(((a @ coef - y) ** 2).sum())
        if best is None or err < best[0] * (1 - 1e-9) - (margin if alternative else 0.0):
            best = (err, {u: round(float(c), 4) for u, c in zip(subset, coef)})
    if best:
        return best[1]
    return {names[0]: round(float(y.sum() / sum(units.get(names[0], 0.0) for units, _ in points)), 4)}


def fit_costs(reports: list[dict]) -> dict:
    """The cost table (per kernel variant: instructions per work unit) that bench reports imply,
    plus the per-token work outside the steps. Reports of different kernel variants merge. A kind
    whose work grows with the position (attention) and runs one kernel is fitted from its count at
    every position (with --profile), so its per-call and per-score costs separate."""
    points: dict[str, list] = {}
    outside = []
    for r in reports:
        per_pos = (r.get("profile") or {}).get("units_by_position", {})
        by_kind = {}
        for s in r["steps"]:
            by_kind.setdefault(s["op"], set()).add(s["cost_key"])
        for s in r["steps"]:
            if s["op"] not in per_pos or len(by_kind[s["op"]]) != 1:
                points.setdefault(s["cost_key"], []).append((s["units"], s["measured"]))
        for kind, series in per_pos.items():
            if len(by_kind.get(kind, ())) == 1:
                key = next(iter(by_kind[kind]))
                for pos, measured in enumerate(r["profile"]["by_position"][kind]):
                    points.setdefault(key, []).append(({u: v[pos] for u, v in series.items()}, measured))
        if r.get("outside_steps_per_token") is not None:
            outside.append(r["outside_steps_per_token"])
    return {"kernels": {k: _fit(v) for k, v in sorted(points.items())},
            "token": {"call": round(statistics.fmean(outside), 1) if outside else 0.0}}


def write_costs(path: Path, core_id: str, fitted: dict, source: str) -> None:
    """Merge a fitted table into the target's cost file under this core (other cores untouched)."""
    from .fileio import write_atomic
    data = json.loads(path.read_text()) if path.is_file() else {"schema": 1, "cores": {}}
    entry = data.setdefault("cores", {}).setdefault(core_id, {"kernels": {}, "token": {}})
    entry["kernels"].update(fitted["kernels"])
    entry["token"] = fitted["token"]
    entry["source"] = source
    write_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
