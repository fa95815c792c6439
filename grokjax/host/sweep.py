"""Sweeps: a grid of settings, seeds on every cell, the phase of each cell.

`run_sweep(cfg, hparams, axes, n_seeds, out_dir)` trains every cell of the grid `axes`
(an ordered mapping of field name to values). Numbers of `Hparams` (learning rate,
weight decay, temperature, friction, init scale) vary inside one compiled program: the
cells that differ only in them, times the seeds, are the members of one vmapped
ensemble. Every other field (batch size, widths, optimizer, task, train fraction, ...)
changes the program, so each of its values is an outer cell with its own compile and
its own run directory `out_dir/<field=value,...>`, resumable like any run.

Outputs in `out_dir`:

    sweep.json     the base settings, the axes and the seeds
    seeds.parquet  one row per (cell, seed): the axis values, memorisation and
                   generalisation steps (NaN = censored: not reached within the
                   budget), grokking_delay, the log-time measures (grokking_area,
                   generalisation ratios, test accuracy at memorisation;
                   `grokjax.stats.logtime`), and the seed's phase (`grokjax.stats.phases`,
                   by Liu et al.'s rule or, with phase_rule='log-time', by the area)
    cells.csv      one row per cell: median and quartiles of the three steps, the
                   grokking area and the ratios over seeds with the count censored (a
                   censored median is empty), the
                   cell's phase, the fraction of seeds in each phase, and how many
                   seeds diverged (`grokjax.stats.summary`; their steps count up to then)
    phases.png     the phase diagram over two axes (the first two by default), pooling
                   the seeds of the other axes; phases-<axis=value,...>.png, one per
                   value of the other axes
    survival.png   Kaplan-Meier curves of the generalisation step, one per cell of
                   the `group` axis (`grokjax.stats.survival`): runs that never generalise
                   count as censored, not as numbers
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from grokjax.config import (
    Config,
    Hparams,
    apply_overrides,
    field_paths,
    field_types,
    parse_value,
    validate_hparams,
)
from grokjax.errors import ConfigError
from grokjax.host.experiment import run_ensemble, with_config_defaults
from grokjax.host.rundir import open_run_dir
from grokjax.io import atomic_write_with, read_metrics
from grokjax.plots import describe_run, kaplan_meier_figure, phase_figure
from grokjax.presets import get_preset, preset_changes
from grokjax.problem.checks import check_config
from grokjax.stats.logtime import RATIO_THRESHOLDS, ratio_name
from grokjax.stats.phases import (
    PHASE_COLORS,
    PHASES,
    RULES,
    classify_cell,
    classify_seed,
    phase_table,
    seed_steps,
)
from grokjax.stats.summary import censored_stats
from grokjax.stats.survival import from_censored_steps, survival_curve

STEPS = (
    "memorisation_step",
    "generalisation_step",
    "grokking_delay",
    "grokking_area",
    *(ratio_name(t) for t in RATIO_THRESHOLDS),
)


class SweepResult(NamedTuple):
    seeds: pd.DataFrame  # one row per (cell, seed): seeds.parquet
    cells: pd.DataFrame  # one row per cell: cells.csv
    files: tuple[str, ...]  # what was written in the sweep directory
    out_dir: Path = Path(".")
    axes: tuple[str, ...] = ()

    def text(self) -> str:
        """The cells' phases and censored medians, and the files written."""
        shown = [*self.axes, "phase", "generalisation_step_median"]
        shown += ["generalisation_step_censored", "grokking_delay_median"]
        shown += ["grokking_area_median", "grokking_area_censored", "diverged", "seeds"]
        table = self.cells[shown].copy()
        for column in shown:
            if column.endswith("_median"):  # a median that falls on a censored seed
                table[column] = ["censored" if pd.isna(v) else f"{v:.4g}" for v in table[column]]
        with pd.option_context("display.width", 160, "display.max_rows", 500):
            table = table.to_string(index=False)
        return f"{table}\n\nwrote {self.out_dir}/: {', '.join(self.files)}"


