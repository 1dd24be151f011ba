"""`edgeslm report`: telemetry records (edgeslm.telemetry) -> PNG plots and a Markdown summary.

    write_report(records, out_dir) -> [written paths]

Records are grouped by configuration (board, model, scheme, KV format, kernels); each group is one
line, bar or row. Files written into out_dir:

    cost_per_token.png   count per token against position (mean over the group's records)
    steps.png            per forward pass, by step kind (from the device's per-step profile)
    memory.png           each region of each board: what the planner put there, against its length
    schemes.png          the groups side by side: cost per token, tokens/s, time to first token, stack
    summary.md           the same figures as tables, with the plots
"""

from __future__ import annotations

import io
import statistics
from pathlib import Path

from .errors import EdgeslmError
from .fileio import write_atomic


def group_key(r: dict) -> tuple:
    """Records of one configuration: board, model, scheme, KV, kernels and the scheme's options
    (records written before they were recorded have none)."""
    return (r["board"], r.get("model", {}).get("name", ""), r["scheme"], r["kv"], r["kernels"],
            r.get("scheme_options", ""))


def group_label(key: tuple) -> str:
    board, model, scheme, kv, kernels, options = key
    return f"{board} {scheme} kv{kv} {kernels}" + (f" ({options})" if options else "")


def groups(records: list[dict]) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in records:
        out.setdefault(group_key(r), []).append(r)
    return out


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def by_position(recs: list[dict]) -> list[float]:
    """Mean count per position over the records that reached it."""
    depth = max(len(r["counts"]) for r in recs)
    return [statistics.fmean(r["counts"][p] for r in recs if len(r["counts"]) > p) for p in range(depth)]


def step_kinds(recs: list[dict]) -> dict[str, float]:
    """Per forward pass, summed by step kind (op), mean over the records with a profile."""
    with_steps = [r for r in recs if r.get("steps")]
    if not with_steps:
        return {}
    out: dict[str, float] = {}
    for r in with_steps:
        for s in r["steps"]:
            out[s["op"]] = out.get(s["op"], 0.0) + s["measured"] / len(with_steps)
    return out


def summary_row(key: tuple, recs: list[dict]) -> dict:
    counts = [c for r in recs for c in r["counts"]]
    energy = [r["energy"]["per_token_j"] for r in recs if r.get("energy") and r["energy"].get("per_token_j")]
    r0 = recs[0]
    return {
        "label": group_label(key), "board": key[0], "model": key[1], "scheme": key[2], "kv": key[3],
        "kernels": key[4], "scheme_options": key[5], "records": len(recs), "tokens": len(counts), "unit": r0["unit"],
        "clock_hz": r0.get("clock_hz"),
        "all_match": all(r["tokens_match"] for r in recs),
        "mean": statistics.fmean(counts) if counts else None,
        "min": min(counts, default=None), "max": max(counts, default=None),
        "ttft_s": _mean(r["time_to_first_token"]["seconds"] for r in recs),
        "tps_decode": _mean(r["tokens_per_s"]["decode"] for r in recs),
        "stack_peak": max(r["stack"]["peak_bytes"] for r in recs),
        "stack_reserved": r0["stack"]["reserved_bytes"],
        "arena": r0["memory"]["arena_bytes"], "kv_bytes": r0["memory"]["kv_cache_bytes"],
        "image": sum(v.get("image") or 0 for v in r0["memory"]["regions"].values()),
        "zero": sum(v.get("zero") or 0 for v in r0["memory"]["regions"].values()),
        "energy_j": statistics.fmean(energy) if energy else None,
        "energy_source": next((r["energy"]["source"] for r in recs if r.get("energy")), None),
        "build_ids": sorted({r["build_id"] for r in recs}),
        "emulated": all(r.get("emulated") for r in recs),
    }


# ---------------------------------------------------------------- plots

def _plt():
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgeslmError("edgeslm report draws with matplotlib, which is not installed",
                           "pip install matplotlib (or pip install -e '.[plot]')") from None
    return plt


