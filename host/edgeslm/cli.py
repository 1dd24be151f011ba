"""The `edgeslm` command: one function per subcommand; all user-facing output lives here.

Generated text goes to stdout (so it can be piped); progress, tables and statistics go to stderr.
Every value is checked where it enters (the arguments here), and SIGTERM, SIGHUP and Ctrl-C unwind
like an error, so the emulator, PlatformIO and temporary files go with them (exit 128 + signal).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import EdgeslmError, UsageError
from .fileio import check_output, write_atomic
from .model import Model, Tokenizer, load_model, load_tokenizer
from .model import zoo
from .quant import DEFAULT_GROUP_SIZE, KV_FORMATS, SCHEME_NAMES, get_scheme
from .evaluate import DEFAULT_COMPARE
from .quant.schemes import (ACT_BITS, DEFAULT_ACT_BITS, DEFAULT_I8_INT16, DEFAULT_Q4_INT8_LAYERS, DEFAULT_ROUNDING,
                            INT16_PARTS, ROUNDINGS)

err = Console(stderr=True, highlight=False)


# ---------------------------------------------------------------- shared argument handling

def _version_text() -> str:
    """The version, and of every format edgeslm reads or writes the version it speaks."""
    from .bridge.protocol import PROTOCOL_VERSION
    from .lower.boards import SCHEMA_VERSION
    from .lower.codegen import BUILD_SETTINGS_SCHEMA
    from .quant.calibrate import VERSION as CALIBRATION_VERSION
    from .telemetry import RECORD_SCHEMA
    from . import paths
    where = "checkout" if paths.IN_CHECKOUT else "installed"
    return (f"edgeslm {__version__} ({where}: {paths.DATA}); serial protocol {PROTOCOL_VERSION}, board schema "
            f"{SCHEMA_VERSION}, calibration format {CALIBRATION_VERSION}, record schema {RECORD_SCHEMA}, "
            f"build settings schema {BUILD_SETTINGS_SCHEMA}")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model: llama2.c .bin, .onnx, or a Hugging Face directory "
                   "(config.json + *.safetensors); default: stories260K")
    p.add_argument("--tokenizer", "-z", help="tokenizer: llama2.c .bin, or a Hugging Face tokenizer.json (or "
                   "its directory); default: tokenizer.json in a Hugging Face MODEL directory, else "
                   "tok<vocab>.bin beside the model, or tok512.bin for the default model")


def _add_quant_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--quant", "-q", choices=SCHEME_NAMES, default=default,
                   help="quantization scheme" + (f" (default {default})" if default else "") +
                   "; i8 = integer-only (--calib, or calibrated on the fly)")
    p.add_argument("--calib", help="calibration file from `edgeslm calibrate` (for --quant i8)")
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE,
                   help=f"quantization group size along the input dimension (default {DEFAULT_GROUP_SIZE})")
    p.add_argument("--kv", choices=KV_FORMATS, default="f32", help="KV cache format (default f32)")
    p.add_argument("--act-group-size", type=int, default=0, metavar="N",
                   help="q8/q4: quantize activations per group of N (dividing --group-size, e.g. 16): "
                   "finer than the weights' groups, for accuracy; default: the same as --group-size")
    p.add_argument("--act-bits", type=int, choices=ACT_BITS, default=None,
                   help=f"q8: quantize the matmuls' activations to int16 or int8 (default {DEFAULT_ACT_BITS}: "
                   "a third of int8's KL on stories260K at the same instruction count on the Cortex-M4)")
    p.add_argument("--rounding", choices=ROUNDINGS,
                   help="q8/q4 weight rounding: rtn (round to nearest) or gptq (calibrated on Hessians "
                   f"from --calib or the float model's own samples); default {DEFAULT_ROUNDING}")
    p.add_argument("--int8-layers", type=int, default=None, metavar="N",
                   help=f"q4: the last N transformer layers keep int8 weights (default {DEFAULT_Q4_INT8_LAYERS}: "
                   "half of q4's KL on stories260K for about 20%% more flash; 0: every layer int4, the smallest image)")
    p.add_argument("--int16", default=None, metavar="PARTS",
                   help=f"i8: keep these parts in int16 where int8 loses most ({', '.join(INT16_PARTS)}, "
                   f"comma-separated, or none; default {','.join(DEFAULT_I8_INT16)}): ffn = the FFN's inside "
                   "(+2.3%% instructions on the M4F), keys = k, its RoPE and the key cache (half as much KV "
                   "cache again), residual = the residual stream, norms = the RMSNorms' outputs; all four: a "
                   "third of i8's KL on stories260K for +7.8%% (README: Accuracy)")


def _model_path(args) -> Path:
    """MODEL, or stories260K (from ../shared/models, or downloaded) when it is omitted."""
    return Path(args.model) if args.model else zoo.locate(zoo.DEFAULT_MODEL)


def _load(args) -> tuple[Model, Tokenizer]:
    model_path = _model_path(args)
    model = load_model(model_path)
    if args.tokenizer:
        tok_path = Path(args.tokenizer)
    elif not args.model:
        tok_path = zoo.locate(zoo.DEFAULT_TOKENIZER)
    elif model_path.is_dir() and (model_path / "tokenizer.json").is_file():
        tok_path = model_path                      # a Hugging Face directory: its tokenizer.json
    else:
        guesses = [model_path.parent / f"tok{model.config.vocab_size}.bin"]
        if model.config.vocab_size == 32000:
            guesses.append(model_path.parent / "tokenizer.bin")
        tok_path = next((g for g in guesses if g.is_file()), None)
        if tok_path is None:
            raise UsageError(f"no tokenizer given for {model_path}",
                             f"pass --tokenizer (looked for {', '.join(g.name for g in guesses)} "
                             "beside the model)")
    return model, load_tokenizer(tok_path, model)


def _engine(model: Model, args, tok: Tokenizer | None = None):
    """The engine --engine/--quant ask for: the float reference or the golden model of a scheme."""
    if args.engine == "float":
        if args.quant not in (None, "f32"):
            raise UsageError(f"--quant {args.quant} needs the golden engine",
                             "add --engine golden (the float engine is the unquantized reference)")
        from .reference import FloatEngine
        return FloatEngine(model), "float reference"
    scheme = _scheme(args)
    return _golden(model, scheme, args, tok=tok), f"golden {scheme.describe()}"


def _scheme(args):
    return get_scheme(args.quant or "q8", args.group_size, args.kv,
                      getattr(args, "rounding", None) or DEFAULT_ROUNDING, getattr(args, "act_group_size", 0),
                      getattr(args, "act_bits", None), getattr(args, "int8_layers", None),
                      getattr(args, "int16", None))


def _golden(model: Model, scheme, args, max_seq: int | None = None, tok: Tokenizer | None = None):
    """The golden engine of a scheme; the integer scheme reads --calib (or calibrates, with tok)."""
    from .quant.golden import golden_engine
    calib = _calibration(args, model, tok) if scheme.integer else None
    return golden_engine(model, scheme, calib, max_seq)


ON_THE_FLY_METHOD = "percentile"        # `edgeslm calibrate`'s default


def _calibration(args, model: Model, tok: Tokenizer | None):
    """--calib's file; without one (and with a tokenizer), a calibration on the built-in prompts,
    made now with a warning: every run then repeats it, and the ranges are not the user's data."""
    from .quant.calibrate import CALIBRATION_PROMPTS, Calibration, PromptsDataReader, calibrate
    if getattr(args, "calib", None):
        return Calibration.load(args.calib, model)
    if tok is None:
        raise UsageError("--quant i8 needs a calibration file (--calib)",
                         f"make one: edgeslm calibrate {args.model or ''} -o calib.json".replace("  ", " "))
    err.print("[yellow]warning: --quant i8 without --calib: calibrating now on the built-in prompts "
              f"({ON_THE_FLY_METHOD}); for ranges from your own data, run `edgeslm calibrate` once and "
              "pass --calib FILE[/yellow]")
    with err.status(f"calibrating on {len(CALIBRATION_PROMPTS)} built-in prompts"):
        reader = PromptsDataReader(model, tok, CALIBRATION_PROMPTS, min(128, model.config.max_seq_len))
        return calibrate(model, reader, ON_THE_FLY_METHOD)


