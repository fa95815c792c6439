"""Run directories that cannot be mixed up: one writer at a time (a lock naming its
holder, taken over from a dead process), checkpoints that know their run, the topology
recorded, flagless resume and extension. Each case asserts its exact outcome."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from grokjax.cli import main
from grokjax.host.lock import LOCK_FILE, DirLock, busy, holder

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "modulus=11", "--set", "d_model=32", "--set", "d_mlp=64"]
QUIET = ["--no-progress", "--no-report"]
RUN = ["run", "--steps", "20", "--seeds", "1", "--set", "eval.every=10", *SMALL, *QUIET]

HOLD = """
import sys, time
from grokjax.host.lock import DirLock
DirLock(sys.argv[1]).__enter__()
print("held", flush=True)
time.sleep(120)
"""


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("grokjax: error: "), err
    return lines[0]


@pytest.fixture
def finished(tmp_path):
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


@pytest.fixture
def held(finished):
    """A finished run directory whose lock another process holds (as a running job would)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(finished)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "held"
    yield finished, proc
    proc.kill()
    proc.wait()


SECOND_WRITERS = {
    "run": [],
    "overwrite": ["--overwrite"],
    "resume": ["--resume"],
    "overwrite with another lr": ["--overwrite", "--set", "learning_rate=1e-2"],
}


@pytest.mark.parametrize("flags", SECOND_WRITERS.values(), ids=SECOND_WRITERS)
def test_a_second_writer_is_refused_naming_the_holder(held, capsys, flags):
    out, proc = held
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    assert main([*RUN, "--out", str(out), *flags]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"being written by process {proc.pid} on " in line, line
    after = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    assert after == before  # nothing touched


def test_a_report_into_a_directory_being_written_is_refused(held, capsys):
    out, proc = held
    assert main(["report", str(out)]) == 2
    assert f"process {proc.pid}" in _one_error_line(capsys.readouterr().err)


def test_sweep_and_landscape_take_the_lock_too(held, capsys, tmp_path):
    out, proc = held
    for args in (
        ["sweep", "--grid", "none", "--grid", "learning_rate=1e-3,3e-3", "--seeds", "1"],
        ["landscape"],
    ):
        assert main([*args, "--out", str(out), "--resume", "--no-progress"]) == 2
        assert f"process {proc.pid}" in _one_error_line(capsys.readouterr().err)


def test_a_lock_left_by_a_killed_process_is_taken_over_with_a_message(held, capsys):
    out, proc = held
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert busy(out) is None  # the kernel dropped it with the process
    assert holder(out)["pid"] == proc.pid and not holder(out)["released"]
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"took over the lock of {out} left by process {proc.pid}" in err
    assert holder(out)["released"] and holder(out)["pid"] == os.getpid()


def test_the_lock_is_reentrant_within_a_process_and_released_after(tmp_path):
    with DirLock(tmp_path / "d"):
        with DirLock(tmp_path / "d"):
            assert (tmp_path / "d" / LOCK_FILE).is_file()
        assert not holder(tmp_path / "d")["released"]
    assert holder(tmp_path / "d")["released"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from grokjax.host.lock import DirLock; DirLock(sys.argv[1]).__enter__()"
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "d")], env=env)
    assert done.returncode == 0  # free for the next process


def test_overwrite_keeps_the_lock_and_empties_the_rest(finished):
    (finished / "notes.txt").write_text("from the old run")
    assert main([*RUN, "--out", str(finished), "--overwrite"]) == 0
    assert not (finished / "notes.txt").exists()
    assert (finished / LOCK_FILE).is_file() and (finished / "summary.json").is_file()


def test_two_real_runs_on_one_directory_leave_one_consistent_run(tmp_path):
    """The reported failure: a run going, then `--overwrite --set learning_rate=1e-2` on
    its directory. The second is refused; the first finishes; the files agree."""
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(
        [sys.executable, "-m", "grokjax.cli", *RUN[:2], "400", *RUN[3:], "--out", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while busy(out) is None and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(
        [sys.executable, "-m", "grokjax.cli", *RUN, "--out", str(out), "--overwrite"]
        + ["--set", "learning_rate=1e-2"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2 and "being written by process" in second.stderr
    config = json.loads((out / "config.json").read_text())
    frame = pd.read_parquet(out / "metrics.parquet")
    assert config["config"]["steps"] == 400 and frame.step.max() == 400
    assert frame.learning_rate.unique().tolist() == pytest.approx(
        config["hparams"]["learning_rate"]
    )
