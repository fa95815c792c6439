"""Predicting when a memorised run generalises, scored on runs no fit has seen.

**Prediction times.** A prediction for run r made at step t uses only r's evaluations
at steps <= t (the features below read nothing later). It is scored at memorisation
(t = m), at a quarter and at half of the plateau (t = m + f (onset - m), f = 1/4, 1/2,
the last evaluation at or before it; onset as in `grokjax.stats.warning`: `WHEN`), and
it is made at every evaluation from m on for the alarms.

**Features at t** (`features`; NaN where a run did not record what one needs):

    ln_eta_lambda   ln(learning rate x weight decay)        (-inf: no weight decay)
    ln_init_scale   ln of `Hparams.init_scale`
    train_fraction  `data.train_fraction`
    ln_m, ln_t      ln of the memorisation step and of t
    ln_norm_m       ln V(m), V = |theta|^2 (the recorded weight norm, squared)
    norm_change     ln V(t) - ln V(m)
    ln_logit_m      ln l(m), l = the mean logit norm on the training set (`logit_norm`)
    logit_change    ln l(t) - ln l(m)
    ln_train_loss   ln L_train(t)
    test_rise       a(t) - a(m), the test accuracy's rise since memorisation
    <x>_change      ln x(t) - ln x(m) for the test loss and, where recorded, the Fourier
                    progress measures restricted_loss, excluded_loss and gini_embed
    <x>_rate        <x>_change / (ln t - ln m), for the norm, the logit norm, the test
                    loss, the restricted and the excluded loss (NaN at t = m)
    llc             the latest local learning coefficient at or before t
                    (`grokjax.problem.llc`; recorded only when `llc.every` > 0)

**Predictors** (`PREDICTORS`, one entry each; `fit(train_samples)` sees training runs
only and returns `predict(features) -> g`, the predicted generalisation step):

    norm_law        the norm delay law of AdamW's decoupled weight decay
                    (arXiv 2605.18845): with no gradient pulling, |theta|^2 shrinks as
                    exp(-2 eta lambda t); a fraction kappa of that rate survives, so
                        g = t + ln(V(t) / V*) / (2 kappa eta lambda).
                    V* (the norm at generalisation) is the geometric mean of V(g), and
                    kappa the median of ln(V(t) / V(g)) / (2 eta lambda (g - t)), over the
                    training runs in the law's regime (V(g) < V(t): the norm falls on the
                    way). No prediction (out of scope) when lambda = 0, when no training
                    run is in the regime, or when V(t) <= V*.
    logit_law       the same law on the effective logit scale, V = l^2 (arXiv 2606.18465)
    llc             ln(g - t) linear in the LLC at t
    features        ln(g - t) linear (ridge) in every feature above that the training
                    samples all have
    boosted         ln(g - t) by gradient-boosted trees (scikit-learn's
                    HistGradientBoostingRegressor) on the same features
    time_since_memorisation   g = max(m + D, t), D the training runs' geometric mean delay
    test_accuracy   ln(g - t) linear in test_rise

The regressions and the laws are fitted on samples of every training run that generalised
with a delay (kinds 'grokking' and 'no plateau'), taken at the time the prediction is for
(at t = m for the prediction at memorisation, and so on), and at f = 0, 1/8, 1/4, 1/2 of
the plateau (one sample each) for the alarms.

**Scores** (`evaluate`), with folds of held-out runs by seed and, separately, by groups
of hyperparameter cells (`folds`), every predictor refitted per fold:

* the relative error |g_hat - g| / g of the held-out delayed runs' generalisation step
  (and |g_hat - g| / (g - m) of their delay) at each time of `WHEN`, with the share of
  runs the predictor could predict (`coverage`);
* the AUROC of "generalises within its budget" at memorisation over every held-out run
  that memorised, ranked by the predicted delay (shorter: more likely);
* the alarm x(t) = -ln(max(g_hat(t) - t, 1)) (`grokjax.stats.warning`'s alarms: threshold
  chosen on the training runs for at most 10 % false alarms among their never runs;
  warned when it leads the onset by max(100, plateau / 4)).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from grokjax.errors import ConfigError
from grokjax.stats import warning as W

FEATURES = (
    "ln_eta_lambda",
    "ln_init_scale",
    "train_fraction",
    "ln_m",
    "ln_t",
    "ln_norm_m",
    "norm_change",
    "ln_logit_m",
    "logit_change",
    "ln_train_loss",
    "test_rise",
    "test_loss_change",
    "restricted_loss_change",
    "excluded_loss_change",
    "gini_embed_change",
    "llc",
    *(f"{k}_rate" for k in ("norm", "logit", "test_loss", "restricted_loss", "excluded_loss")),
)
RATES = ("norm", "logit", "test_loss", "restricted_loss", "excluded_loss")
DELAYED = ("grokking", "no plateau")
FIT_FRACTIONS = (0.0, 0.125, 0.25, 0.5)
# Each predictor is fitted once per fold for each prediction time (a fraction of the
# plateau) and once for the alarms, which are raised at every evaluation.
WHEN = {"memorisation": 0.0, "quarter": 0.25, "half": 0.5}  # prediction times
FIT_AT = {when: (f,) for when, f in WHEN.items()} | {"alarm": FIT_FRACTIONS}
RIDGE = 1e-2  # the ridge and logistic penalties, per sample
BOOSTED = dict(max_iter=200, learning_rate=0.05, max_leaf_nodes=8, min_samples_leaf=10)
CELL_FOLDS = 4


def _log(x) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(np.where(np.asarray(x, float) > 0, x, np.nan))


def features(run: W.Run) -> pd.DataFrame:
    """[E, FEATURES]: each row reads only the run's evaluations up to its own step; NaN
    before memorisation and where a run did not record what a feature needs."""
    h, steps, n = run.histories, run.steps.astype(float), run.steps.size
    nan = np.full(n, np.nan)
    if run.memorisation is None:
        return pd.DataFrame({f: nan for f in FEATURES})
    i_m = int(np.searchsorted(run.steps, run.memorisation))
    after = run.steps >= run.memorisation
    hp = run.hparams
    eta_lambda = float(hp.get("learning_rate", np.nan)) * float(hp.get("weight_decay", np.nan))
    ln_v = 2 * _log(h["weight_norm"]) if "weight_norm" in h else nan
    ln_l = _log(h["logit_norm"]) if "logit_norm" in h else nan
    with np.errstate(divide="ignore"):
        ln_el = np.log(eta_lambda) if eta_lambda >= 0 else np.nan
    columns = {
        "ln_eta_lambda": np.full(n, ln_el),
        "ln_init_scale": np.full(n, float(np.log(hp.get("init_scale", 1.0)))),
        "train_fraction": np.full(n, float(hp.get("train_fraction") or np.nan)),
        "ln_m": np.full(n, np.log(run.memorisation)),
        "ln_t": _log(steps),
        "ln_norm_m": np.full(n, ln_v[i_m]),
        "norm_change": ln_v - ln_v[i_m],
        "ln_logit_m": np.full(n, ln_l[i_m]),
        "logit_change": ln_l - ln_l[i_m],
        "ln_train_loss": _log(h["train_loss"]) if "train_loss" in h else nan,
        "test_rise": h["test_acc"] - run.plateau,
        **{
            f"{k}_change": _log(h[k]) - _log(h[k][i_m]) if k in h else nan
            for k in ("test_loss", "restricted_loss", "excluded_loss", "gini_embed")
        },
        # the latest estimate at or before t (it is recorded every llc.every evaluations)
        "llc": pd.Series(h["llc"], dtype=float).ffill().to_numpy() if "llc" in h else nan,
    }
    with np.errstate(divide="ignore", invalid="ignore"):
        since = _log(steps) - np.log(run.memorisation)
        log_time = np.where(steps > run.memorisation, since, np.nan)
        columns |= {f"{k}_rate": columns[f"{k}_change"] / log_time for k in RATES}
    return pd.DataFrame({k: np.where(after, v, np.nan) for k, v in columns.items()})


def at_step(run: W.Run, step: float) -> int:
    """Index of the last evaluation at or before `step`."""
    return max(int(np.searchsorted(run.steps, step, side="right")) - 1, 0)


def plateau_step(run: W.Run, fraction: float) -> int | None:
    """The evaluated step at `fraction` of the plateau, m + fraction (onset - m) (None
    without an onset, except at fraction 0: m)."""
    if run.memorisation is None or (run.onset is None and fraction > 0):
        return None
    onset = run.memorisation if run.onset is None else run.onset
    return int(run.steps[at_step(run, run.memorisation + fraction * (onset - run.memorisation))])


class Samples(NamedTuple):
    """Training samples: features at t, t, the run's m and g, its norms at t and at g."""

    x: pd.DataFrame
    t: np.ndarray
    m: np.ndarray
    g: np.ndarray
    ln_v_g: np.ndarray  # ln V(g) = 2 ln |theta(g)|
    ln_l_g: np.ndarray  # 2 ln l(g), the squared mean logit norm's log


