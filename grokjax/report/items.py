"""The views of comparisons, sweeps and landscapes (from the directories that
`grokjax.host.compare`, `.sweep` and `.measure` write), as plotly figures of the
`grokjax.figures` specs the PNGs draw, and HTML tables; censored values read "censored".
The sweep's phase diagram pools the seeds of axes past the first two; hovering a cell
shows its seeds' steps. Every reader raises `RunDataError` naming the file it could not
read.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from grokjax.figures import (
    FigureSpec,
    Line,
    colour,
    comparison_spec,
    landscape_spec,
    phase_spec,
    quantiles,
    survival_spec,
)
from grokjax.host.rundata import RunDataError, _read_json, is_run_dir, load_run
from grokjax.report.views import html_table, stat_text, to_plotly
from grokjax.stats.phases import PHASES, vote
from grokjax.stats.survival import survival_curve

# Comparisons.

CURVES = ("train_acc", "test_acc", "weight_norm")  # drawn for each arm


def comparison_views(directory: Path) -> tuple[dict[str, go.Figure], str]:
    """The arms of a comparison on the same axes (`grokjax.figures.comparison_spec`, as
    the PNG draws them): (figures, HTML table)."""
    table = _read_json(directory / "comparison.json")
    arms = [name for name in table if is_run_dir(directory / name)]
    arms_curves = {}
    for name in arms:
        data = load_run(directory / name)
        curves = {k: quantiles(data.histories[k])[1:4] for k in CURVES if k in data.histories}
        arms_curves[name] = {"steps": data.steps, "n_seeds": len(data.seeds), **curves}
    accuracy = to_plotly(comparison_spec(arms_curves, "")).update_layout(height=440)
    columns = ("generalisation_step", "grokking_delay", "grokking_area", "final_test_acc")
    rows = []
    for name, entry in table.items():
        ens = entry.get("ensemble", {}) if isinstance(entry, dict) else {}
        stats = [ens.get(c, {}) for c in columns]
        cells = [
            f"{stat_text(s.get('median'))} ({s.get('n_censored', 0)}/{s.get('n', 0)})"
            for s in stats
        ]
        rows.append([html.escape(name), *cells])
    head = ["arm", *(f"{c} (censored/n)" for c in columns)]
    return {"accuracy": accuracy}, html_table(head, rows)


# Sweeps.


def _axis_text(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def sweep_views(directory: Path) -> tuple[dict[str, go.Figure], str]:
    """A sweep's phase diagram and survival curves: (figures, HTML table of cells)."""
    record = _read_json(directory / "sweep.json")
    axes = list(record.get("axes", {}))
    try:
        seeds = pd.read_parquet(directory / "seeds.parquet")
    except Exception as error:  # pyarrow raises several kinds for a damaged file
        raise RunDataError(f"{directory / 'seeds.parquet'}: not readable ({error})") from None
    if not axes or not set(axes) <= set(seeds.columns):
        raise RunDataError(f"{directory / 'sweep.json'}: its axes are not in seeds.parquet")
    figures = {"phases": phase_diagram(seeds, axes), "survival": survival_curves(seeds, axes)}
    try:
        cells = pd.read_csv(directory / "cells.csv")
    except (OSError, ValueError):
        cells = None
    table = ""
    if cells is not None:
        shown = [*axes, "phase", "generalisation_step_median", "grokking_area_median", "seeds"]
        shown = [c for c in shown if c in cells.columns]
        table = cells[shown].to_html(index=False, na_rep="censored", float_format="{:g}".format)
    return figures, table


def phase_diagram(seeds: pd.DataFrame, axes: list[str]) -> go.Figure:
    """Phase of each cell over the first two axes (the most common phase over its seeds
    and the pooled other axes; `grokjax.figures.phase_spec`); hover: its seeds' steps."""
    x_axis, y_axis = axes[0], (axes[1] if len(axes) > 1 else None)
    cells = []
    for key, rows in seeds.groupby([x_axis, y_axis] if y_axis else [x_axis], sort=True):
        x, y = (key if isinstance(key, tuple) else (key,)) + (("",) if not y_axis else ())
        phase, fractions, _ = vote(rows["phase"].tolist())
        where = f"{x_axis}={_axis_text(x)}" + (f", {y_axis}={_axis_text(y)}" if y_axis else "")
        lines = [where, f"phase: {phase} ({round(fractions[phase] * len(rows))}/{len(rows)} seeds)"]
        lines += [
            f"seed {int(r['seed'])}: memorised {stat_text(r['memorisation_step'])}, "
            f"generalised {stat_text(r['generalisation_step'])} ({r['phase']})"
            for _, r in rows.iterrows()
        ]
        hover = "<br>".join(html.escape(line) for line in lines)
        cells.append((x, y, phase, fractions[phase], hover))
    x, y, phases, share, hover = zip(*cells, strict=True)
    spec = phase_spec(
        x, y, phases, share, "phases",
        categories=PHASES, x_title=x_axis, y_title=y_axis or "", hover=hover,
    )  # fmt: skip
    return to_plotly(spec)


