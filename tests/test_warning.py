"""Early-warning indicators on synthetic series with known answers, the held-out split,
the concordance, and `grokjax warn` end to end on a small sweep."""

import shutil

import numpy as np
import pandas as pd
import pytest

from grokjax import cli
from grokjax.config import EvalConfig
from grokjax.stats import warning as W
from grokjax.stats.summary import events

STEPS = np.arange(0, 2001, 10)
WAITS = (100, 200, 400)


def _two_time(fn) -> dict[str, np.ndarray]:
    """msd@t_w = fn(t_w, t - t_w) for t > t_w, NaN before (as the trainer records it)."""
    out = {}
    for t_w in WAITS:
        lag = STEPS - t_w
        with np.errstate(invalid="ignore", divide="ignore"):
            out[t_w] = np.where(lag > 0, fn(t_w, np.maximum(lag, 1)), np.nan)
    return out


def test_msd_exponent_and_overlap_decay_of_power_laws():
    msd = _two_time(lambda t_w, lag: 0.01 * lag**1.5)
    overlap = _two_time(lambda t_w, lag: lag**-0.2)
    h = {f"msd@{t}": msd[t] for t in WAITS} | {f"overlap@{t}": overlap[t] for t in WAITS}
    alpha, beta = W.msd_exponent(STEPS, h), W.overlap_decay(STEPS, h)
    ready = STEPS >= 100 + 10 * W.WINDOW
    np.testing.assert_allclose(alpha[ready], 1.5, rtol=1e-6)
    np.testing.assert_allclose(beta[ready], 0.2, rtol=1e-6)
    assert np.isnan(alpha[~ready]).all()  # no waiting time has a full window behind it


def test_ageing_index_recovers_the_waiting_time_exponent():
    for mu in (0.0, 0.7):
        msd = _two_time(lambda t_w, lag, mu=mu: lag * t_w**-mu)
        index = W.ageing_index(STEPS, {f"msd@{t}": msd[t] for t in WAITS})
        late = STEPS > 420
        np.testing.assert_allclose(index[late], mu, atol=1e-6)
        assert np.isnan(index[STEPS <= 200]).all()  # needs two waiting times before t


def test_weight_norm_trend_and_effective_temperature():
    h = {"weight_norm": 40.0 * np.exp(-0.002 * STEPS)}
    trend = W.weight_norm_trend(STEPS, h)
    np.testing.assert_allclose(trend[W.WINDOW - 1 :], -0.2, rtol=1e-6)  # per 100 steps
    eta, kT = 3e-3, 0.25
    msd = _two_time(lambda t_w, lag: 2 * eta * kT * lag)
    temp = W.effective_temperature(STEPS, {f"msd@{t}": msd[t] for t in WAITS}, eta)
    np.testing.assert_allclose(temp[STEPS >= 200], kT, rtol=1e-6)


def test_effective_temperature_prefers_the_recorded_kinetic_temperature():
    rng = np.random.default_rng(2)
    run = _run("w", 0, memorisation=100, onset=600, generalisation=900, rng=rng)
    kinetic = 0.5 + 0.01 * rng.normal(size=STEPS.size)
    run = run._replace(optimizer="wand", histories={**run.histories, "kinetic_kT": kinetic})
    temp = W.indicators(run)["effective_temperature"]
    np.testing.assert_allclose(temp[W.WINDOW - 1 :], 0.5, atol=0.01)
    np.testing.assert_allclose(temp[W.WINDOW - 1], kinetic[: W.WINDOW].mean())
    assert np.isnan(temp[: W.WINDOW - 1]).all()


def test_changes_since_memorisation_and_the_baselines():
    rng = np.random.default_rng(3)
    run = _run("c", 0, memorisation=100, onset=600, generalisation=900, rng=rng)
    h = {**run.histories, "gini_embed": np.where(STEPS >= 350, 0.3, 0.1)}
    out = W.indicators(run._replace(histories=h))
    np.testing.assert_allclose(out["gini_embed_change"][STEPS >= 350], np.log(3.0))
    np.testing.assert_allclose(out["gini_embed_change"][(STEPS >= 100) & (STEPS < 350)], 0.0)
    np.testing.assert_array_equal(out["time_since_memorisation"], STEPS - 100.0)
    np.testing.assert_allclose(out["test_accuracy_rise"], run.histories["test_acc"] - 0.1)