def split_axes(axes: Mapping[str, Sequence[Any]]) -> tuple[dict, dict]:
    """(numeric axes over `Hparams`, shape axes over `Config`); unknown names refused."""
    config_fields = set(field_paths())
    numeric, shape = {}, {}
    for name, values in axes.items():
        if not values:
            raise ConfigError(f"grid axis {name!r} has no values")
        if name in Hparams._fields:
            numeric[name] = [float(v) for v in values]
        elif name in config_fields:
            shape[name] = list(values)
        else:
            allowed = ", ".join([*Hparams._fields, *field_paths()])
            raise ConfigError(f"grid axis {name!r} is unknown; allowed: {allowed}")
    return numeric, shape


def _label(name: str, value: Any) -> str:
    if value is None:
        return "full" if name == "batch_size" else "none"
    return str(value)


def cell_name(cell: Mapping[str, Any]) -> str:
    """A directory name for an outer cell: field=value pairs, filesystem-safe."""
    if not cell:
        return "all"
    text = ",".join(f"{k}={_label(k, v)}" for k, v in cell.items())
    return re.sub(r"[^A-Za-z0-9_.,=+-]", "_", text)


def _members(
    numeric: dict, base: Hparams, n_seeds: int, seed_start: int = 0
) -> tuple[Hparams, list[int]]:
    """Every numeric cell times every seed: one member each, seeds innermost."""
    names = list(numeric)
    cells = list(itertools.product(*numeric.values())) or [()]
    columns: dict[str, list[float]] = {n: [] for n in Hparams._fields}
    seeds = []
    for values in cells:
        row = base._replace(**dict(zip(names, values, strict=True)))
        for _ in range(n_seeds):
            for n in Hparams._fields:
                columns[n].append(float(np.asarray(getattr(row, n))))
        seeds.extend(range(seed_start, seed_start + n_seeds))
    return Hparams(**{n: np.asarray(v, np.float32) for n, v in columns.items()}), seeds


