import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from grokjax.config import Hparams
from grokjax.host.experiment import run_ensemble
from grokjax.host.live import LIVE_FILE, STATUS_FILE, LiveStream, read_live, run_state

HP = Hparams(learning_rate=3e-3, weight_decay=1.0)


def _histories(n_members=2, n_evals=6):
    base = np.arange(n_members * n_evals, dtype=np.float32).reshape(n_members, n_evals)
    return {"test_acc": base / 100, "train_loss": base.copy()}


def test_stream_appends_chunks_and_reads_back(tmp_path):
    steps = np.arange(6) * 10
    hist = _histories()
    hist["train_loss"][1, 4] = np.nan
    stream = LiveStream(tmp_path, steps)
    stream.append(0, 3, hist)
    assert run_state(tmp_path) == "running"  # this process wrote it and is alive
    got_steps, got = read_live(tmp_path)
    assert got_steps.tolist() == [0, 10, 20] and got["test_acc"].shape == (2, 3)
    stream.append(3, 6, hist)
    got_steps, got = read_live(tmp_path)
    assert got_steps.tolist() == steps.tolist()
    np.testing.assert_array_equal(got["train_loss"], hist["train_loss"])  # NaN round-trips
    assert json.loads((tmp_path / STATUS_FILE).read_text())["evaluations"] == 6
    stream.finish([])
    assert run_state(tmp_path) == "finished"
    LiveStream(tmp_path, steps).finish([1])
    assert run_state(tmp_path) == "diverged"


def test_a_resumed_stream_starts_with_what_was_restored(tmp_path):
    steps = np.arange(6) * 10
    hist = _histories()
    (tmp_path / LIVE_FILE).write_text("stale lines of the killed run\n")
    LiveStream(tmp_path, steps).append(4, 6, hist)  # chunks before 4 came from a checkpoint
    got_steps, got = read_live(tmp_path)
    assert got_steps.tolist() == steps.tolist()
    np.testing.assert_array_equal(got["test_acc"], hist["test_acc"])


def test_a_line_cut_short_ends_the_stream(tmp_path):
    steps = np.arange(6) * 10
    LiveStream(tmp_path, steps).append(0, 3, _histories())
    with open(tmp_path / LIVE_FILE, "ab") as f:
        f.write(b'{"lo": 3, "hi": 6, "steps": [30, 4')  # killed mid-write
    got_steps, _ = read_live(tmp_path)
    assert got_steps.tolist() == [0, 10, 20]
    assert read_live(tmp_path / "nothing") is None


def test_a_dead_writer_reads_as_interrupted(tmp_path):
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = LiveStream(tmp_path, np.arange(3))
    stream.status["pid"] = int(child.stdout)  # that process has exited
    stream.append(0, 3, _histories(n_evals=3))
    assert run_state(tmp_path) == "interrupted"
    (tmp_path / STATUS_FILE).write_text("{not json")
    assert run_state(tmp_path) == "interrupted"
    assert os.getpid() != int(child.stdout)


def test_run_ensemble_streams_what_it_writes(tmp_cfg_run):
    out, frame = tmp_cfg_run
    steps, live = read_live(out)
    assert run_state(out) == "finished"
    for member in (0, 1):
        rows = frame[frame.member == member].sort_values("step")
        assert steps.tolist() == rows.step.tolist()
        np.testing.assert_allclose(live["test_acc"][member], rows.test_acc, rtol=0, atol=0)


def test_live_off_writes_no_stream(tiny_cfg, tmp_path):
    run_ensemble(tiny_cfg, HP, [0], tmp_path / "run", progress=False, live=False)
    assert not (tmp_path / "run" / LIVE_FILE).exists()
    assert not (tmp_path / "run" / STATUS_FILE).exists()
    assert run_state(tmp_path / "run") == "finished"  # from summary.json


@pytest.fixture
def tmp_cfg_run(tiny_cfg, tmp_path):
    out = tmp_path / "run"
    run_ensemble(tiny_cfg, HP, [0, 1], out, progress=False)
    return out, pd.read_parquet(out / "metrics.parquet")


def _records(directory):
    """Every event of the TensorBoard event files of `directory`, read by the TFRecord
    framing (length, crc, data, crc) and tensorboardX's protobufs."""
    import struct

    from tensorboardX.proto import event_pb2

    for path in sorted(directory.glob("events.out.tfevents.*")):
        raw, at = path.read_bytes(), 0
        while at < len(raw):
            (length,) = struct.unpack("<Q", raw[at : at + 8])
            yield event_pb2.Event.FromString(raw[at + 12 : at + 12 + length])
            at += 12 + length + 4


def _events(directory):
    """(tag, step, value) of every scalar in `directory`'s event files."""
    return [
        (v.tag, event.step, v.simple_value)
        for event in _records(directory)
        for v in event.summary.value
        if v.metadata.plugin_data.plugin_name != "hparams"
    ]


def _hparams(directory) -> dict:
    """The HParams record of a TensorBoard event stream: {name: value}."""
    from tensorboardX.proto import plugin_hparams_pb2

    for event in _records(directory):
        for v in event.summary.value:
            if v.metadata.plugin_data.plugin_name == "hparams":
                data = plugin_hparams_pb2.HParamsPluginData.FromString(
                    v.metadata.plugin_data.content
                )
                if data.HasField("session_start_info"):
                    return {k: x.number_value for k, x in data.session_start_info.hparams.items()}
    return {}


class Interrupt(Exception):
    pass


def test_tensorboard_streams_one_member_each_and_a_resume_writes_each_step_once(tiny_cfg, tmp_path):
    cfg = tiny_cfg.replace(steps=60, **{"eval.every": 10, "eval.chunk_evals": 2})

    def crash(chunk):
        if chunk.chunk == 1:
            raise Interrupt

    out = tmp_path / "run"
    with pytest.raises(Interrupt):
        run_ensemble(cfg, HP, [3, 5], out, progress=False, tensorboard=True, on_chunk=crash)
    run_ensemble(cfg, HP, [3, 5], out, progress=False, tensorboard=True, resume=True)
    frame = pd.read_parquet(out / "metrics.parquet")
    streams = sorted(p.name for p in (out / "tensorboard").iterdir())
    assert streams == ["member-0-seed-3", "member-1-seed-5"]
    for member, name in enumerate(streams):
        events = _events(out / "tensorboard" / name)
        acc = [(step, value) for tag, step, value in events if tag == "test_acc"]
        rows = frame[frame.member == member].sort_values("step")
        assert [s for s, _ in acc] == rows.step.tolist()  # each evaluation once
        np.testing.assert_allclose([v for _, v in acc], rows.test_acc, rtol=1e-6)
        recorded = _hparams(out / "tensorboard" / name)  # each member's hyperparameters
        assert recorded["seed"] == [3, 5][member] and recorded["member"] == member
        assert recorded["learning_rate"] == pytest.approx(HP.learning_rate)
        assert set(recorded) >= set(HP._fields)