def test_indicators_read_only_the_past():
    rng = np.random.default_rng(0)
    run = _run("a", 0, memorisation=100, onset=600, generalisation=900, rng=rng)
    before = W.indicators(run)
    e = 50
    changed = {k: v.copy() for k, v in run.histories.items()}
    for v in changed.values():
        v[e + 1 :] = rng.normal(size=v.size - e - 1)
    after = W.indicators(run._replace(histories=changed))
    for name in before:
        np.testing.assert_array_equal(before[name][: e + 1], after[name][: e + 1], err_msg=name)


def test_events_and_kinds():
    train = (STEPS >= 100).astype(float)
    test = np.where(STEPS >= 600, np.minimum(1.0, 0.1 + (STEPS - 600) / 300), 0.1)
    e = events(STEPS, {"train_acc": train, "test_acc": test}, EvalConfig())
    m, plateau, onset, g = e.memorisation, e.plateau, e.onset, e.generalisation
    # the final rise starts at 600; the log-time slope's window (+-5 %) reads it at 580
    assert (m, plateau, onset, g) == (100, 0.1, 580, 870)  # 0.1 + 270 / 300 = 1
    assert e.halfway == 740  # 0.1 + (0.99 - 0.1) / 2 = 0.545, reached at 600 + 133.5
    assert W.kind_of(m, onset, g, e.halfway) == "grokking"
    assert W.kind_of(100, 120, 150, 130) == "prompt"
    assert W.kind_of(100, 150, 900, 500) == "no plateau"  # final rise 50 steps after m
    assert W.kind_of(100, None, None, None) == "never"
    assert W.kind_of(100, None, None, 700) == "slow"
    assert W.kind_of(None, None, None, None) == "confused"


def test_concordance_against_a_hand_computed_case_with_censoring():
    # times 100 (event), 200 (censored), 300 (event), 400 (censored); risks 0.9, 0.1, 0.5, 0.6
    risk, time, seen = [0.9, 0.1, 0.5, 0.6], [100, 200, 300, 400], [True, False, True, False]
    # Comparable pairs (earlier time observed): (1,2) (1,3) (1,4) (3,4); none starts at a
    # censored time. Concordant: 0.9 > 0.1, 0.9 > 0.5, 0.9 > 0.6; 0.5 < 0.6 is not.
    assert W.concordance(risk, time, seen) == pytest.approx(3 / 4)
    assert W.concordance([0.5, 0.5], [1, 2], [True, True]) == pytest.approx(0.5)
    assert np.isnan(W.concordance([1.0, 2.0], [1, 2], [False, False]))


def _run(name, seed, memorisation, onset, generalisation, rng, warn_lead=300, kind=None):
    """A synthetic run whose gini_embed steps up `warn_lead` steps before its onset (a
    perfect early warning) and whose other metrics are noise."""
    train = (STEPS >= memorisation).astype(float)
    test = np.full(STEPS.size, 0.1)
    if onset is not None:
        end = generalisation or STEPS[-1] + 1000
        test = np.where(
            STEPS >= onset, np.minimum(1.0, 0.16 + (STEPS - onset) / (end - onset)), 0.1
        )
    gini = np.full(STEPS.size, 0.1)
    if onset is not None:
        gini = np.where(STEPS >= onset - warn_lead, 0.3, 0.1)
    h = {
        "train_acc": train,
        "test_acc": test,
        "weight_norm": 40 + rng.normal(size=STEPS.size),
        "gini_embed": gini + 0.001 * rng.normal(size=STEPS.size),
        "excluded_loss": np.exp(rng.normal(size=STEPS.size)),
    }
    e = events(STEPS, {"train_acc": train, "test_acc": test}, EvalConfig())
    m, plateau, on, g = e.memorisation, e.plateau, e.onset, e.generalisation
    on = on if g is not None else onset  # a censored run has no final rise: keep the given
    return W.Run(
        name,
        seed,
        {"learning_rate": 1e-3},
        "adamw",
        STEPS,
        h,
        m,
        plateau,
        on,
        g,
        kind or W.kind_of(m, on, g, e.halfway),
    )


def _ensemble(n_seeds=4):
    rng = np.random.default_rng(1)
    runs = []
    for seed in range(n_seeds):
        for j, onset in enumerate((500, 800, 1100)):
            runs.append(_run(f"g{seed}{j}", seed, 100, onset, onset + 400, rng))
        for j in range(2):
            runs.append(_run(f"n{seed}{j}", seed, 100, None, None, rng))
    return runs


