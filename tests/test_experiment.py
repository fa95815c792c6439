import json

import chex
import jax
import numpy as np
import pandas as pd
import pytest

from grokjax.cli import main
from grokjax.config import Hparams
from grokjax.errors import ConfigError
from grokjax.host.experiment import run_ensemble
from grokjax.host.live import read_live, run_error, run_state

HP = Hparams(learning_rate=3e-3, weight_decay=1.0)
RUN_FILES = (  # what a run writes in its directory, besides checkpoints/
    "config.json",
    "metrics.parquet",
    "summary.json",
    "accuracy.png",
    "loss.png",
    "weight_norm.png",
    "live.jsonl",
    "status.json",
)
SMALL = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]


class Interrupt(Exception):
    pass


def test_resumed_run_equals_uninterrupted(tmp_path, tiny_cfg):
    cfg = tiny_cfg.replace(steps=60, **{"eval.every": 10, "eval.chunk_evals": 2})
    whole = run_ensemble(cfg, HP, [0, 1], tmp_path / "whole", progress=False)

    def crash_after_second_chunk(chunk):
        if chunk.chunk == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_ensemble(
            cfg, HP, [0, 1], tmp_path / "cut", progress=False, on_chunk=crash_after_second_chunk
        )
    assert not (tmp_path / "cut" / "summary.json").exists()
    assert run_state(tmp_path / "cut") == "failed"  # an exception ended it (kill -9: interrupted)
    assert run_error(tmp_path / "cut").startswith("Interrupt")
    assert read_live(tmp_path / "cut")[0].tolist() == [0, 10, 20, 30]  # two chunks streamed
    resumed = run_ensemble(cfg, HP, [0, 1], tmp_path / "cut", progress=False, resume=True)
    steps, live = read_live(tmp_path / "cut")
    assert steps.tolist() == whole.steps.tolist() and run_state(tmp_path / "cut") == "finished"
    chex.assert_trees_all_equal(live, {k: v.astype(np.float64) for k, v in whole.histories.items()})

    chex.assert_trees_all_equal(resumed.state, whole.state)
    chex.assert_trees_all_equal(resumed.histories, whole.histories)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "cut" / "metrics.parquet"),
        pd.read_parquet(tmp_path / "whole" / "metrics.parquet"),
    )
    assert resumed.summary == whole.summary


def test_resume_refuses_another_configuration(tmp_path, tiny_cfg):
    run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="another configuration"):
        run_ensemble(
            tiny_cfg.replace(**{"model.d_mlp": 32}),
            HP,
            [0],
            tmp_path / "run",
            progress=False,
            resume=True,
        )
    with pytest.raises(ValueError, match="not shorten"):
        run_ensemble(
            tiny_cfg.replace(steps=20), HP, [0], tmp_path / "run", progress=False, resume=True
        )


def test_resume_accepts_a_run_written_before_a_config_field_existed(tmp_path, tiny_cfg):
    """A field added later defaults to the old behaviour, so its absence still matches."""
    first = run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False)
    path = tmp_path / "run" / "config.json"
    record = json.loads(path.read_text())
    del record["config"]["optim"]["blend"]["smoothing"]
    path.write_text(json.dumps(record))
    again = run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False, resume=True)
    assert again.summary == first.summary


def test_resume_accepts_a_run_written_before_an_hparam_existed(tmp_path, tiny_cfg):
    """An Hparams field added later (the schedules') takes its default; a saved value
    that differs from the default is still refused."""
    first = run_ensemble(tiny_cfg, HP, [0, 1], tmp_path / "run", progress=False)
    path = tmp_path / "run" / "config.json"
    record = json.loads(path.read_text())
    del record["hparams"]["anneal_steps"], record["hparams"]["trigger_level"]
    path.write_text(json.dumps(record))
    again = run_ensemble(tiny_cfg, HP, [0, 1], tmp_path / "run", progress=False, resume=True)
    assert again.summary == first.summary
    with pytest.raises(ConfigError, match="hparams.trigger_steps"):
        run_ensemble(
            tiny_cfg, HP._replace(trigger_steps=7.0), [0, 1], tmp_path / "run", resume=True
        )