def _check_sampling(args) -> None:
    """--steps, --temperature, --topp: refused here, with the flag's name, when out of range."""
    if args.steps < 0:
        raise UsageError(f"--steps {args.steps} is negative", "pass 0 for the whole context, or a positive count")
    if not (math.isfinite(args.temperature) and args.temperature >= 0):
        raise UsageError(f"--temperature {args.temperature} is not a finite number >= 0",
                         "0 is greedy; 0.8-1.0 samples")
    if not (math.isfinite(args.topp) and 0 <= args.topp <= 1):
        raise UsageError(f"--topp {args.topp} is not in [0, 1]", "0.9 is usual; 0 or 1 samples from every token")


def _prompt(text: str) -> str | bytes:
    """The prompt as given: text, or its raw bytes when the command line held bytes that are not
    UTF-8 (tokenizer and firmware both take any bytes, as run.c does)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text)


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=True)


# ---------------------------------------------------------------- subcommands

def cmd_generate(args) -> int:
    from .generate import generate
    from .sampler import engine_sampler
    from .verify import golden_sampler
    # run.c's argument rules, so the same flags print the same text: a negative temperature is 0, a
    # top-p outside [0, 1] is 0.9, a seed <= 0 means "from the clock"; NaN and inf are refused
    if math.isfinite(args.temperature) and args.temperature < 0:
        args.temperature = 0.0
    if math.isfinite(args.topp) and not 0 <= args.topp <= 1:
        args.topp = 0.9
    _check_sampling(args)
    model, tok = _load(args)
    engine, what = _engine(model, args, tok)
    temperature, topp = args.temperature, args.topp
    seed = args.seed if args.seed > 0 else int(time.time())
    if args.seed <= 0 and temperature > 0:
        err.print(f"[dim]seed {seed} (pass --seed {seed} to repeat this run)[/dim]")
    # the golden engine samples as its firmware does (fixed point for the integer scheme)
    sampler = engine_sampler("float", temperature, topp, seed) if args.engine == "float" else \
        golden_sampler(engine, temperature, topp, seed)
    out = sys.stdout.buffer

    def on_piece(_token: int, piece: bytes) -> None:
        out.write(piece)
        out.flush()

    gen = generate(engine, tok, _prompt(args.prompt or ""), args.steps, sampler, on_piece)
    out.write(b"\n")
    out.flush()
    n = len(gen.tokens)
    if not args.quiet:
        err.print(f"[dim]{what}: {n} tokens in {gen.seconds:.2f} s "
                  f"({n / gen.seconds if gen.seconds else 0:.1f} tok/s on this host)[/dim]")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import DEFAULT_COMPARE, Variant, compare_many, compare_on_model_text, parse_variants, \
        text_sequences, variant_engine
    from .reference import FloatEngine
    if args.json:
        check_output(args.json)
    if args.tokens < 1:
        raise UsageError(f"--tokens {args.tokens} is not positive", "12000 gives about +-0.2% near 99% top-1")
    if args.compare is not None:
        if args.rounding:
            raise UsageError("--rounding and --compare together", "put the rounding in the list: --compare q4:rtn,q4:gptq")
        if args.act_bits:
            raise UsageError("--act-bits and --compare together", "put it in the list: --compare q8:x8,q8:x16")
        if args.int8_layers is not None:
            raise UsageError("--int8-layers and --compare together", "put it in the list: --compare q4:l0,q4:l2")
        if args.int16 is not None:
            raise UsageError("--int16 and --compare together", "put it in the list: --compare i8:x8,i8,i8:keys16:ffn16")
        variants = parse_variants(args.compare or DEFAULT_COMPARE, args.group_size, args.kv)
    else:
        if args.rounding and args.quant in ("i8", "f32"):
            raise UsageError(f"--rounding applies to q8 and q4, not {args.quant}")
        _scheme(args)                                       # range checks, with their messages
        variants = [Variant(args.quant, args.rounding, args.kv, args.group_size, args.act_group_size, args.act_bits,
                            args.int8_layers, _scheme(args).int16)]
    model, tok = _load(args)
    float_engine = FloatEngine(model)
    # i8 needs --calib; a comparison calibrates on the built-in prompts without one (with a warning)
    calib = (_calibration(args, model, tok if args.compare is not None else None)
             if any(v.scheme == "i8" for v in variants) else None)
    if getattr(args, "calib", None) and calib is None:
        from .quant.calibrate import Calibration
        calib = Calibration.load(args.calib, model)
    hessians = calib.hessians if calib is not None else None
    needs_h = any(v.scheme in ("q8", "q4") and _rounding(v) == "gptq" for v in variants)
    if needs_h and hessians is None:
        from .quant.calibrate import model_hessians, self_text_tokens
        if calib is not None and calib.missing_hessians:
            err.print(f"[yellow]warning: {args.calib} names {calib.missing_hessians}, which is missing[/yellow]")
        err.print(f"[dim]gptq: Hessians from {self_text_tokens(model)} tokens of the float model's own samples "
                  "(pass --calib FILE from `edgeslm calibrate` for your own text)[/dim]")
        with err.status("collecting Hessians for gptq"):
            hessians = model_hessians(model)
    engines = []
    for v in variants:
        with err.status(f"quantizing {v.label()}"):
            engines.append(variant_engine(model, v, calib, hessians))
    what = "eval " + ", ".join(v.label() for v in variants)
    start = time.perf_counter()
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read --text {args.text}: {e}") from None
        seqs = text_sequences(tok, text, model.config.max_seq_len)
        source = args.text
        total = sum(len(s) - 1 for s in seqs)
        if total == 0:
            raise UsageError(f"the text {args.text} has no tokens to evaluate")
        with _progress() as prog:
            task = prog.add_task(what, total=total)
            accs = compare_many(float_engine, engines, seqs, lambda k: prog.advance(task, k))
    else:
        # the float model writes the text and is the reference in the same forward pass
        source = "the float model's own generations (greedy and sampled)"
        with _progress() as prog:
            task = prog.add_task(what, total=args.tokens)
            _, accs = compare_on_model_text(float_engine, engines, tok, args.tokens,
                                            lambda k: prog.advance(task, k))
    seconds = time.perf_counter() - start
    title = (f"{Path(model.source).name}: {variants[0].label()} vs float" if len(variants) == 1
             else f"{Path(model.source).name}: schemes vs float")
    table = Table(title=title, caption=f"{accs[0].tokens} positions of {source}, teacher-forced; "
                  f"ppl float {accs[0].ppl_float:.4f}; {seconds:.0f} s")
    for col in ("scheme", "mean KL", "top-1 agreement", "95% interval", "ppl quant"):
        table.add_column(col, justify="left" if col == "scheme" else "right")
    for v, acc in zip(variants, accs):
        lo, hi = acc.top1_interval
        table.add_row(v.label(), f"{acc.kl_mean:.5f}", f"{acc.top1_agreement:.2%}",
                      f"{lo:.2%} - {hi:.2%}", f"{acc.ppl_quant:.4f}")
    Console().print(table)
    if args.json:
        rows = []
        for v, acc in zip(variants, accs):
            row = {**acc.as_dict(), "scheme": v.scheme, "label": v.label()}
            if v.scheme == "i8":
                row.update(calibration=args.calib, int16=list(get_scheme("i8", int16=v.int16).int16))
            elif v.scheme != "f32":
                row.update(group_size=v.group_size, kv=v.kv, rounding=_rounding(v),
                           act_bits=v.act_bits or (DEFAULT_ACT_BITS if v.scheme == "q8" else 8),
                           int8_layers=v.scheme_int8_layers())
                if _rounding(v) == "gptq":
                    row["hessians"] = hessians.source if hessians is not None else None
            rows.append(row)
        common = {"model": str(model.source), "text": source, "seconds": round(seconds, 1)}
        _write_json(args.json, {**common, "rows": rows} if args.compare is not None else {**rows[0], **common})
    return 0


def _rounding(v) -> str:
    from .quant.quantize import DEFAULT_ROUNDING
    return v.rounding or DEFAULT_ROUNDING


def _write_json(path: str, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def cmd_inspect(args) -> int:
    from .lower.boards import load_board
    from .lower.plan import FitError, plan
    from .sizes import kv_cache_bytes, rope_table_bytes, weight_bytes
    from .targets import TargetError
    from .lower.compile import check_max_seq
    model = load_model(_model_path(args))
    board = load_board(args.board)
    c = model.config
    check_max_seq(args.max_seq, c.max_seq_len)
    con = Console()
    cfg = Table(title=f"{model.source}", show_header=False)
    for k, v in [("dim", c.dim), ("hidden_dim", c.hidden_dim), ("n_layers", c.n_layers),
                 ("n_heads", c.n_heads), ("n_kv_heads", c.n_kv_heads), ("head_size", c.head_size),
                 ("vocab_size", c.vocab_size), ("max_seq_len", c.max_seq_len),
                 ("shared classifier", c.shared_classifier), ("norm eps", c.norm_eps),
                 ("rope theta", c.rope_theta), ("parameters", f"{model.n_params():,}"),
                 ("fingerprint", model.fingerprint()[:16])]:
        cfg.add_row(k, str(v))
    for k, v in model.meta.get("decisions", {}).items():      # what an importer read the model as
        cfg.add_row(k, str(v))
    con.print(cfg)
    sources = model.meta.get("tensor_sources", {})
    if sources:
        st = Table(title="where each tensor came from")
        st.add_column("tensor")
        st.add_column("source")
        for name, src in sources.items():
            st.add_row(name, str(src))
        con.print(st)
    seq = args.max_seq or c.max_seq_len
    t = Table(title=f"bytes needed (context {seq}; arena and scratch as planned for {board.id}'s "
                    f"{board.kernel_variant} kernels)")
    for col in ("scheme", "weights", "rope tables", "KV cache", "arena", "kernel scratch", "total"):
        t.add_column(col, justify="right")
    for name in SCHEME_NAMES:
        for kv in KV_FORMATS:
            s = get_scheme(name, args.group_size, kv)
            if s.integer and kv != "i8":
                continue
            weights = sum(weight_bytes(c, s).values())
            rope = rope_table_bytes(c, s, seq)
            kvb = kv_cache_bytes(c, s, seq)
            try:
                p = plan(c, s, board, seq, suggest=False)
            except FitError as e:          # sizes are what we want here, fit or not
                p = e.plan
            except TargetError:
                t.add_row(f"{name}", f"{weights:,}", "-", f"{kvb:,}", "-", "-",
                          f"no {board.target.name} kernels yet")
                continue
            t.add_row(f"{name} kv={kv}", f"{weights:,}", f"{rope:,}", f"{kvb:,}", f"{p.arena_bytes:,}",
                      f"{p.scratch_bytes:,}", f"{weights + rope + kvb + p.arena_bytes + p.scratch_bytes:,}")
    con.print(t)
    return 0


def cmd_boards(args) -> int:
    from .lower.boards import list_boards, load_board
    t = Table(title="boards (boards/*.json)")
    for col in ("board", "name", "target", "core", "ISA", "kernels", "clock", "memory", "emulator"):
        t.add_column(col)
    for b in map(load_board, list_boards()):
        mem = ", ".join(f"{r.name} {r.length_bytes // 1024} KiB ({'/'.join(r.holds)})" for r in b.memory)
        isa = " ".join([b.core.core.isa] + sorted(b.core.features - {"fpu"}) +
                       [f"fpu {b.core.fpu}" if b.core.fpu else "soft-float"])
        kernels = ", ".join(f"[bold]{v}[/bold]" if v == b.kernel_variant else v for v in b.kernel_variants)
        t.add_row(b.id, b.name, b.target.name, b.core.core.name, isa, kernels, f"{b.clock_hz / 1e6:g} MHz",
                  mem, b.emulator.get("machine", "-") if b.emulator else "-")
    Console().print(t)
    err.print("[dim]kernels: the ISA variants the core can run; bold: the default (--kernels picks another)[/dim]")
    return 0


def _plan_table(p, title: str) -> Table:
    t = Table(title=title)
    for col in ("region", "holds", "needed", "available", "what goes there"):
        t.add_column(col, justify="right" if col in ("needed", "available") else "left")
    used = p.used()
    for r in p.board.memory:
        what = sorted((it for it in p.items if it.region == r.name), key=lambda i: -i.nbytes)
        names = _summarize_items(what)
        t.add_row(r.name, "/".join(r.holds), f"{used[r.name]:,}", f"{r.length_bytes:,}", names)
    for region, extra in p.overflow.items():
        missing = [it for it in p.items if not it.region]
        t.add_row(f"[red]{region} (overflow)[/red]", "", f"[red]+{extra:,}[/red]", "",
                  "[red]" + _summarize_items(missing) + "[/red]")
    return t


def _summarize_items(items) -> str:
    groups: dict[str, int] = {}
    for it in items:
        key = "weights" if it.kind == "weights" and it.name not in ("tokenizer", "rope tables") else it.name
        groups[key] = groups.get(key, 0) + it.nbytes
    return ", ".join(f"{k} {v:,}" for k, v in sorted(groups.items(), key=lambda kv: -kv[1]))


def _prepare(args, build: bool, snapshot: bool = False, emulated: bool = False):
    """Model -> compiled sources (when stale) -> firmware.elf (when `build`). Returns a dict.
    The compile folder is locked from compiling to the end of the build (another edgeslm waits);
    with `snapshot`, "elf" is this configuration's own copy, which no later build replaces.
    `emulated`: link for the board's emulator (regions with an emulator_origin move there)."""
    from .lower.boards import load_board
    from .lower.compile import build_dir, build_firmware, compile_model, config_lock, snapshot_elf
    board = load_board(args.board)
    if emulated:
        board = board.for_emulator()
    if getattr(args, "cores", None):           # a cluster's worker count (issue 11)
        board = board.with_cores(args.cores)
    model, tok = _load(args)
    scheme = _scheme(args)
    calib = _calibration(args, model, tok) if scheme.integer else None
    out = Path(args.output) if getattr(args, "output", None) else build_dir(board.id)
    if build and out.resolve() != build_dir(board.id).resolve():
        raise UsageError("-o/--output only applies to `edgeslm compile`; the build uses build/<board>")
    from .lower.plan import FitError
    with config_lock(out, on_wait=lambda: err.print(f"[dim]waiting for another edgeslm using {out}[/dim]")):
        try:
            with err.status(f"compiling {Path(model.source).name} for {board.id} ({scheme.describe()})"):
                comp = compile_model(model, tok, board, scheme, args.max_seq, out, args.kernels, calib)
        except FitError as e:          # the table says what needs how much where
            Console(stderr=True).print(_plan_table(e.plan, f"does not fit: {e.plan.board.id}"))
            raise
        err.print(f"[dim]{'generated' if comp.fresh else 'up to date:'} {comp.gen_dir}[/dim]")
        elf = None
        if build:
            with err.status(f"building firmware for {board.id} ({comp.plan.kernel_variant} kernels; "
                            "PlatformIO, offline)"):
                elf = build_firmware(board)
            if snapshot:
                elf = snapshot_elf(board, elf)
    return {"board": board, "model": model, "tok": tok, "scheme": scheme, "compiled": comp, "elf": elf}