def run_sweep(
    cfg: Config,
    hparams: Hparams,
    axes: Mapping[str, Sequence[Any]],
    n_seeds: int,
    out_dir: str | Path,
    *,
    preset: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    member_batch: int | None | str = "auto",
    diagram_axes: tuple[str, str] | None = None,
    group: str | None = None,
    devices: int | None | str = "auto",
    seed_start: int = 0,
    phase_rule: str = "liu",
) -> SweepResult:
    """Train every cell of `axes` with `n_seeds` seeds (seed_start, seed_start + 1, ...)
    and write the sweep directory; phases by `phase_rule` ('liu' or 'log-time',
    `grokjax.stats.phases`).

    Every config and hyperparameter of the grid is built and checked before any
    compute. Returns the per-seed and per-cell tables and the files written.
    """
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"seeds={n_seeds!r} is not allowed: a positive integer")
    if isinstance(seed_start, bool) or not isinstance(seed_start, int) or seed_start < 0:
        raise ConfigError(f"seed_start={seed_start!r} is not allowed: an integer >= 0")
    if phase_rule not in RULES:
        raise ConfigError(f"phase_rule={phase_rule!r} is not allowed: one of {', '.join(RULES)}")
    if not axes:
        raise ConfigError(
            "grid has no axis: give at least one (--grid FIELD=V1,V2); "
            "for a single setting use `grokjax run`"
        )
    numeric, shape = split_axes(axes)
    names = list(axes)
    for name in diagram_axes or ():
        if name not in names:
            raise ConfigError(f"diagram axis {name!r} is not a grid axis: {names}")
    if group is not None and group not in names:
        raise ConfigError(f"group={group!r} is not a grid axis: {names}")
    outer = [dict(zip(shape, v, strict=True)) for v in itertools.product(*shape.values())]
    configs = [cfg.replace(**cell) for cell in outer]  # every config validated up front
    for cell_cfg in configs:  # and the user's data and model of every cell
        check_config(cell_cfg)
    members_hp, member_seeds = _members(numeric, hparams, n_seeds, seed_start)
    validate_hparams(members_hp)

    out_dir = Path(out_dir)
    record = {
        "preset": preset,
        "config": cfg.to_dict(),
        "hparams": {k: np.asarray(v).tolist() for k, v in hparams._asdict().items()},
        "axes": {k: list(v) for k, v in axes.items()},
        "seeds": n_seeds,
        **({"seed_start": seed_start} if seed_start else {}),
    }
    options = dict(preset=preset, progress=progress, member_batch=member_batch, devices=devices)
    # a sweep saved before a config field existed reads with that field at its default
    with open_run_dir(out_dir, record, resume, overwrite, "sweep.json", with_config_defaults):
        frames = []
        for k, (cell, cell_cfg) in enumerate(zip(outer, configs, strict=True)):
            run_dir = out_dir / cell_name(cell)
            if progress:
                print(f"cell {k + 1}/{len(outer)}: {cell_name(cell)}")
            if not (run_dir / "summary.json").exists():
                started = (run_dir / "config.json").exists()
                run_ensemble(cell_cfg, members_hp, member_seeds, run_dir, resume=started, **options)
            steps = seed_steps(read_metrics(run_dir / "metrics.parquet"), cell_cfg.eval)
            for name, value in cell.items():  # text, so mixed values ('full', 512) fit a column
                steps[name] = _label(name, value)
            for name in numeric:  # float32 members' numbers as set: 0.001, not 0.0010000000474
                steps[name] = [float(str(np.float32(v))) for v in steps[name]]
            frames.append(steps)
        seeds = pd.concat(frames, ignore_index=True)
        seeds = seeds[[*names, *(c for c in seeds.columns if c not in names)]]
        triples = zip(*(seeds[c] for c in STEPS[:2]), seeds["grokking_area"], strict=True)
        seeds["phase"] = [classify_seed(m, g, rule=phase_rule, area=a) for m, g, a in triples]
        # Every process writes the same tables and figures; each write is atomic.
        atomic_write_with(out_dir / "seeds.parquet", lambda tmp: seeds.to_parquet(tmp, index=False))
        cells = cell_table(seeds, names, phase_rule)
        atomic_write_with(out_dir / "cells.csv", lambda tmp: cells.to_csv(tmp, index=False))
        files = ["sweep.json", "seeds.parquet", "cells.csv"]
        changes = preset_changes(preset, cfg, hparams, "sweep")
        title = describe_run(preset, changes) or cfg.data.describe()
        if len(names) >= 2:
            x, y = diagram_axes or (names[0], names[1])
            others = [n for n in names if n not in (x, y)]
            pooled = f" (pooled over {', '.join(others)})" if others else ""
            rule = "" if phase_rule == "liu" else f", {phase_rule} rule"
            diagrams = [("phases.png", seeds, f"{title}: phases{pooled}{rule}")]
            for values, part in seeds.groupby(others, sort=False) if others else []:
                values = values if isinstance(values, tuple) else (values,)
                name = cell_name(dict(zip(others, values, strict=True)))
                diagrams.append((f"phases-{name}.png", part, f"{title}: phases, {name}{rule}"))
            for file, frame, text in diagrams:
                phase_diagram(frame, x, y, out_dir / file, text, rule=phase_rule)
                files.append(file)
        group = group or names[0]
        curves = {
            f"{group}={value}": from_censored_steps(
                [None if np.isnan(g) else g for g in part["generalisation_step"]],
                int(part["budget_steps"].max()),
            )
            for value, part in seeds.groupby(group, sort=False)
        }
        survival_figure(curves, out_dir / "survival.png", f"{title}: time to generalise")
        files += ["survival.png", *(f"{cell_name(cell)}/" for cell in outer)]
        return SweepResult(seeds, cells, tuple(files), out_dir, tuple(names))