def test_resume_accepts_a_run_written_with_the_flat_config_of_earlier_releases(tmp_path, tiny_cfg):
    """grokjax 0.1 wrote config.json with flat field names; such a run still resumes,
    and one whose flat fields differ is refused naming the field. The legacy reader is
    the only place flat names are read: code and the command line are refused them."""
    from grokjax.config import LEGACY_FLAT_NAMES as FLAT_NAMES

    for name in ("modulus", "eval_every", "optimizer"):
        with pytest.raises(ConfigError, match=f"config field '{name}' is unknown"):
            tiny_cfg.replace(**{name: 11})
        assert main(["run", "--set", f"{name}=1", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists()

    first = run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False)
    path = tmp_path / "run" / "config.json"
    record = json.loads(path.read_text())
    nested = record["config"]
    flat = {"loss": nested["loss"], "steps": nested["steps"], "batch_size": nested["batch_size"]}
    for name, dotted in FLAT_NAMES.items():
        value = nested
        for part in dotted.split("."):
            value = value[part]
        flat[name] = value
    assert len(flat) == len(FLAT_NAMES) + 3 and "modulus" in flat
    path.write_text(json.dumps({**record, "config": flat}))
    again = run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False, resume=True)
    assert again.summary == first.summary
    path.write_text(json.dumps({**record, "config": {**flat, "d_mlp": 32}}))
    with pytest.raises(ConfigError, match="model.d_mlp"):
        run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False, resume=True)


def test_cli_writes_every_output_file(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["run", "--steps", "20", "--seeds", "2", "--out", str(out), "--no-progress", *SMALL]
    argv += ["--set", "eval.waiting_times=0,10", "--profile", str(tmp_path / "trace")]
    assert main(argv) == 0
    assert any(p.is_file() for p in (tmp_path / "trace").rglob("*"))  # a profiler trace
    for name in (*RUN_FILES, "report.html"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert any((out / "checkpoints").iterdir())
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["data"]["modulus"] == 11 and config["seeds"] == [0, 1]
    frame = pd.read_parquet(out / "metrics.parquet")
    assert len(frame) == 2 * 3  # members x evaluations (steps 0, 10, 20)
    assert set(frame.columns) >= {"seed", "step", "test_acc", "ln_train_loss", "weight_norm"}
    assert {"msd@0", "overlap@10", "last_layer_norm", "saturated_fraction"} <= set(frame.columns)
    assert frame.loc[frame.step == 10, "msd@10"].eq(0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["members"]) == 2
    assert "median" in capsys.readouterr().out
    with open(out / "accuracy.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_existing_run_directory_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["run", "--steps", "10", "--seeds", "1", "--out", str(out), "--no-progress", *SMALL]
    assert main(args) == 0
    before = (out / "metrics.parquet").read_bytes()
    assert main(args) == 2
    assert "already holds files" in capsys.readouterr().err
    assert (out / "metrics.parquet").read_bytes() == before
    assert main([*args, "--overwrite"]) == 0


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["--set", "data.task=x/y", "--set", "data.modulus=12"], "data.modulus"),
        (["--set", "data.train_fraction=1.5"], "data.train_fraction"),
        (["--set", "data.train_fraction=0"], "data.train_fraction"),
        (["--set", "data.task=x^5"], "data.task"),
        (["--preset", "no-such-preset"], "preset"),
        (["--steps", "0"], "steps"),
        (["--seeds", "0"], "seeds"),
        (["--set", "eval.every=50", "--steps", "20"], "eval.every"),
        (["--set", "learning_rate=-1"], "learning_rate"),
        (["--set", "batch_size=100000"], "batch_size"),
        (["--set", "optim.name=lion"], "optim.name"),
        (["--set", "no_such_field=1"], "no_such_field"),
        (["--set", "steps=ten"], "steps"),
        (["--set", "optim.wand.force=gradient"], "optim.wand.force"),
        (["--set", "optim.blend.signal=test_accuracy"], "optim.blend.signal"),
        (["--set", "optim.blend.smoothing=1"], "optim.blend.smoothing"),
        (["--set", "optim.blend.low=0", "--set", "optim.blend.high=0"], "optim.blend.high"),
        (["--set", "optim.filter.name=lookahead"], "optim.filter.name"),
        (["--set", "loss=focal"], "loss"),
        (["--set", "eval.waiting_times=15"], "eval.waiting_times"),
        (["--set", "init_scale=0"], "init_scale"),
        (["--devices", "99"], "devices"),
        (["--devices", "many"], "devices"),
    ],
)
def test_bad_input_names_the_field_before_compute(tmp_path, capsys, args, field):
    out = tmp_path / "run"
    assert main(["run", "--out", str(out), "--no-progress", *args]) == 2
    err = capsys.readouterr().err
    assert field in err and "allowed" in err, err
    assert not out.exists()  # nothing was written: the error came before any compute


