"""The landscape runner on a tiny network, and the analysis on synthetic landscapes."""

import json

import chex
import numpy as np
import pytest

from grokjax.config import Config
from grokjax.errors import ConfigError
from grokjax.host.measure import landscape_figure, run_landscape
from grokjax.landscape import LandscapeConfig
from grokjax.stats.landscape_analysis import (
    barrier,
    convergence_verdict,
    equilibrium_curve,
    high_entropy_advantage,
)

TINY = LandscapeConfig(
    model=Config(
        **{"data.modulus": 11, "model.d_model": 32, "model.n_heads": 4, "model.d_mlp": 64}
    ),
    x_min=-6.0,
    x_max=3.0,
    timestep=0.01,
    friction=0.1,
    walkers=2,
    steps=300,
    chunk_steps=100,
    record_every=50,
    average_every=50,
)


class Interrupt(Exception):
    pass


def test_resumed_landscape_equals_uninterrupted(tmp_path):
    whole = run_landscape(TINY, tmp_path / "whole", progress=False)

    def stop(chunk):
        if chunk == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_landscape(TINY, tmp_path / "cut", progress=False, on_chunk=stop)
    resumed = run_landscape(TINY, tmp_path / "cut", progress=False, resume=True)
    for key in ("entropy", "histogram", "walker_entropy", "positions"):
        chex.assert_trees_all_equal(resumed[key], whole[key])
    rows = json.loads((tmp_path / "cut" / "convergence.json").read_text())
    assert [r["chunk"] for r in rows] == [0, 1, 2]
    assert rows[-1]["rms_change"] is not None and rows[-1]["walker_spread"] > 0
    with np.load(tmp_path / "cut" / "landscape.npz") as npz:
        # The histogram counts the steps each walker spent on the grid.
        assert npz["entropy"].shape == (180, 50) and 0 < npz["histogram"].sum() <= 2 * 300
    assert np.isfinite(resumed["positions"]).all()


def test_shared_protocol_runs_and_refuses_bad_settings(tmp_path):
    out = run_landscape(TINY.replace(protocol="shared", steps=100), tmp_path / "s", progress=False)
    assert out["histogram"].sum() == 2 * 100 and "walker_entropy" not in out
    with pytest.raises(ConfigError, match="protocol"):
        TINY.replace(protocol="both")
    with pytest.raises(ConfigError, match="chunk_steps"):
        TINY.replace(chunk_steps=70)
    with pytest.raises(ConfigError, match="another|other settings"):
        run_landscape(
            TINY.replace(protocol="shared", steps=200), tmp_path / "s", progress=False, resume=True
        )


def _synthetic():
    """S(x, y): at high loss peaked at y = 0.25; at low loss two basins with a dip."""
    x = np.linspace(-5, 1, 13)
    y = np.linspace(0.05, 0.95, 10)
    entropy = np.zeros((13, 10))
    for i, xi in enumerate(x):
        if xi > -2:
            entropy[i] = -((y - 0.25) ** 2) * 20
        else:  # memorising end y = 0.05 at S = 1, generalising end y = 0.95 at S = 3
            entropy[i] = np.interp(y, [0.05, 0.45, 0.95], [1.0, -1.0, 3.0])
    histogram = np.ones_like(entropy)
    histogram[:, -1] = 0  # the top row is never visited
    return entropy, histogram, x, y


def test_equilibrium_curve_is_the_argmax_over_visited_bins():
    entropy, histogram, x, y = _synthetic()
    y_eq, s_eq = equilibrium_curve(entropy, histogram, y)
    assert y_eq[-1] == pytest.approx(0.25)
    assert y_eq[0] == pytest.approx(y[-2])  # the best visited bin, not the unvisited top
    histogram[3] = 0
    assert np.isnan(equilibrium_curve(entropy, histogram, y)[0][3])


def test_barrier_measures_the_dip_and_zero_without_one():
    entropy, histogram, x, y = _synthetic()
    histogram[:, -1] = 1
    out = barrier(entropy, histogram, x, y, (-5.5, -2.5))
    assert out["dip"] == pytest.approx(2.0)  # min(1, 3) - (-1)
    assert out["y_memorising"] == pytest.approx(0.05) and out["y_generalising"] == 0.95
    monotone = np.tile(np.linspace(0, 2, 10), (13, 1))
    assert barrier(monotone, histogram, x, y, (-5.5, -2.5))["dip"] == 0.0