def survival_curves(seeds: pd.DataFrame, axes: list[str]) -> go.Figure:
    """Kaplan-Meier P(not yet generalised) against step, one curve per cell
    (`grokjax.figures.survival_spec`); runs that never generalise are censored at the
    budget."""
    curves = {}
    for cell, rows in seeds.groupby(axes, sort=True):
        cell = cell if isinstance(cell, tuple) else (cell,)
        label = ", ".join(f"{a}={_axis_text(v)}" for a, v in zip(axes, cell, strict=True))
        steps = rows["generalisation_step"].to_numpy(float)
        observed = ~np.isnan(steps)
        curves[label] = survival_curve(np.where(observed, steps, rows["budget_steps"]), observed)
    title = "time to generalise (Kaplan-Meier)"
    return to_plotly(survival_spec(curves, title, "step", "P(not yet generalised)"))


# Landscapes.


def landscape_views(directory: Path) -> tuple[dict[str, go.Figure], str]:
    """The entropy map with the equilibrium curve and trajectories, and the convergence
    rows: (figures, HTML of the convergence verdict)."""
    try:
        arrays = np.load(directory / "landscape.npz")
        entropy, x, y = arrays["entropy"], arrays["x"], arrays["y"]
    except (OSError, ValueError, KeyError) as error:
        raise RunDataError(f"{directory / 'landscape.npz'}: not readable ({error})") from None
    shown = np.where(np.isfinite(entropy), entropy - np.nanmax(entropy), np.nan)
    analysis = _optional_json(directory / "analysis.json", {})
    curve = analysis.get("equilibrium_curve") if isinstance(analysis, dict) else None
    runs = {}
    for name, run_dir in _trajectory_runs(directory, analysis).items():
        h = load_run(run_dir).histories
        if {"ln_train_loss", "smoothed_test_acc"} <= set(h):
            xy = (np.nanmedian(h[k], axis=0) for k in ("ln_train_loss", "smoothed_test_acc"))
            runs[f"{name} (seed median)"] = tuple(xy)
    equilibrium = (curve["x"], curve["y"]) if curve else None
    spec = landscape_spec(x, y, shown, equilibrium, runs, "entropy landscape", z_title="S/kT - max")
    (panel,) = spec.panels
    try:
        positions = np.load(directory / "trajectories.npz")["positions"]  # [T, walkers, 2]
    except (OSError, ValueError, KeyError):
        positions = None
    if positions is not None and positions.ndim == 3:
        path = positions[:: max(1, positions.shape[0] // 300)]
        walkers = range(min(positions.shape[1], 4))
        hidden = [Line(*path[:, w].T, f"walker {w}", colour(w), hidden=True) for w in walkers]
        panel = panel._replace(lines=panel.lines + tuple(hidden))
    figures = {"landscape": to_plotly(FigureSpec("", (panel._replace(legend="below"),)))}
    figures["landscape"].update_layout(height=560)
    rows = _optional_json(directory / "convergence.json", [])
    if isinstance(rows, list) and rows:
        frame = pd.DataFrame(rows)
        numeric = [c for c in frame.columns if c not in ("chunk", "step")]
        numeric = [c for c in numeric if pd.api.types.is_numeric_dtype(frame[c])]
        n_rows = (len(numeric) + 2) // 3
        conv = make_subplots(rows=n_rows, cols=3, subplot_titles=numeric)
        for k, column in enumerate(numeric):
            trace = go.Scatter(x=frame["step"], y=frame[column], mode="lines+markers")
            conv.add_trace(trace.update(name=column, showlegend=False), k // 3 + 1, k % 3 + 1)
        layout = dict(template="plotly_white", height=260 * n_rows, margin=dict(t=80))
        figures["convergence"] = conv.update_layout(title="convergence, per chunk", **layout)
    verdict = analysis.get("convergence", {}) if isinstance(analysis, dict) else {}
    if not verdict:
        return figures, ""
    said = [html.escape(str(verdict.get(k, ""))) for k in ("converged", "reason")]
    return figures, f"<p>converged: <b>{said[0]}</b> ({said[1]})</p>"


def _optional_json(path: Path, default: Any) -> Any:
    return _read_json(path) if path.is_file() else default


def _trajectory_runs(directory: Path, analysis: Any) -> dict[str, Path]:
    """The training runs analysis.json compares with the landscape, found as recorded
    (a path relative to where the analysis ran: tried against each parent of the
    landscape directory) and only when they are run directories."""
    found = {}
    entries = analysis.get("trajectories", {}) if isinstance(analysis, dict) else {}
    for name, entry in entries.items():
        recorded = entry.get("run") if isinstance(entry, dict) else None
        if not recorded or Path(recorded).is_absolute():
            continue
        for parent in directory.resolve().parents:
            candidate = parent / recorded
            if is_run_dir(candidate):
                found[name] = candidate
                break
    return found


VIEWS = {"comparison": comparison_views, "sweep": sweep_views, "landscape": landscape_views}