def _firmware_elf(ctx) -> Path | None:
    """The ELF the device runs, for symbolizing a fault: the one just built, else (a real board,
    --port) the last build's, which is what was flashed if anything of ours was."""
    if ctx["elf"]:
        return ctx["elf"]
    from .lower.compile import PROJECT_DIR
    last = PROJECT_DIR / "build" / "pio" / ctx["board"].id / "firmware.elf"
    return last if last.is_file() else None


def cmd_compile(args) -> int:
    ctx = _prepare(args, build=False)
    p = ctx["compiled"].plan
    Console(stderr=True).print(_plan_table(p, f"memory plan for {p.board.id} "
                                              f"({p.scheme.describe()}, context {p.max_seq})"))
    err.print(f"activation arena {p.arena_bytes:,} bytes (buffers reused by liveness; "
              f"{sum(p.values.values()) * 4:,} without reuse)")
    if p.cluster:
        _print_cluster_plan(p)
    err.print(f"fits {p.board.id}: yes (every region within its length)")
    return 0


def _print_cluster_plan(p) -> None:
    """A cluster's part of the plan: each worker's L1, the matmuls' DMA tiles, the traffic."""
    c, stack = p.cluster, p.board.cluster["worker_stack_bytes"]
    tiled = [ps for ps in p.steps if ps.tile_rows]
    rows = sorted({ps.tile_rows for ps in tiled})
    err.print(f"cluster: {c.cores} workers; L1 per worker {stack + c.scratch_bytes:,} of {c.l1_budget_bytes + stack:,} "
              f"bytes: stack {stack:,}, the steps' scratch {c.tiles_at:,}, DMA tiles {c.scratch_bytes - c.tiles_at:,} "
              f"(of which the two first-tile slots {c.slot_bytes[0]:,} + {c.slot_bytes[1]:,})")
    if tiled:
        err.print(f"cluster: {len(tiled)} matmuls streamed through L1 in tiles of {rows[0]}-{rows[-1]} rows "
                  f"(double-buffered, first tile prefetched by the matmul before; "
                  f"{sum(ps.step.input_prepared for ps in tiled)} reuse the input the one before quantized); "
                  f"DMA {c.dma_bytes_per_token:,} bytes per token in {c.dma_commands_per_token:,} commands; "
                  f"{c.forks_per_token} forks per token")


