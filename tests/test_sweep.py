"""The sweep runner: numeric axes as members of one ensemble, shape axes as outer cells."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from grokjax.cli import main
from grokjax.config import Hparams
from grokjax.errors import ConfigError
from grokjax.host.experiment import member_keys
from grokjax.host.sweep import run_sweep
from grokjax.stats.phases import classify_seed
from grokjax.train import make_train

SMALL = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]


def test_sweep_cells_equal_separate_runs_and_tables_are_written(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(steps=40, **{"eval.every": 10})
    hp = Hparams(learning_rate=3e-3, weight_decay=1.0)
    axes = {"optim.name": ("adamw", "sgd"), "learning_rate": (1e-3, 1e-2)}
    result = run_sweep(cfg, hp, axes, 2, tmp_path / "s", progress=False)
    seeds = result.seeds
    assert len(seeds) == 2 * 2 * 2 and set(seeds["phase"]) <= {
        "comprehension",
        "grokking",
        "memorisation",
        "confusion",
    }
    # Each (optimizer, lr, seed) member equals a separate single-cell run. The two are
    # separate compiles, but SGD here does not amplify round-off (a 1-3 ulp change of
    # the initial parameters moves its losses by at most 1.7e-6 over 40 steps, on every
    # seed tried), so all evaluations are compared; AdamW would not allow it (test_train).
    metrics = pd.read_parquet(tmp_path / "s" / "optim.name=sgd" / "metrics.parquet")
    trainer = make_train(cfg.replace(**{"optim.name": "sgd"}))
    _, single = jax.jit(trainer.train)(member_keys([1])[0], hp._replace(learning_rate=1e-2))
    member = metrics[(metrics.learning_rate == np.float32(1e-2)) & (metrics.seed == 1)]
    np.testing.assert_allclose(member["train_loss"], single["train_loss"], rtol=1e-5)
    cells = pd.read_csv(tmp_path / "s" / "cells.csv")
    assert len(cells) == 4 and (cells["seeds"] == 2).all()
    assert {"generalisation_step_median", "generalisation_step_censored", "phase"} <= set(cells)
    for name in ("phases.png", "survival.png", "seeds.parquet", "sweep.json"):
        assert (tmp_path / "s" / name).stat().st_size > 500
    # Resume reads the finished cells back instead of training them again.
    again = run_sweep(cfg, hp, axes, 2, tmp_path / "s", progress=False, resume=True)
    pd.testing.assert_frame_equal(again.seeds, seeds)
    assert set(result.files) >= {"phases.png", "survival.png", "cells.csv", "optim.name=sgd/"}
    with pytest.raises(ConfigError, match="another|other settings"):
        run_sweep(cfg, hp, {"learning_rate": (1e-3,)}, 2, tmp_path / "s", resume=True)


def test_bad_grids_are_refused_before_compute(tiny_cfg, tmp_path):
    hp = Hparams()
    with pytest.raises(ConfigError, match="unknown"):
        run_sweep(tiny_cfg, hp, {"lr": (1e-3,)}, 2, tmp_path / "a")
    with pytest.raises(ConfigError, match="optim.name"):
        run_sweep(tiny_cfg, hp, {"optim.name": ("adamw", "rmsprop")}, 2, tmp_path / "b")
    with pytest.raises(ConfigError, match="learning_rate"):
        run_sweep(tiny_cfg, hp, {"learning_rate": (1e-3, -1.0)}, 2, tmp_path / "c")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_sweep_prints_the_cell_table(tmp_path, capsys):
    code = main(
        [
            "sweep",
            "--preset",
            "optimizer-batch-lr",
            "--grid",
            "none",
            "--grid",
            "learning_rate=1e-3,1e-2",
            "--grid",
            "batch_size=none,16",
            *SMALL,
            "--steps",
            "20",
            "--seeds",
            "2",
            "--out",
            str(tmp_path / "cli"),
            "--no-progress",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "phase" in out and "cells.csv" in out
    saved = json.loads((tmp_path / "cli" / "sweep.json").read_text())
    assert saved["axes"] == {"learning_rate": [1e-3, 1e-2], "batch_size": [None, 16]}
    assert main(["sweep", "--grid", "width=1,2", "--out", str(tmp_path / "x")]) == 2


def test_cli_sweep_lists_only_the_files_it_wrote(tmp_path, capsys):
    """One axis gives no phase diagram, and the "wrote" line does not claim one."""
    out = tmp_path / "one"
    argv = ["sweep", "--grid", "none", "--grid", "learning_rate=1e-3,1e-2", "--seeds", "1"]
    argv += [*SMALL, "--steps", "10"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    wrote = [line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote")]
    listed = wrote[-1].split(": ", 1)[1].split(", ")
    assert "phases.png" not in listed and "survival.png" in listed
    for name in listed:
        assert (out / name).exists(), name


def test_sweep_seed_start_and_log_time_phase_rule(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(steps=20, **{"eval.every": 10})
    axes = {"learning_rate": (1e-3, 1e-2)}
    result = run_sweep(
        cfg,
        Hparams(),
        axes,
        2,
        tmp_path / "s",
        progress=False,
        seed_start=100,
        phase_rule="log-time",
    )
    assert sorted(set(result.seeds["seed"])) == [100, 101]
    assert {"grokking_area", "generalisation_ratio@0.9", "test_acc_at_memorisation"} <= set(
        result.seeds
    )
    cells = pd.read_csv(tmp_path / "s" / "cells.csv")
    assert {"grokking_area_median", "grokking_area_censored"} <= set(cells)
    for _, row in result.seeds.iterrows():
        area = row["grokking_area"]
        assert row["phase"] == classify_seed(
            row["memorisation_step"], None, rule="log-time", area=area
        )
    with pytest.raises(ConfigError, match="phase_rule='area'"):
        run_sweep(cfg, Hparams(), axes, 2, tmp_path / "t", phase_rule="area")
    with pytest.raises(ConfigError, match="seed_start=-1"):
        run_sweep(cfg, Hparams(), axes, 2, tmp_path / "u", seed_start=-1)
