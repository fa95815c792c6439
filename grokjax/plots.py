"""Figures of an ensemble run: median over members with quartile and min-max bands."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from grokjax.checkpoint import atomic_write_with  # noqa: E402


def _band(ax, steps_E, values_ME, color, label):
    q_lo, q_med, q_hi = np.nanquantile(values_ME, [0.25, 0.5, 0.75], axis=0)
    ax.fill_between(
        steps_E, np.nanmin(values_ME, 0), np.nanmax(values_ME, 0), color=color, alpha=0.12, lw=0
    )
    ax.fill_between(steps_E, q_lo, q_hi, color=color, alpha=0.3, lw=0)
    ax.plot(steps_E, q_med, color=color, lw=1.6, label=label)


def _save(fig, path: Path) -> None:
    atomic_write_with(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def ensemble_figures(
    histories: dict[str, np.ndarray], steps_E: np.ndarray, out_dir: Path, title: str
) -> list[Path]:
    """Write accuracy.png, loss.png and weight_norm.png; return their paths.

    `histories` maps metric -> [members, evaluations]. Steps are drawn on a log axis,
    so the evaluation at step 0 is left out.
    """
    keep = steps_E > 0
    steps = steps_E[keep]
    n = next(iter(histories.values())).shape[0]
    suffix = f"{title} ({n} seeds: median, quartiles, range)"
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    _band(ax, steps, histories["train_acc"][:, keep], "tab:blue", "train accuracy")
    _band(ax, steps, histories["test_acc"][:, keep], "tab:red", "test accuracy")
    smoothed = np.nanmedian(histories["smoothed_test_acc"][:, keep], axis=0)
    ax.plot(steps, smoothed, color="k", lw=1.0, ls="--", label="smoothed test accuracy (median)")
    ax.set(xscale="log", xlabel="step", ylabel="accuracy", ylim=(-0.02, 1.02), title=suffix)
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "accuracy.png")
    _save(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(7, 4.2))
    _band(ax, steps, histories["train_loss"][:, keep], "tab:blue", "train loss")
    _band(ax, steps, histories["test_loss"][:, keep], "tab:red", "test loss")
    ax.set(xscale="log", yscale="log", xlabel="step", ylabel="cross-entropy", title=suffix)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "loss.png")
    _save(fig, paths[-1])

    fig, ax = plt.subplots(figsize=(7, 4.2))
    _band(ax, steps, histories["weight_norm"][:, keep], "tab:green", "global weight norm")
    ax.set(xscale="log", xlabel="step", ylabel="||theta||", title=suffix)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    paths.append(out_dir / "weight_norm.png")
    _save(fig, paths[-1])
    return paths
