"""Host-side summaries of an ensemble's metric histories, with censoring.

Per member: the memorisation step (first evaluation with train accuracy >= the
memorise threshold), the generalisation step (first evaluation with test accuracy >=
the generalise threshold) and the grokking delay between them, and the log-time
measures of `grokjax.stats.logtime`: the grokking area (decades between the train and
test curves over log10 step), the ratio of generalisation to memorisation step at test
accuracy 0.5, 0.9 and 0.99, and test accuracy at the memorisation step. A member that
does not reach a threshold within its budget is *censored*: its step is None, never a
number (so are its ratio and, while its curves have not met, its area).

A member *diverges* at the first evaluation where its train loss, test loss or weight
norm is not finite, or its train loss exceeds `EvalConfig.divergence_loss` (default 100,
some 25 times the loss of a fresh network on p = 67). From there on its metrics describe
a broken network, so they count for nothing: its threshold steps are those reached
before it diverged, its final values are None, and `diverged_step` says when.

Across members: the median and the quartiles of each step, computed with censored
members counted as "later than the budget" (so a median that falls on a censored
member is itself censored and reported as None), plus how many were censored; a
diverged member that had not got there is censored too (it never will). Final values
are summarised over the members that did not diverge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from grokjax.config import EvalConfig
from grokjax.stats import logtime


def first_crossing(values_E: np.ndarray, steps_E: np.ndarray, threshold: float) -> int | None:
    """The first step whose value is >= threshold, or None if it never is."""
    hit = np.flatnonzero(np.asarray(values_E) >= threshold)
    return int(steps_E[hit[0]]) if hit.size else None


DIVERGENCE_METRICS = ("train_loss", "test_loss", "weight_norm")


def divergence(history: dict[str, np.ndarray], loss_bound: float) -> tuple[int | None, str]:
    """(index of the first evaluation where the member has diverged or None, the reason)."""
    watched = {n: np.asarray(history[n], np.float64) for n in DIVERGENCE_METRICS if n in history}
    if not watched:  # a history of accuracies alone cannot tell
        return None, ""
    bad_E = np.zeros(np.shape(next(iter(watched.values()))), bool)
    for values_E in watched.values():
        bad_E |= ~np.isfinite(values_E)
    if "train_loss" in watched:
        with np.errstate(invalid="ignore"):
            bad_E |= watched["train_loss"] > loss_bound
    hit = np.flatnonzero(bad_E)
    if not hit.size:
        return None, ""
    i = int(hit[0])
    values = {n: float(v[i]) for n, v in watched.items()}
    shown = [f"{n}={v:.3g}" for n, v in values.items() if not np.isfinite(v)]
    if not shown:
        shown = [f"train_loss={values['train_loss']:.3g} > {loss_bound:g}"]
    return i, ", ".join(shown)


def diverged_mask(histories: dict[str, np.ndarray], loss_bound: float) -> np.ndarray:
    """[members, evaluations] booleans: True from each member's divergence on."""
    n_members, n_evals = np.shape(next(iter(histories.values())))
    mask = np.zeros((n_members, n_evals), bool)
    for m in range(n_members):
        i, _ = divergence({k: v[m] for k, v in histories.items()}, loss_bound)
        if i is not None:
            mask[m, i:] = True
    return mask


class Record(Mapping):
    """A typed result that reads as the JSON object it is written as: attributes for
    code, `record["field"]` and `to_dict()` for files and for anyone reading them."""

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Record):
                value = value.to_dict()
            elif isinstance(value, (list, tuple)):
                value = [v.to_dict() if isinstance(v, Record) else v for v in value]
            elif isinstance(value, dict):
                value = {k: v.to_dict() if isinstance(v, Record) else v for k, v in value.items()}
            out[f.name] = value
        return self._flat(out)

    def _flat(self, out: dict[str, Any]) -> dict[str, Any]:
        return out

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclasses.dataclass(frozen=True)
class Censored(Record):
    """Median, quartiles and range over members, with censored members (None: past the
    budget) ranked last; a statistic that falls on a censored member is None."""

    n: int
    n_censored: int
    median: float | None
    q25: float | None
    q75: float | None
    min: float | None
    max: float | None

    def text(self, digits: int = 0) -> str:
        """'median (q25-q75)' for a table ('q25 to q75' when one is negative); a
        censored quantile reads 'censored'."""

        def one(v):
            return "censored" if v is None else f"{v:,.{digits}f}"

        if self.median is None and self.n_censored == self.n:
            return "all censored"
        negative = any(v is not None and v < 0 for v in (self.q25, self.q75))
        between = " to " if negative else "-"
        return f"{one(self.median)} ({one(self.q25)}{between}{one(self.q75)})"


