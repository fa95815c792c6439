"""Figures of an ensemble run: median over members with quartile and min-max bands."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from grokjax.checkpoint import atomic_write_with


def figure(**kwargs) -> Figure:
    """A figure outside pyplot: making and saving it touches no backend or other global
    state, so grokjax's figures leave a notebook's or program's matplotlib as it was."""
    return Figure(**kwargs)


def save_png(fig: Figure, path: Path, dpi: int = 120) -> Path:
    """Write `fig` to `path` as PNG, atomically; return the path."""
    path = Path(path)
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"))
    return path


def colour_cycle() -> list[str]:
    """The colours of matplotlib's current property cycle."""
    return matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]


def _band(ax, steps_E, values_ME, color, label):
    """Median line, quartile band and min-max band over members; NaN (a member that
    diverged, or no value) is left out, and a step where no member has a value stays empty."""
    values_ME = np.where(np.isfinite(values_ME), values_ME, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN: no band
        q_lo, q_med, q_hi = np.nanquantile(values_ME, [0.25, 0.5, 0.75], axis=0)
        low, high = np.nanmin(values_ME, 0), np.nanmax(values_ME, 0)
    ax.fill_between(steps_E, low, high, color=color, alpha=0.12, lw=0)
    ax.fill_between(steps_E, q_lo, q_hi, color=color, alpha=0.3, lw=0)
    ax.plot(steps_E, q_med, color=color, lw=1.6, label=label)


def _log_y_if_positive(ax, *values) -> None:
    """A log y axis when there is positive data to put on it (a run whose members all
    diverged at once may have none)."""
    if any(np.any(np.isfinite(v) & (v > 0)) for v in values):
        ax.set_yscale("log")


def _frame(ax, steps, diverged_steps, *values) -> None:
    """The step range on the x axis whatever is drawn, dotted lines where members
    diverged, and a word when no member has a finite value left to draw."""
    if steps.size > 1:
        ax.set_xlim(steps.min(), steps.max())
    for k, step in enumerate(sorted(diverged_steps)):
        label = f"a member diverged ({len(diverged_steps)} in all)" if k == 0 else None
        ax.axvline(max(step, 1), color="k", lw=0.8, ls=":", alpha=0.7, label=label)
    if not any(np.isfinite(v).any() for v in values):
        ax.text(
            0.5,
            0.5,
            "no finite values: every member diverged",
            transform=ax.transAxes,
            ha="center",
            va="center",
        )


def ensemble_figures(
    histories: dict[str, np.ndarray],
    steps_E: np.ndarray,
    out_dir: Path,
    title: str,
    diverged_steps: Sequence[int] = (),
) -> list[Path]:
    """Write accuracy.png, loss.png and weight_norm.png; return their paths.

    `histories` maps metric -> [members, evaluations], NaN where a member has no value
    (the run directory gives NaN from a member's divergence on, so each member is drawn
    up to the step it diverged; `diverged_steps` are marked by dotted lines). Steps are
    drawn on a log axis, so the evaluation at step 0 is left out.
    """
    keep = steps_E > 0
    steps = steps_E[keep]
    n = next(iter(histories.values())).shape[0]
    suffix = f"{title} ({n} seeds: median, quartiles, range)"
    paths = []

    fig = figure(figsize=(7, 4.2))
    ax = fig.subplots()
    _band(ax, steps, histories["train_acc"][:, keep], "tab:blue", "train accuracy")
    _band(ax, steps, histories["test_acc"][:, keep], "tab:red", "test accuracy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        smoothed = np.nanmedian(histories["smoothed_test_acc"][:, keep], axis=0)
    ax.plot(steps, smoothed, color="k", lw=1.0, ls="--", label="smoothed test accuracy (median)")
    _frame(ax, steps, diverged_steps, histories["test_acc"][:, keep])
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title=suffix)
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "accuracy.png")
    save_png(fig, paths[-1])

    fig = figure(figsize=(7, 4.2))
    ax = fig.subplots()
    _band(ax, steps, histories["train_loss"][:, keep], "tab:blue", "train loss")
    _band(ax, steps, histories["test_loss"][:, keep], "tab:red", "test loss")
    _frame(ax, steps, diverged_steps, histories["train_loss"][:, keep])
    _log_y_if_positive(ax, histories["train_loss"][:, keep], histories["test_loss"][:, keep])
    ax.set(xscale="log", xlabel="step", ylabel="cross-entropy", title=suffix)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "loss.png")
    save_png(fig, paths[-1])

    fig = figure(figsize=(7, 4.2))
    ax = fig.subplots()
    _band(ax, steps, histories["weight_norm"][:, keep], "tab:green", "global weight norm")
    _frame(ax, steps, diverged_steps, histories["weight_norm"][:, keep])
    ax.set(xscale="log", xlabel="step", ylabel="||theta||", title=suffix)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "weight_norm.png")
    save_png(fig, paths[-1])
    return paths
