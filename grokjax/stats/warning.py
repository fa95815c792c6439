"""Early warning of grokking: indicators, alarms fitted on training runs, held-out scores.

The question a practitioner asks of a run that has memorised its training set is
whether, and when, it will generalise. This module turns the recorded histories of an
ensemble (`metrics.parquet` of every run directory below a path) into an answer that
can be checked.

**Events of a run** (evaluation grid, steps as recorded; `grokjax.stats.summary.events`):

    m      memorisation: first step with train accuracy >= the run's
           `eval.memorise_threshold` (0.99 by default)
    a_m    the plateau level: test accuracy at m
    g      generalisation: first step with test accuracy >= the run's
           `eval.generalise_threshold` (0.99 by default; censored if never)
    onset  the start of the final rise, read in log time
           (`grokjax.stats.logtime.final_rise_onset`): the last step before the test
           accuracy's steepest rise in ln(step) at which its slope was below a quarter of
           that peak. A slow drift of the plateau is not an onset.
    halfway  first step >= m with test accuracy half way from a_m to the threshold

A run is *grokking* when m and g exist, g - m exceeds the comprehension tolerance of
`grokjax.stats.phases` (max(100, m / 4)) and its final rise starts at least `min_lead`
(100) steps after m; *no plateau* when it generalises late but its final rise starts
sooner than that (no alarm raised from m on could lead the onset by 100 steps, so it is
scored neither way), *prompt* when it generalises within the tolerance, *never* when it
memorises and its test accuracy never gets half way to the threshold within the budget,
*slow* when it gets half way but not to the threshold in time (neither warned nor
false-alarmed: its fate is unknown), and *confused* when it does not memorise.

**Indicators** (each a series over the evaluations that reads only evaluations up to
its own, so it could have been computed live; W = `window` evaluations):

    msd_exponent       slope of ln MSD(t_w, t) against ln(t - t_w) over the last W
                       evaluations, for the latest t_w with W evaluations after it
                       (1 diffusion, 2 drift, < 1 caged)
    overlap_decay      minus the slope of ln C(t_w, t) against ln(t - t_w), same t_w
    ageing_index       for the two latest waiting times t1 < t2 before t, at lag
                       tau = t - t2: [ln MSD(t1, t1 + tau) - ln MSD(t2, t2 + tau)] / ln(t2 / t1)
                       (0 for a time-translation-invariant process; > 0 when the older
                       system moves less: ageing)
    weight_norm_trend  slope of ln |theta| against the step over the last W evaluations,
                       per 100 steps
    effective_temperature  for optimizers that inject noise: the mean of the recorded
                       kinetic temperature <v^2> over the last W evaluations (WanD's
                       `kinetic_kT` readout), or else the Einstein relation for
                       Langevin dynamics with step eta (`learning_rate`):
                       kT_eff = (d MSD / d step) / (2 eta), the MSD slope over the last
                       W evaluations (a drift makes it an upper bound)
    <measure>_change   ln(x(t) / x(m)) for the Fourier progress measures
                       (`grokjax.problem.progress`) and the weight norm: how far each
                       has moved since memorisation
    time_since_memorisation  t - m (baseline)
    test_accuracy_rise a(t) - a_m (the reference every indicator must beat in lead time)

**Alarms.** An indicator x with orientation s in {+1, -1} and threshold theta raises
its alarm at the first evaluation t >= m with s x(t) >= theta. Lead = onset - alarm
(positive: before the test accuracy moves). A grokking run is *warned* when its lead is
at least max(100, (onset - m) / 4) steps (`min_lead`, `lead_fraction`); a never run
that alarms within its budget is a *false alarm*.

**Fitting and scoring.** Runs are split into folds by seed, so every seed's runs are
held out once: (s, theta) are chosen on the other folds' runs only, maximising the
warned fraction of their grokking runs subject to at most `max_false_alarms` (10 %) of
their never runs alarming (an alarm that never fires meets that bound, so a useless
indicator scores 0), and scored on the held-out fold. The concordance is Harrell's C
between s x at the fixed step `early_step` and the generalisation step (censored at the
budget when it never comes), over held-out runs that have memorised by then and whose
test accuracy has not yet left its plateau, with the orientation that ranks the
training folds' runs better; 0.5 is chance, 1 a perfect ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from grokjax.errors import ConfigError
from grokjax.optim import NOISY_OPTIMIZERS
from grokjax.stats.phases import delay_tolerance

WINDOW = 10
MIN_LEAD = 100
LEAD_FRACTION = 0.25
MAX_FALSE_ALARMS = 0.10
EARLY_STEP = 200
CHANGE_OF = (
    "restricted_loss",
    "excluded_loss",
    "gini_embed",
    "gini_unembed",
    "key_frequency_share",
    "weight_norm",
)
BASELINES = ("time_since_memorisation", "test_accuracy_rise")


class Run(NamedTuple):
    """One member of one run directory, with its events (module docstring;
    `grokjax.stats.summary.events` finds them)."""

    name: str
    seed: int
    hparams: dict
    optimizer: str
    steps: np.ndarray
    histories: dict[str, np.ndarray]
    memorisation: int | None
    plateau: float | None
    onset: int | None
    generalisation: int | None
    kind: str  # grokking, prompt, never, slow, confused


def kind_of(m, onset, g, halfway, min_lead: int = MIN_LEAD) -> str:
    """The run's kind from its events (module docstring)."""
    if m is None:
        return "confused"
    if g is not None:
        if g - m <= delay_tolerance(m):
            return "prompt"
        return "no plateau" if onset - m < min_lead else "grokking"
    return "never" if halfway is None else "slow"


