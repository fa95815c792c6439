import doctest

import numpy as np
import pandas as pd
import pytest

import grokjax.stats.logtime
from grokjax.config import EvalConfig
from grokjax.stats.logtime import (
    area_until,
    gap_area,
    generalisation_ratio,
    grokking_area,
    value_at_step,
)
from grokjax.stats.phases import classify_cell, classify_seed, seed_steps
from grokjax.stats.summary import ensemble_summary, format_table

STEPS = np.array([0, 10, 100, 1000, 10_000])
AREA = {"memorise_threshold": 0.99, "area_gap": 0.05}


def test_docstring_examples_run():
    result = doctest.testmod(grokjax.stats.logtime)
    assert result.attempted > 0 and result.failed == 0


def test_area_of_curves_that_rise_together_is_zero():
    rise = np.array([0.0, 0.3, 0.9, 1.0, 1.0])
    assert grokking_area(rise, rise, STEPS, **AREA) == 0.0


def test_area_of_a_plateau_by_hand():
    # train 1 from step 10; test 0.5 at 10 and 100, 1 from 1000:
    # decades 1-2: gap 0.5 -> 0.5; decade 2-3: 0.5 -> 0 (trapezoid 0.25); 3-4: 0
    train = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    test = np.array([0.0, 0.5, 0.5, 1.0, 1.0])
    assert grokking_area(train, test, STEPS, **AREA) == pytest.approx(0.75)
    # step 0 has no logarithm: its value does not count
    assert grokking_area(train, np.r_[-5.0, test[1:]], STEPS, **AREA) == pytest.approx(0.75)


def test_area_counts_only_where_train_is_ahead():
    train = np.array([0.0, 0.2, 1.0, 1.0, 1.0])
    test = np.array([0.0, 0.6, 0.8, 1.0, 1.0])  # test ahead in decade 1-2's start
    # gaps max(train - test, 0): 0, 0.2, 0, 0 -> 0.5 * 0.2 over decade 1-2, 0.1 over 2-3
    assert grokking_area(train, test, STEPS, **AREA) == pytest.approx(0.2)
    assert gap_area(train, test, STEPS) == pytest.approx(0.2)


def test_area_split_into_phases_adds_up():
    train = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    test = np.array([0.0, 0.5, 0.5, 1.0, 1.0])
    cuts = [area_until(train, test, STEPS, s) for s in (10, 100, 1000, 10_000)]
    assert cuts == pytest.approx([0.0, 0.5, 0.75, 0.75])  # by hand, as above
    assert cuts[-1] == pytest.approx(gap_area(train, test, STEPS))
    assert area_until(train, test, STEPS, None) is None


def test_area_is_uneven_steps_aware():
    steps = np.array([10, 20, 1000])
    train, test = np.ones(3), np.array([0.0, 0.0, 1.0])
    expected = np.log10(2) * 1.0 + 0.5 * np.log10(50)
    assert grokking_area(train, test, steps, **AREA) == pytest.approx(expected)


def test_area_is_censored_when_curves_have_not_met_or_train_never_memorises():
    train = np.array([0.0, 1.0, 1.0, 1.0, 1.0])
    open_gap = np.array([0.0, 0.1, 0.2, 0.5, 0.9])  # final gap 0.1 > 0.05
    assert grokking_area(train, open_gap, STEPS, **AREA) is None
    near = np.array([0.0, 0.1, 0.2, 0.5, 0.96])  # final gap 0.04: met
    assert grokking_area(train, near, STEPS, **AREA) is not None
    never = np.array([0.0, 0.1, 0.2, 0.3, 0.3])
    assert grokking_area(never, never, STEPS, **AREA) is None


def test_ratio_and_test_accuracy_at_memorisation():
    assert generalisation_ratio(60, 540) == 9.0
    assert generalisation_ratio(60, None) is None
    assert generalisation_ratio(None, 540) is None
    assert value_at_step([0.1, 0.2, 0.7], np.array([0, 10, 20]), 10) == pytest.approx(0.2)
    assert value_at_step([0.1, 0.2, 0.7], np.array([0, 10, 20]), None) is None


def _histories():
    """Three members: a grokking one, one rising together, one never generalising."""
    train = np.array(
        [
            [0.0, 1.0, 1.0, 1.0, 1.0],
            [0.0, 0.3, 1.0, 1.0, 1.0],
            [0.0, 1.0, 1.0, 1.0, 1.0],
        ]
    )
    test = np.array(
        [
            [0.0, 0.5, 0.5, 1.0, 1.0],
            [0.0, 0.3, 1.0, 1.0, 1.0],
            [0.0, 0.1, 0.1, 0.1, 0.1],
        ]
    )
    ones = np.ones_like(train)
    return {"train_acc": train, "test_acc": test, "train_loss": ones, "weight_norm": ones}


def test_summary_reports_area_ratios_and_their_censoring():
    summary = ensemble_summary(_histories(), STEPS, EvalConfig(), [0, 1, 2])
    grok, together, never = summary.members
    assert grok["grokking_area"] == pytest.approx(0.75)
    assert together["grokking_area"] == 0.0
    assert never["grokking_area"] is None
    assert grok["generalisation_ratio@0.5"] == 1.0  # 0.5 test at step 10 = m
    assert grok["generalisation_ratio@0.99"] == 100.0  # 1000 / 10
    assert together["generalisation_ratio@0.99"] == 1.0
    assert never["generalisation_ratio@0.9"] is None
    assert grok["test_acc_at_memorisation"] == pytest.approx(0.5)
    area = summary.ensemble["grokking_area"]
    assert (area.n, area.n_censored, area.median) == (3, 1, pytest.approx(0.75))
    assert "area/dec" in format_table(summary)


def test_log_time_phase_rule_reads_the_area():
    assert classify_seed(10, 1000, rule="log-time", area=0.75) == "grokking"
    assert classify_seed(10, None, rule="log-time", area=0.05) == "comprehension"
    assert classify_seed(10, 1000, rule="log-time", area=None) == "memorisation"
    assert classify_seed(None, None, rule="log-time", area=0.0) == "confusion"
    # Liu's rule on the same seed: a delay of 990 steps after m = 10 is grokking
    assert classify_seed(10, 1000) == "grokking"
    cell = classify_cell([10, 10, 10], [1000, 20, None], rule="log-time", areas=[0.75, 0.0, 0.02])
    assert cell.phase == "comprehension" and cell.fractions["grokking"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="rule='area'"):
        classify_seed(10, 20, rule="area")


def test_seed_steps_gives_the_same_measures_as_the_summary():
    h = _histories()
    rows = [
        {
            "member": m,
            "seed": m,
            "step": int(s),
            "train_acc": h["train_acc"][m, e],
            "test_acc": h["test_acc"][m, e],
        }
        for m in range(3)
        for e, s in enumerate(STEPS)
    ]
    table = seed_steps(pd.DataFrame(rows))
    summary = ensemble_summary(h, STEPS, EvalConfig(), [0, 1, 2])
    for m, member in enumerate(summary.members):
        for column in ("grokking_area", "generalisation_ratio@0.9", "test_acc_at_memorisation"):
            expected = member[column]
            got = table[column].iloc[m]
            assert (np.isnan(got) and expected is None) or got == pytest.approx(expected)