def test_perfect_indicator_warns_every_held_out_run_and_noise_does_not(monkeypatch):
    runs = _ensemble()
    seen_by_fit = []
    fit = W.fit_threshold

    def recording_fit(train_runs, scores, *args, **kwargs):
        seen_by_fit.append({r.seed for r in train_runs})
        return fit(train_runs, scores, *args, **kwargs)

    monkeypatch.setattr(W, "fit_threshold", recording_fit)
    folds, alarms = W.evaluate(runs)
    # The held-out split: a fold's thresholds never saw the seed it is scored on.
    for (_, row), seeds in zip(folds.iterrows(), seen_by_fit, strict=True):
        assert row.seed not in seeds and len(seeds) == 3
    assert set(alarms.groupby(["indicator", "run"]).size()) == {1}  # each run scored once
    summary = W.summarise(folds).set_index("indicator")
    good = summary.loc["gini_embed_change"]
    assert good.warned == 1.0 and good["false alarms"] == 0.0 and good["target met"]
    # the step-up leads the true onset by 300; the onset is read through a +-5 % window
    assert good["median lead"] == pytest.approx(300, abs=50)
    assert summary.loc["excluded_loss_change"].warned < 0.5
    # The test accuracy itself cannot warn: it rises at the onset, not before.
    assert summary.loc["test_accuracy_rise"].warned == 0.0


def test_fewer_than_two_seeds_is_refused():
    with pytest.raises(W.ConfigError, match="seeds"):
        W.evaluate(_ensemble(n_seeds=1))


def test_warn_command_on_a_small_sweep(tmp_path, capsys):
    """Two seeds of a tiny grid through `grokjax sweep`, then `grokjax warn`."""
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--out",
        str(out),
        "--no-progress",
        "--no-report",
        "--seeds",
        "2",
        "--steps",
        "300",
        "--preset",
        "early-warning-add",
        "--grid",
        "none",
        "--grid",
        "learning_rate=3e-3,1e-2",
        "--grid",
        "weight_decay=1.0",
        "--set",
        "data.modulus=11",
        "--set",
        "data.train_fraction=0.6",
        "--set",
        "eval.every=10",
        "--set",
        "eval.waiting_times=50,100",
        "--set",
        "eval.progress_frequencies=2",
        "--set",
        "model.d_model=32",
        "--set",
        "model.d_mlp=64",
    ]
    assert cli.main(args) == 0
    capsys.readouterr()
    assert cli.main(["warn", str(out), "--window", "5", "--early-step", "100"]) == 0
    printed = capsys.readouterr().out
    assert "| indicator |" in printed and "gini_embed_change" in printed
    summary = pd.read_csv(out / "warning" / "summary.csv")
    assert {"msd_exponent", "ageing_index", "restricted_loss_change"} <= set(summary.indicator)
    runs = pd.read_csv(out / "warning" / "runs.csv")
    assert len(runs) == 4 and set(runs.seed) == {0, 1}
    assert (out / "warning" / "warning.png").stat().st_size > 1000
    # The same runs through `grokjax predict`: every predictor, both splits, its files.
    assert cli.main(["predict", str(out)]) == 0
    assert "| predictor |" in capsys.readouterr().out
    predicted = pd.read_csv(out / "prediction" / "summary.csv")
    assert {"norm_law", "features", "classifier"} <= set(predicted.predictor)
    assert set(predicted.split) == {"seed", "cell"}
    assert (out / "prediction" / "predicted.png").stat().st_size > 1000
    # Several directories are pooled, their runs told apart by the directory's name.
    shutil.copytree(out, tmp_path / "again", ignore=shutil.ignore_patterns("warning"))
    assert cli.main(["warn", str(out), str(tmp_path / "again"), "--out", str(tmp_path / "w")]) == 0
    pooled = pd.read_csv(tmp_path / "w" / "runs.csv")
    assert len(pooled) == 8 and pooled.run.nunique() == 8


def test_warn_bad_input_is_one_line_and_status_2(tmp_path, capsys):
    assert cli.main(["warn", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs_dir=" in err
    assert cli.main(["warn", str(tmp_path), "--window", "1"]) == 2
    assert "window=1" in capsys.readouterr().err
    assert cli.main(["predict", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "runs_dir=" in err
    assert not (tmp_path / "missing").exists()
