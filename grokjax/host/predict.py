"""`grokjax predict`: when will each run generalise? Predictors scored on held-out runs.

`predict(paths, out_dir)` reads every member of every run at or below `paths` (as
`grokjax warn` does), fits each predictor of `grokjax.stats.delay` on the other folds and
scores each held-out fold, split by seed and, separately, by groups of hyperparameter
cells, and writes into `out_dir` (default: the first path's `prediction/`):

    scores.csv       one row per predictor, split, fold and prediction time
    summary.csv      one row per predictor, split and time: median relative error of the
                     generalisation step and of the delay, coverage, delay range, AUROC of
                     "generalises within the budget" at memorisation, warned and false-
                     alarm shares, and which targets hold
    predictions.csv  one row per predictor, split, held-out run and time: g_hat
    runs.csv         one row per run: settings, events and kind
    predicted.png    predicted against observed generalisation step, log-log, held-out by
                     seed, for the law, the features and the baseline
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from grokjax.errors import ConfigError
from grokjax.figures import FigureSpec, Line, Panel, colour
from grokjax.host.warn import load_runs, run_dirs, runs_table
from grokjax.io import atomic_write_with, markdown_table
from grokjax.stats import delay as D

SPLITS = ("seed", "cell")
SHOWN = ("norm_law", "features", "time_since_memorisation")


def predict(paths: Path | Sequence[Path], out_dir: Path | None = None) -> str:
    """Score every predictor on the runs below `paths`; write the files of the module
    docstring; return the summary as a markdown table."""
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    for path in paths:
        run_dirs(path)  # every directory is checked before any is read
    runs = [run for path in paths for run in load_runs(path)]
    out_dir = Path(out_dir) if out_dir is not None else paths[0] / "prediction"
    if len(D.folds(runs, "seed")) < 2:
        seeds = sorted({r.seed for r in runs})
        raise ConfigError(f"seeds={seeds} is not allowed: at least 2 seeds to hold out")
    splits = [split for split in SPLITS if len(D.folds(runs, split)) >= 2]  # cells: >= 2
    scores, predictions = [], []
    for split in splits:
        s, p = D.evaluate(runs, by=split)
        scores.append(s)
        predictions.append(p)
    scores, predictions = pd.concat(scores), pd.concat(predictions)
    summary = D.summarise(scores, predictions)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = dict(scores=scores, summary=summary, predictions=predictions, runs=runs_table(runs))
    for name, frame in files.items():
        atomic_write_with(out_dir / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False))
    from grokjax.plots import to_matplotlib

    to_matplotlib(prediction_spec(predictions), out_dir / "predicted.png")
    kinds = pd.Series([r.kind for r in runs]).value_counts().to_dict()
    head = f"{len(runs)} runs ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))})"
    if "cell" not in splits:
        head += "; one hyperparameter cell, so no held-out cells"
    return f"{head}\n\n{markdown(summary)}\n\nwrote {out_dir}/: " + ", ".join(
        [*(f"{name}.csv" for name in files), "predicted.png"]
    )


def prediction_spec(predictions: pd.DataFrame, shown: Sequence[str] = SHOWN) -> FigureSpec:
    """Predicted against observed generalisation step (log-log) of the held-out delayed
    runs, split by seed: one panel per predictor, one marker colour per time, with the
    diagonal and +-15 %."""
    rows = D.relative_errors(predictions[predictions.split == "seed"])
    rows = rows[rows.predicted.notna()]
    panels = []
    low = float(np.nanmin(rows.generalisation)) if len(rows) else 10.0
    high = float(np.nanmax([rows.generalisation.max(), 10 * low])) if len(rows) else 1e4
    diagonal = np.array([low / 2, high * 2])
    for name in shown:
        mine = rows[rows.predictor == name]
        lines = [
            Line(diagonal, diagonal, "predicted = observed", "#222222", "dash"),
            Line(diagonal, 1.15 * diagonal, "+-15 %", "#999999", "dot", group="+-15 %"),
            Line(diagonal, diagonal / 1.15, "", "#999999", "dot", group="+-15 %"),
        ]
        for k, when in enumerate(D.WHEN):
            at = mine[mine.when == when]
            median = at.error.median()
            label = f"at {when} (median error {median:.0%})" if len(at) else f"at {when}"
            lines.append(
                Line(at.generalisation.to_numpy(float), at.predicted.to_numpy(float),
                     label, colour(k), "", "o")
            )  # fmt: skip
        panels.append(
            Panel(name, "predicted generalisation step", tuple(lines),
                  x_title="observed generalisation step", log_y=True,
                  x_range=(diagonal[0], diagonal[1]), legend="below")
        )  # fmt: skip
    return FigureSpec("held-out runs (folds by seed)", tuple(panels))


def markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table."""

    def pct(x):
        return "-" if pd.isna(x) else f"{100 * x:.0f} %"

    head = ("predictor", "split", "time", "delayed runs", "coverage", "median error (g)",
            "median error (delay)", "delay range", "AUROC", "warned", "false alarms")  # fmt: skip
    rows = [
        (d["predictor"], d["split"], d["when"], d["delayed runs"], pct(d["coverage"]),
         pct(d["median error"]), pct(d["median delay error"]), f"{d['delay range']:.0f}x",
         "-" if pd.isna(d["auroc"]) else f"{d['auroc']:.2f}",
         f"{pct(d['warned'])} of {d['grokking runs']}",
         f"{pct(d['false alarms'])} of {d['never runs']}")
        for d in summary.to_dict("records")
    ]  # fmt: skip
    return markdown_table(head, rows)