@dataclasses.dataclass(frozen=True)
class MemberSummary(Record):
    """One member's threshold steps (None = censored), its log-time measures (`ratios`:
    test threshold -> g / m, written flat as `generalisation_ratio@<threshold>`), its
    divergence, and its final values (`finals`: metric -> value, None for a diverged
    member), written flat as `final_<metric>`."""

    member: int
    seed: int
    memorisation_step: int | None
    generalisation_step: int | None
    grokking_delay: int | None
    weight_norm_at_generalisation: float | None
    grokking_area: float | None
    test_acc_at_memorisation: float | None
    ratios: dict[float, float | None]
    diverged_step: int | None
    diverged_reason: str | None
    finals: dict[str, float | None]

    def _flat(self, out: dict[str, Any]) -> dict[str, Any]:
        finals, ratios = out.pop("finals"), out.pop("ratios")
        flat_ratios = {logtime.ratio_name(t): v for t, v in ratios.items()}
        return {**out, **flat_ratios, **{f"final_{k}": v for k, v in finals.items()}}


@dataclasses.dataclass(frozen=True)
class Diverged(Record):
    n: int
    n_diverged: int
    seeds: list[int]
    steps: list[int]


@dataclasses.dataclass(frozen=True)
class Summary(Record):
    """An ensemble's summary (summary.json): the budget, the thresholds, every member,
    and the censored statistics over members (`ensemble`: name -> `Censored`, and
    'diverged')."""

    budget_steps: int
    thresholds: dict[str, float]
    members: tuple[MemberSummary, ...]
    ensemble: dict[str, Censored | Diverged]


class Events(NamedTuple):
    """One member's events on its evaluation grid, None where censored (module
    docstring): memorisation m and generalisation g steps and their delay; the plateau
    (test accuracy at m), the onset of the final rise (`grokjax.stats.logtime.
    final_rise_onset`; None unless it generalises) and `halfway` (first step >= m whose
    test accuracy is half way from the plateau to the generalise threshold: a censored
    member that got there has left its plateau); the log-time measures
    (`grokjax.stats.logtime`); and the index of the first diverged evaluation with its
    reason."""

    memorisation: int | None
    generalisation: int | None
    delay: int | None
    plateau: float | None
    onset: int | None
    halfway: int | None
    area: float | None
    ratios: dict[float, float | None]
    test_acc_at_memorisation: float | None
    diverged: int | None
    reason: str


def events(
    steps_E: np.ndarray,
    history: dict[str, np.ndarray],
    cfg: EvalConfig,
    diverged_E: np.ndarray | None = None,
) -> Events:
    """The `Events` of one member; `history` maps metric -> [E]. Only the evaluations
    before it diverged count: the first True of `diverged_E` (a run directory's
    `diverged` column), or by default where `divergence` says."""
    if diverged_E is None:
        div, reason = divergence(history, cfg.divergence_loss)
    else:
        hit = np.flatnonzero(diverged_E)
        div, reason = (int(hit[0]) if hit.size else None), ""
    sane = slice(None) if div is None else slice(0, div)
    train_E, test_E, sane_E = history["train_acc"][sane], history["test_acc"][sane], steps_E[sane]
    mem_at = cfg.memorise_threshold
    mem = first_crossing(train_E, sane_E, mem_at)
    gen = first_crossing(test_E, sane_E, cfg.generalise_threshold)
    plateau = halfway = None
    if mem is not None:
        after = sane_E >= mem
        plateau = float(test_E[after][0])
        level = plateau + 0.5 * (cfg.generalise_threshold - plateau)
        halfway = first_crossing(test_E[after], sane_E[after], level)
    return Events(
        memorisation=mem,
        generalisation=gen,
        delay=gen - mem if mem is not None and gen is not None else None,
        plateau=plateau,
        onset=logtime.final_rise_onset(test_E, sane_E, mem, gen),
        halfway=halfway,
        area=logtime.grokking_area(
            train_E, test_E, sane_E, memorise_threshold=mem_at, area_gap=cfg.area_gap
        ),
        ratios={
            t: logtime.generalisation_ratio(mem, first_crossing(test_E, sane_E, t))
            for t in logtime.RATIO_THRESHOLDS
        },
        test_acc_at_memorisation=logtime.value_at_step(test_E, sane_E, mem),
        diverged=div,
        reason=reason,
    )