def _save(fig, path: Path) -> Path:
    plt = _plt()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_atomic(path, buf.getvalue())


def _units(gs: dict) -> str:
    units = sorted({r["unit"] for recs in gs.values() for r in recs})
    return " / ".join(units)


def plot_cost_per_token(gs: dict, path: Path) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for key, recs in gs.items():
        ys = by_position(recs)
        ax.plot(range(len(ys)), ys, label=group_label(key), linewidth=1.2)
    ax.set_xlabel("position")
    ax.set_ylabel(f"{_units(gs)} per token")
    ax.set_title("cost per token against position")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def plot_steps(gs: dict, path: Path) -> Path:
    plt = _plt()
    kinds_by = {key: step_kinds(recs) for key, recs in gs.items()}
    kinds = sorted({k for v in kinds_by.values() for k in v},
                   key=lambda k: -sum(v.get(k, 0.0) for v in kinds_by.values()))
    labels = [group_label(k) for k in gs]
    fig, ax = plt.subplots(figsize=(9, 1.5 + 0.6 * len(gs)), dpi=100)
    left = [0.0] * len(gs)
    for kind in kinds:
        vals = [kinds_by[key].get(kind, 0.0) for key in gs]
        ax.barh(labels, vals, left=left, label=kind)
        left = [a + b for a, b in zip(left, vals)]
    if not kinds:
        ax.text(0.5, 0.5, "no per-step profile in these records", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_xlabel(f"{_units(gs)} per forward pass (steps of the step table)")
    ax.set_title("per-step breakdown by step kind")
    ax.invert_yaxis()
    if kinds:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def plot_memory(gs: dict, path: Path) -> Path:
    """One bar per (configuration, region): planned items stacked, in % of the region's length."""
    plt = _plt()
    rows = []
    for key, recs in gs.items():
        r0 = recs[0]
        peak = max(r["stack"]["peak_bytes"] for r in recs)
        for name, reg in r0["memory"]["regions"].items():
            rows.append((f"{group_label(key)}: {name} ({reg['length'] / 1024:,.0f} KiB)", reg, peak))
    items = sorted({i for _, reg, _ in rows for i in reg["planned"]},
                   key=lambda i: -max(reg["planned"].get(i, 0) / reg["length"] for _, reg, _ in rows))
    fig, ax = plt.subplots(figsize=(11, 1.5 + 0.45 * len(rows)), dpi=100)
    labels = [r[0] for r in rows]
    left = [0.0] * len(rows)
    for it in items:
        vals = [100.0 * reg["planned"].get(it, 0) / reg["length"] for _, reg, _ in rows]
        ax.barh(labels, vals, left=left, label=it)
        left = [a + b for a, b in zip(left, vals)]
    for i, (_, reg, peak) in enumerate(rows):
        if "stack" in reg["planned"] and peak:
            ax.annotate(f"stack peak {peak:,} B of {reg['planned']['stack']:,}", (min(left[i], 100), i),
                        xytext=(4, 0), textcoords="offset points", va="center", fontsize="x-small")
    ax.set_xlim(0, 130)
    ax.axvline(100, color="black", linewidth=0.8)
    ax.set_xlabel("% of the region (the planner's placement)")
    ax.set_title("memory map per region")
    ax.invert_yaxis()
    ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1))
    return _save(fig, path)


def plot_schemes(rows: list[dict], path: Path) -> Path:
    plt = _plt()
    labels = [r["label"] for r in rows]
    panels = [("mean", f"{'/'.join(sorted({r['unit'] for r in rows}))} per token (mean)"),
              ("tps_decode", "tokens/s after the prompt (at the board's clock)"),
              ("ttft_s", "time to first token, s (at the board's clock)"),
              ("stack_peak", "stack peak, bytes (painted)")]
    fig, axes = plt.subplots(2, 2, figsize=(10, 3 + 0.5 * len(rows)), dpi=100)
    for ax, (field, title) in zip(axes.flat, panels):
        vals = [r[field] or 0 for r in rows]
        ax.barh(labels, vals, color=[f"C{i % 10}" for i in range(len(rows))])
        ax.set_title(title, fontsize="small")
        ax.invert_yaxis()
        ax.tick_params(labelsize="x-small")
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("configurations side by side")
    return _save(fig, path)