def samples(
    runs: Sequence[W.Run], table: Sequence[pd.DataFrame], fractions: Sequence[float] = FIT_FRACTIONS
) -> Samples:
    """One sample per delayed run and fraction of its plateau in `fractions`."""
    rows, t, m, g, v_g, l_g = [], [], [], [], [], []
    for run, x in zip(runs, table, strict=True):
        if run.kind not in DELAYED:
            continue
        i_g = at_step(run, run.generalisation)
        for f in fractions:
            i = at_step(run, run.memorisation + f * (run.onset - run.memorisation))
            rows.append(x.iloc[i].to_numpy(float))
            t.append(run.steps[i])
            m.append(run.memorisation)
            g.append(run.generalisation)
            v_g.append(2 * _log(run.histories["weight_norm"][i_g]))
            l_g.append(2 * _log(run.histories.get("logit_norm", np.full(i_g + 1, np.nan))[i_g]))
    x = pd.DataFrame(np.reshape(rows, (-1, len(FEATURES))), columns=FEATURES)
    arrays = (np.asarray(a, float) for a in (t, m, g, v_g, l_g))
    return Samples(x, *arrays)


Predict = Callable[[pd.DataFrame, np.ndarray], np.ndarray]  # (features, t) -> g_hat


def _no_prediction(x: pd.DataFrame, t: np.ndarray) -> np.ndarray:
    return np.full(len(x), np.nan)


