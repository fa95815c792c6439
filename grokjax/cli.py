"""The `grokjax` command: parse, build the config, call the library, print what it returns."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from grokjax.errors import ConfigError

JOBS, SEEDED, HARDWARE = (
    ("run", "compare", "landscape", "sweep"),
    ("run", "compare"),
    ("run", "sweep"),
)
LIST = dict(action="append", default=[])
DISTRIBUTED = (
    ("--coordinator", str, "process 0's HOST:PORT"),
    ("--num-processes", int, "processes taking part"),
    ("--process-id", int, "this process, 0..n-1"),
)
ARGUMENTS = [  # (commands, flag, argparse keywords)
    (
        ("compare",),
        "--preset",
        dict(dest="presets", action="append", required=True, help="a run preset (twice or more)"),
    ),
    (("compare",), "--same-lr", dict(action="store_true", help="all at the first's lr")),
    (JOBS, "--set", dict(dest="assignments", **LIST, help="path=value (optim.wand.force_cap=1)")),
    (JOBS, "--steps", dict(type=int, help="shorthand for --set steps=N")),
    (JOBS, "--out", dict(help="output directory (default runs/<preset>-<time>)")),
    (JOBS, "--no-progress", dict(action="store_true", help="no progress bar")),
    (
        ("run", "landscape"),
        "--profile",
        dict(metavar="DIR", help="JAX profiler trace of two chunks"),
    ),
    (SEEDED, "--seeds", dict(type=int, help="members (default 4; a resume: the run's)")),
    (("sweep",), "--seeds", dict(type=int, help="seeds per cell (default: the preset's)")),
    ((*SEEDED, "sweep"), "--seed-start", dict(type=int, help="first seed (default 0)")),
    (HARDWARE, "--member-batch", dict(default="auto", help="an int, 'all' or 'auto'")),
    (HARDWARE, "--devices", dict(default="auto", help="an int or 'auto' (all)")),
    (HARDWARE, "--distributed", dict(action="store_true", help="join other processes")),
    *((HARDWARE, f, dict(type=t, help=h)) for f, t, h in DISTRIBUTED),
    (("report",), "run_dir", dict(help="a run directory")),
    (("dashboard",), "runs_dir", dict(nargs="?", default="runs", help="default: runs")),
    (("dashboard",), "--port", dict(type=int, default=8050, help="default 8050 (0: any free)")),
    (("report",), "--out", dict(help="where to write it (default RUN_DIR/report.html)")),
    (("warn",), "runs_dir", dict(nargs="+", help="run, comparison or sweep directories")),
    (("warn",), "--out", dict(help="where to write (default: the first RUNS_DIR/warning)")),
    (("warn",), "--window", dict(type=int, default=10, help="evaluations (default 10)")),
    (
        ("warn",),
        "--early-step",
        dict(type=int, default=200, help="the concordance's step (default 200)"),
    ),
    (("predict",), "runs_dir", dict(nargs="+", help="run, comparison or sweep directories")),
    (("predict",), "--out", dict(help="where to write (default: the first RUNS_DIR/prediction)")),
    (JOBS, "--no-report", dict(action="store_true", help="no report.html at the end")),
    (("run",), "--tensorboard", dict(action="store_true", help="event files, one per member")),
    (
        ("landscape",),
        "--trajectory",
        dict(**LIST, metavar="NAME=RUN_DIR", help="overlay a run's path (repeatable)"),
    ),
    (("sweep",), "--grid", dict(**LIST, metavar="FIELD=V1,V2,...", help="an axis")),
    (("sweep",), "--axes", dict(help="X,Y: the two axes of the phase diagram")),
    (("sweep",), "--group", dict(help="the axis whose cells get one survival curve each")),
    (
        ("sweep",),
        "--phase-rule",
        dict(default="liu", help="'liu' (the delay) or 'log-time' (the grokking area)"),
    ),
]
HELP = {
    "run": ("default", "train a seed ensemble and write a run directory"),
    "compare": (None, "run several presets on the same seeds; one table and one figure"),
    "landscape": ("landscape-cpu", "measure an entropy landscape S(ln L, A_test) with WLMD"),
    "sweep": ("optimizer-batch-lr", "a grid of settings, seeds on every cell; phases"),
    "presets": (None, "list the presets"),
    "report": (None, "write a run's self-contained report.html"),
    "dashboard": (None, "serve a live page of every run under a directory on 127.0.0.1"),
    "warn": (None, "score early-warning indicators of grokking on held-out seeds"),
    "predict": (None, "predict when runs generalise; scores on held-out seeds and cells"),
}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {name: sub.add_parser(name, help=text) for name, (_, text) in HELP.items()}
    for name in JOBS:
        cmd = commands[name]
        if HELP[name][0]:
            default = HELP[name][0]
            cmd.add_argument("--preset", help=f"a {name} preset (default {default})")
        mode = cmd.add_mutually_exclusive_group()
        mode.add_argument("--resume", action="store_true", help="continue the run in --out")
        mode.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    for names, flag, keywords in ARGUMENTS:
        for name in names:
            commands[name].add_argument(flag, **keywords)
    return parser


def _job(args) -> dict:
    """What every long job takes from the arguments: overrides, directory, run mode."""
    name = getattr(args, "preset", None) or HELP[args.command][0] or "compare"
    out = args.out or f"runs/{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    steps = [] if args.steps is None else [f"steps={args.steps}"]
    job = dict(settings=[*args.assignments, *steps], out_dir=Path(out), resume=args.resume)
    # The bar draws only on a terminal: piped or logged output stays clean.
    job.update(overwrite=args.overwrite, progress=not args.no_progress and sys.stderr.isatty())
    return {**job, **({"profile_dir": args.profile} if "profile" in args else {})}


def _hardware(args) -> dict:
    from grokjax.host.devices import hardware

    names = ["devices", "member_batch", "distributed"]
    names += [flag[2:].replace("-", "_") for flag, _, _ in DISTRIBUTED]
    return hardware(**{name: getattr(args, name) for name in names})


def _seeds(args, default: int = 4) -> range:
    if args.seeds is not None and args.seeds < 1:
        raise ConfigError(f"seeds={args.seeds} is not allowed: at least 1")
    start = getattr(args, "seed_start", None) or 0
    if start < 0:
        raise ConfigError(f"seed_start={start} is not allowed: >= 0")
    return range(start, start + (args.seeds or default))


def _preset(args) -> str:
    return args.preset or HELP[args.command][0]


def _run(args) -> str:
    from grokjax.host.experiment import resume_run, run_preset

    options = dict(tensorboard=args.tensorboard, **_hardware(args), **_job(args))
    if args.resume:  # the run as it was started, from its directory
        if args.out is None:
            raise ConfigError("--resume needs --out DIR: the run directory to continue")
        given = args.seeds is not None or getattr(args, "seed_start", None) is not None
        del options["resume"]
        result = resume_run(seeds=_seeds(args) if given else None, preset=args.preset, **options)
    else:
        result = run_preset(_preset(args), seeds=_seeds(args), **options)
    return _with_report(args, result.text(), result.out_dir)


def _with_report(args, text: str, out_dir: Path) -> str:
    """`text` and the line of the report.html written into `out_dir` (process 0 only;
    none with --no-report)."""
    import jax

    if args.no_report or jax.process_index() != 0:
        return text
    from grokjax.report.html import write_report

    return f"{text}\nreport: {write_report(out_dir)}"


def _report(args) -> str:
    from grokjax.report.html import write_report

    return f"wrote {write_report(Path(args.run_dir), args.out and Path(args.out))}"


def _compare(args) -> str:
    from grokjax.host.compare import compare_named

    result = compare_named(args.presets, _seeds(args), same_lr=args.same_lr, **_job(args))
    return _with_report(args, result.text(), result.out_dir)


def _sweep(args) -> str:
    from grokjax.host.sweep import sweep_preset

    options = dict(grid=args.grid, diagram_axes=args.axes, group=args.group, **_hardware(args))
    options.update(seed_start=_seeds(args).start, phase_rule=args.phase_rule)
    result = sweep_preset(_preset(args), args.seeds, **options, **_job(args))
    return _with_report(args, result.text(), result.out_dir)


def _landscape(args) -> str:
    from grokjax.host.measure import measure_preset

    job = _job(args)
    result = measure_preset(_preset(args), args.trajectory, **job)
    return _with_report(args, result, job["out_dir"])


def _presets(args) -> str:
    from grokjax.presets import listing

    return listing()


def _dashboard(args) -> str:
    from grokjax.report.server import serve_dashboard

    serve_dashboard(Path(args.runs_dir), args.port)
    return "dashboard stopped"


def _warn(args) -> str:
    from grokjax.host.warn import warn

    out = args.out and Path(args.out)
    return warn([Path(p) for p in args.runs_dir], out, args.window, args.early_step)


def _predict(args) -> str:
    from grokjax.host.predict import predict

    return predict([Path(p) for p in args.runs_dir], args.out and Path(args.out))


COMMANDS = {name: globals()[f"_{name}"] for name in HELP}  # grokjax NAME runs _NAME(args)


def main(argv: list[str] | None = None) -> int:
    """Run the command; every error ends as one line and status 2: a `ConfigError` (bad
    input, before any compute) or `OSError` as it is, anything else as an internal
    error (GROKJAX_TRACEBACK=1 re-raises it)."""
    args = _build_parser().parse_args(argv)
    try:
        print(COMMANDS[args.command](args))
        return 0
    except KeyboardInterrupt:
        print("grokjax: interrupted; finished chunks are checkpointed (--resume)", file=sys.stderr)
        return 130
    except Exception as err:
        if isinstance(err, ConfigError):
            message = f"error: {err}"
        elif isinstance(err, OSError):
            message = f"error: {err.filename}: {err.strerror}" if err.filename else f"error: {err}"
        elif os.environ.get("GROKJAX_TRACEBACK") == "1":
            raise
        else:
            message = f"internal error: {type(err).__name__}: {err} (GROKJAX_TRACEBACK=1 shows it)"
    print(f"grokjax: {' '.join(message.split())[:500]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