def test_unwritable_output_directory_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    assert main(["run", "--out", str(blocker / "run"), "--no-progress", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "out=" in err and "writable directory" in err


@pytest.mark.parametrize(
    ("optimizer", "steps", "eval_every", "lr"),
    [
        # AdamW divides by sqrt(v): a gradient entry that is zero up to round-off takes a
        # full-size step of either sign, so vmapped and one-at-a-time members (kernels
        # that round differently, more so without AVX-512) part by ~1e-3 in the test
        # loss within 30 steps. Its first steps still agree to round-off.
        ("adamw", 3, 1, 3e-3),
        # Plain momentum SGD does not amplify round-off that way: 30 steps agree to ~1e-6
        # with and without AVX-512 (measured), so a mixed-up member or a lost step shows.
        ("sgd", 30, 10, 0.1),
    ],
)
def test_member_batching_changes_speed_not_results(
    tmp_path, tiny_cfg, optimizer, steps, eval_every, lr
):
    cfg = tiny_cfg.replace(steps=steps, **{"optim.name": optimizer, "eval.every": eval_every})
    hp = HP._replace(learning_rate=lr)
    runs = [
        run_ensemble(cfg, hp, [0, 1, 2], tmp_path / str(b), progress=False, member_batch=b)
        for b in (None, 1, 2)
    ]
    for other in runs[1:]:
        chex.assert_trees_all_close(other.histories, runs[0].histories, rtol=1e-4, atol=1e-5)
    # The members differ from each other far more than the batchings do.
    spread = np.abs(np.diff(runs[0].histories["test_loss"][:, -1])).min()
    assert spread > 1e-3, spread


def test_ensemble_members_can_have_their_own_hparams(tmp_path, tiny_cfg):
    hp = Hparams(learning_rate=np.array([1e-3, 1e-2], np.float32), weight_decay=1.0)
    result = run_ensemble(tiny_cfg, hp, [0, 0 + 1], tmp_path / "run", progress=False)
    frame = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert sorted(frame["learning_rate"].unique().round(6)) == [1e-3, 1e-2]
    assert jax.tree.leaves(result.state.params)[0].shape[0] == 2


@pytest.mark.slow
def test_default_preset_groks_from_the_command_line(tmp_path):
    """The quick-start job: every seed of the default preset generalises (about 2 minutes)."""
    out = tmp_path / "default"
    assert main(["run", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ensemble"]["generalisation_step"]["n_censored"] == 0
    assert all(m["final_test_acc"] >= 0.99 for m in summary["members"])


def test_compare_runs_presets_on_the_same_seeds(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(
        [
            "compare",
            "--preset",
            "paper-wand-add",
            "--preset",
            "paper-adamw-add",
            "--same-lr",
            "--steps",
            "20",
            "--seeds",
            "2",
            "--out",
            str(out),
            "--no-progress",
            *SMALL,
        ]
    )
    assert code == 0
    table = json.loads((out / "comparison.json").read_text())
    assert set(table) == {"paper-wand-add", "paper-adamw-add"}
    assert table["paper-wand-add"]["seeds"] == table["paper-adamw-add"]["seeds"] == [0, 1]
    for name in table:
        config = json.loads((out / name / "config.json").read_text())
        assert config["hparams"]["learning_rate"] == pytest.approx([3e-3, 3e-3])
    assert (out / "comparison.png").stat().st_size > 0
    assert "median gen step" in capsys.readouterr().out


def test_a_checkpoint_from_before_a_metric_existed_resumes(tmp_path, tiny_cfg, monkeypatch):
    import grokjax.host.experiment as experiment

    cfg = tiny_cfg.replace(steps=60, **{"eval.every": 10, "eval.chunk_evals": 2})
    whole = run_ensemble(cfg, HP, [0, 1], tmp_path / "whole", progress=False)
    names = experiment.metric_names(cfg)
    monkeypatch.setattr(experiment, "metric_names", lambda c: names[:-1])  # an older grokjax

    def crash(chunk):
        if chunk.chunk == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_ensemble(cfg, HP, [0, 1], tmp_path / "cut", progress=False, on_chunk=crash)
    monkeypatch.undo()
    resumed = run_ensemble(cfg, HP, [0, 1], tmp_path / "cut", progress=False, resume=True)
    late = names[-1]  # not recorded before the resume: NaN there, recorded after it
    assert np.isnan(resumed.histories[late][:, :4]).all()
    np.testing.assert_array_equal(resumed.histories[late][:, 4:], whole.histories[late][:, 4:])
    for k in names[:-1]:
        np.testing.assert_array_equal(resumed.histories[k], whole.histories[k])


def test_on_chunk_receives_each_chunks_evaluations_for_a_tracker(tmp_path, tiny_cfg):
    cfg = tiny_cfg.replace(steps=60, **{"eval.every": 10, "eval.chunk_evals": 3})
    hp = HP._replace(learning_rate=np.array([1e-3, 3e-3], np.float32))
    logged: list[dict] = []  # what a W&B-style tracker would receive
    chunks = []

    def tracker(chunk):
        chunks.append(chunk)
        for record in chunk.records():
            logged.append(record)

    result = run_ensemble(cfg, hp, [4, 9], tmp_path / "run", progress=False, on_chunk=tracker)
    assert [c.chunk for c in chunks] == [0, 1, 2]
    assert [c.steps.tolist() for c in chunks] == [[0, 10, 20], [30, 40, 50], [60]]
    assert chunks[0].seeds == (4, 9) and chunks[0].out_dir == tmp_path / "run"
    np.testing.assert_allclose(chunks[1].hparams["learning_rate"], [1e-3, 3e-3])
    frame = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    assert len(logged) == len(frame) == 2 * 7
    for record in logged:
        row = frame[(frame.member == record["member"]) & (frame.step == record["step"])]
        assert record["seed"] == int(row.seed.iloc[0])
        assert record["learning_rate"] == pytest.approx(float(row.learning_rate.iloc[0]))
        assert record["test_acc"] == pytest.approx(float(row.test_acc.iloc[0]))
    np.testing.assert_array_equal(
        chunks[2].metrics["train_loss"][:, 0], result.histories["train_loss"][:, -1]
    )


def test_a_checkpoint_of_the_previous_layout_resumes_by_paths(tmp_path, tiny_cfg):
    """Before this release TrainState had no model_state and WanD's `count` counted its
    deposits; such a checkpoint restores into today's layout, leaf by leaf."""
    from typing import Any, NamedTuple

    from grokjax.host.checkpoint import ChunkCheckpointer
    from grokjax.optim.wand import legacy_wand_leaf
    from grokjax.train import make_train

    cfg = tiny_cfg.replace(**{"optim.name": "wand"})
    state = jax.jit(make_train(cfg).init)(jax.random.key(0), HP)
    state = state._replace(step=jax.numpy.int32(30))
    wand_state = state.opt_state[0]

    class OldWandState(NamedTuple):  # the previous field order and meaning
        velocity: Any
        deposits: Any
        count: Any
        key: Any
        clock: Any

    class OldTrainState(NamedTuple):
        params: Any
        opt_state: Any
        step: Any
        opt_key: Any
        loop_key: Any
        data_key: Any
        ageing: Any

    old_wand = OldWandState(
        wand_state.velocity, wand_state.deposits + 1.0, jax.numpy.int32(27), wand_state.key,
        wand_state.clock,
    )  # fmt: skip
    old = OldTrainState(*state[:7])._replace(opt_state=(old_wand, *state.opt_state[1:]))
    saver = ChunkCheckpointer(tmp_path / "checkpoints")
    saver.save(0, {"state": old})
    saver.close()
    reader = ChunkCheckpointer(tmp_path / "checkpoints")
    start, restored, _, _ = reader.restore_latest(
        {"state": state},
        lambda path, found: legacy_wand_leaf(path, found, ("state", "step")),
    )
    reader.close()
    got = restored["state"].opt_state[0]
    assert start == 1 and int(got.n_deposits) == 27 and int(got.count) == 30
    np.testing.assert_array_equal(got.deposits, wand_state.deposits + 1.0)
    chex.assert_trees_all_equal(restored["state"].params, state.params)
    assert restored["state"].model_state is None