def cell_table(seeds: pd.DataFrame, axes: Sequence[str], phase_rule: str = "liu") -> pd.DataFrame:
    """One row per cell: censored medians and quartiles of the steps and log-time
    measures, phase, fractions."""
    rows = []
    for values, part in seeds.groupby(list(axes), sort=False):
        values = values if isinstance(values, tuple) else (values,)
        row: dict[str, Any] = dict(zip(axes, values, strict=True))
        for name in STEPS:
            stats = censored_stats([None if np.isnan(v) else v for v in part[name]])
            row.update({f"{name}_{k}": stats[k] for k in ("median", "q25", "q75")})
            row[f"{name}_censored"] = stats["n_censored"]
        phase = classify_cell(
            part["memorisation_step"],
            part["generalisation_step"],
            rule=phase_rule,
            areas=part["grokking_area"].to_numpy(),
        )
        row["phase"] = phase.phase
        row.update({f"fraction_{p}": phase.fractions[p] for p in PHASES})
        row["diverged"] = int(part["diverged_step"].notna().sum())
        row["seeds"] = phase.n_seeds
        rows.append(row)
    return pd.DataFrame(rows)


def phase_diagram(
    frame: pd.DataFrame, x: str, y: str, path: Path, title: str, *, rule: str = "liu"
) -> pd.DataFrame:
    """Classify each (x, y) cell by `rule` (`grokjax.stats.phases.phase_table`) and draw
    its phase as a categorical heat map (`grokjax.plots.phase_figure`); return the cells.

    `frame` is either metrics.parquet rows (they have a train_acc column; reduced per
    seed with `seed_steps`) or a per-seed table as `seed_steps` returns it. Each cell is
    coloured by its phase and labelled with the fraction of seeds in that phase."""
    if "train_acc" in frame.columns:
        frame = seed_steps(frame)
    cells = phase_table(frame, x, y, rule=rule)
    phase_figure(
        cells[x].to_numpy(),
        cells[y].to_numpy(),
        cells["phase"].tolist(),
        cells["fraction"].to_numpy(float),
        Path(path),
        title,
        categories=PHASES,
        colours=PHASE_COLORS,
        xlabel=x,
        ylabel=y,
    )
    return cells


def survival_figure(groups: dict, path: Path, title: str, xlabel: str = "step") -> Path:
    """Kaplan-Meier curves of `groups` (label -> (times, observed); `survival_curve`),
    drawn by `grokjax.plots.kaplan_meier_figure`; returns `path`."""
    curves = {label: survival_curve(times, seen) for label, (times, seen) in groups.items()}
    kaplan_meier_figure(curves, Path(path), title, xlabel)
    return Path(path)


def parse_grid(grid: Sequence[str], axes: Mapping[str, Sequence[Any]]) -> dict:
    """`FIELD=V1,V2` strings onto `axes` (values typed as the field; 'none' = None);
    '--grid none' drops every axis given before it."""
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
            allowed = ", ".join([*Hparams._fields, *field_paths()])
            raise ConfigError(f"grid axis {field!r} is unknown; allowed: {allowed}")
        axes[field] = tuple(parse_value(field, v, kind) for v in text.split(","))
    return axes


def sweep_preset(
    name: str,
    seeds: int | None,
    *,
    settings: Sequence[str] = (),
    grid: Sequence[str] = (),
    out_dir: str | Path,
    diagram_axes: str | None = None,
    **options: Any,
) -> SweepResult:
    """`run_sweep` of the sweep preset `name` with `settings` ('field=value' overrides of
    its base), `grid` (`parse_grid` onto its axes), `seeds` per cell (None: the preset's
    count) and `diagram_axes` 'X,Y'; `options` (seed_start, phase_rule, ...) go to
    `run_sweep`."""
    preset = get_preset(name, "sweep")
    cfg, hparams = apply_overrides(preset.config, preset.hparams, list(settings))
    axes = parse_grid(grid, preset.axes)
    diagram = preset.diagram if preset.diagram and set(preset.diagram) <= set(axes) else None
    if diagram_axes:
        diagram = tuple(diagram_axes.split(","))
        if len(diagram) != 2:
            raise ConfigError(f"axes={diagram_axes!r} is not allowed: two axis names, X,Y")
    n_seeds = preset.seeds if not seeds else seeds
    return run_sweep(
        cfg, hparams, axes, n_seeds, out_dir, preset=name, diagram_axes=diagram, **options
    )