def _print_region_usage(elf: Path, board) -> None:
    from .lower.elfsize import region_usage
    t = Table(title=f"{elf} per region")
    for col in ("region", "image (flash/loaded)", "reserved (RAM, zero/noinit)", "length", "used"):
        t.add_column(col, justify="right")
    for name, u in region_usage(elf, board).items():
        t.add_row(name, f"{u['image']:,}", f"{u['zero']:,}", f"{u['length']:,}",
                  f"{(u['image'] + u['zero']) / u['length']:.1%}")
    Console(stderr=True).print(t)


def cmd_build(args) -> int:
    ctx = _prepare(args, build=True)
    if ctx["board"].cluster.get("backend") != "pmsis":     # the GAP SDK's image has its own sections
        _print_region_usage(ctx["elf"], ctx["board"])
    print(ctx["elf"])
    return 0


def cmd_run(args) -> int:
    from .bench import count_to_instructions, open_device, run_prompt
    from .quant.golden import engine_for
    _check_sampling(args)
    _check_record(args)
    _check_emulator(args)
    prompt = _prompt(args.prompt)
    ctx = _prepare(args, build=_builds(args), snapshot=True, emulated=_builds(args))
    board, tok = ctx["board"], ctx["tok"]
    golden = engine_for(ctx["compiled"].qmodel, ctx["compiled"].plan.max_seq)
    out = sys.stdout.buffer
    with open_device(board, ctx["elf"], args.emulate, args.port, emulator=args.emulator,
                     labgrid=args.labgrid) as (dev, _emu):
        dev.elf = _firmware_elf(ctx)
        info = dev.hello()
        _check_info(info, ctx)
        factor, unit = count_to_instructions(board, info.cycle_unit)
        err.print(f"[dim]{info.board}: {info.scheme}, model {info.model_hash}, build {info.build_id:08x}"
                  f"{'' if info.weights_ok else ' [red]WEIGHTS CHECKSUM MISMATCH[/red]'}[/dim]")

        def on_token(msg, ok: bool) -> None:
            out.write(Tokenizer.printable(msg.piece))
            out.flush()

        seed = args.seed if args.seed > 0 else 1
        run = run_prompt(dev, golden, tok, prompt, args.steps, args.temperature, args.topp, seed, on_token)
        _record(args, "run", [run], ctx, info, seed)
    out.write(b"\n")
    out.flush()
    counts = [c * factor for c in run.counts]
    if counts:
        err.print(f"per-token {unit}, 8 positions per line:")
        for row in range(0, len(counts), 8):
            err.print(f"  {row:4d}: " + " ".join(f"{c:>11,.0f}" for c in counts[row:row + 8]),
                      soft_wrap=True)
        mean = sum(counts) / len(counts)
        rate = f", {board.clock_hz / mean:.2f} tokens/s at {board.clock_hz / 1e6:g} MHz" \
            if unit in ("instructions", "cycles") else ""
        err.print(f"{len(counts)} tokens, mean {mean:,.0f} {unit}/token (min {min(counts):,.0f}, "
                  f"max {max(counts):,.0f}){rate}")
    if not run.ok:
        err.print(f"[bold red]MISMATCH[/bold red] with the golden model at token {run.mismatch}: "
                  f"device {run.tokens[run.mismatch:run.mismatch + 1]}, golden "
                  f"{run.expected[run.mismatch:run.mismatch + 1]}")
        return 1
    err.print(f"[green]all {len(run.tokens)} tokens equal the golden model's[/green]")
    return 0


def _check_info(info, ctx) -> None:
    want = ctx["compiled"].qmodel.model_fingerprint[:16]
    if info.model_hash != want or info.scheme != ctx["scheme"].name:
        raise EdgeslmError(f"the device runs model {info.model_hash} ({info.scheme}), not {want} "
                           f"({ctx['scheme'].name})", "flash the firmware that `edgeslm build` made")
    if not info.weights_ok:
        raise EdgeslmError("the device's weights do not match their checksum",
                           "re-flash the firmware; the flash image is corrupt")


def _read_prompts(path: str | None) -> list[str]:
    if not path:
        return ["Once upon a time", "Tom and Lily"]
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read --prompts {path}: {e}") from None
    return [line for line in lines if line.strip()] or [""]


