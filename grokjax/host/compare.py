"""Side-by-side ensembles: several presets on the same seeds, one table and one figure.

`compare_presets` runs each named (preset, config, hparams) as a seed ensemble in its own
run directory under `out_dir`, then writes
    comparison.json   per preset: per-seed generalisation step, grokking delay, the
                      log-time measures (grokking area, generalisation ratios, test
                      accuracy at memorisation; `grokjax.stats.logtime`), final weight
                      norm, and their censored medians and quartiles
    comparison.png    train and test accuracy and weight norm against step, every
                      preset with its seed band (in the spirit of the paper's Figure 3)

`comparison_curves` reduces runs to the quartiles that `grokjax.plots.comparison_figure`
draws.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from grokjax.config import Config, EvalConfig, Hparams, apply_overrides
from grokjax.errors import ConfigError
from grokjax.host.experiment import RunResult, run_ensemble
from grokjax.host.rundir import check_out_dir, holding
from grokjax.io import atomic_write_json
from grokjax.plots import comparison_figure, describe_run
from grokjax.presets import get_preset, preset_changes
from grokjax.problem.checks import check_config
from grokjax.stats.logtime import RATIO_THRESHOLDS, ratio_name
from grokjax.stats.summary import censored_stats, diverged_mask, events

COLUMNS = (
    "generalisation_step",
    "grokking_delay",
    "grokking_area",
    *(ratio_name(t) for t in RATIO_THRESHOLDS),
    "test_acc_at_memorisation",
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
    out_dir: Path = Path(".")

    def text(self) -> str:
        """One line per arm: generalised seeds, censored medians; then the files written."""

        def fmt(v):
            return "censored" if v is None else f"{v:g}"

        lines = [
            f"{'preset':24s} {'generalised':>11s} {'median gen step':>15s} "
            f"{'median delay':>12s} {'median area/dec':>15s} {'median |w| at gen':>17s}"
        ]
        for name, row in self.table.items():
            ens = row["ensemble"]
            gen = ens["generalisation_step"]
            area = ens["grokking_area"]["median"]
            lines.append(
                f"{name:24s} {gen['n'] - gen['n_censored']:>5d}/{gen['n']:<5d} "
                f"{fmt(gen['median']):>15s} {fmt(ens['grokking_delay']['median']):>12s} "
                f"{'censored' if area is None else f'{area:.3f}':>15s} "
                f"{fmt(ens['weight_norm_at_generalisation']['median']):>17s}"
            )
        return "\n".join(lines) + f"\n\nwrote {self.out_dir}/: {', '.join(self.files)}"


def compare_presets(
    arms: Sequence[Arm],
    seeds: Sequence[int],
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    title: str | None = None,
) -> Comparison:
    """Run every arm on the same seeds; write and return the comparison.

    `title` heads the figure; by default each arm is described by `describe_run`: its
    name and, when the name is a preset's, the fields that differ from the preset.
    """
    out_dir = Path(out_dir)
    names = [a.name for a in arms]
    if len(set(names)) != len(names):
        raise ConfigError(f"preset={names} is not allowed: name each preset once")
    for arm in arms:  # every arm's data, model and directory before the first one runs
        check_config(arm.config)
        check_out_dir(out_dir / arm.name, resume, overwrite)
    with holding(out_dir):  # one writer of the comparison directory
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
                "seeds": [m.seed for m in r.summary.members],
                **{c: [m[c] for m in r.summary.members] for c in COLUMNS},
                "diverged_step": [m.diverged_step for m in r.summary.members],
                "ensemble": {
                    c: r.summary.ensemble[c].to_dict() for c in COLUMNS if c in r.summary.ensemble
                },
            }
            for name, r in results.items()
        }
        atomic_write_json(out_dir / "comparison.json", table)
        if title is None:
            title = " vs ".join(describe_run(a.name, arm_changes(a)) for a in arms)
        comparison_figure(comparison_curves(results), out_dir / "comparison.png", title)
        files = ("comparison.json", "comparison.png", *(f"{n}/" for n in names))
        return Comparison(table, files, out_dir)


def arm_changes(arm: Arm) -> dict:
    """The config fields (dotted paths) and hparams in which `arm` differs from the preset
    of its name; empty when its name is not a preset's."""
    return preset_changes(arm.name, arm.config, arm.hparams)


def _quartiles(values_ME: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every member diverged
        return np.nanquantile(values_ME, [0.25, 0.5, 0.75], axis=0)


def comparison_curves(results: dict[str, RunResult]) -> dict[str, dict]:
    """Per arm: steps [E], and the quartiles [3, E] over seeds of train_acc, test_acc and
    weight_norm, values from a member's divergence on left out; n_seeds; and the median
    (quartiles) grokking area of the curves given, as text. The input of
    `grokjax.plots.comparison_figure`."""
    curves = {}
    for name, r in results.items():
        thresholds = r.summary.thresholds
        cfg = EvalConfig(
            memorise_threshold=thresholds["memorise_train_acc"],
            divergence_loss=thresholds["divergence_train_loss"],
            area_gap=thresholds.get("area_gap", EvalConfig().area_gap),
        )
        diverged = diverged_mask(r.histories, cfg.divergence_loss)
        shown = {k: np.where(diverged, np.nan, v) for k, v in r.histories.items()}
        steps = np.asarray(r.steps)
        areas = [
            events(steps, {k: v[m] for k, v in r.histories.items()}, cfg, gone).area
            for m, gone in enumerate(diverged)
        ]
        curves[name] = {
            "steps": np.asarray(r.steps),
            **{m: _quartiles(shown[m]) for m in ("train_acc", "test_acc", "weight_norm")},
            "n_seeds": int(r.histories["test_acc"].shape[0]),
            "area": censored_stats(areas).text(2),
        }
    return curves


def compare_named(
    names: Sequence[str],
    seeds: Sequence[int],
    *,
    settings: Sequence[str] = (),
    out_dir: str | os.PathLike,
    same_lr: bool = False,
    **options,
) -> Comparison:
    """`compare_presets` of the presets `names`, each with the same 'field=value'
    `settings` (`grokjax.config.apply_overrides`), and with `same_lr` all at the first
    one's learning rate; `options` go to `compare_presets`."""
    if len(names) < 2:
        raise ConfigError(f"preset={list(names)} is not allowed: name at least two presets")
    arms = []
    for name in names:
        preset = get_preset(name)
        cfg, hparams = apply_overrides(preset.config, preset.hparams, list(settings))
        arms.append(Arm(name, cfg, hparams))
    if same_lr:
        lr = arms[0].hparams.learning_rate
        arms = [a._replace(hparams=a.hparams._replace(learning_rate=lr)) for a in arms]
    return compare_presets(arms, seeds, out_dir, **options)
