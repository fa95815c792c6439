"""`grokjax warn`: the early-warning evaluation of every run below a directory.

`warn(paths, out_dir)` reads the `metrics.parquet` of every run directory at or below
each of `paths` (runs, comparisons or sweeps, pooled), one `grokjax.stats.warning.Run`
per member, fits and scores every indicator with held-out seeds
(`grokjax.stats.warning.evaluate`), and writes into `out_dir` (default: the first path's
`warning/`):

    folds.csv    one row per indicator and held-out seed: fitted sign and threshold,
                 warned fraction, median lead, false alarms, concordance
    summary.csv  one row per indicator: pooled warned fraction and false alarms, their
                 spread over folds, median lead, concordance, target met
    alarms.csv   one row per indicator and held-out run: its kind, events and alarm
    runs.csv     one row per run: its settings, events and kind
    warning.png  alarm step against onset step for the best indicators and the test
                 accuracy reference, held-out runs, one point per run
    early.png    each of those indicators at the early step against the step at which
                 the run generalises (hollow: censored at the budget)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from grokjax.config import EvalConfig
from grokjax.errors import ConfigError
from grokjax.host.rundata import load_run
from grokjax.io import atomic_write_with, markdown_table
from grokjax.stats import warning as W
from grokjax.stats.summary import events

HPARAM_COLUMNS = ("learning_rate", "weight_decay", "noise_scale", "init_scale")
EVENT_THRESHOLDS = ("memorise_threshold", "generalise_threshold")


def run_dirs(path: Path) -> list[Path]:
    """Every directory at or below `path` holding a finished run's metrics.parquet."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"runs_dir={str(path)!r} is not allowed: a directory of runs")
    found = sorted(p.parent for p in path.rglob("metrics.parquet"))
    if not found:
        raise ConfigError(f"runs_dir={str(path)!r} is not allowed: no metrics.parquet below it")
    return found


def load_runs(path: Path) -> list[W.Run]:
    """One `Run` per member of every run below `path`, with its events at the run's own
    thresholds (`grokjax.stats.summary.events`)."""
    runs = []
    root = Path(path)
    for run_dir in run_dirs(root):
        data = load_run(run_dir)
        config = data.record.get("config", {})
        thresholds = {k: v for k, v in config.get("eval", {}).items() if k in EVENT_THRESHOLDS}
        cfg = EvalConfig(**thresholds)
        train_size = config.get("data", {}).get("train_size")
        train_fraction = config.get("data", {}).get("train_fraction")
        for m, seed in enumerate(data.seeds):
            history = {k: v[m] for k, v in data.histories.items()}
            hparams = {k: float(data.hparams[k][m]) for k in HPARAM_COLUMNS if k in data.hparams}
            hparams |= {"train_fraction": train_fraction, "train_size": train_size}
            gone_E = np.isnan(history["train_acc"])  # load_run's mark of a diverged evaluation
            e = events(data.steps, history, cfg, gone_E)
            runs.append(
                W.Run(
                    f"{root.name}/{run_dir.relative_to(root)}#{m}",
                    seed,
                    hparams,
                    config.get("optim", {}).get("name", "adamw"),
                    data.steps,
                    history,
                    e.memorisation,
                    e.plateau,
                    e.onset,
                    e.generalisation,
                    W.kind_of(e.memorisation, e.onset, e.generalisation, e.halfway),
                )
            )
    return runs


def runs_table(runs: Sequence[W.Run]) -> pd.DataFrame:
    """One row per run: its name, seed, settings, budget, kind and events."""
    return pd.DataFrame(
        [
            {
                "run": r.name,
                "seed": r.seed,
                **r.hparams,
                "budget": int(r.steps[-1]),
                "kind": r.kind,
                "memorisation": r.memorisation,
                "plateau": r.plateau,
                "onset": r.onset,
                "generalisation": r.generalisation,
            }
            for r in runs
        ]
    )


def warn(
    paths: Path | Sequence[Path],
    out_dir: Path | None = None,
    window: int = W.WINDOW,
    early_step: int = W.EARLY_STEP,
) -> str:
    """Evaluate every indicator on the runs below `paths` (one directory or several,
    pooled); write the files of the module docstring into `out_dir` (default: the
    first directory's `warning/`); return the summary as a markdown table."""
    paths = [Path(paths)] if isinstance(paths, str | Path) else [Path(p) for p in paths]
    if window < 2:
        raise ConfigError(f"window={window} is not allowed: an integer >= 2 (evaluations)")
    if early_step < 1:
        raise ConfigError(f"early_step={early_step} is not allowed: a positive step")
    for path in paths:
        run_dirs(path)  # every directory is checked before any is read
    runs = [run for path in paths for run in load_runs(path)]
    out_dir = Path(out_dir) if out_dir is not None else paths[0] / "warning"
    out_dir.mkdir(parents=True, exist_ok=True)
    folds, alarms = W.evaluate(runs, window, early_step)
    summary = W.summarise(folds)
    table = runs_table(runs)
    for name, frame in dict(folds=folds, summary=summary, alarms=alarms, runs=table).items():
        atomic_write_with(out_dir / f"{name}.csv", lambda p, f=frame: f.to_csv(p, index=False))
    atomic_write_with(out_dir / "warning.png", lambda p: alarm_figure(alarms, summary, p))
    budget = max(int(r.steps[-1]) for r in runs)
    atomic_write_with(
        out_dir / "early.png", lambda p: early_figure(alarms, summary, p, early_step, budget)
    )
    kinds = table.kind.value_counts().to_dict()
    head = (
        f"{len(runs)} runs ({', '.join(f'{v} {k}' for k, v in sorted(kinds.items()))}), "
        f"{len(W.folds_by_seed(runs))} held-out seed folds, window {window} evaluations, "
        f"concordance at step {early_step}"
    )
    return f"{head}\n\n{markdown(summary)}\n\nwrote {out_dir}/: " + ", ".join(
        ("folds.csv", "summary.csv", "alarms.csv", "runs.csv", "warning.png", "early.png")
    )