def _bench_one(args, prompts: list[str]) -> dict:
    """Build (if stale) and run the prompts for args.quant; every token checked against golden."""
    from .bench import open_device, run_prompt, summarize
    from .quant.golden import engine_for
    ctx = _prepare(args, build=_builds(args), snapshot=True, emulated=_builds(args))
    board, tok, plan = ctx["board"], ctx["tok"], ctx["compiled"].plan
    golden = engine_for(ctx["compiled"].qmodel, plan.max_seq)
    runs = []
    with open_device(board, ctx["elf"], args.emulate, args.port, emulator=args.emulator,
                     labgrid=args.labgrid) as (dev, _emu):
        dev.elf = _firmware_elf(ctx)
        info = dev.hello()
        _check_info(info, ctx)
        with _progress() as prog:
            for prompt in prompts:
                task = prog.add_task(f"{ctx['scheme'].name} {prompt[:24]!r}",
                                     total=min(args.steps or plan.max_seq, plan.max_seq))
                runs.append(run_prompt(dev, golden, tok, prompt, args.steps, args.temperature, args.topp,
                                       args.seed, lambda m, ok: prog.advance(task), profile_each=args.profile))
        _record(args, "bench", runs, ctx, info, args.seed)
    return summarize(runs, plan, board, ctx["elf"], info)


def cmd_bench(args) -> int:
    from .lower.boards import load_board
    _check_sampling(args)
    for path in (args.json, args.plot):
        if path:
            check_output(path)
    _check_record(args)
    _check_emulator(args)
    prompts = _read_prompts(args.prompts)
    variants = load_board(args.board).kernel_variants
    act = {f"x{b}": b for b in ACT_BITS}            # q8's activation bits
    if args.baseline not in SCHEME_NAMES + tuple(variants) + tuple(act):
        raise UsageError(f"--baseline {args.baseline} is neither a scheme, a kernel variant nor q8's activation bits",
                         f"choose one of: {', '.join(SCHEME_NAMES + tuple(variants) + tuple(act))}")
    if args.baseline in act and (args.quant or "q8") != "q8":
        raise UsageError(f"--baseline {args.baseline} compares q8's activation bits, not {args.quant}'s",
                         "use it with --quant q8")
    report = _bench_one(args, prompts)
    baseline = None
    change = {"kernels": args.baseline} if args.baseline in variants else \
        {"act_bits": act[args.baseline]} if args.baseline in act else \
        {"quant": args.baseline, "act_bits": None, "int8_layers": None, "int16": None}
    base_args = argparse.Namespace(**{**vars(args), **change})
    if (base_args.quant or "q8") != report["scheme"] or (base_args.kernels or report["kernels"]) != report["kernels"] \
            or _scheme(base_args).act_bits != report["act_bits"] or list(_scheme(base_args).int16) != report["int16"]:
        baseline = _bench_one(base_args, prompts)
        report["baseline"] = baseline
    _print_bench(report, baseline)
    if args.profile:
        _profile_outputs(args, report, baseline)
    if args.json:
        _write_json(args.json, report)
    ok = report["tokens_match"] and (baseline is None or baseline["tokens_match"])
    if args.fit_costs:
        _fit_costs(args, [r for r in (report, baseline) if r], ok)
    return 0 if ok else 1


def _profile_outputs(args, report: dict, baseline: dict | None) -> None:
    """bench --profile: instructions per token by step kind (table on stderr) and the plot."""
    from .bench import plot_profile
    from .lower.compile import build_dir
    for r in (report, baseline):
        if r is None or not r.get("profile"):
            continue
        prof = r["profile"]
        t = Table(title=f"per token by step kind: {_bench_label(r)} (KV {r['kv']}, {r['kernels']}) on {r['core']}, "
                        f"positions 0-{len(next(iter(prof['by_position'].values()))) - 1}")
        for col in ("step kind", f"{r['unit']}/token (mean)", "at pos 0", "at the last pos", "share", "per weight MAC"):
            t.add_column(col, justify="left" if col == "step kind" else "right")
        means = {k: sum(v) / len(v) for k, v in prof["by_position"].items()}
        total = sum(means.values())
        for k in sorted(means, key=lambda k: -means[k]):
            v = prof["by_position"][k]
            t.add_row(k, f"{means[k]:,.0f}", f"{v[0]:,.0f}", f"{v[-1]:,.0f}", f"{means[k] / total:.1%}",
                      f"{means[k] / prof['weight_macs']:.2f}" if k == "matmul" else "")
        t.add_row("all steps", f"{total:,.0f}", "", "", "", f"{total / prof['weight_macs']:.2f}")
        Console(stderr=True).print(t)
    out = Path(args.plot) if args.plot else \
        build_dir(args.board) / f"profile_{report['scheme']}_{report['kv']}_{report['kernels']}.png"
    if report.get("profile"):
        plot_profile(report["profile"], f"{report['board']} ({report['core']}): {report['scheme']}, "
                     f"KV {report['kv']}, {report['kernels']} kernels", out)
        err.print(f"wrote {out}: instructions per token vs position, by step kind")


def _fit_costs(args, reports: list[dict], ok: bool) -> None:
    from .bench import fit_costs, write_costs
    from .lower.boards import load_board
    board = load_board(args.board)
    if not ok:
        raise EdgeslmError("not fitting costs from a run whose tokens differ from golden")
    if reports[0]["unit"] != "instructions":
        raise UsageError(f"costs are instructions under the emulator; this run counted {reports[0]['unit']}",
                         "fit with --emulate")
    fitted = fit_costs(reports)
    src = (f"edgeslm bench --emulate --board {board.id} --quant {reports[0]['scheme']} --kv {reports[0]['kv']} "
           f"--steps {args.steps} --fit-costs (stories260K unless another model was given)")
    write_costs(board.target.costs_file, board.core.id, fitted, src)
    err.print(f"wrote the fitted costs of {board.core.id} ({len(fitted['kernels'])} kernel variants) to "
              f"{board.target.costs_file}")


def _bench_rows(r: dict) -> list[tuple[str, str]]:
    ipt = r["instructions_per_token"]
    rows = [("tokens equal golden", "[green]yes[/green]" if r["tokens_match"] else
             f"[red]NO: first mismatch at token {r['first_mismatch']} of {r['first_mismatch_prompt']!r}[/red]"),
            (f"{r['unit']} per token (mean)", f"{ipt['mean']:,.0f}"),
            (f"{r['unit']} per token (min / max)", f"{ipt['min']:,.0f} / {ipt['max']:,.0f}"),
            ("predicted by the planner (mean)", f"{r['predicted_instructions_per_token']:,.0f}"
             if r["predicted_instructions_per_token"] else "- (no cost data: bench --fit-costs)"),
            (f"{r['unit']} per weight MAC (all work)", f"{r['instructions_per_mac']:.2f}"
             if r["instructions_per_mac"] else "-")]
    if r["tokens_per_s_at_nominal_clock"] and r["unit"] != "host ns":
        rows.append((f"tokens/s at {r['clock_hz'] / 1e6:g} MHz (1 instr/cycle)",
                     f"{r['tokens_per_s_at_nominal_clock']:.2f}"))
    c = r.get("cluster")
    if c:                    # a cluster: its workers, its DMA and the time model (bench.cluster_summary)
        tm = c["time_model"]
        rows += [(f"cluster: busiest of {c['cores']} workers, balance",
                  f"{c['busiest_core_instructions_per_token']:,.0f}, {c['balance']:.3f}"),
                 ("cluster: DMA bytes per token (planned)",
                  f"{c['dma_bytes_per_token']:,.0f} ({c['dma_bytes_per_token_planned']:,})"),
                 ("cluster: + fork/barrier + DMA wait cycles (modelled)",
                  f"{tm['fork_barrier_cycles']:,.0f} + {tm['dma_wait_cycles']:,.0f}"),
                 (f"cluster: cycles per token, tokens/s at {r['clock_hz'] / 1e6:g} MHz (modelled)",
                  f"{tm['cycles_per_token']:,.0f}, {tm['tokens_per_s_at_cluster_clock']:.2f}")]
    rows += [("flash (image) bytes", f"{r['flash_bytes']:,}"), ("RAM (reserved) bytes", f"{r['ram_bytes']:,}")]
    return rows


