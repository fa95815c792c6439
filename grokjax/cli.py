"""The `grokjax` command: parse, call the library, write. No science lives here."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from grokjax.config import Config, Hparams, field_types
from grokjax.errors import ConfigError
from grokjax.presets import PRESETS, get_preset
from grokjax.xla_flags import use_recommended_cpu_flags


def _parse_value(field: str, text: str, kind: str):
    lowered = text.strip().lower()
    if "None" in kind and lowered in ("none", "null"):
        return None
    try:
        if kind.startswith("bool"):
            if lowered not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return lowered in ("true", "1", "yes")
        if kind.startswith("tuple"):
            return tuple(int(part) for part in text.split(",") if part.strip())
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float") or kind == "Any":
            return float(text)
    except ValueError:
        allowed = "true or false" if kind.startswith("bool") else f"a value of type {kind}"
        raise ConfigError(f"{field}={text!r} is not allowed: {allowed}") from None
    return text


def apply_overrides(cfg: Config, hparams: Hparams, assignments: list[str]):
    """Apply `field=value` strings to the config or the hparams; errors name the field."""
    kinds = field_types()
    cfg_changes, hp_changes = {}, {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not allowed: write field=value")
        field, text = item.split("=", 1)
        field = field.strip().replace("-", "_")
        if field in kinds:
            cfg_changes[field] = _parse_value(field, text, kinds[field])
        elif field in Hparams._fields:
            hp_changes[field] = _parse_value(field, text, "float")
        else:
            allowed = sorted(kinds) + list(Hparams._fields)
            raise ConfigError(f"--set field {field!r} is unknown; allowed: {', '.join(allowed)}")
    return cfg.replace(**cfg_changes), hparams._replace(**hp_changes)


def _assignments(args) -> list[str]:
    """The --set strings, with --steps N as one more (it wins, coming last)."""
    extra = [] if args.steps is None else [f"steps={args.steps}"]
    return [*args.assignments, *extra]


def _member_batch(text: str) -> int | None | str:
    if text in ("auto", "all"):
        return None if text == "all" else "auto"
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"member_batch={text!r} is not allowed: 'auto', 'all' or an int >= 1")
    return value


def _add_run_args(parser: argparse.ArgumentParser, set_help: str, out_default: str) -> None:
    """Arguments every command that writes a run has: overrides, steps, directory, mode."""
    parser.add_argument(
        "--set",
        dest="assignments",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=set_help,
    )
    parser.add_argument("--steps", type=int, help="shorthand for --set steps=N")
    parser.add_argument("--out", help=f"output directory (default {out_default})")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the run in --out")
    mode.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_command(sub, name: str, help: str, preset: str, set_help: str):
    """A subcommand with a preset of its own kind and the run arguments."""
    parser = sub.add_parser(name, help=help)
    parser.add_argument("--preset", default=preset, help=f"a {name} preset")
    _add_run_args(parser, set_help, "runs/<preset>-<time>")
    return parser


def _add_ensemble_args(parser: argparse.ArgumentParser, out_default: str) -> None:
    """Arguments shared by `run` and `compare`: overrides, seeds, directory, progress."""
    _add_run_args(
        parser,
        "override a config field or hparam, e.g. --set steps=2000 --set learning_rate=1e-3",
        out_default,
    )
    parser.add_argument("--seeds", type=int, default=4, help="number of members (default 4)")
    parser.add_argument("--seed-start", type=int, default=0, help="first seed (default 0)")


def _add_device_args(parser: argparse.ArgumentParser) -> None:
    """How the members map onto the hardware: vmapped groups, devices, hosts, profiling."""
    parser.add_argument(
        "--member-batch",
        default="auto",
        help="members vmapped together: an integer, 'all', or 'auto' (1 on CPU, all elsewhere)",
    )
    parser.add_argument(
        "--devices",
        default="auto",
        help="shard members over this many devices: an integer or 'auto' (all, when several)",
    )
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="call jax.distributed.initialize() first (several processes train one "
        "ensemble; --coordinator, --num-processes and --process-id, else its environment "
        "variables or cluster auto-detection, say who is who)",
    )
    parser.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="with --distributed: the address of process 0, where it listens for the others",
    )
    parser.add_argument(
        "--num-processes", type=int, help="with --distributed: how many processes take part"
    )
    parser.add_argument(
        "--process-id", type=int, help="with --distributed: this process, 0..num-processes-1"
    )
    parser.add_argument("--profile", metavar="DIR", help="JAX profiler trace of the first chunks")


def _devices(args) -> int | str | None:
    """The `devices` argument of the run; with --distributed, join the other processes
    here, first, since JAX must meet them before anything starts its backend."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("coordinator", "num_processes", "process_id")
        if getattr(args, name) is not None
    ]
    if given and not args.distributed:
        verb = "is" if len(given) == 1 else "are"
        raise ConfigError(f"{', '.join(given)} {verb} not allowed without --distributed")
    devices = args.devices
    if devices != "auto":
        try:
            devices = int(devices)
        except ValueError:
            raise ConfigError(
                f"devices={args.devices!r} is not allowed: 'auto' or a positive integer"
            ) from None
    if args.distributed:
        import jax

        jax.distributed.initialize(
            coordinator_address=args.coordinator,
            num_processes=args.num_processes,
            process_id=args.process_id,
        )
    return devices


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="grokjax", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train a seed ensemble and write a run directory")
    run.add_argument("--preset", default="default", help="named experiment (see `grokjax presets`)")
    _add_ensemble_args(run, "runs/<preset>-<time>")
    _add_device_args(run)

    cmp = sub.add_parser(
        "compare", help="run several presets on the same seeds; one table and one figure"
    )
    cmp.add_argument(
        "--preset",
        dest="presets",
        action="append",
        required=True,
        help="a preset to compare (repeat: at least two)",
    )
    cmp.add_argument(
        "--same-lr", action="store_true", help="give every preset the learning rate of the first"
    )
    _add_ensemble_args(cmp, "runs/compare-<time>")

    land = _add_command(
        sub,
        "landscape",
        "measure an entropy landscape S(ln L_train, A_test) with WLMD",
        "landscape-cpu",
        "override a landscape field (e.g. steps=50000) or a model field (model.modulus=31)",
    )
    land.add_argument(
        "--trajectory",
        action="append",
        default=[],
        metavar="NAME=RUN_DIR",
        help="overlay a grokjax run directory's median (ln L_train, A_test) path (repeat)",
    )

    sweep = _add_command(
        sub,
        "sweep",
        "train a grid of settings with seeds on every cell; phases and survival",
        "optimizer-batch-lr",
        "override a base config field or hparam (e.g. steps=1000)",
    )
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="FIELD=V1,V2,...",
        help="an axis of the grid (repeat); replaces the preset's axis of that name; "
        "'--grid none' drops every preset axis first",
    )
    sweep.add_argument("--seeds", type=int, help="seeds per cell (default: the preset's)")
    sweep.add_argument("--axes", help="X,Y: the two axes of the phase diagram")
    sweep.add_argument("--group", help="the axis whose cells get one survival curve each")
    _add_device_args(sweep)

    sub.add_parser("presets", help="list the presets")
    return parser