def test_high_entropy_advantage_and_figure(tmp_path):
    entropy, histogram, x, y = _synthetic()
    out = high_entropy_advantage(entropy, histogram, x, y, traj_x=[0.5, 0.5], traj_y=[0.65, 2.0])
    assert out["points"] == 1  # the second point is off the grid
    assert out["median_accuracy_gap"] == pytest.approx(0.25 - 0.65)
    assert out["median_entropy_gap"] == pytest.approx(20 * (0.65 - 0.25) ** 2)
    landscape = {"entropy": entropy, "histogram": histogram, "x": x, "y": y}
    landscape_figure(landscape, tmp_path / "map.png", {"AdamW": ([0.5, -3.0], [0.1, 0.9])})
    assert (tmp_path / "map.png").stat().st_size > 1000


def _rows(changes, spreads, moves, visited):
    return [
        {
            "visited_bins": v,
            "structure_in_y": 100.0,
            "relative_change_in_y": None if c is None else c / 100.0,
            "walker_spread_in_y": s,
            "equilibrium_change": m,
        }
        for c, s, m, v in zip(changes, spreads, moves, visited, strict=True)
    ]


def test_convergence_verdict_needs_every_criterion_in_the_last_chunks():
    still = _rows([None, 30, 4, 3, 2], [9, 8, 4, 3, 2], [None, 0.2, 0.05, 0.0, 0.04], [50] * 5)
    verdict = convergence_verdict(still, y_bin=0.1)
    assert verdict["converged"] and verdict["relative_change_in_y"] == pytest.approx(0.04)
    assert verdict["equilibrium_change_in_bins"] == pytest.approx(0.5)
    moving = _rows([None, 30, 4, 9, 2], [9, 8, 4, 3, 2], [None, 0.2, 0.05, 0.0, 0.04], [50] * 5)
    assert convergence_verdict(moving, 0.1)["reason"] == "not met: relative_change_in_y"
    flat = [None, 0.0, 0.0, 0.0, 0.0]
    growing = _rows([None, 3, 4, 3, 2], [9, 8, 4, 3, 2], flat, [40] + [50] * 4)
    assert convergence_verdict(growing, 0.1)["converged"]  # new bins before the last three
    growing[-1]["visited_bins"] = 51
    assert convergence_verdict(growing, 0.1)["reason"] == "not met: new_bins"
    wandering = _rows([None, 3, 4, 3, 2], [9, 8, 4, 6, 2], [None, 0.0, 0.1, 0.0, 0.0], [50] * 5)
    failed = convergence_verdict(wandering, 0.1)["reason"]
    assert failed == "not met: relative_walker_spread_in_y, equilibrium_change_in_bins"
    assert not convergence_verdict(still[:3], 0.1)["converged"]


def test_cli_landscape_writes_the_analysis(tmp_path, capsys):
    from grokjax.cli import main

    args = [
        "landscape",
        "--set",
        "model.data.modulus=11",
        "--set",
        "model.model.d_model=32",
        "--set",
        "model.model.d_mlp=64",
        "--set",
        "steps=100",
        "--set",
        "chunk_steps=100",
        "--set",
        "record_every=50",
        "--set",
        "average_every=50",
        "--set",
        "walkers=2",
        "--out",
        str(tmp_path / "l"),
        "--no-progress",
    ]
    assert main(args) == 0
    analysis = json.loads((tmp_path / "l" / "analysis.json").read_text())
    assert analysis["visited_bins"] > 0 and "dip" in analysis["barrier"]
    assert analysis["convergence"]["converged"] is False  # one chunk cannot show it
    assert "converged: False" in capsys.readouterr().out
    assert (tmp_path / "l" / "landscape.png").stat().st_size > 1000
    assert main([*args[:-3], "--set", "wall_scale=-1", "--out", str(tmp_path / "m")]) == 2
    assert "wall_scale" in capsys.readouterr().err
    assert main([*args[:-3], "--trajectory", "x=/nope", "--out", str(tmp_path / "n")]) == 2


def test_windows_with_descent_starts_run_and_stitch(tmp_path):
    lcfg = TINY.replace(windows=2, start="descent", descent_steps=300, walkers=4, steps=200)
    assert lcfg.window_starts == [0, 60] and lcfg.window_bins == 120
    out = run_landscape(lcfg, tmp_path / "w", progress=False)
    grids = lcfg.window_grids()
    assert [g.x_min for g, _ in grids] == pytest.approx([-6.0, -3.0])
    assert 0 < out["histogram"].sum() <= 4 * 200 and out["walker_entropy"].shape == (2, 180, 50)
    assert np.isfinite(out["entropy"]).sum() > 0
    with pytest.raises(ConfigError, match="windows"):
        TINY.replace(windows=3)
    with pytest.raises(ConfigError, match="windows"):
        TINY.replace(windows=2, window_overlap=0.0)
    with pytest.raises(ConfigError, match="start"):
        TINY.replace(start="trained")