def _ln_v(x: pd.DataFrame, metric: str) -> np.ndarray:
    """ln V(t) from the features: V = |theta|^2 ('norm') or l^2 ('logit')."""
    ln_now = (x[f"ln_{metric}_m"] + x[f"{metric}_change"]).to_numpy()
    return 2 * ln_now if metric == "logit" else ln_now


def fit_law(s: Samples, metric: str) -> Predict:
    """The delay law on `metric` ('norm' or 'logit'; module docstring)."""
    ln_x_t = _ln_v(s.x, metric)
    ln_x_g = s.ln_v_g if metric == "norm" else s.ln_l_g
    rate = np.exp(s.x.ln_eta_lambda.to_numpy())
    ok = np.isfinite(ln_x_t) & np.isfinite(ln_x_g) & (rate > 0) & (s.g > s.t)
    ok &= ln_x_t > ln_x_g  # calibrated only on runs in the law's regime: the norm falls
    if not ok.any():
        return _no_prediction
    ln_star = float(np.mean(ln_x_g[ok]))
    kappa = float(np.median((ln_x_t - ln_x_g)[ok] / (2 * rate[ok] * (s.g - s.t)[ok])))
    if not kappa > 0:
        return _no_prediction

    def predict(x: pd.DataFrame, t: np.ndarray) -> np.ndarray:
        rate_x = np.exp(x.ln_eta_lambda.to_numpy())
        with np.errstate(invalid="ignore", divide="ignore"):
            remaining = (_ln_v(x, metric) - ln_star) / (2 * kappa * rate_x)
        return np.where((remaining > 0) & (rate_x > 0), t + remaining, np.nan)

    predict.params = {"kappa": kappa, "ln_star": ln_star}
    return predict


def _usable(x: pd.DataFrame, names: Sequence[str]) -> list[str] | None:
    """The features of `names` every training sample has (None when none has them all);
    constants dropped (they add nothing to the mean)."""
    present = [n for n in names if len(x) and np.isfinite(x[n]).all()]
    return [n for n in present if np.ptp(x[n]) > 0] if present else None


