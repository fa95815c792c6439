"""Host-side summaries of an ensemble's metric histories, with censoring.

Per member: the memorisation step (first evaluation with train accuracy >= the
memorise threshold), the generalisation step (first evaluation with test accuracy >=
the generalise threshold) and the grokking delay between them. A member that does not
reach a threshold within its budget is *censored*: its step is None, never a number.

Across members: the median and the quartiles of each step, computed with censored
members counted as "later than the budget" (so a median that falls on a censored
member is itself censored and reported as None), plus how many were censored.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from grokjax.config import Config


def first_crossing(values_E: np.ndarray, steps_E: np.ndarray, threshold: float) -> int | None:
    """The first step whose value is >= threshold, or None if it never is."""
    hit = np.flatnonzero(np.asarray(values_E) >= threshold)
    return int(steps_E[hit[0]]) if hit.size else None


def member_summary(history: dict[str, np.ndarray], steps_E: np.ndarray, cfg: Config) -> dict:
    """Threshold steps and final values for one member; `history` maps metric -> [E]."""
    mem = first_crossing(history["train_acc"], steps_E, cfg.memorise_threshold)
    gen = first_crossing(history["test_acc"], steps_E, cfg.generalise_threshold)
    delay = gen - mem if mem is not None and gen is not None else None
    gen_idx = None if gen is None else int(np.searchsorted(steps_E, gen))
    return {
        "memorisation_step": mem,
        "generalisation_step": gen,
        "grokking_delay": delay,
        "weight_norm_at_generalisation": (
            None if gen_idx is None else float(history["weight_norm"][gen_idx])
        ),
        **{f"final_{k}": float(v[-1]) for k, v in history.items()},
    }


def censored_stats(values: list[int | float | None]) -> dict[str, Any]:
    """Median, quartiles and range over members; None entries are censored (> budget)."""
    n = len(values)
    observed = np.array([v for v in values if v is not None], dtype=float)
    ranked = np.concatenate([np.sort(observed), np.full(n - observed.size, np.inf)])

    def quantile(q: float) -> float | None:
        # Linear interpolation between order statistics; censored if either is censored.
        if n == 0:
            return None
        h = q * (n - 1)
        lo, hi = ranked[int(np.floor(h))], ranked[int(np.ceil(h))]
        if not np.isfinite(hi):
            return None
        return float(lo + (h - np.floor(h)) * (hi - lo))

    return {
        "n": n,
        "n_censored": n - int(observed.size),
        "median": quantile(0.5),
        "q25": quantile(0.25),
        "q75": quantile(0.75),
        "min": float(observed.min()) if observed.size else None,
        "max": float(observed.max()) if observed.size == n and n else None,
    }


def ensemble_summary(
    histories: dict[str, np.ndarray], steps_E: np.ndarray, cfg: Config, seeds: list[int]
) -> dict:
    """Per-member summaries and their censored statistics; `histories` maps metric -> [M, E]."""
    members = []
    for m, seed in enumerate(seeds):
        row = member_summary({k: v[m] for k, v in histories.items()}, steps_E, cfg)
        members.append({"member": m, "seed": seed, **row})
    keys = [
        "memorisation_step",
        "generalisation_step",
        "grokking_delay",
        "weight_norm_at_generalisation",
        "final_train_acc",
        "final_test_acc",
        "final_weight_norm",
    ]
    return {
        "budget_steps": int(steps_E[-1]),
        "thresholds": {
            "memorise_train_acc": cfg.memorise_threshold,
            "generalise_test_acc": cfg.generalise_threshold,
        },
        "members": members,
        "ensemble": {k: censored_stats([row[k] for row in members]) for k in keys},
    }


def format_table(summary: dict) -> str:
    """A plain-text table: one row per member, then the ensemble statistics."""

    def cell(v: Any) -> str:
        if v is None:
            return "censored"
        return f"{v:.3f}" if isinstance(v, float) and not float(v).is_integer() else f"{v:g}"

    cols = ["seed", "memorisation_step", "generalisation_step", "grokking_delay"]
    cols += ["final_train_acc", "final_test_acc", "final_weight_norm"]
    heads = ["seed", "memorise@", "generalise@", "delay", "train acc", "test acc", "|w|"]
    rows = [[cell(r[c]) for c in cols] for r in summary["members"]]
    stats = summary["ensemble"]
    for label, q in (("median", "median"), ("q25", "q25"), ("q75", "q75")):
        rows.append([label] + [cell(stats[c][q]) for c in cols[1:]])
    rows.append(["censored"] + [f"{stats[c]['n_censored']}/{stats[c]['n']}" for c in cols[1:]])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    line = "  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))
    out = [line, "-" * len(line)]
    for i, r in enumerate(rows):
        if i == len(summary["members"]):
            out.append("-" * len(line))
        out.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return "\n".join(out)
