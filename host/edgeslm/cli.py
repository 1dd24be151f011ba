"""The `edgeslm` command: one function per subcommand; all user-facing output lives here.

Generated text goes to stdout (so it can be piped); progress, tables and statistics go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .errors import EdgeslmError, UsageError
from .model import Model, Tokenizer, load_model, load_tokenizer
from .model import zoo
from .quant import DEFAULT_GROUP_SIZE, KV_FORMATS, SCHEME_NAMES, get_scheme, quantize

err = Console(stderr=True, highlight=False)


# ---------------------------------------------------------------- shared argument handling

def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", help="model file (llama2.c .bin); default: stories260K")
    p.add_argument("--tokenizer", "-z", help="tokenizer file (llama2.c .bin); default: tok<vocab>.bin "
                   "beside the model, or tok512.bin for the default model")


def _add_quant_args(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument("--quant", "-q", choices=SCHEME_NAMES, default=default,
                   help="quantization scheme" + (f" (default {default})" if default else ""))
    p.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE,
                   help=f"quantization group size along the input dimension (default {DEFAULT_GROUP_SIZE})")
    p.add_argument("--kv", choices=KV_FORMATS, default="f32", help="KV cache format (default f32)")


def _load(args) -> tuple[Model, Tokenizer]:
    model_path = Path(args.model) if args.model else zoo.locate(zoo.DEFAULT_MODEL)
    model = load_model(model_path)
    if args.tokenizer:
        tok_path = Path(args.tokenizer)
    elif not args.model:
        tok_path = zoo.locate(zoo.DEFAULT_TOKENIZER)
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


def _engine(model: Model, args):
    """The engine --engine/--quant ask for: the float reference or the golden model of a scheme."""
    if args.engine == "float":
        if args.quant not in (None, "f32"):
            raise UsageError(f"--quant {args.quant} needs the golden engine",
                             "add --engine golden (the float engine is the unquantized reference)")
        from .reference import FloatEngine
        return FloatEngine(model), "float reference"
    from .quant.golden import GoldenEngine
    scheme = get_scheme(args.quant or "q8", args.group_size, args.kv)
    return GoldenEngine(quantize(model, scheme)), f"golden {scheme.describe()}"


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeRemainingColumn(), console=err, transient=True)


# ---------------------------------------------------------------- subcommands

def cmd_generate(args) -> int:
    from .generate import generate
    from .sampler import engine_sampler
    model, tok = _load(args)
    engine, what = _engine(model, args)
    # run.c's argument rules: negative temperature is 0, a top-p outside [0, 1] is 0.9,
    # a seed <= 0 means "from the clock"
    temperature = max(args.temperature, 0.0)
    topp = args.topp if 0.0 <= args.topp <= 1.0 else 0.9
    seed = args.seed if args.seed > 0 else int(time.time())
    if args.seed <= 0 and temperature > 0:
        err.print(f"[dim]seed {seed} (pass --seed {seed} to repeat this run)[/dim]")
    sampler = engine_sampler(args.engine, temperature, topp, seed)
    out = sys.stdout.buffer

    def on_piece(_token: int, piece: bytes) -> None:
        out.write(piece)
        out.flush()

    gen = generate(engine, tok, args.prompt or "", args.steps, sampler, on_piece)
    out.write(b"\n")
    out.flush()
    n = len(gen.tokens)
    if not args.quiet:
        err.print(f"[dim]{what}: {n} tokens in {gen.seconds:.2f} s "
                  f"({n / gen.seconds if gen.seconds else 0:.1f} tok/s on this host)[/dim]")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import compare, model_text, text_sequences
    from .quant.golden import GoldenEngine
    from .reference import FloatEngine
    model, tok = _load(args)
    scheme = get_scheme(args.quant, args.group_size, args.kv)
    float_engine = FloatEngine(model)
    quant_engine = GoldenEngine(quantize(model, scheme))
    if args.text:
        try:
            text = Path(args.text).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UsageError(f"cannot read --text {args.text}: {e}") from None
        seqs = text_sequences(tok, text, model.config.max_seq_len)
        source = args.text
    else:
        err.print(f"[dim]no --text: generating ~{args.tokens} tokens of evaluation text "
                  "with the float model[/dim]")
        seqs = model_text(float_engine, tok, args.tokens)
        source = "float model's own generations (greedy and sampled)"
    total = sum(len(s) - 1 for s in seqs)
    if total == 0:
        raise UsageError(f"the text {args.text} has no tokens to evaluate")
    with _progress() as prog:
        task = prog.add_task(f"eval {scheme.name}", total=total)
        acc = compare(float_engine, quant_engine, seqs, lambda k: prog.advance(task, k))
    table = Table(title=f"{Path(model.source).name}: {scheme.describe()} vs float",
                  caption=f"{acc.tokens} tokens of {source}")
    for col in ("top-1 agreement", "mean KL", "ppl float", "ppl quant"):
        table.add_column(col, justify="right")
    table.add_row(f"{acc.top1_agreement:.2%}", f"{acc.kl_mean:.5f}", f"{acc.ppl_float:.4f}",
                  f"{acc.ppl_quant:.4f}")
    Console().print(table)
    if args.json:
        data = {**acc.as_dict(), "scheme": scheme.name, "group_size": scheme.group_size,
                "kv": scheme.kv, "model": str(model.source), "text": source}
        _write_json(args.json, data)
    return 0


def _write_json(path: str, data: dict) -> None:
    """Write atomically: a reader never sees half a file."""
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(p)


def cmd_inspect(args) -> int:
    from .sizes import footprint
    model, _ = _load_model_only(args)
    c = model.config
    con = Console()
    cfg = Table(title=f"{model.source}", show_header=False)
    for k, v in [("dim", c.dim), ("hidden_dim", c.hidden_dim), ("n_layers", c.n_layers),
                 ("n_heads", c.n_heads), ("n_kv_heads", c.n_kv_heads), ("head_size", c.head_size),
                 ("vocab_size", c.vocab_size), ("max_seq_len", c.max_seq_len),
                 ("shared classifier", c.shared_classifier), ("norm eps", c.norm_eps),
                 ("rope theta", c.rope_theta), ("parameters", f"{model.n_params():,}"),
                 ("fingerprint", model.fingerprint()[:16])]:
        cfg.add_row(k, str(v))
    con.print(cfg)
    seq = args.max_seq or c.max_seq_len
    t = Table(title=f"bytes needed (context {seq})")
    for col in ("scheme", "weights", "rope tables", "KV cache", "activations", "total"):
        t.add_column(col, justify="right")
    for name in SCHEME_NAMES:
        for kv in KV_FORMATS:
            s = get_scheme(name, args.group_size, kv)
            f = footprint(c, s, seq)
            t.add_row(f"{name} kv={kv}", f"{f.weights:,}", f"{f.rope_tables:,}", f"{f.kv_cache:,}",
                      f"{f.activations:,}", f"{f.total:,}")
    con.print(t)
    return 0


def _load_model_only(args):
    path = Path(args.model) if args.model else zoo.locate(zoo.DEFAULT_MODEL)
    return load_model(path), None


# ---------------------------------------------------------------- parser and entry point

def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="edgeslm", description=__doc__.splitlines()[0])
    ap.add_argument("--version", action="version", version=f"edgeslm {__version__}")
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
    e.add_argument("--tokens", type=int, default=3000,
                   help="tokens of default evaluation text to generate (default 3000)")
    e.add_argument("--json", metavar="OUT", help="also write the figures as JSON")
    e.set_defaults(func=cmd_eval)

    i = sub.add_parser("inspect", help="config, parameter count and bytes per scheme")
    i.add_argument("model", nargs="?", help="model file; default: stories260K")
    i.add_argument("--group-size", type=int, default=DEFAULT_GROUP_SIZE)
    i.add_argument("--max-seq", type=int, help="context length to size the KV cache for")
    i.set_defaults(func=cmd_inspect)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except EdgeslmError as e:
        err.print(f"[bold red]error:[/bold red] {e}")
        if e.hint:
            err.print(f"  [yellow]fix:[/yellow] {e.hint}")
        return 2
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