def fit_regression(s: Samples, names: Sequence[str], model: str = "ridge") -> Predict:
    """ln(g - t) from the features `names` that every training sample has: scikit-learn's
    ridge regression on standardised features (`model='ridge'`, penalty `RIDGE` x n) or
    gradient-boosted trees (`'boosted'`); no prediction when no feature is usable by
    every sample; the mean alone when they are all constant."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    used = _usable(s.x, names)
    if used is None:
        return _no_prediction
    y = np.log(np.maximum(s.g - s.t, 1.0))
    if not used:
        delay = float(np.exp(y.mean()))
        return lambda x, t: np.where(np.isfinite(x.ln_m.to_numpy()), t + delay, np.nan)
    if model == "boosted":
        fitted = HistGradientBoostingRegressor(**BOOSTED, random_state=0)
    else:
        fitted = make_pipeline(StandardScaler(), Ridge(alpha=RIDGE * len(y)))
    fitted.fit(s.x[used].to_numpy(), y)

    def predict(x: pd.DataFrame, t: np.ndarray) -> np.ndarray:
        z = x[used].to_numpy()
        out = np.full(len(x), np.nan)
        ok = np.isfinite(z).all(axis=1)
        if ok.any():
            out[ok] = t[ok] + np.exp(fitted.predict(z[ok]))
        return out

    predict.params = {"features": used}
    return predict


def fit_time_since_memorisation(s: Samples) -> Predict:
    delay = float(np.exp(np.mean(np.log(np.maximum(s.g - s.m, 1.0))))) if len(s.g) else np.nan

    def predict(x: pd.DataFrame, t: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(x.ln_m.to_numpy()) + delay, t)

    return predict


class Predictor(NamedTuple):
    doc: str
    fit: Callable[[Samples], Predict]


PREDICTORS: dict[str, Predictor] = {
    "norm_law": Predictor("g = t + ln(V/V*) / (2 kappa eta lambda), V = |theta|^2",
                          lambda s: fit_law(s, "norm")),
    "logit_law": Predictor("the same law on the squared mean logit norm",
                           lambda s: fit_law(s, "logit")),
    "llc": Predictor("ln(g - t) linear in the LLC", lambda s: fit_regression(s, ["llc"])),
    "features": Predictor("ln(g - t) linear in every recorded feature",
                          lambda s: fit_regression(s, FEATURES)),
    "boosted": Predictor("ln(g - t) by gradient-boosted trees on every recorded feature",
                         lambda s: fit_regression(s, FEATURES, "boosted")),
    "time_since_memorisation": Predictor("g = max(m + D, t), D the mean delay (baseline)",
                                         fit_time_since_memorisation),
    "test_accuracy": Predictor("ln(g - t) linear in the test accuracy's rise (baseline)",
                               lambda s: fit_regression(s, ["test_rise"])),
}  # fmt: skip


def fit_classifier(x: pd.DataFrame, label: np.ndarray):
    """P(generalises within its budget | features at m): scikit-learn's L2 logistic
    regression on the standardised features that every training run has. Returns
    `probability(features) -> [n]` (a constant when the training runs are all alike)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    label = np.asarray(label, bool)
    used = _usable(x, x.columns) or []
    if not used or label.all() or not label.any():
        share = float(label.mean()) if label.size else 0.5
        return lambda x: np.full(len(x), share)
    fitted = make_pipeline(StandardScaler(), LogisticRegression(C=1 / (RIDGE * len(x))))
    fitted.fit(x[used].to_numpy(), label)

    def probability(x: pd.DataFrame) -> np.ndarray:
        z = x[used].to_numpy()
        out = np.full(len(x), np.nan)
        ok = np.isfinite(z).all(axis=1)
        if ok.any():
            out[ok] = fitted.predict_proba(z[ok])[:, 1]
        return out

    return probability


def auroc(score: Sequence[float], label: Sequence[bool]) -> float:
    """P(score of a positive > score of a negative), ties one half (Mann-Whitney); NaN
    without both classes or scores."""
    score, label = np.asarray(score, float), np.asarray(label, bool)
    ok = np.isfinite(score)
    pos, neg = score[ok & label], score[ok & ~label]
    if not pos.size or not neg.size:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (pos.size * neg.size))


def cell_of(run: W.Run) -> tuple:
    """The run's hyperparameter cell: its run directory's settings, not its seed."""
    directory = run.name.rsplit("#", 1)[0]
    return (directory, *sorted((k, str(v)) for k, v in run.hparams.items()))


def folds(runs: Sequence[W.Run], by: str, n_cell_folds: int = CELL_FOLDS) -> list[np.ndarray]:
    """Index arrays of the held-out runs of each fold: one per seed (`by='seed'`), or
    `n_cell_folds` groups of hyperparameter cells, assigned at random with a fixed seed
    (`by='cell'`)."""
    if by == "seed":
        return W.folds_by_seed(runs)
    cells = sorted({cell_of(r) for r in runs}, key=str)
    order = np.random.default_rng(0).permutation(len(cells))
    group = {cells[j]: k % n_cell_folds for k, j in enumerate(order)}
    labels = np.array([group[cell_of(r)] for r in runs])
    return [np.flatnonzero(labels == k) for k in range(n_cell_folds) if (labels == k).any()]