def _windowed_slope(y_E: np.ndarray, x_E: np.ndarray, window: int) -> np.ndarray:
    """Least-squares slope of y on x over each run of `window` evaluations ending at e
    (NaN unless all of them are finite)."""
    out = np.full(y_E.shape, np.nan)
    for e in range(window - 1, y_E.size):
        y, x = y_E[e - window + 1 : e + 1], x_E[e - window + 1 : e + 1]
        if np.isfinite(y).all() and np.isfinite(x).all() and np.ptp(x) > 0:
            out[e] = np.polyfit(x, y, 1)[0]
    return out


def _waiting_times(histories: dict) -> list[int]:
    return sorted(int(k.split("@")[1]) for k in histories if k.startswith("msd@"))


def _latest_wait(steps_E: np.ndarray, waits: Sequence[int], window: int) -> np.ndarray:
    """Per evaluation, the latest t_w with at least `window` evaluations after it (-1 none)."""
    out = np.full(steps_E.size, -1)
    for e in range(steps_E.size):
        ready = [t for t in waits if np.sum((steps_E > t) & (steps_E <= steps_E[e])) >= window]
        out[e] = max(ready) if ready else -1
    return out


def _two_time_slope(steps_E, histories, name, window, log_y=True, log_x=True) -> np.ndarray:
    """Windowed slope of (ln) name@t_w against (ln) t - t_w, for the latest ready t_w."""
    waits = _waiting_times(histories)
    latest = _latest_wait(steps_E, waits, window)
    out = np.full(steps_E.size, np.nan)
    slopes = {}
    for t in waits:
        y = histories[f"{name}@{t}"]
        with np.errstate(divide="ignore", invalid="ignore"):
            y = np.log(np.where(y > 0, y, np.nan)) if log_y else y
            lag = np.log(np.where(steps_E > t, steps_E - t, np.nan))
            x = lag if log_x else steps_E.astype(float)
        slopes[t] = _windowed_slope(y, x, window)
    for e, t in enumerate(latest):
        if t >= 0:
            out[e] = slopes[t][e]
    return out


def msd_exponent(steps_E, histories, window: int = WINDOW) -> np.ndarray:
    return _two_time_slope(steps_E, histories, "msd", window)


def overlap_decay(steps_E, histories, window: int = WINDOW) -> np.ndarray:
    return -_two_time_slope(steps_E, histories, "overlap", window)


