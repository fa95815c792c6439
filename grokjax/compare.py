"""Side-by-side ensembles: several presets on the same seeds, one table and one figure.

`compare_presets` runs each named (preset, config, hparams) as a seed ensemble in its own
run directory under `out_dir`, then writes
    comparison.json   per preset: per-seed generalisation step, grokking delay, final
                      weight norm, and their censored medians and quartiles
    comparison.png    train and test accuracy and weight norm against step, every
                      preset with its seed band (in the spirit of the paper's Figure 3)
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from grokjax.checkpoint import atomic_write_json
from grokjax.config import Config, Hparams
from grokjax.errors import ConfigError
from grokjax.experiment import RunResult, run_ensemble
from grokjax.plots import colour_cycle, figure, save_png
from grokjax.summary import diverged_mask

COLUMNS = (
    "generalisation_step",
    "grokking_delay",
    "final_weight_norm",
    "weight_norm_at_generalisation",
    "final_test_acc",
)


class Arm(NamedTuple):
    """One side of a comparison."""

    name: str
    config: Config
    hparams: Hparams


class Comparison(NamedTuple):
    table: dict  # preset -> per-seed columns and their censored statistics
    files: tuple[str, ...]  # written in out_dir: the two files and one directory per arm


def compare_presets(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Comparison:
    """Run every arm on the same seeds; write and return the comparison."""
    out_dir = Path(out_dir)
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"preset={names} is not allowed: name each preset once")
    results: dict[str, RunResult] = {}
    for arm in arms:
        results[arm.name] = run_ensemble(
            arm.config,
            arm.hparams,
            seeds,
            out_dir / arm.name,
            preset=arm.name,
            resume=resume,
            overwrite=overwrite,
            progress=progress,
        )
    table = {
        name: {
            "seeds": [m["seed"] for m in r.summary["members"]],
            **{c: [m[c] for m in r.summary["members"]] for c in COLUMNS},
            "diverged_step": [m["diverged_step"] for m in r.summary["members"]],
            "ensemble": {
                c: r.summary["ensemble"][c] for c in COLUMNS if c in r.summary["ensemble"]
            },
        }
        for name, r in results.items()
    }
    atomic_write_json(out_dir / "comparison.json", table)
    comparison_figure(results, out_dir / "comparison.png")
    return Comparison(table, ("comparison.json", "comparison.png", *(f"{n}/" for n in names)))


def _quartiles(values_ME: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every member diverged
        return np.nanquantile(values_ME, [0.25, 0.5, 0.75], axis=0)


def comparison_figure(results: dict[str, RunResult], path: Path) -> None:
    """Accuracies and weight norm against step (log axis), one colour per arm."""
    fig = figure(figsize=(11, 4.2))
    ax_acc, ax_norm = fig.subplots(1, 2)
    colours = colour_cycle()
    for colour, (name, r) in zip(colours, results.items(), strict=False):
        keep = r.steps > 0
        steps = r.steps[keep]
        diverged = diverged_mask(r.histories, r.summary["thresholds"]["divergence_train_loss"])
        shown = {k: np.where(diverged, np.nan, v) for k, v in r.histories.items()}
        for metric, style in (("train_acc", ":"), ("test_acc", "-")):
            lo, med, hi = _quartiles(shown[metric][:, keep])
            ax_acc.fill_between(steps, lo, hi, color=colour, alpha=0.2, lw=0)
            ax_acc.plot(steps, med, color=colour, ls=style, label=f"{name} {metric[:-4]}")
        lo, med, hi = _quartiles(shown["weight_norm"][:, keep])
        ax_norm.fill_between(steps, lo, hi, color=colour, alpha=0.2, lw=0)
        ax_norm.plot(steps, med, color=colour, label=name)
    n = next(iter(results.values())).histories["test_acc"].shape[0]
    ax_acc.set(
        xscale="log",
        xlabel="step",
        ylabel="accuracy",
        ylim=(-0.02, 1.02),
        title=f"median and quartiles over {n} seeds",
    )
    ax_norm.set(xscale="log", xlabel="step", ylabel="global weight norm")
    for ax in (ax_acc, ax_norm):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
