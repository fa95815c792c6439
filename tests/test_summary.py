import numpy as np
import pytest

from grokjax.config import Config
from grokjax.stats.summary import censored_stats, first_crossing, member_summary


def test_first_crossing_and_censoring():
    steps = np.array([0, 10, 20, 30])
    assert first_crossing(np.array([0.1, 0.5, 0.995, 0.2]), steps, 0.99) == 20
    assert first_crossing(np.array([0.1, 0.5, 0.9, 0.98]), steps, 0.99) is None


def test_member_summary_delay_and_censored_generalisation():
    cfg = Config(steps=30, **{"data.modulus": 11})
    steps = np.array([0, 10, 20, 30])
    hist = {
        "train_acc": np.array([0.0, 1.0, 1.0, 1.0]),
        "test_acc": np.array([0.0, 0.2, 0.995, 1.0]),
        "weight_norm": np.array([40.0, 41.0, 35.0, 30.0]),
    }
    row = member_summary(hist, steps, cfg.eval)
    assert (row["memorisation_step"], row["generalisation_step"], row["grokking_delay"]) == (
        10,
        20,
        10,
    )
    assert row["weight_norm_at_generalisation"] == 35.0
    hist["test_acc"] = np.array([0.0, 0.2, 0.5, 0.6])
    row = member_summary(hist, steps, cfg.eval)
    assert row["generalisation_step"] is None and row["grokking_delay"] is None


def test_censored_stats_treat_censored_as_beyond_the_budget():
    stats = censored_stats([100, 300, 200, None])
    assert stats["n_censored"] == 1
    assert stats["median"] == 250.0  # the two middle values, 200 and 300, are observed
    assert stats["q25"] == pytest.approx(175.0)
    assert stats["q75"] is None  # falls between 300 and a censored member
    assert stats["min"] == 100 and stats["max"] is None
    assert censored_stats([None, None, 5])["median"] is None
    assert censored_stats([1, 2, 3])["median"] == 2.0


def test_eval_schedule_holds_zero_final_cadence_and_log_points():
    cfg = Config(steps=1000, **{"data.modulus": 11, "eval.every": 250, "eval.log_points": 4})
    assert cfg.eval_steps.tolist() == [0, 1, 10, 100, 250, 500, 750, 1000]