# ---------------------------------------------------------------- Markdown

def _n(v, fmt: str = ",.0f", none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def markdown(rows: list[dict], gs: dict, images: list[str], n_records: int) -> str:
    lines = ["# edgeslm report", "",
             f"{n_records} records of {len(rows)} configurations. Times and rates assume one count per "
             "core cycle at the board's nominal clock (under the emulator a count is an instruction); "
             "energy is an **estimate** from the datasheet current named in the board file, not a "
             "measurement.", "",
             "| configuration | model | records | tokens | equal golden | mean / token | min – max | "
             "time to 1st token | tokens/s (decode) | stack peak / reserved | arena | KV cache | "
             "flash image | RAM reserved | energy / token (estimate) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['model']} | {r['records']} | {r['tokens']} | "
            f"{'yes' if r['all_match'] else '**NO**'} | {_n(r['mean'])} {r['unit']} | "
            f"{_n(r['min'])} – {_n(r['max'])} | {_n(r['ttft_s'], '.4f')} s | {_n(r['tps_decode'], '.2f')} | "
            f"{_n(r['stack_peak'])} / {_n(r['stack_reserved'])} | {_n(r['arena'])} | {_n(r['kv_bytes'])} | "
            f"{_n(r['image'])} | {_n(r['zero'])} | "
            f"{_n(r['energy_j'] * 1e3 if r['energy_j'] else None, '.4f')}{' mJ' if r['energy_j'] else ''} |")
    sources = sorted({r["energy_source"] for r in rows if r["energy_source"]})
    if sources:
        lines += ["", "Energy estimates from: " + "; ".join(sources) + "."]
    lines += ["", "## Per step kind (per forward pass)", ""]
    kinds_by = {group_label(k): step_kinds(v) for k, v in gs.items()}
    kinds = sorted({k for v in kinds_by.values() for k in v})
    if kinds:
        lines += ["| configuration | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
        for label, v in kinds_by.items():
            lines.append(f"| {label} | " + " | ".join(_n(v.get(k)) for k in kinds) + " |")
    else:
        lines.append("No per-step profile in these records.")
    lines += ["", "## Memory per region (planned bytes)", "",
              "| configuration | region | length | planned | image (ELF) | reserved (ELF) | largest items |",
              "|---|---|---|---|---|---|---|"]
    for key, recs in gs.items():
        for name, reg in recs[0]["memory"]["regions"].items():
            top = sorted(reg["planned"].items(), key=lambda kv: -kv[1])[:3]
            lines.append(f"| {group_label(key)} | {name} | {reg['length']:,} | {sum(reg['planned'].values()):,} | "
                         f"{_n(reg.get('image'))} | {_n(reg.get('zero'))} | "
                         + ", ".join(f"{k} {v:,}" for k, v in top) + " |")
    lines += ["", "## Plots", ""] + [f"![{Path(i).stem}]({i})" for i in images]
    lines += ["", "Build ids: " + "; ".join(f"{r['label']}: {', '.join(r['build_ids'])}" for r in rows), ""]
    return "\n".join(lines)


def write_report(records: list[dict], out_dir: str | Path) -> list[Path]:
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise EdgeslmError(f"cannot create {out}: {e.strerror or e}") from None
    gs = groups(records)
    rows = [summary_row(k, v) for k, v in gs.items()]
    written = [plot_cost_per_token(gs, out / "cost_per_token.png"), plot_steps(gs, out / "steps.png"),
               plot_memory(gs, out / "memory.png"), plot_schemes(rows, out / "schemes.png")]
    md = markdown(rows, gs, [p.name for p in written], len(records))
    written.append(write_atomic(out / "summary.md", md))
    return written