def _bench_label(r: dict) -> str:
    """The scheme, with q8's activation bits when they are not the default, i8's int16 parts."""
    bits = r.get("act_bits", 8)
    return r["scheme"] + (f" x{bits}" if r["scheme"] == "q8" and bits != DEFAULT_ACT_BITS else "") + \
        "".join(f" {p}16" for p in r.get("int16", []))


def _print_bench(r: dict, baseline: dict | None = None) -> None:
    con = Console()
    t = Table(title=f"edgeslm bench: {r['board']}, {r['prompts']} prompts, {r['tokens']} tokens")
    t.add_column("figure")
    t.add_column(f"{_bench_label(r)} (KV {r['kv']}, {r['kernels']})", justify="right")
    rows = _bench_rows(r)
    base_rows = _bench_rows(baseline) if baseline else None
    if baseline:
        t.add_column(f"baseline {_bench_label(baseline)} (KV {baseline['kv']}, {baseline['kernels']})",
                     justify="right")
    base = dict(base_rows or [])
    for name, value in rows:
        t.add_row(name, value, *([base.get(name, "-")] if base_rows else []))
    con.print(t)
    _print_kernel_profile(r, con)
    if baseline:
        _print_kernel_profile(baseline, con)
    pos = r["instructions_by_position"]
    keys = sorted(map(int, pos))
    if keys:
        picks = sorted({keys[int(i * (len(keys) - 1) / 7)] for i in range(8)})
        con.print(f"{r['scheme']} {r['unit']} per token by position: " +
                  ", ".join(f"{k}: {pos[str(k)]:,.0f}" for k in picks))


def _print_kernel_profile(r: dict, con: Console) -> None:
    """Measured against predicted, per kernel variant (per step in the JSON)."""
    if not r.get("by_kernel"):
        return
    t = Table(title=f"per forward pass by kernel: {_bench_label(r)} (KV {r['kv']}, {r['kernels']}) on {r['core']}")
    for col in ("kernel", "steps", f"measured {r['unit']}", "predicted", "measured/predicted", "share"):
        t.add_column(col, justify="left" if col == "kernel" else "right")
    total = sum(k["measured"] for k in r["by_kernel"].values())
    for key, k in sorted(r["by_kernel"].items(), key=lambda kv: -kv[1]["measured"]):
        pred = k["predicted"]
        t.add_row(key, str(k["steps"]), f"{k['measured']:,.0f}", f"{pred:,.0f}" if pred else "-",
                  f"{k['measured'] / pred:.3f}" if pred else "-", f"{k['measured'] / total:.1%}")
    if r.get("outside_steps_per_token") is not None:
        t.add_row("(outside the steps: sampling, framing)", "", f"{r['outside_steps_per_token']:,.0f}", "", "", "")
    con.print(t)


# ---------------------------------------------------------------- telemetry: --record and `report`

def _check_record(args) -> None:
    if getattr(args, "record", None):
        from .telemetry import check_record_path
        check_record_path(args.record)


def _record(args, kind: str, runs: list, ctx, info, seed: int) -> None:
    """run/bench --record FILE: one JSON line per generation (edgeslm.telemetry has the fields)."""
    if not getattr(args, "record", None):
        return
    from .bench import count_to_instructions
    from .lower.elfsize import region_usage
    from .telemetry import append_records, inference_record
    board, plan = ctx["board"], ctx["compiled"].plan
    factor, unit = count_to_instructions(board, info.cycle_unit)
    usage = region_usage(ctx["elf"], board) if ctx["elf"] else None
    recs = [inference_record(kind, r, info, plan, board, ctx["tok"], factor, unit, usage=usage,
                             emulated=_builds(args), model=ctx["model"],
                             port=args.port or (f"labgrid:{args.labgrid}" if args.labgrid else None),
                             request={"prompt": r.prompt, "steps": args.steps, "temperature": args.temperature,
                                      "topp": args.topp, "seed": seed})
            for r in runs]
    append_records(args.record, recs)
    err.print(f"[dim]appended {len(recs)} record{'s' if len(recs) != 1 else ''} to {args.record}[/dim]")


# ---------------------------------------------------------------- Renode: --emulator renode and `renode`

def _check_emulator(args) -> None:
    """--emulator renode: refused before any work when Renode is missing or has no platform."""
    if args.emulate and args.emulator == "renode":
        from .emulator.renode import renode_binary, renode_support
        from .lower.boards import load_board
        renode_support(load_board(args.board))
        renode_binary()


def _run_args(args) -> list[str]:
    """The `edgeslm run` options that name what was built (for the Robot test to check it again)."""
    out = ["--board", args.board, "--quant", args.quant or "q8", "--kv", args.kv]
    for flag, value in (("--max-seq", args.max_seq), ("--kernels", args.kernels), ("--calib", args.calib),
                        ("--tokenizer", args.tokenizer)):
        if value:
            out += [flag, str(value)]
    return ([str(Path(args.model).resolve())] if args.model else []) + out


def cmd_renode(args) -> int:
    from .emulator.renode import renode_support, write_renode_files
    from .lower.boards import load_board
    renode_support(load_board(args.board))       # a board without a platform: say so before building
    ctx = _prepare(args, build=True, snapshot=True, emulated=True)     # this configuration's own ELF copy
    out = Path(args.renode_dir) if args.renode_dir else ctx["elf"].parent / "renode"
    files = write_renode_files(ctx["board"], ctx["elf"], out, args.uart_port, _run_args(args))
    for p in (files.repl, files.resc, files.robot):
        if p:
            print(p)
    err.print(f"[dim]renode {files.resc}  (console on TCP {files.port}: edgeslm run --port "
              f"socket://127.0.0.1:{files.port} ...); renode-test {files.robot}[/dim]")
    return 0


# ---------------------------------------------------------------- labgrid: --labgrid and `labgrid`

def _builds(args) -> bool:
    """Whether run/bench build the firmware: for an emulator (QEMU, Renode, or QEMU through a
    labgrid environment); a real board runs what was flashed."""
    if getattr(args, "labgrid", None):
        from .farm import uses_qemu
        return uses_qemu(args.labgrid)
    return bool(args.emulate)


def cmd_labgrid(args) -> int:
    from .farm import committed_env_path, default_elf_path, labgrid_env
    from .lower.boards import load_board
    out = Path(args.output) if args.output else committed_env_path(args.board)
    check_output(out)
    text = labgrid_env(load_board(args.board), default_elf_path(args.board, out.parent))
    write_atomic(out, text)
    print(out)
    return 0


def cmd_report(args) -> int:
    from .report import write_report
    from .telemetry import read_records
    records = read_records(args.records)
    written = write_report(records, args.output)
    for p in written:
        err.print(f"wrote {p}")
    return 0


