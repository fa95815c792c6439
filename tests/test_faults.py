"""Runs that go wrong: diverging members, damaged checkpoints, leftovers of a killed write."""

import json
import shutil
from pathlib import Path

import chex
import numpy as np
import pandas as pd
import pytest

from grokjax.cli import main
from grokjax.config import Hparams
from grokjax.errors import ConfigError
from grokjax.host.checkpoint import MANIFEST
from grokjax.host.experiment import run_ensemble
from grokjax.stats.summary import divergence

SMALL = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]


def _strict(path):
    def refuse(token):
        raise ValueError(f"non-standard JSON token {token} in {path}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_diverging_run_finishes_and_says_which_members_diverged_and_when(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--seeds", "2", "--steps", "200", "--set", "learning_rate=10"]
    assert main([*argv, "--out", str(out), "--no-progress", *SMALL]) == 0
    printed = capsys.readouterr().out
    summary = _strict(out / "summary.json")
    diverged = summary["ensemble"]["diverged"]
    assert diverged["n_diverged"] == 2 and diverged["seeds"] == [0, 1]
    for member in summary["members"]:
        step = member["diverged_step"]
        assert step is not None and 0 < step <= 200
        assert f"seed {member['seed']} at step {step}" in printed
        assert member["final_test_acc"] is None  # no accuracy of NaN weights
    assert "diverged: 2/2 members" in printed
    for name in ("config.json", "metrics.parquet", "summary.json"):
        assert (out / name).is_file()
    for name in ("accuracy.png", "loss.png", "weight_norm.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    frame = pd.read_parquet(out / "metrics.parquet")
    first = frame[frame.diverged].groupby("seed")["step"].min().to_dict()
    assert first == {m["seed"]: m["diverged_step"] for m in summary["members"]}


def test_a_diverging_member_leaves_the_others_untouched(tmp_path, tiny_cfg):
    """One compiled program, two members: the sane member's numbers are the same bits
    whether its neighbour diverges or not."""
    cfg = tiny_cfg.replace(steps=40, **{"eval.every": 10})
    calm = Hparams(learning_rate=np.array([3e-3, 1e-3], np.float32), weight_decay=1.0)
    wild = Hparams(learning_rate=np.array([3e-3, 10.0], np.float32), weight_decay=1.0)
    a = run_ensemble(cfg, calm, [0, 1], tmp_path / "a", progress=False, member_batch=1)
    b = run_ensemble(cfg, wild, [0, 1], tmp_path / "b", progress=False, member_batch=1)
    assert a.summary["members"][1]["diverged_step"] is None
    assert b.summary["members"][1]["diverged_step"] is not None
    assert b.summary["members"][0]["diverged_step"] is None
    chex.assert_trees_all_equal(
        {k: v[0] for k, v in a.histories.items()}, {k: v[0] for k, v in b.histories.items()}
    )
    assert a.summary["members"][0] == b.summary["members"][0]


def test_divergence_rules():
    steps = {"train_loss": np.array([4.0, 2.0, 1.0]), "weight_norm": np.ones(3)}
    assert divergence(steps, 100.0) == (None, "")
    blown = {**steps, "train_loss": np.array([4.0, 4e8, 1.0])}
    assert divergence(blown, 100.0) == (1, "train_loss=4e+08 > 100")
    nan = {**steps, "weight_norm": np.array([1.0, 1.0, np.nan])}
    assert divergence(nan, 100.0) == (2, "weight_norm=nan")


def test_wand_at_a_huge_temperature_is_marked_diverged(tmp_path, capsys):
    out = tmp_path / "hot"
    argv = ["run", "--preset", "paper-wand-add", "--seeds", "1", "--steps", "100"]
    argv += ["--set", "temperature=1000", "--out", str(out), "--no-progress", *SMALL]
    assert main(argv) == 0
    member = _strict(out / "summary.json")["members"][0]
    assert member["diverged_step"] is not None, member
    assert "diverged: 1/1 members" in capsys.readouterr().out


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def interrupted_once(tmp_path_factory):
    """A run cut after its third chunk (checkpoints 1 and 2 kept), and the whole run."""
    from grokjax.config import Config

    tmp = tmp_path_factory.mktemp("interrupted")
    cfg = Config(
        steps=50,
        **{
            "data.modulus": 11,
            "model.d_model": 32,
            "model.n_heads": 4,
            "model.d_mlp": 64,
            "eval.every": 10,
        },
    )
    cfg = cfg.replace(**{"eval.chunk_evals": 1})
    hp = Hparams(learning_rate=3e-3, weight_decay=1.0)
    whole = run_ensemble(cfg, hp, [0, 1], tmp / "whole", progress=False)

    def stop(chunk):
        if chunk.chunk == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_ensemble(cfg, hp, [0, 1], tmp / "cut", progress=False, on_chunk=stop)
    return cfg, hp, whole, tmp / "cut"


@pytest.fixture
def interrupted(interrupted_once, tmp_path):
    """A fresh copy of the cut run for each test to damage."""
    cfg, hp, whole, cut = interrupted_once
    return cfg, hp, whole, Path(shutil.copytree(cut, tmp_path / "cut"))


def _largest_file(step_dir):
    files = [p for p in step_dir.rglob("*") if p.is_file() and p.name != MANIFEST]
    return max(files, key=lambda p: p.stat().st_size)


def _flip_bytes(path, n=41):
    data = bytearray(path.read_bytes())
    for i in np.linspace(0, len(data) - 1, n).astype(int):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-manifest"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(interrupted, capsys, damage):
    cfg, hp, whole, cut = interrupted
    latest = cut / "checkpoints" / "2"
    assert latest.is_dir() and (cut / "checkpoints" / "1").is_dir()
    if damage == "flip":
        _flip_bytes(_largest_file(latest))
    elif damage == "truncate":
        path = _largest_file(latest)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        (latest / MANIFEST).unlink()
    resumed = run_ensemble(cfg, hp, [0, 1], cut, progress=False, resume=True)
    err = capsys.readouterr().err
    assert "checkpoint 2" in err and "resuming from checkpoint 1" in err, err
    chex.assert_trees_all_equal(resumed.histories, whole.histories)
    assert resumed.summary == whole.summary


def test_resume_with_every_checkpoint_damaged_is_refused(interrupted):
    cfg, hp, _, cut = interrupted
    for step_dir in (cut / "checkpoints").iterdir():
        if step_dir.is_dir():
            _flip_bytes(_largest_file(step_dir))
    with pytest.raises(ConfigError, match="no checkpoint of this run can be restored"):
        run_ensemble(cfg, hp, [0, 1], cut, progress=False, resume=True)


def test_temporaries_of_a_killed_write_do_not_survive_a_resume(interrupted):
    cfg, hp, whole, cut = interrupted
    stale = cut / ".metrics.parquet.k1ll3d00.tmp.parquet"  # kill -9 mid-write leaves these
    stale.write_bytes(b"")
    older = cut / ".summary.json.abcd1234.tmp"
    older.write_bytes(b"{")
    resumed = run_ensemble(cfg, hp, [0, 1], cut, progress=False, resume=True)
    assert not stale.exists() and not older.exists()
    assert sorted(resumed.files) == sorted(whole.files)  # what "wrote ..." lists
    assert not any(".tmp" in p.name for p in cut.iterdir())