def ageing_index(steps_E, histories) -> np.ndarray:
    """[ln MSD(t1, t1 + tau) - ln MSD(t2, t)] / ln(t2 / t1), tau = t - t2 (docstring)."""
    waits = _waiting_times(histories)
    out = np.full(steps_E.size, np.nan)
    for e, t in enumerate(steps_E):
        before = [w for w in waits if 0 < w < t]
        if len(before) < 2:
            continue
        t1, t2 = before[-2], before[-1]
        seen = steps_E <= t
        msd1 = histories[f"msd@{t1}"][seen]
        ok = np.isfinite(msd1) & (msd1 > 0) & (steps_E[seen] > t1)
        lag1 = t1 + (t - t2)
        if ok.sum() < 2 or not histories[f"msd@{t2}"][e] > 0:
            continue
        ln_msd1 = np.interp(np.log(lag1 - t1), np.log(steps_E[seen][ok] - t1), np.log(msd1[ok]))
        out[e] = (ln_msd1 - np.log(histories[f"msd@{t2}"][e])) / np.log(t2 / t1)
    return out


def weight_norm_trend(steps_E, histories, window: int = WINDOW) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        ln_norm = np.log(histories["weight_norm"])
    return 100.0 * _windowed_slope(ln_norm, steps_E.astype(float), window)


def effective_temperature(steps_E, histories, learning_rate: float, window: int = WINDOW):
    slope = _two_time_slope(steps_E, histories, "msd", window, log_y=False, log_x=False)
    return slope / (2.0 * learning_rate)


def indicators(run: Run, window: int = WINDOW) -> dict[str, np.ndarray]:
    """Every indicator of the module docstring that `run`'s histories allow."""
    steps, h = run.steps, run.histories
    out: dict[str, np.ndarray] = {}
    if _waiting_times(h):
        out["msd_exponent"] = msd_exponent(steps, h, window)
        out["overlap_decay"] = overlap_decay(steps, h, window)
        out["ageing_index"] = ageing_index(steps, h)
        if run.optimizer in NOISY_OPTIMIZERS or run.hparams.get("noise_scale", 0) > 0:
            lr = run.hparams["learning_rate"]
            out["effective_temperature"] = effective_temperature(steps, h, lr, window)
    if "kinetic_kT" in h:
        kinetic = pd.Series(h["kinetic_kT"]).rolling(window, min_periods=window).mean()
        out["effective_temperature"] = kinetic.to_numpy()
    out["weight_norm_trend"] = weight_norm_trend(steps, h, window)
    nan = np.full(steps.size, np.nan)
    m = run.memorisation
    at_m = np.searchsorted(steps, m) if m is not None else None
    for name in CHANGE_OF:
        if name in h:
            with np.errstate(divide="ignore", invalid="ignore"):
                out[f"{name}_change"] = nan if m is None else np.log(h[name] / h[name][at_m])
    out["time_since_memorisation"] = nan if m is None else (steps - m).astype(float)
    rise = nan if m is None else h["test_acc"] - run.plateau
    out["test_accuracy_rise"] = rise
    return out


def alarm_step(run: Run, score_E: np.ndarray, sign: int, threshold: float) -> int | None:
    """First evaluated step >= m with sign * score >= threshold (None: no alarm)."""
    if run.memorisation is None:
        return None
    hit = (run.steps >= run.memorisation) & (sign * score_E >= threshold)
    hit &= np.isfinite(score_E)
    idx = np.flatnonzero(hit)
    return int(run.steps[idx[0]]) if idx.size else None


def required_lead(run: Run, min_lead: int = MIN_LEAD, fraction: float = LEAD_FRACTION):
    return max(min_lead, fraction * (run.onset - run.memorisation))


def outcomes(runs, scores, sign, threshold):
    """(warned [grokking], leads [grokking], false alarms [never]) at (sign, threshold)."""
    warned, leads, false = [], [], []
    for run, score in zip(runs, scores, strict=True):
        alarm = alarm_step(run, score, sign, threshold)
        if run.kind == "grokking":
            lead = np.nan if alarm is None else run.onset - alarm
            leads.append(lead)
            warned.append(bool(alarm is not None and lead >= required_lead(run)))
        elif run.kind == "never":
            false.append(alarm is not None)
    return np.array(warned, bool), np.array(leads, float), np.array(false, bool)