def markdown(summary: pd.DataFrame) -> str:
    """The summary as a markdown table (fractions with their spread over folds)."""

    def pm(x, sd, digits=2):
        return "-" if pd.isna(x) else f"{x:.{digits}f} ± {0 if pd.isna(sd) else sd:.{digits}f}"

    head = ("indicator", "warned (grokking)", "median lead", "false alarms (never)",
            "concordance", "target")  # fmt: skip
    rows = [
        (d["indicator"], f"{pm(d['warned'], d['warned sd'])} of {d['grokking runs']}",
         "-" if pd.isna(d["median lead"]) else f"{d['median lead']:.0f}",
         f"{pm(d['false alarms'], d['false alarms sd'])} of {d['never runs']}",
         pm(d["concordance"], d["concordance sd"]), "met" if d["target met"] else "no")
        for d in summary.to_dict("records")
    ]  # fmt: skip
    return markdown_table(head, rows)


def _best(summary: pd.DataFrame, by: list[str], n_best: int) -> list[str]:
    ranked = summary[~summary.indicator.isin(W.BASELINES)].sort_values(
        by, ascending=[False] + [True] * (len(by) - 1)
    )
    return [*ranked.indicator.head(n_best), "time_since_memorisation"]


def early_figure(alarms, summary, path, early_step: int, budget: int, n_best: int = 3) -> None:
    """sign * indicator at `early_step` against the generalisation step, held-out runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [s for s in _best(summary, ["concordance"], n_best) if s in set(alarms.indicator)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.4), squeeze=False)
    for ax, name in zip(axes[0], shown, strict=True):
        rows = alarms[(alarms.indicator == name) & alarms.early_value.notna()]
        seen = rows.generalisation.notna()
        x, y = rows.early_value, rows.generalisation
        ax.scatter(x[seen], y[seen], s=14, c="#377eb8", label="generalised")
        censored = dict(facecolors="none", edgecolors="#e41a1c", label="censored (budget)")
        ax.scatter(x[~seen], np.full((~seen).sum(), budget), s=14, **censored)
        ax.set(xlabel=f"sign x indicator at step {early_step}", ylabel="generalisation step")
        ax.set_title(name)
        if len(rows):
            ax.set_yscale("log")
        c = summary[summary.indicator == name].iloc[0].concordance
        ax.text(0.03, 0.03, f"C = {c:.2f}", transform=ax.transAxes, fontsize=8)
    axes[0][0].legend(fontsize=7, loc="upper right")
    fig.suptitle("held-out runs: higher values should generalise sooner", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)


def alarm_figure(alarms: pd.DataFrame, summary: pd.DataFrame, path, n_best: int = 3) -> None:
    """Alarm step against onset step, held-out grokking runs (dots) and never runs'
    alarms (crosses at the budget), for the best indicators and the test accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    shown = [*_best(summary, ["warned", "false alarms"], n_best), "test_accuracy_rise"]
    shown = [s for s in shown if s in set(alarms.indicator)]
    fig, axes = plt.subplots(1, len(shown), figsize=(3.4 * len(shown), 3.6), squeeze=False)
    for ax, name in zip(axes[0], shown, strict=True):
        rows = alarms[alarms.indicator == name]
        grok = rows[rows.kind == "grokking"]
        hit = grok.alarm.notna()
        ax.scatter(grok.onset[hit], grok.alarm[hit], s=14, c="#377eb8", label="grokking")
        never = rows[(rows.kind == "never") & rows.alarm.notna()]
        if len(never):
            ax.scatter(
                np.full(len(never), np.nanmax(rows.onset.fillna(0)) * 1.1),
                never.alarm,
                marker="x",
                c="#e41a1c",
                label="never (false alarm)",
            )
        memorised = rows.memorisation.dropna()
        lo = max(10, np.nanmin(memorised)) if len(memorised) else 10
        hi = max(lo * 10, np.nanmax(rows.onset.fillna(lo)) * 1.2)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.plot([lo, hi], [lo, hi], c="0.5", lw=1, ls="--")
        ax.plot([lo, hi], [lo - 100, hi - 100], c="0.8", lw=1, ls=":")
        ax.set(
            xscale="log",
            yscale="log",
            xlim=(lo, hi),
            ylim=(lo / 2, hi),
            xlabel="onset step (final rise)",
            ylabel="alarm step",
            title=name,
        )
        s = summary[summary.indicator == name].iloc[0]
        text = f"warned {s.warned:.2f}\nfalse {s['false alarms']:.2f}"
        ax.text(0.03, 0.97, text, transform=ax.transAxes, va="top", fontsize=8)
    axes[0][0].legend(fontsize=7, loc="lower right")
    fig.suptitle("held-out runs: alarms below the dashed line come before the onset", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