def _alarm(predicted_E: np.ndarray, steps_E: np.ndarray) -> np.ndarray:
    """-ln(max(g_hat(t) - t, 1)) at every evaluation (NaN without a prediction)."""
    with np.errstate(invalid="ignore"):
        return -np.log(np.maximum(predicted_E - steps_E, 1.0))


def evaluate(runs: Sequence[W.Run], by: str = "seed") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit every predictor on the other folds and score each held-out fold.

    Returns (scores, predictions): `scores` one row per predictor, fold and prediction
    time; `predictions` one row per predictor, held-out run and time with g_hat."""
    held_out = folds(runs, by)
    if len(held_out) < 2:
        raise ConfigError(f"by={by!r} is not allowed here: {len(held_out)} fold(s), at least 2")
    table = [features(r) for r in runs]
    # every run's evaluations in one frame, so that a model predicts them all at once
    every = pd.concat(table, ignore_index=True)
    t_every = np.concatenate([r.steps.astype(float) for r in runs])
    start = np.cumsum([0] + [r.steps.size for r in runs])
    score_rows, prediction_rows = [], []
    for k, held in enumerate(held_out):
        held_set = set(held.tolist())
        train = [i for i in range(len(runs)) if i not in held_set]
        train_runs, train_table = [runs[i] for i in train], [table[i] for i in train]
        fits = {when: samples(train_runs, train_table, f) for when, f in FIT_AT.items()}
        score_rows.append(_classify(runs, table, train, held, by, k, prediction_rows))
        asked = [
            (when, i, start[i] + at_step(runs[i], step))
            for i in held
            for when, f in WHEN.items()
            if (step := plateau_step(runs[i], f)) is not None
        ]
        for name, predictor in PREDICTORS.items():
            models = {when: predictor.fit(s) for when, s in fits.items()}
            per_time = {when: [] for when in WHEN}
            for when in WHEN:
                rows = [(i, row) for w, i, row in asked if w == when]
                at = [row for _, row in rows]
                g_hat = models[when](every.iloc[at], t_every[at]) if at else []
                for (i, row), predicted in zip(rows, g_hat, strict=True):
                    run = runs[i]
                    per_time[when].append(
                        {"predictor": name, "split": by, "fold": k, "when": when,
                         "run": run.name, "seed": run.seed, "kind": run.kind,
                         "memorisation": run.memorisation, "onset": run.onset,
                         "generalisation": run.generalisation, "budget": int(run.steps[-1]),
                         "t": int(t_every[row]), "predicted": float(predicted)}
                    )  # fmt: skip
                prediction_rows += per_time[when]
            alarm = _alarm(models["alarm"](every, t_every), t_every)
            alarms = {i: alarm[start[i] : start[i + 1]] for i in range(len(runs))}
            sign, theta = W.fit_threshold(train_runs, [alarms[i] for i in train])
            held_runs = [runs[i] for i in held]
            warned, _, false = W.outcomes(held_runs, [alarms[i] for i in held], sign, theta)
            for when, rows in per_time.items():
                score_rows.append(
                    {"predictor": name, "split": by, "fold": k, "when": when}
                    | _scores(pd.DataFrame(rows), name, when)
                    | {"grokking": warned.size, "warned": warned.mean() if warned.size else np.nan,
                       "never": false.size,
                       "false_alarms": false.mean() if false.size else np.nan}
                )  # fmt: skip
    return pd.DataFrame(score_rows), pd.DataFrame(prediction_rows)


def _at_memorisation(runs, table, indices) -> tuple[pd.DataFrame, np.ndarray, list[int]]:
    """Features at m and "generalised within the budget" of the runs that memorised."""
    kept = [i for i in indices if runs[i].memorisation is not None]
    rows = [table[i].iloc[at_step(runs[i], runs[i].memorisation)].to_numpy(float) for i in kept]
    x = pd.DataFrame(np.reshape(rows, (-1, len(FEATURES))), columns=FEATURES)
    return x, np.array([runs[i].generalisation is not None for i in kept]), kept


def _classify(runs, table, train, held, by, k, prediction_rows) -> dict:
    """The classifier's fold: fitted on the training runs at m, scored on the held-out."""
    x, label, _ = _at_memorisation(runs, table, train)
    probability = fit_classifier(x, label)
    x_held, label_held, kept = _at_memorisation(runs, table, held)
    p = probability(x_held) if len(kept) else np.zeros(0)
    for i, p_i in zip(kept, p, strict=True):
        run = runs[i]
        prediction_rows.append(
            {"predictor": "classifier", "split": by, "fold": k, "when": "memorisation",
             "run": run.name, "seed": run.seed, "kind": run.kind,
             "memorisation": run.memorisation, "onset": run.onset,
             "generalisation": run.generalisation, "budget": int(run.steps[-1]),
             "t": run.memorisation, "predicted": np.nan, "p_generalise": float(p_i)}
        )  # fmt: skip
    return {"predictor": "classifier", "split": by, "fold": k, "when": "memorisation",
            "runs": len(kept), "auroc": auroc(p, label_held)}  # fmt: skip