def landscape_overrides(lcfg, assignments: list[str]):
    """Apply `field=value` (landscape) and `model.field=value` (its Config) strings."""
    import dataclasses

    kinds = {f.name: str(f.type) for f in dataclasses.fields(lcfg) if f.name != "model"}
    model_kinds = field_types()
    changes, model_changes = {}, {}
    for item in assignments:
        if "=" not in item:
            raise ConfigError(f"--set {item!r} is not allowed: write field=value")
        field, text = (part.strip() for part in item.split("=", 1))
        field = field.replace("-", "_")
        if field.startswith("model.") and field[6:] in model_kinds:
            model_changes[field[6:]] = _parse_value(field, text, model_kinds[field[6:]])
        elif field in kinds:
            changes[field] = _parse_value(field, text, kinds[field])
        else:
            allowed = sorted(kinds) + [f"model.{k}" for k in sorted(model_kinds)]
            raise ConfigError(f"--set field {field!r} is unknown; allowed: {', '.join(allowed)}")
    return lcfg.replace(model=lcfg.model.replace(**model_changes), **changes)


def _landscape(args) -> int:
    from grokjax.landscape import run_landscape
    from grokjax.landscape_analysis import analyse
    from grokjax.presets import get_landscape

    _, lcfg = get_landscape(args.preset)
    assignments = _assignments(args)
    lcfg = landscape_overrides(lcfg, assignments)
    trajectories = {}
    for item in args.trajectory:
        name, _, run_dir = item.partition("=")
        if not run_dir or not (Path(run_dir) / "metrics.parquet").is_file():
            raise ConfigError(
                f"trajectory={item!r} is not allowed: NAME=RUN_DIR with a metrics.parquet"
            )
        trajectories[name] = Path(run_dir)
    out = Path(args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    landscape = run_landscape(
        lcfg, out, resume=args.resume, overwrite=args.overwrite, progress=not args.no_progress
    )
    result = analyse(out, trajectories, title=args.preset)
    barrier = result["barrier"]
    verdict = result.get("convergence", {})
    print(f"converged: {verdict.get('converged')} ({verdict.get('reason')})")
    print(
        f"visited bins {result['visited_bins']}; barrier dip {barrier['dip']} "
        f"(ln L band {result['x_band'][0]:.2f} to {result['x_band'][1]:.2f})"
    )
    for name, row in result["trajectories"].items():
        print(
            f"{name}: median S_eq - S = {row['median_entropy_gap']}, "
            f"median A_eq - A = {row['median_accuracy_gap']} "
            f"over {row['points_on_grid']} points"
        )
    files = [*landscape["files"], "analysis.json", "landscape.png"]
    print(f"wrote {out}/: {', '.join(files)}")
    return 0


def _compare(args) -> int:
    from grokjax.compare import Arm, compare_presets

    if len(args.presets) < 2:
        raise ConfigError(f"preset={args.presets} is not allowed: name at least two presets")
    assignments = _assignments(args)
    arms = []
    for name in args.presets:
        preset = get_preset(name)
        cfg, hparams = apply_overrides(preset.config, preset.hparams, assignments)
        arms.append(Arm(name, cfg, hparams))
    if args.same_lr:
        lr = arms[0].hparams.learning_rate
        arms = [a._replace(hparams=a.hparams._replace(learning_rate=lr)) for a in arms]
    _check_seeds(args)
    out = args.out or f"runs/compare-{time.strftime('%Y%m%d-%H%M%S')}"
    table, files = compare_presets(
        arms,
        range(args.seed_start, args.seed_start + args.seeds),
        Path(out),
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    print(
        f"{'preset':24s} {'generalised':>11s} {'median gen step':>15s} {'median delay':>12s} "
        f"{'median |w| at gen':>17s}"
    )
    for name, row in table.items():
        ens = row["ensemble"]
        gen = ens["generalisation_step"]

        def fmt(v):
            return "censored" if v is None else f"{v:g}"

        print(
            f"{name:24s} {gen['n'] - gen['n_censored']:>5d}/{gen['n']:<5d} "
            f"{fmt(gen['median']):>15s} {fmt(ens['grokking_delay']['median']):>12s} "
            f"{fmt(ens['weight_norm_at_generalisation']['median']):>17s}"
        )
    print(f"\nwrote {out}/: {', '.join(files)}")
    return 0


def parse_grid(cfg, grid: list[str], axes: dict) -> dict:
    """`FIELD=V1,V2` strings onto `axes` (values typed as the field; 'none' = None)."""
    axes = dict(axes)
    kinds = field_types()
    for item in grid:
        if item.strip().lower() == "none":
            axes = {}
            continue
        field, sep, text = item.partition("=")
        if not sep or not text:
            raise ConfigError(f"--grid {item!r} is not allowed: FIELD=V1,V2,...")
        kind = "float" if field in Hparams._fields else kinds.get(field)
        if kind is None:
            allowed = ", ".join([*Hparams._fields, *sorted(kinds)])
            raise ConfigError(f"grid axis {field!r} is unknown; allowed: {allowed}")
        axes[field] = tuple(_parse_value(field, v, kind) for v in text.split(","))
    return axes


def _sweep(args) -> int:
    from grokjax.presets import get_sweep
    from grokjax.sweep import run_sweep

    devices = _devices(args)
    preset = get_sweep(args.preset)
    assignments = _assignments(args)
    cfg, hparams = apply_overrides(preset.config, preset.hparams, assignments)
    axes = parse_grid(cfg, args.grid, preset.axes)
    seeds = preset.seeds if args.seeds is None else args.seeds
    diagram = preset.diagram if preset.diagram and set(preset.diagram) <= set(axes) else None
    if args.axes:
        diagram = tuple(args.axes.split(","))
        if len(diagram) != 2:
            raise ConfigError(f"axes={args.axes!r} is not allowed: two axis names, X,Y")
    out = args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_sweep(
        cfg,
        hparams,
        axes,
        seeds,
        Path(out),
        preset=args.preset,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        member_batch=_member_batch(args.member_batch),
        diagram_axes=diagram,
        group=args.group,
        devices=devices,
    )
    import pandas as pd

    shown = [*axes, "phase", "generalisation_step_median", "generalisation_step_censored"]
    shown += ["delay_median", "diverged", "seeds"]
    with pd.option_context("display.width", 160, "display.max_rows", 500):
        print(result.cells[shown].to_string(index=False))
    print(f"\nwrote {out}/: {', '.join(result.files)}")
    return 0


def _check_seeds(args) -> None:
    if args.seeds < 1:
        raise ConfigError(f"seeds={args.seeds} is not allowed: at least 1")
    if args.seed_start < 0:
        raise ConfigError(f"seed_start={args.seed_start} is not allowed: >= 0")


def _presets(args) -> int:
    from grokjax.presets import LANDSCAPES, SWEEPS

    for name, preset in PRESETS.items():
        print(f"{name:24s} {preset.description}")
    for name, (description, _) in LANDSCAPES.items():
        print(f"{name:24s} {description}")
    for name, sweep in SWEEPS.items():
        print(f"{name:24s} {sweep.description}")
    return 0


def _run(args) -> int:
    from grokjax.experiment import print_summary, run_ensemble

    devices = _devices(args)  # joins the other processes first, when distributed
    preset = get_preset(args.preset)
    assignments = _assignments(args)
    cfg, hparams = apply_overrides(preset.config, preset.hparams, assignments)
    _check_seeds(args)
    member_batch = _member_batch(args.member_batch)
    out = args.out or f"runs/{args.preset}-{time.strftime('%Y%m%d-%H%M%S')}"
    result = run_ensemble(
        cfg,
        hparams,
        range(args.seed_start, args.seed_start + args.seeds),
        Path(out),
        preset=args.preset,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        member_batch=member_batch,
        devices=devices,
        profile_dir=args.profile,
    )
    print_summary(result)
    return 0


COMMANDS = {
    "run": _run,
    "compare": _compare,
    "landscape": _landscape,
    "sweep": _sweep,
    "presets": _presets,
}


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 500 else text[:497] + "..."


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and run the command; every error ends as one line, status 2.

    A `ConfigError` (bad input, found before any compute) and an `OSError` (a file or
    directory the command cannot use) are reported as they are; anything else is
    reported as an internal error, with the traceback only when GROKJAX_TRACEBACK=1.
    """
    use_recommended_cpu_flags()  # before JAX starts its backend; the user's flags win
    args = _build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as err:
        print(f"grokjax: error: {_one_line(err)}", file=sys.stderr)
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        print(f"grokjax: error: {where}{err.strerror or _one_line(err)}", file=sys.stderr)
    except KeyboardInterrupt:
        print("grokjax: interrupted; finished chunks are checkpointed (--resume)", file=sys.stderr)
        return 130
    except Exception as err:
        if os.environ.get("GROKJAX_TRACEBACK") == "1":
            raise
        print(
            f"grokjax: internal error: {type(err).__name__}: {_one_line(err)} "
            "(GROKJAX_TRACEBACK=1 shows the traceback)",
            file=sys.stderr,
        )
    return 2


if __name__ == "__main__":
    sys.exit(main())