def cmd_calibrate(args) -> int:
    from .quant.calibrate import (CALIBRATION_PROMPTS, PromptsDataReader, TextDataReader, calibrate)
    check_output(args.output)
    model, tok = _load(args)
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read --text {args.text}: {e}") from None
        reader, what = TextDataReader(tok, text, model.config.max_seq_len, args.samples), args.text
    else:
        prompts = _read_prompts(args.prompts) if args.prompts else CALIBRATION_PROMPTS
        prompts = prompts[:args.samples] if args.samples else prompts
        with err.status(f"continuing {len(prompts)} prompts with the float model"):
            reader = PromptsDataReader(model, tok, prompts, min(args.steps, model.config.max_seq_len))
        what = args.prompts or "built-in prompts"
    with _progress() as prog:
        task = prog.add_task(f"calibrating ({args.method})", total=None)
        calib = calibrate(model, reader, args.method, lambda k: prog.advance(task, k), hessians=True)
    calib.save(args.output)
    err.print(f"wrote {args.output}: {len(calib.ranges)} tensor ranges from {calib.tokens} tokens of "
              f"{what} ({args.method}), and {calib.hessian_path(args.output).name}: "
              f"{len(calib.hessians.inputs)} input Hessians for --rounding gptq")
    return 0


def cmd_export_tflite(args) -> int:
    from .quant.tflite_export import export_tflite
    check_output(args.output)
    model, tok = _load(args)
    from .quant.int8 import quantize_int8
    data = export_tflite(quantize_int8(model, _calibration(args, model, tok), int16=()))
    out = write_atomic(args.output, data)
    err.print(f"wrote {out}: i8 decode step for tflite-micro, every activation int8, {len(data):,} bytes "
              "(inputs: token, rope, mask, past K/V; outputs: logits, this position's K/V); the firmware's "
              f"--int16 parts (default {','.join(DEFAULT_I8_INT16)}) are not in it: TFLite's int8 FULLY_CONNECTED "
              "cannot write int16, so this file is the firmware built with --int16 none")
    return 0


def cmd_export_onnx(args) -> int:
    from .model.onnx_export import export_decode_step
    check_output(args.output)
    model = load_model(_model_path(args))
    tok = None
    if args.tokenizer or not args.model:
        tok = load_tokenizer(Path(args.tokenizer) if args.tokenizer else zoo.locate(zoo.DEFAULT_TOKENIZER), model)
    graph = export_decode_step(model, tok)
    out = write_atomic(args.output, graph.SerializeToString())
    err.print(f"wrote {out}: decode step, {len(graph.graph.node)} nodes, {model.n_params():,} parameters"
              f"{'' if tok else ' (no tokenizer recorded: pass --tokenizer)'}")
    return 0