def fit_threshold(runs, scores, max_false_alarms: float = MAX_FALSE_ALARMS, n_candidates=100):
    """(sign, theta) maximising the warned fraction of the grokking runs among `runs` with
    at most `max_false_alarms` of their never runs alarming, then the fewest false
    alarms (module docstring); an alarm that never fires (theta = inf) is a candidate,
    so the bound can always be met. Among thresholds that tie, the middle of their
    range (if it ties too), so that the choice keeps its margin on both sides. (1, inf)
    when no run has memorised."""
    candidates = []
    for sign in (1, -1):
        values = [
            sign * s[(r.steps >= r.memorisation) & np.isfinite(s)]
            for r, s in zip(runs, scores, strict=True)
            if r.memorisation is not None
        ]
        values = np.concatenate(values) if values else np.zeros(0)
        if values.size == 0:
            continue
        levels = np.linspace(0, 1, n_candidates)
        spread = values.min() + levels * np.ptp(values)  # the gaps between clusters too
        never_fires = [np.inf]  # so that the false-alarm bound can always be met
        grid = np.concatenate([np.quantile(values, levels), spread, never_fires])
        for theta in np.unique(grid):
            key = _key(runs, scores, sign, theta, max_false_alarms)
            candidates.append((key, sign, float(theta)))
    if not candidates:
        return 1, float("inf")
    best = max(c[0] for c in candidates)
    tied = sorted((sign, theta) for key, sign, theta in candidates if key == best)
    sign = max((1, -1), key=lambda g: sum(t[0] == g for t in tied))
    thetas = [theta for g, theta in tied if g == sign]
    middle = 0.5 * (thetas[0] + thetas[-1])
    if np.isfinite(middle) and _key(runs, scores, sign, middle, max_false_alarms) == best:
        return sign, middle
    return sign, thetas[len(thetas) // 2]


def _key(runs, scores, sign, theta, max_false_alarms):
    warned, _, false = outcomes(runs, scores, sign, theta)
    fa = false.mean() if false.size else 0.0
    return (fa <= max_false_alarms, warned.mean() if warned.size else 0.0, -fa)


def concordance(risk: Sequence[float], time: Sequence[float], observed: Sequence[bool]) -> float:
    """Harrell's C: among pairs where the earlier time is an observed event, the share
    in which that run has the higher risk (ties in risk count one half). NaN when no
    pair is comparable; risks that are NaN leave their pairs out."""
    risk, time, observed = np.asarray(risk, float), np.asarray(time, float), np.asarray(observed)
    concordant = comparable = 0.0
    for i in range(risk.size):
        if not observed[i] or not np.isfinite(risk[i]):
            continue
        later = (time > time[i]) & np.isfinite(risk)
        comparable += later.sum()
        concordant += (risk[later] < risk[i]).sum() + 0.5 * (risk[later] == risk[i]).sum()
    return concordant / comparable if comparable else float("nan")


def early_value(run: Run, score: np.ndarray, sign: int, early_step: int = EARLY_STEP) -> float:
    """sign * score at the last evaluation <= `early_step`, for a run that has memorised
    by then and whose test accuracy has not left its plateau; NaN otherwise."""
    if run.memorisation is None or run.memorisation > early_step:
        return float("nan")
    if run.onset is not None and run.onset <= early_step:
        return float("nan")
    idx = np.searchsorted(run.steps, early_step, side="right") - 1
    return float(sign * score[idx])


def time_to_generalise(run: Run) -> tuple[float, bool]:
    """(g, True), or (one past the budget, False) when censored."""
    if run.generalisation is not None:
        return float(run.generalisation), True
    return float(run.steps[-1] + 1), False


def early_concordance(runs, scores, sign, early_step: int = EARLY_STEP) -> float:
    """Harrell's C of `early_value` against g over the runs that have one."""
    risk = [early_value(r, s, sign, early_step) for r, s in zip(runs, scores, strict=True)]
    time, seen = zip(*(time_to_generalise(r) for r in runs), strict=True) if runs else ((), ())
    return concordance(risk, time, seen)


def folds_by_seed(runs: Sequence[Run]) -> list[np.ndarray]:
    """Index arrays of the held-out runs of each fold: one fold per seed."""
    seeds = np.array([r.seed for r in runs])
    return [np.flatnonzero(seeds == s) for s in np.unique(seeds)]


def evaluate(
    runs: Sequence[Run],
    window: int = WINDOW,
    early_step: int = EARLY_STEP,
    max_false_alarms: float = MAX_FALSE_ALARMS,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit on the other folds, score each held-out fold, for every indicator.

    Returns (table, alarms): `table` one row per indicator and fold with the fitted sign
    and threshold, the held-out counts, warned fraction, median lead, false alarms and
    early concordance; `alarms` one row per indicator and held-out run with its kind,
    events and alarm step.
    """
    series = [indicators(r, window) for r in runs]
    names = sorted({n for s in series for n in s}, key=_order)
    folds = folds_by_seed(runs)
    if len(folds) < 2:
        seeds = sorted({r.seed for r in runs})
        raise ConfigError(f"seeds={seeds} is not allowed: at least 2 seeds")
    rows, alarm_rows = [], []
    for name in names:
        have = [i for i, s in enumerate(series) if name in s]
        for k, held in enumerate(folds):
            held = [i for i in held if i in have]
            train = [i for i in have if i not in set(held)]
            sign, theta = fit_threshold(
                [runs[i] for i in train], [series[i][name] for i in train], max_false_alarms
            )
            train_c = early_concordance(
                [runs[i] for i in train], [series[i][name] for i in train], 1, early_step
            )
            c_sign = -1 if train_c < 0.5 else 1  # the concordance's own orientation
            test_runs = [runs[i] for i in held]
            test_scores = [series[i][name] for i in held]
            warned, leads, false = outcomes(test_runs, test_scores, sign, theta)
            rows.append(
                {
                    "indicator": name,
                    "fold": k,
                    "seed": runs[folds[k][0]].seed,
                    "sign": sign,
                    "threshold": theta,
                    "grokking": warned.size,
                    "warned": warned.mean() if warned.size else np.nan,
                    "median_lead": np.nanmedian(leads) if np.isfinite(leads).any() else np.nan,
                    "never": false.size,
                    "false_alarms": false.mean() if false.size else np.nan,
                    "concordance_sign": c_sign,
                    "concordance": early_concordance(test_runs, test_scores, c_sign, early_step),
                }
            )
            for run, score in zip(test_runs, test_scores, strict=True):
                alarm = alarm_step(run, score, sign, theta)
                alarm_rows.append(
                    {
                        "indicator": name,
                        "fold": k,
                        "run": run.name,
                        "seed": run.seed,
                        "kind": run.kind,
                        "memorisation": run.memorisation,
                        "onset": run.onset,
                        "generalisation": run.generalisation,
                        "alarm": alarm,
                        "lead": np.nan if alarm is None or run.onset is None else run.onset - alarm,
                        "early_value": early_value(run, score, c_sign, early_step),
                        **{k2: run.hparams.get(k2) for k2 in ("learning_rate", "weight_decay")},
                        "train_fraction": run.hparams.get("train_fraction"),
                        "train_size": run.hparams.get("train_size"),
                    }
                )
    return pd.DataFrame(rows), pd.DataFrame(alarm_rows)


def _order(name: str) -> tuple[int, str]:
    return (1 if name in BASELINES else 0, name)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """One row per indicator: warned fraction, median lead, false alarms and concordance
    as the mean over folds with their standard deviation, and whether the target holds
    (warned >= 0.8 with false alarms <= 0.1, pooled over held-out runs)."""
    out = []
    for name, rows in table.groupby("indicator", sort=False):
        n_g, n_n = rows.grokking.sum(), rows.never.sum()
        pooled_w = (rows.warned * rows.grokking).sum() / n_g if n_g else np.nan
        pooled_f = (rows.false_alarms.fillna(0) * rows.never).sum() / n_n if n_n else np.nan
        out.append(
            {
                "indicator": name,
                "grokking runs": int(n_g),
                "warned": pooled_w,
                "warned sd": rows.warned.std(ddof=1),
                "median lead": rows.median_lead.median(),
                "never runs": int(n_n),
                "false alarms": pooled_f,
                "false alarms sd": rows.false_alarms.std(ddof=1),
                "concordance": rows.concordance.mean(),
                "concordance sd": rows.concordance.std(ddof=1),
                "target met": bool(pooled_w >= 0.8 and (n_n == 0 or pooled_f <= 0.1)),
            }
        )
    return pd.DataFrame(out)
