"""Run prompts on a device (emulated or real) and check every token against the golden model.

    open_device(board, elf, emulate, port)            -> context manager yielding a Device
    run_prompt(device, golden, tok, prompt, ...)       -> PromptRun (tokens, per-token counts, verdict)
    summarize(runs, plan, board, elf)                  -> the bench figures (dict, JSON-ready)
"""

from __future__ import annotations

import contextlib
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

    @property
    def ok(self) -> bool:
        return self.mismatch is None


@contextlib.contextmanager
def open_device(board: Board, elf: Path | None, emulate: bool, port: str | None,
                timeout: float = 30.0) -> Iterator[tuple[Device, Emulator | None]]:
    """A connected Device: QEMU started for `emulate`, else the serial port / pyserial URL."""
    if emulate:
        with Emulator(board, elf) as emu:
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
               on_token: Callable[[P.Token, bool], None] | None = None) -> PromptRun:
    """Generate on the device; every token is compared with the golden model's as it arrives
    (on_token(token, matches) streams it)."""
    run = PromptRun(prompt)
    run.expected = expected_tokens(golden, tok, prompt, steps, temperature, topp, seed)
    pieces = []
    for msg in dev.generate(prompt, steps, temperature, topp, seed):
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
    return run


def count_to_instructions(board: Board, unit: str) -> tuple[float, str]:
    """(factor, name): device counts x factor = the figure we report."""
    if unit == "systick":
        emu = board.emulator
        ns_per_tick = 1e9 / emu.get("systick_hz", board.clock_hz)
        return ns_per_tick / (1 << emu.get("icount_shift", 7)), "instructions"
    if unit == "ns":
        return 1.0, "host ns"
    return 1.0, "cycles"


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
    macs = sum(plan.cost["macs"].values())
    return {
        "board": board.id, "scheme": plan.scheme.name, "kv": plan.scheme.kv, "kernels": plan.kernel_variant,
        "group_size": plan.scheme.group_size, "max_seq": plan.max_seq, "unit": unit,
        "tokens_match": mismatch is None,
        "first_mismatch": None if mismatch is None else mismatch.mismatch,
        "first_mismatch_prompt": None if mismatch is None else mismatch.prompt,
        "prompts": len(runs), "tokens": len(per_tok),
        "instructions_per_token": {"mean": mean, "min": min(per_tok, default=0),
                                   "max": max(per_tok, default=0)},
        "instructions_per_mac": mean / macs if macs else None,
        "instructions_by_position": {str(p): statistics.fmean(v) for p, v in sorted(by_pos.items())},
        "predicted_instructions_per_token": predicted,
        "tokens_per_s_at_nominal_clock": board.clock_hz / mean if mean else None,
        "clock_hz": board.clock_hz,
        "flash_bytes": flash, "ram_bytes": ram,
        "regions": usage,
        "weights_ok": info.weights_ok, "build_id": info.build_id, "model_hash": info.model_hash,
    }
