"""Grokking measured in log time: a separation of time scales, per member, with censoring.

A single accuracy threshold confuses "no plateau" with "a noisy ceiling": a run whose
train and test accuracy rise together but whose test accuracy then hovers at 98.5 %
never reaches 99 %, while a run that sits at 50 % test for a decade after memorising
reaches it. These measures look at the whole curves on the logarithmic time axis.

- **Grokking area** A, in decades: the area between the train and the test accuracy
  curves over log10(step), where train is ahead,

      A = integral of max(acc_train(t) - acc_test(t), 0) d log10 t,

  by the trapezoid rule over the evaluation steps t > 0 (step 0 has no logarithm). It is
  zero when the two rise together; a plateau of test accuracy 0.5 below train accuracy 1
  for one decade adds 0.5. It is **censored** (None: "more than the budget shows") when
  the member never memorises (train accuracy never reaches the memorise threshold), or
  when the curves have not met by its last evaluation: the final gap exceeds
  `EvalConfig.area_gap` (0.05), so more area would come. A diverged member counts only
  its evaluations before the divergence. The grid matters: integrals over different
  evaluation grids differ by the resolution of the first decade; compare runs on the
  same grid.
- **Generalisation ratio** at a test threshold theta: g(theta) / m, the first step with
  test accuracy >= theta over the memorisation step m (train accuracy >= the memorise
  threshold); log10 of it is the delay in decades. Censored when g(theta) is (the ratio
  exceeds budget / m) or when m is (no memorisation, no ratio). At theta = 0.5, 0.9, 0.99
  (`RATIO_THRESHOLDS`).
- **Test accuracy at memorisation**: test accuracy at the evaluation of step m (None
  when the member never memorises); near chance for a grokking run, near train accuracy
  when the two rise together.
"""

from __future__ import annotations

import numpy as np

RATIO_THRESHOLDS = (0.5, 0.9, 0.99)


def ratio_name(threshold: float) -> str:
    """The summary field of the ratio at `threshold`: 'generalisation_ratio@0.9'."""
    return f"generalisation_ratio@{threshold:g}"


def gap_area(train_E: np.ndarray, test_E: np.ndarray, steps_E: np.ndarray) -> float:
    """The trapezoid integral of max(train - test, 0) over log10(step), steps > 0, in decades."""
    steps_E = np.asarray(steps_E, np.float64)
    positive = steps_E > 0
    gap = np.maximum(np.asarray(train_E, np.float64) - np.asarray(test_E, np.float64), 0.0)
    gap, x = gap[positive], np.log10(steps_E[positive])
    if x.size < 2:
        return 0.0
    return float(np.sum(0.5 * (gap[1:] + gap[:-1]) * np.diff(x)))


def area_until(
    train_E: np.ndarray, test_E: np.ndarray, steps_E: np.ndarray, step: int | None
) -> float | None:
    """The part of `gap_area` over the evaluations up to `step` (inclusive), in decades:
    differences of it split the area into phases, e.g. before memorisation, from there to
    90 % test, after. None for a censored (None) step.

    Example:
        >>> steps = np.array([0, 10, 100, 1000])
        >>> area_until([0, 1, 1, 1], [0, 0.5, 0.5, 1], steps, 100)  # the first decade
        0.5
    """
    if step is None:
        return None
    keep = np.asarray(steps_E) <= step
    return gap_area(np.asarray(train_E)[keep], np.asarray(test_E)[keep], np.asarray(steps_E)[keep])


def grokking_area(
    train_E: np.ndarray,
    test_E: np.ndarray,
    steps_E: np.ndarray,
    *,
    memorise_threshold: float,
    area_gap: float,
) -> float | None:
    """The grokking area in decades, or None (censored) if the member never memorises or
    its final gap train - test exceeds `area_gap` (see the module docstring).

    Example:
        >>> steps = np.array([0, 10, 100, 1000])
        >>> grokking_area([0, 1, 1, 1], [0, 0.5, 0.5, 1], steps,
        ...               memorise_threshold=0.99, area_gap=0.05)  # 0.5 + 0.25 decades
        0.75
    """
    train_E, test_E = np.asarray(train_E, np.float64), np.asarray(test_E, np.float64)
    if train_E.size == 0 or not np.any(train_E >= memorise_threshold):
        return None
    if train_E[-1] - test_E[-1] > area_gap:
        return None
    return gap_area(train_E, test_E, steps_E)


def generalisation_ratio(memorisation: int | None, generalisation: int | None) -> float | None:
    """g / m, or None (censored) when either step is censored."""
    if memorisation is None or generalisation is None:
        return None
    return generalisation / max(memorisation, 1)


def value_at_step(values_E: np.ndarray, steps_E: np.ndarray, step: int | None) -> float | None:
    """The value recorded at evaluation step `step` (None for None)."""
    if step is None:
        return None
    return float(np.asarray(values_E)[int(np.searchsorted(steps_E, step))])


ONSET_SLOPE = 0.25  # of the final rise's steepest log-time slope
ONSET_WINDOW = 0.05  # half-width, in ln step, of the slope's centred difference


def final_rise_onset(
    test_E: np.ndarray, steps_E: np.ndarray, memorisation: int | None, generalisation: int | None
) -> int | None:
    """The start of the test accuracy's final rise, read in log time (None when the
    member has not memorised or not generalised).

    On the log-step axis u = ln t, between m and g, the test accuracy's slope da/du is
    taken as a centred difference over u +- `ONSET_WINDOW` (0.05, about 5 % in steps) of
    the curve interpolated between evaluations, on a grid of 0.01 in u. The final rise
    is where that slope peaks (its last maximum); the onset is the last step before the
    peak at which the slope was below `ONSET_SLOPE` (a quarter) of the peak, rounded down
    to an evaluation, and not before m. A slow drift of the plateau (0.44 to 0.55 over a
    decade, a slope near 0.05) stays below a quarter of a grokking rise's slope (near
    1), so it is not the onset, as a "first step 5 points above the plateau" rule would
    make it; a rise that is steep from m on gives m.
    """
    if memorisation is None or generalisation is None:
        return None
    steps_E = np.asarray(steps_E, np.int64)
    test_E = np.asarray(test_E, np.float64)
    i_m = int(np.searchsorted(steps_E, memorisation))
    i_g = int(np.searchsorted(steps_E, generalisation))
    if i_g <= i_m or steps_E[i_m] <= 0:
        return int(memorisation)
    u_E = np.log(steps_E[i_m : i_g + 1].astype(np.float64))
    a_E = test_E[i_m : i_g + 1]
    grid = np.arange(u_E[0], u_E[-1] + 1e-9, 0.01)
    slope = (
        np.interp(grid + ONSET_WINDOW, u_E, a_E) - np.interp(grid - ONSET_WINDOW, u_E, a_E)
    ) / (2 * ONSET_WINDOW)
    peak = len(slope) - 1 - int(np.argmax(slope[::-1]))
    flat = np.flatnonzero(slope[:peak] < ONSET_SLOPE * slope[peak])
    if not flat.size or slope[peak] <= 0:
        return int(memorisation)
    i_on = i_m + int(np.searchsorted(u_E, grid[flat[-1]] + 1e-12, side="right")) - 1
    return int(steps_E[max(i_on, i_m)])