# ---------------------------------------------------------------- parser and entry point

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgeslm", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=_version_text())
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    g = sub.add_parser("generate", help="generate text on the host (float reference or golden model)",
                       description="Generate like llama2.c's `run MODEL -z TOK -i PROMPT -n STEPS "
                       "-t T -p P -s S`: the same stdout bytes with the float engine.")
    _add_model_args(g)
    g.add_argument("--prompt", "-i", default="", help="prompt text (default: none, start from BOS)")
    g.add_argument("--steps", "-n", type=int, default=256,
                   help="forward steps, prompt included, as run.c's -n; 0 = the whole context (default 256)")
    g.add_argument("--temperature", "-t", type=float, default=1.0, help="0 = greedy (default 1.0)")
    g.add_argument("--topp", "-p", type=float, default=0.9, help="top-p (default 0.9)")
    g.add_argument("--seed", "-s", type=int, default=0, help="random seed (default: from the clock)")
    g.add_argument("--engine", choices=("float", "golden"), default="float",
                   help="float: the fp32 reference (== llama2.c); golden: the firmware's exact "
                   "arithmetic under --quant (default float)")
    g.add_argument("--quiet", action="store_true", help="no statistics on stderr")
    _add_quant_args(g, None)
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("eval", help="accuracy of a quantized model against float",
                       description="Teacher-forced top-1 agreement, mean KL divergence and "
                       "perplexity of the quantized (golden) model against the float reference.")
    _add_model_args(e)
    _add_quant_args(e, "q8")
    e.add_argument("--text", help="UTF-8 text file to evaluate on (default: the float model's own "
                   "greedy and sampled generations)")
    e.add_argument("--tokens", type=int, default=12000,
                   help="positions of default evaluation text to generate (default 12000: top-1 "
                   "within about +-0.2%% near 99%%)")
    e.add_argument("--compare", nargs="?", const="", metavar="LIST",
                   help="one table of several schemes side by side: comma-separated SCHEME[:OPTION...], "
                   "options rtn|gptq, kv8, g<N>, a<N>, x8|x16, l<N>, keys16, ffn16 (default "
                   f"{DEFAULT_COMPARE})")
    e.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("inspect", help="config, parameter count and bytes per scheme")
    i.add_argument("model", nargs="?", help="model file; default: stories260K")
    i.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE)
    i.add_argument("--max-seq", type=int, help="context length to size the KV cache for")
    i.add_argument("--board", "-b", default="mps2_an386",
                   help="board whose kernels size the arena and scratch (default mps2_an386)")
    i.set_defaults(func=cmd_inspect)

    ca = sub.add_parser("calibrate", help="record activation ranges (i8) and input Hessians (gptq)",
                        description="Run the float model on representative data and record the range "
                        "of every activation the i8 scheme quantizes, and every weight matrix's input "
                        "Hessian X^T X for --rounding gptq (written beside the JSON as "
                        "NAME.hessians.npz). The files record the model's fingerprint and are refused "
                        "for any other model.")
    _add_model_args(ca)
    src = ca.add_mutually_exclusive_group()
    src.add_argument("--text", help="UTF-8 text, cut into context-length windows")
    src.add_argument("--prompts", help="one prompt per line, continued greedily by the float model")
    ca.add_argument("--samples", type=int, help="at most this many windows / prompts")
    ca.add_argument("--steps", type=int, default=200, help="steps per prompt continuation (default 200)")
    ca.add_argument("--method", choices=("minmax", "percentile", "mse"), default="percentile",
                    help="range estimate (default percentile)")
    ca.add_argument("-o", "--output", required=True, help="calibration JSON to write")
    ca.set_defaults(func=cmd_calibrate)

    xt = sub.add_parser("export-tflite", help="write the i8 model (every activation int8, as --int16 none) as a "
                        "TFLite decode step for tflite-micro",
                        description="One decode step with TFLite-Micro builtin ops only (see "
                        "host/edgeslm/quant/tflite_export.py for its inputs and outputs).")
    xt.add_argument("model", nargs="?", help="model file; default: stories260K")
    xt.add_argument("--calib", help="calibration file from `edgeslm calibrate` (default: calibrate now on "
                    "the built-in prompts, with a warning)")
    xt.add_argument("--tokenizer", "-z", help="tokenizer for calibrating without --calib (default: "
                    "tok<vocab>.bin beside the model)")
    xt.add_argument("-o", "--output", required=True, help="output .tflite file")
    xt.set_defaults(func=cmd_export_tflite)

    x = sub.add_parser("export-onnx", help="write the model as an ONNX decode step (KV cache in/out)",
                       description="One-token decode step with an explicit KV cache; weights as named "
                       "initializers, config and tokenizer identity in metadata_props.")
    x.add_argument("model", nargs="?", help="model file; default: stories260K")
    x.add_argument("--tokenizer", "-z", help="tokenizer whose identity to record")
    x.add_argument("-o", "--output", required=True, help="output .onnx file")
    x.set_defaults(func=cmd_export_onnx)

    b = sub.add_parser("boards", help="list the boards (boards/*.json)")
    b.set_defaults(func=cmd_boards)

    def lowering(p: argparse.ArgumentParser) -> None:
        _add_model_args(p)
        p.add_argument("--board", "-b", default="mps2_an386", help="board id (default mps2_an386)")
        _add_quant_args(p, "q8")
        p.add_argument("--max-seq", type=int, help="context length to build for (default: the model's)")
        p.add_argument("--kernels", help="cap the kernels' ISA variant, e.g. portable (plain C) or dsp "
                       "(default: the best the board's core has; `edgeslm boards` lists them)")
        p.add_argument("--cores", type=int, help="a cluster board (gap9_qemu): fork each step over N "
                       "worker cores, 1 .. the board's cluster.cores (default: all)")

    c = sub.add_parser("compile", help="plan memory and generate the C sources for a board",
                       description="Quantize, plan (fit verdict, arena, placement) and render "
                       "templates/*.j2 into build/<board>/gen.")
    lowering(c)
    c.add_argument("-o", "--output", help="output folder (default build/<board>)")
    c.set_defaults(func=cmd_compile)

    bd = sub.add_parser("build", help="compile (if stale) and build firmware.elf with PlatformIO")
    lowering(bd)
    bd.set_defaults(func=cmd_build)

    def device(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group(required=True)
        g.add_argument("--emulate", action="store_true", help="run on the board's emulator (QEMU; --emulator)")
        g.add_argument("--port", help="a real board: serial port or any pyserial URL")
        g.add_argument("--labgrid", metavar="ENV", help="the console of a labgrid environment's target "
                       "`main` (labgrid/<board>.yaml: QEMU through labgrid's QEMUDriver; a real board with "
                       "a SerialDriver)")
        p.add_argument("--emulator", choices=("qemu", "renode"), default="qemu",
                       help="with --emulate: qemu (default) or renode (needs `renode` on PATH; writes the "
                       "board's .repl/.resc/.robot beside the ELF)")

    r = sub.add_parser("run", help="generate on a board (emulated or real), checked against golden",
                       description="Compile and build what is stale, start the emulator, stream the "
                       "story to stdout and per-token timing to stderr; every token is checked "
                       "against the golden model (exit 1 on a mismatch).")
    lowering(r)
    device(r)
    r.add_argument("--prompt", "-i", default="Once upon a time", help="prompt text")
    r.add_argument("--steps", "-n", type=int, default=200, help="forward steps as run.c's -n (default 200)")
    r.add_argument("--temperature", "-t", type=float, default=0.0, help="0 = greedy (default)")
    r.add_argument("--topp", "-p", type=float, default=0.9)
    r.add_argument("--seed", "-s", type=int, default=1)
    _add_record_arg(r)
    r.set_defaults(func=cmd_run)

    be = sub.add_parser("bench", help="instructions per token, fit and accuracy check on a board")
    lowering(be)
    device(be)
    be.add_argument("--prompts", help="file with one prompt per line (default: two built-in prompts)")
    be.add_argument("--steps", "-n", type=int, default=200)
    be.add_argument("--temperature", "-t", type=float, default=0.0)
    be.add_argument("--topp", "-p", type=float, default=0.9)
    be.add_argument("--seed", "-s", type=int, default=1)
    be.add_argument("--baseline", default="portable",
                    help="also run this scheme (f32, q8, q4, i8), kernel variant (portable, dsp) or q8 "
                    "activation width (x8, x16) in the same session and print it side by side (default "
                    "portable; the same as what is benched skips it)")
    be.add_argument("--json", metavar="OUT", help="also write the figures as JSON (per step too)")
    be.add_argument("--profile", action="store_true",
                    help="also the per-step counts of every token: a table by step kind on stderr, "
                    "per kind and position in --json, and a PNG plot (--plot)")
    be.add_argument("--plot", metavar="PNG", help="where --profile writes its plot "
                    "(default build/<board>/profile_<scheme>_<kv>_<kernels>.png)")
    be.add_argument("--fit-costs", action="store_true",
                    help="fit the planner's cost table for this core to the measured steps (both "
                    "columns) and write it to the target's cost file")
    _add_record_arg(be)
    be.set_defaults(func=cmd_bench)

    rn = sub.add_parser("renode", help="write a board's Renode platform, script and Robot test",
                        description="Build the firmware (if stale) and write <board>.repl (a platform "
                        "generated from the board file, unless the board names one of Renode's), "
                        "<board>.resc (loads the ELF, console UART on a TCP port) and <board>.robot (a "
                        "Renode-style test that runs `edgeslm run --port` against it) into the folder.")
    lowering(rn)
    rn.add_argument("-o", "--output", dest="renode_dir", metavar="DIR",
                    help="folder (default build/pio/<board>/renode)")
    rn.add_argument("--uart-port", type=int, default=3456, help="TCP port of the console (default 3456)")
    rn.set_defaults(func=cmd_renode)

    lg = sub.add_parser("labgrid", help="write a board's labgrid environment (QEMU through labgrid)",
                        description="Write the labgrid environment YAML of an emulated board: target "
                        "`main` with labgrid's QEMUDriver loading build/pio/<board>/firmware.elf. Then "
                        "`edgeslm run|bench --labgrid FILE`. A real board swaps the driver (comments in "
                        "the file).")
    lg.add_argument("--board", "-b", default="mps2_an386", help="board id (default mps2_an386)")
    lg.add_argument("-o", "--output", metavar="FILE", help="default labgrid/<board>.yaml in the checkout")
    lg.set_defaults(func=cmd_labgrid)

    rp = sub.add_parser("report", help="plots (PNG) and a Markdown summary from --record files",
                        description="Read the JSON Lines that run/bench --record appended and write "
                        "cost_per_token.png, steps.png, memory.png, schemes.png and summary.md into "
                        "the output folder, one line/bar/row per configuration (board, model, scheme, "
                        "KV format, kernels).")
    rp.add_argument("records", nargs="+", metavar="RECORDS",
                    help="records files (JSON Lines), or folders of *.jsonl")
    rp.add_argument("-o", "--output", required=True, metavar="DIR", help="folder to write into (created)")
    rp.set_defaults(func=cmd_report)
    return ap


def _add_record_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", metavar="FILE",
                   help="append one JSON record per generation to FILE (JSON Lines: board, scheme, build "
                   "id, per-token counts, per-step profile, time to first token, tokens/s, stack peak, "
                   "arena and KV bytes, energy estimate); `edgeslm report FILE` plots them")


class _Stopped(BaseException):
    """A signal that ends the command: unwinds like an error (cleanup runs), then exits 128 + signum."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _on_signal(signum, frame) -> None:
    for s in _STOP_SIGNALS:            # one unwinding, not interrupted by a second signal
        signal.signal(s, signal.SIG_IGN)
    raise _Stopped(signum)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = {s: signal.signal(s, _on_signal) for s in _STOP_SIGNALS}
    try:
        return args.func(args)
    except EdgeslmError as e:
        err.print(f"[bold red]error:[/bold red] {escape(str(e))}")
        if e.hint:
            err.print(f"  [yellow]fix:[/yellow] {escape(e.hint)}")
        return 2
    except (KeyboardInterrupt, _Stopped) as e:
        signum = e.signum if isinstance(e, _Stopped) else signal.SIGINT
        err.print("interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}")
        return 128 + signum
    except BrokenPipeError:
        return 0
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


if __name__ == "__main__":
    sys.exit(main())
