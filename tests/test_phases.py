import doctest

import numpy as np
import pandas as pd
import pytest

import grokjax.stats.phases
from grokjax.host.sweep import phase_diagram
from grokjax.stats.phases import PHASES, classify_cell, classify_seed, phase_table
from grokjax.stats.summary import first_crossing

STEPS = np.arange(0, 2001, 50)
THRESHOLD = 0.99  # Config's memorise and generalise thresholds


def _ramp(start: int, stop: int, low: float, high: float) -> np.ndarray:
    """Accuracy per evaluation: `low` until `start`, linear to `high` at `stop`, then flat."""
    return low + (high - low) * np.clip((STEPS - start) / (stop - start), 0.0, 1.0)


# Synthetic (train_acc, test_acc) histories, one per phase.
HISTORIES = {
    # memorises at 300, generalises at 350: delay 50 <= max(100, 75)
    "comprehension": (_ramp(0, 300, 0.0, 1.0), _ramp(0, 350, 0.0, 1.0)),
    # memorises at 200, test accuracy sits at 0.3 until 1200 and reaches 1 at 1500
    "grokking": (_ramp(0, 200, 0.0, 1.0), _ramp(1200, 1500, 0.3, 1.0)),
    # memorises at 200, test accuracy levels off at 0.4
    "memorisation": (_ramp(0, 200, 0.0, 1.0), _ramp(0, 400, 0.0, 0.4)),
    # train accuracy levels off at 0.985, just short of the 0.99 threshold
    "confusion": (_ramp(0, 800, 0.0, 0.985), _ramp(0, 800, 0.0, 0.1)),
}


def _steps(history):
    train_acc, test_acc = history
    return first_crossing(train_acc, STEPS, THRESHOLD), first_crossing(test_acc, STEPS, THRESHOLD)


@pytest.mark.parametrize("phase", PHASES)
def test_synthetic_histories_land_in_their_phase(phase):
    m, g = _steps(HISTORIES[phase])
    assert classify_seed(m, g) == phase


def test_synthetic_first_crossings():
    assert [_steps(HISTORIES[p]) for p in PHASES] == [
        (300, 350),
        (200, 1500),
        (200, None),
        (None, None),
    ]


@pytest.mark.parametrize(
    "m, g, phase",
    [
        (100, 200, "comprehension"),  # delay 100 = min_delay
        (100, 201, "grokking"),
        (1000, 1250, "comprehension"),  # delay 250 = 0.25 * m
        (1000, 1251, "grokking"),
        (500, 300, "comprehension"),  # generalises first
        (500, None, "memorisation"),
        (500, float("nan"), "memorisation"),
        (None, 300, "confusion"),  # no memorisation wins over everything
        (np.nan, None, "confusion"),
    ],
)
def test_seed_rule_boundaries(m, g, phase):
    assert classify_seed(m, g) == phase


def test_seed_rule_parameters():
    assert classify_seed(100, 160, min_delay=50, delay_fraction=0.0) == "grokking"
    assert classify_seed(1000, 1500, delay_fraction=0.5) == "comprehension"


def test_cell_takes_the_most_common_phase_with_fractions():
    cell = classify_cell([200, 200, 200, 300], [1500, 1600, 1700, 350])
    assert cell.phase == "grokking"
    assert cell.fractions == {
        "comprehension": 0.25,
        "grokking": 0.75,
        "memorisation": 0.0,
        "confusion": 0.0,
    }
    assert cell.n_seeds == 4
    # A plurality is enough: 2 of 5 memorise, the others split.
    cell = classify_cell([200, 200, 200, 300, None], [None, None, 1500, 350, None])
    assert (cell.phase, cell.fractions["memorisation"]) == ("memorisation", 0.4)


@pytest.mark.parametrize(
    "ms, gs, phase",
    [
        ([300, 300, 200, 200], [350, 360, 1500, 1500], "grokking"),  # 2 comprehension, 2 grokking
        ([200, 200, None, None], [None, None, None, None], "confusion"),  # 2 memorise, 2 confused
        ([300, 200], [350, None], "memorisation"),  # 1 comprehension, 1 memorisation
        ([300, 200, 200, None], [350, 1500, None, None], "confusion"),  # one of each
    ],
)
def test_cell_ties_go_to_the_slower_phase(ms, gs, phase):
    assert classify_cell(ms, gs).phase == phase


def test_empty_cell_is_rejected():
    with pytest.raises(ValueError, match="at least one seed"):
        classify_cell([], [])


def _metrics_frame():
    """metrics.parquet-shaped rows for a 2x2 (learning_rate, weight_decay) grid x 3 seeds."""
    grid = {
        (1e-4, 0.0): ["confusion", "confusion", "memorisation"],
        (1e-4, 1.0): ["memorisation", "memorisation", "grokking"],
        (1e-2, 0.0): ["grokking", "comprehension", "grokking"],
        (1e-2, 1.0): ["comprehension", "comprehension", "grokking"],
    }
    frames = []
    for (lr, wd), phases in grid.items():
        for seed, phase in enumerate(phases):
            train_acc, test_acc = HISTORIES[phase]
            frames.append(
                pd.DataFrame(
                    {
                        "member": seed,
                        "seed": seed,
                        "learning_rate": lr,
                        "weight_decay": wd,
                        "temperature": 0.5,
                        "friction": 0.5,
                        "step": STEPS,
                        "train_acc": train_acc,
                        "test_acc": test_acc,
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def test_phase_diagram_writes_a_png_and_returns_the_cells(tmp_path):
    path = tmp_path / "phases.png"
    cells = phase_diagram(_metrics_frame(), "learning_rate", "weight_decay", path, "sweep")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 1024
    assert [p.name for p in tmp_path.iterdir()] == ["phases.png"]
    got = {(r.learning_rate, r.weight_decay): (r.phase, r.fraction) for r in cells.itertuples()}
    assert got == {
        (1e-4, 0.0): ("confusion", pytest.approx(2 / 3)),
        (1e-4, 1.0): ("memorisation", pytest.approx(2 / 3)),
        (1e-2, 0.0): ("grokking", pytest.approx(2 / 3)),
        (1e-2, 1.0): ("comprehension", pytest.approx(2 / 3)),
    }
    np.testing.assert_allclose(cells[list(PHASES)].sum(axis=1), 1.0)
    assert (cells["n_seeds"] == 3).all()


def test_phase_table_from_a_per_seed_table():
    seeds = pd.DataFrame(
        {
            "lr": [1.0, 1.0, 2.0],
            "wd": [0.1, 0.1, 0.1],
            "memorisation_step": [100.0, np.nan, 100.0],
            "generalisation_step": [150.0, np.nan, np.nan],
        }
    )
    cells = phase_table(seeds, "lr", "wd")
    assert cells["phase"].tolist() == ["confusion", "memorisation"]  # the 1-1 tie goes slower
    assert cells["fraction"].tolist() == [0.5, 1.0]


def test_docstring_examples():
    result = doctest.testmod(grokjax.stats.phases)
    assert result.attempted > 0 and result.failed == 0