def relative_errors(rows: pd.DataFrame) -> pd.DataFrame:
    """The delayed runs of `rows` (predictions), with their relative errors of g and of
    the delay g - m (NaN where the predictor made none)."""
    delayed = rows[rows.kind.isin(DELAYED)] if len(rows) else rows
    g, m = delayed.generalisation.astype(float), delayed.memorisation.astype(float)
    p = delayed.predicted
    return delayed.assign(error=(p - g).abs() / g, delay_error=(p - g).abs() / (g - m))


def _scores(rows: pd.DataFrame, name: str, when: str) -> dict:
    """`name`'s scores on predictions `rows` made at `when`: the delayed runs' count,
    coverage, median relative errors of g and of the delay and their delays' range, and
    the AUROC of "generalises within the budget" (the classifier's probability; another
    predictor's shorter predicted delay, at memorisation only)."""
    if not len(rows):
        keys = ("coverage", "median_error", "median_delay_error", "delay_range", "auroc")
        return {"runs": 0} | dict.fromkeys(keys, np.nan)
    e = relative_errors(rows)
    delays = (e.generalisation - e.memorisation).astype(float)
    generalised = rows.generalisation.notna()
    if name == "classifier":
        auc = auroc(rows.p_generalise, generalised)
    elif when == "memorisation":
        auc = auroc(-np.log(np.maximum(rows.predicted - rows.memorisation, 1.0)), generalised)
    else:
        auc = np.nan
    return {
        "runs": len(e),
        "coverage": np.nan if name == "classifier" or not len(e) else e.predicted.notna().mean(),
        "median_error": _median(e.error),
        "median_delay_error": _median(e.delay_error),
        "delay_range": float(delays.max() / delays.min()) if len(e) else np.nan,
        "auroc": auc,
    }


def _median(x: pd.Series) -> float:
    return float(x.median()) if x.notna().any() else np.nan


def _pooled(rate: pd.Series, count: pd.Series) -> float:
    """A share pooled over folds: sum(rate x count) / sum(count)."""
    n = count.fillna(0).sum()
    return float((rate.fillna(0) * count.fillna(0)).sum() / n) if n else np.nan


def summarise(scores: pd.DataFrame, predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per predictor, split and time: pooled medians over held-out runs (with
    the spread of the per-fold medians), coverage, AUROC (pooled; folds' sd), warned
    and false-alarm shares (pooled), and whether each target holds: median error <= 15 %
    over a delay range >= 20x, AUROC >= 0.95, warned >= 80 % with false alarms <= 10 %."""
    out = []
    for (name, split, when), rows in scores.groupby(["predictor", "split", "when"], sort=False):
        p = predictions.query("predictor == @name and split == @split and when == @when")
        pooled = _scores(p, name, when)
        error, delay_range, auc = pooled["median_error"], pooled["delay_range"], pooled["auroc"]
        warned, false = _pooled(rows.warned, rows.grokking), _pooled(rows.false_alarms, rows.never)
        n_never = int(rows.never.fillna(0).sum())
        out.append(
            {
                "predictor": name, "split": split, "when": when, "delayed runs": pooled["runs"],
                "coverage": pooled["coverage"],
                "median error": error, "error sd": rows.median_error.std(ddof=1),
                "median delay error": pooled["median_delay_error"], "delay range": delay_range,
                "auroc": auc, "auroc sd": rows.auroc.std(ddof=1),
                "grokking runs": int(rows.grokking.fillna(0).sum()), "warned": warned,
                "never runs": n_never, "false alarms": false,
                "error target": bool(error <= 0.15 and delay_range >= 20),
                "auroc target": bool(auc >= 0.95),
                "warning target": bool(warned >= 0.8 and (n_never == 0 or false <= 0.1)),
            }
        )  # fmt: skip
    return pd.DataFrame(out)