def member_summary(
    history: dict[str, np.ndarray],
    steps_E: np.ndarray,
    cfg: EvalConfig,
    member: int = 0,
    seed: int = 0,
) -> MemberSummary:
    """Threshold steps and final values for one member (`events`); `history` maps
    metric -> [E]."""
    e = events(steps_E, history, cfg)
    gen_idx = None if e.generalisation is None else int(np.searchsorted(steps_E, e.generalisation))
    return MemberSummary(
        member=member,
        seed=seed,
        memorisation_step=e.memorisation,
        generalisation_step=e.generalisation,
        grokking_delay=e.delay,
        weight_norm_at_generalisation=(
            None if gen_idx is None else float(history["weight_norm"][gen_idx])
        ),
        grokking_area=e.area,
        test_acc_at_memorisation=e.test_acc_at_memorisation,
        ratios=e.ratios,
        diverged_step=None if e.diverged is None else int(steps_E[e.diverged]),
        diverged_reason=e.reason or None,
        finals={k: None if e.diverged is not None else float(v[-1]) for k, v in history.items()},
    )


def censored_stats(values: list[int | float | None]) -> Censored:
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

    return Censored(
        n=n,
        n_censored=n - int(observed.size),
        median=quantile(0.5),
        q25=quantile(0.25),
        q75=quantile(0.75),
        min=float(observed.min()) if observed.size else None,
        max=float(observed.max()) if observed.size == n and n else None,
    )


STEP_STATISTICS = (
    "memorisation_step",
    "generalisation_step",
    "grokking_delay",
    "weight_norm_at_generalisation",
    "grokking_area",
    *(logtime.ratio_name(t) for t in logtime.RATIO_THRESHOLDS),
)
OBSERVED_STATISTICS = ("test_acc_at_memorisation",)  # over the members that memorised
FINAL_STATISTICS = ("train_acc", "test_acc", "weight_norm")


def ensemble_summary(
    histories: dict[str, np.ndarray], steps_E: np.ndarray, cfg: EvalConfig, seeds: list[int]
) -> Summary:
    """Per-member summaries and their censored statistics; `histories` maps metric -> [M, E]."""
    members = tuple(
        member_summary({k: v[m] for k, v in histories.items()}, steps_E, cfg, m, int(seed))
        for m, seed in enumerate(seeds)
    )
    ensemble: dict[str, Censored | Diverged] = {
        k: censored_stats([row[k] for row in members]) for k in STEP_STATISTICS
    }
    for k in OBSERVED_STATISTICS:
        ensemble[k] = censored_stats([row[k] for row in members if row[k] is not None])
    for k in FINAL_STATISTICS:  # over the members that did not diverge
        finals = [row.finals.get(k) for row in members]
        ensemble[f"final_{k}"] = censored_stats([v for v in finals if v is not None])
    diverged = [row for row in members if row.diverged_step is not None]
    ensemble["diverged"] = Diverged(
        n=len(members),
        n_diverged=len(diverged),
        seeds=[row.seed for row in diverged],
        steps=[row.diverged_step for row in diverged],
    )
    return Summary(
        budget_steps=int(steps_E[-1]),
        thresholds={
            "memorise_train_acc": cfg.memorise_threshold,
            "generalise_test_acc": cfg.generalise_threshold,
            "divergence_train_loss": cfg.divergence_loss,
            "area_gap": cfg.area_gap,
        },
        members=members,
        ensemble=ensemble,
    )


def format_table(summary: Summary) -> str:
    """A plain-text table: one row per member, then the ensemble statistics."""

    def cell(v: Any) -> str:
        if v is None:
            return "censored"
        if isinstance(v, float) and not float(v).is_integer():
            return f"{v:.4g}"  # four significant digits, whatever the scale
        return f"{v:g}"

    cols = ["seed", "memorisation_step", "generalisation_step", "grokking_delay"]
    cols += ["grokking_area", logtime.ratio_name(0.9)]
    cols += ["final_train_acc", "final_test_acc", "final_weight_norm"]
    heads = ["seed", "memorise@", "generalise@", "delay", "area/dec", "g90/m"]
    heads += ["train acc", "test acc", "|w|"]
    rows = []
    for member in summary.members:
        flat = member.to_dict()
        row = [cell(flat.get(c)) for c in cols]
        if member.diverged_step is not None:  # finals of a broken network
            row[-3:] = ["diverged"] * 3
        rows.append(row)
    stats = summary.ensemble
    for q in ("median", "q25", "q75"):
        rows.append([q] + [cell(getattr(stats[c], q)) for c in cols[1:]])
    rows.append(["censored"] + [f"{stats[c].n_censored}/{stats[c].n}" for c in cols[1:]])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    line = "  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))
    out = [line, "-" * len(line)]
    for i, r in enumerate(rows):
        if i == len(summary.members):
            out.append("-" * len(line))
        out.append("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    diverged = [m for m in summary.members if m.diverged_step is not None]
    if diverged:
        out.append(
            f"diverged: {len(diverged)}/{len(summary.members)} members ("
            + "; ".join(
                f"seed {m.seed} at step {m.diverged_step}: {m.diverged_reason}" for m in diverged
            )
            + "); their steps count only what they reached before, their finals are left out"
        )
    return "\n".join(out)
