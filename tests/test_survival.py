import doctest

import numpy as np
import pandas as pd
import pytest

import grokjax.stats.survival
from grokjax.host.sweep import survival_figure
from grokjax.stats.survival import from_censored_steps, kaplan_meier, median_survival


def test_kaplan_meier_matches_a_hand_computed_table():
    # times    3  5  5  8  10  12
    # observed 1  1  0  1   0   1     (the seed censored at 5 is still at risk at 5)
    table = kaplan_meier([3, 5, 5, 8, 10, 12], [1, 1, 0, 1, 0, 1])
    expected = pd.DataFrame(
        {
            "time": [3.0, 5.0, 8.0, 10.0, 12.0],
            "at_risk": [6, 5, 3, 2, 1],
            "events": [1, 1, 1, 0, 1],
            "censored": [0, 1, 0, 1, 0],
            "survival": [
                5 / 6,
                5 / 6 * 4 / 5,  # 2/3
                5 / 6 * 4 / 5 * 2 / 3,  # 4/9
                5 / 6 * 4 / 5 * 2 / 3,  # no event at 10
                0.0,
            ],
        }
    )
    pd.testing.assert_frame_equal(table[expected.columns], expected, check_dtype=False)
    # Greenwood at t=8: S^2 * (1/(6*5) + 1/(5*4) + 1/(3*2)) = (16/81) * (1/4) = 4/81.
    assert table["std_err"].iloc[2] == pytest.approx(2 / 9)
    # Undefined once S reaches 0 (n = d at t=12).
    assert np.isnan(table["std_err"].iloc[-1])
    assert median_survival(table) == 8.0


def test_all_censored_data_survive_with_a_censored_median():
    table = kaplan_meier([100, 100, 100], [False, False, False])
    assert table["survival"].tolist() == [1.0]
    assert table["std_err"].tolist() == [0.0]
    assert (table["at_risk"].iloc[0], table["censored"].iloc[0]) == (3, 3)
    assert median_survival(table) is None


def test_uncensored_data_give_the_empirical_curve_and_a_median_at_exactly_one_half():
    times = np.arange(1, 21)
    table = kaplan_meier(times, np.ones(20, bool))
    s = 1 - times / 20
    np.testing.assert_allclose(table["survival"], s, atol=1e-12)
    # Without censoring Greenwood reduces to the binomial variance S(1 - S) / n.
    np.testing.assert_allclose(table["std_err"][:-1], np.sqrt(s * (1 - s) / 20)[:-1], rtol=1e-9)
    assert median_survival(table) == 10.0  # S(10) = 0.5 exactly


def test_ties_between_events_and_censorings_put_events_first():
    # Two at risk at 4: one event there, one censored there -> S(4) = 1/2, not 0.
    table = kaplan_meier([4, 4], [1, 0])
    assert table[["at_risk", "events", "censored"]].values.tolist() == [[2, 1, 1]]
    assert table["survival"].tolist() == [0.5]


def test_censored_steps_become_times_at_the_budget():
    times, observed = from_censored_steps([100, None, float("nan"), 30], budget=500)
    assert times.tolist() == [100.0, 500.0, 500.0, 30.0]
    assert observed.tolist() == [True, False, False, True]


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="one length"):
        kaplan_meier([1, 2], [1])
    with pytest.raises(ValueError, match="non-negative"):
        kaplan_meier([-1, 2], [1, 1])


def test_docstring_examples():
    result = doctest.testmod(grokjax.stats.survival)
    assert result.attempted > 0 and result.failed == 0


def test_survival_figure_writes_a_png(tmp_path):
    groups = {
        "adamw": from_censored_steps([300, 450, None, 800], budget=1000),
        "wand": ([200, 250, 600, 1000], [1, 1, 1, 0]),
    }
    path = survival_figure(groups, tmp_path / "km.png", "generalisation")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1024
    assert [p.name for p in tmp_path.iterdir()] == ["km.png"]  # no temporary left behind
