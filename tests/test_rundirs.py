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

import numpy as np
import pandas as pd
import pytest

from grokjax.cli import main
from grokjax.host.lock import LOCK_FILE, DirLock, busy, holder

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]
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


def test_sweep_compare_and_landscape_take_the_lock_too(held, capsys, tmp_path):
    out, proc = held
    for args in (
        ["sweep", "--grid", "none", "--grid", "learning_rate=1e-3,3e-3", "--seeds", "1"],
        ["landscape", "--resume"],
        ["compare", "--preset", "default", "--preset", "mlp-add", *SMALL],
    ):
        assert main([*args, "--out", str(out), "--no-progress"]) == 2
        assert f"process {proc.pid}" in _one_error_line(capsys.readouterr().err)
    assert not (out / "default").exists()  # the comparison wrote nothing


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


# --- resume as users expect: flagless, refusing contradictions, extending ---------------

FB = [
    "--set",
    "data.modulus=11",
    "--set",
    "model.d_model=32",
    "--set",
    "model.d_mlp=64",
    "--set",
    "eval.every=10",
]
FB += ["--set", "eval.chunk_evals=2", "--set", "learning_rate=1e-2"]


class Interrupt(Exception):
    pass


def _interrupted(out: Path, steps: int = 40, seeds=(3, 4), extra=()) -> None:
    """A run of FB killed after its second chunk (by the API, as kill -9 would leave it)."""
    from grokjax.host.experiment import run_preset

    settings = [a for a in FB if a != "--set"] + [f"steps={steps}", *extra]

    def crash(chunk):
        if chunk.chunk == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        run_preset("default", seeds, settings=settings, out_dir=out, progress=False, on_chunk=crash)


def _whole(out: Path, steps: int, seeds=(3, 4), extra=()) -> pd.DataFrame:
    args = ["run", *FB, "--steps", str(steps), "--seeds", str(len(seeds))]
    args += ["--seed-start", str(seeds[0]), *extra, *QUIET, "--out", str(out)]
    assert main(args) == 0
    return pd.read_parquet(out / "metrics.parquet")


def test_resume_alone_reads_preset_fields_hparams_and_seeds_from_the_directory(tmp_path):
    whole = _whole(tmp_path / "whole", 40)
    _interrupted(tmp_path / "cut")
    assert main(["run", "--out", str(tmp_path / "cut"), "--resume", *QUIET]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cut" / "metrics.parquet"), whole)


CONTRADICTIONS = {
    "another learning rate": (["--set", "learning_rate=0.1"], "--set learning_rate=0.1"),
    "another width": (["--set", "model.d_mlp=32"], "config.model.d_mlp (saved 64, now 32)"),
    "more seeds": (["--seeds", "3"], "has seeds [3, 4]"),
    "other seeds": (["--seed-start", "0"], "has seeds [3, 4]"),
    "another preset": (["--preset", "mlp-add"], "from preset 'default'"),
    "a shorter budget": (["--steps", "20"], "not shorten"),
}


@pytest.mark.parametrize(("flags", "words"), CONTRADICTIONS.values(), ids=CONTRADICTIONS)
def test_a_flag_that_contradicts_the_run_is_refused_naming_it(tmp_path, capsys, flags, words):
    _interrupted(tmp_path / "cut")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    assert main(["run", "--out", str(tmp_path / "cut"), "--resume", *flags, *QUIET]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert words in line, line
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cut").rglob("*") if p.is_file()}
    assert after == before


def test_repeating_the_runs_own_flags_on_resume_is_accepted(tmp_path):
    whole = _whole(tmp_path / "whole", 40)
    _interrupted(tmp_path / "cut")
    args = ["run", *FB, "--steps", "40", "--seeds", "2", "--seed-start", "3", "--resume", *QUIET]
    assert main([*args, "--out", str(tmp_path / "cut")]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cut" / "metrics.parquet"), whole)


def test_resume_without_out_or_without_a_run_is_one_line(tmp_path, capsys):
    assert main(["run", "--resume", *QUIET]) == 2
    assert "--resume needs --out" in _one_error_line(capsys.readouterr().err)
    assert main(["run", "--resume", "--out", str(tmp_path / "none"), *QUIET]) == 2
    assert "nothing to resume" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("how", ["finished", "interrupted"])
def test_resume_steps_extends_a_run_to_the_numbers_of_a_longer_one(tmp_path, capsys, how):
    longer = _whole(tmp_path / "longer", 80)
    out = tmp_path / "run"
    if how == "finished":
        _whole(out, 40)
    else:
        _interrupted(out)
    assert main(["run", "--out", str(out), "--resume", "--steps", "80", *QUIET]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "metrics.parquet"), longer)
    config = json.loads((out / "config.json").read_text())
    assert config["config"]["steps"] == 80
    if how == "finished":  # its last chunk was a part-chunk: the one before is a boundary
        assert "resuming from checkpoint 1" in capsys.readouterr().err


def test_an_extension_whose_schedule_is_no_prefix_starts_afresh_exactly(tmp_path, capsys):
    log = ["--set", "eval.log_points=5"]  # log-spaced evaluations move with the budget
    longer = _whole(tmp_path / "longer", 80, extra=log)
    out = tmp_path / "run"
    _whole(out, 40, extra=log)
    assert main(["run", "--out", str(out), "--resume", "--steps", "80", *QUIET]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "metrics.parquet"), longer)
    assert "starting afresh" in capsys.readouterr().err


def test_a_checkpoint_of_another_configuration_is_never_restored(tmp_path, capsys):
    """The reported mix: config.json of an lr 1e-2 run beside the checkpoints of an lr
    3e-3 run. The resume passes the foreign checkpoints by and computes the 1e-2 run."""
    import shutil

    truth = _whole(tmp_path / "truth", 40)
    other = tmp_path / "other"
    _whole(other, 40, extra=["--set", "learning_rate=3e-3"])
    mixed = tmp_path / "mixed"
    _interrupted(mixed)
    shutil.rmtree(mixed / "checkpoints")
    shutil.copytree(other / "checkpoints", mixed / "checkpoints")
    assert main(["run", "--out", str(mixed), "--resume", *QUIET]) == 0
    assert "belongs to another run" in capsys.readouterr().err
    pd.testing.assert_frame_equal(pd.read_parquet(mixed / "metrics.parquet"), truth)


RESUME_ON_TWO = """
import sys
from grokjax.cli import main
sys.exit(main(["run", "--out", sys.argv[1], "--resume", "--no-progress", "--no-report"]))
"""


@pytest.mark.parametrize("seeds", [(3, 4), (3, 4, 5)], ids=["2 seeds", "3 seeds, padded"])
def test_a_run_killed_on_one_device_resumes_on_two(tmp_path, seeds):
    whole = _whole(tmp_path / "whole", 40, seeds=seeds)
    out = tmp_path / "cut"
    _interrupted(out, seeds=seeds)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=2"
    done = subprocess.run(
        [sys.executable, "-c", RESUME_ON_TWO, str(out)], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "on another topology (devices 1 -> 2" in done.stderr
    topology = json.loads((out / "config.json").read_text())["topology"]
    assert (topology["devices"], topology["padded_members"]) == (2, 2 * -(-len(seeds) // 2))
    got = pd.read_parquet(out / "metrics.parquet")
    assert got.step.tolist() == whole.step.tolist() and got.seed.tolist() == whole.seed.tolist()
    for column in ("train_loss", "test_acc", "weight_norm"):  # within float round-off
        np.testing.assert_allclose(got[column], whole[column], rtol=1e-3, atol=1e-4)


# --- failures in one line, before compute where they can be known ---------------------

LATE = {
    "a budget beyond int32": (["--steps", "1000000000000"], "steps=1000000000000"),
    "ten million evaluations": (["--steps", "100000000"], "eval.every=10"),
    "a profile path that is a file": (["--profile", "{file}"], "is a file, not a directory"),
    "distributed with no coordinator": (["--distributed"], "--distributed could not join"),
}


@pytest.mark.parametrize(("flags", "words"), LATE.values(), ids=LATE)
def test_what_used_to_fail_late_is_refused_before_compute(tmp_path, capsys, flags, words):
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    flags = [f.format(file=a_file) for f in flags]
    out = tmp_path / "out"
    assert main(["run", *flags, *SMALL, *QUIET, "--out", str(out)]) == 2
    assert words in _one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_report_out_a_directory_writes_into_it(finished, tmp_path, capsys):
    target = tmp_path / "reports"
    target.mkdir()
    assert main(["report", str(finished), "--out", str(target)]) == 0
    assert (target / "report.html").is_file() and not (target / LOCK_FILE).exists()


def test_a_run_that_dies_of_an_error_is_marked_failed_with_the_error(tmp_path):
    from grokjax.host.live import run_error, run_state

    _interrupted(tmp_path / "cut")  # raised Interrupt after its second chunk
    assert run_state(tmp_path / "cut") == "failed"
    assert run_error(tmp_path / "cut").startswith("Interrupt")
    assert main(["run", "--out", str(tmp_path / "cut"), "--resume", *QUIET]) == 0
    assert run_state(tmp_path / "cut") == "finished"


FULL_DISK_RUN = """
import sys
from collections import namedtuple
if sys.argv[2] == "hide the shortage":  # orbax itself meets the full disk
    import grokjax.host.checkpoint as checkpoint
    plenty = namedtuple("Usage", "total used free")(10**12, 0, 10**12)
    checkpoint.shutil.disk_usage = lambda path: plenty
from grokjax.cli import main
args = ["run", "--steps", "120", "--seeds", "2", "--set", "data.modulus=23",
        "--set", "model.d_model=32", "--set", "model.d_mlp=128", "--set", "eval.every=20",
        "--set", "eval.chunk_evals=2",
        "--no-progress", "--no-report", "--out", sys.argv[1]]
sys.exit(main(args))
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs, room for two checkpoints of the run below (root only: where mount
    is refused the tests skip)."""
    disk = tmp_path / "small"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(disk)])
    if done.returncode != 0:
        pytest.skip("mount -t tmpfs is refused here")
    yield disk
    subprocess.run(["umount", "-l", str(disk)])


FULL_DISK_ARGS = [
    "--steps",
    "120",
    "--seeds",
    "2",
    "--set",
    "data.modulus=23",
    "--set",
    "model.d_model=32",
]
FULL_DISK_ARGS += [
    "--set",
    "model.d_mlp=128",
    "--set",
    "eval.every=20",
    "--set",
    "eval.chunk_evals=2",
]


@pytest.fixture(scope="module")
def full_disk_reference(tmp_path_factory):
    """The uninterrupted run the full-disk runs resume to."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert main(["run", *FULL_DISK_ARGS, *QUIET, "--out", str(out)]) == 0
    return pd.read_parquet(out / "metrics.parquet")


@pytest.mark.parametrize("how", ["seen before the write", "hide the shortage"])
def test_a_full_disk_is_one_line_and_resume_continues_after(small_disk, full_disk_reference, how):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = small_disk / "run"
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK_RUN, str(out), how],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    line = _one_error_line(done.stderr)  # no thread's traceback, no orbax log
    intact = "checkpoint 0" if how == "seen before the write" else "checkpoint 1"
    assert "the disk is full" in line and f"{intact} is the last intact one" in line, line
    assert "--resume continues the run" in line
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and "disk is full" in status["error"]
    subprocess.run(["mount", "-o", "remount,size=64M", str(small_disk)], check=True)
    assert main(["run", "--out", str(out), "--resume", *QUIET]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(out / "metrics.parquet"), full_disk_reference)


# --- the rough edges a new user met ---------------------------------------------------


def test_sweep_tables_say_censored_and_write_swept_numbers_as_set(tmp_path):
    from grokjax.config import Config, Hparams
    from grokjax.host.sweep import run_sweep

    cfg = Config(
        steps=10, **{"data.modulus": 11, "model.d_model": 32, "model.d_mlp": 64, "eval.every": 5}
    )
    axes = {"learning_rate": [1e-3, 3e-3]}
    result = run_sweep(cfg, Hparams(), axes, 1, tmp_path / "sweep", progress=False)
    text = result.text()
    assert "censored" in text and "None" not in text and "NaN" not in text
    cells = (tmp_path / "sweep" / "cells.csv").read_text()
    assert "0.001," in cells and "0.003," in cells and "0.0010000000" not in cells


def test_titles_and_tables_write_numbers_short():
    from grokjax.plots import describe_run

    title = describe_run("default", {"learning_rate": np.float32(1e-3), "weight_decay": 0.1})
    assert title == "default (learning_rate=0.001, weight_decay=0.1)"


def test_the_run_table_gives_four_significant_digits(finished, capsys):
    import re

    assert main([*RUN, "--out", str(finished.parent / "again")]) == 0
    table = capsys.readouterr().out.split("\n\nwrote")[0]
    decimals = re.findall(r"\d+\.\d+", table)
    assert decimals and all(len(d.replace(".", "").lstrip("0")) <= 4 for d in decimals), decimals


def test_landscape_steps_bring_their_chunk_or_the_rule():
    from grokjax.errors import ConfigError
    from grokjax.host.measure import _chunked
    from grokjax.presets import get_preset

    preset = get_preset("landscape-cpu", "landscape").config  # chunks of 20,000
    assert (preset.chunk_steps, preset.record_every, preset.average_every) == (20000, 500, 10000)
    assert _chunked(preset, ["steps=40000"]) == ["steps=40000"]
    assert _chunked(preset, ["steps=30000"]) == ["steps=30000", "chunk_steps=10000"]
    with pytest.raises(ConfigError, match="a multiple of 10000"):
        _chunked(preset, ["steps=12345"])


def test_every_option_has_help_and_no_bar_is_drawn_off_a_terminal(capsys, tmp_path):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "a run preset (twice or more)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["landscape", "--help"])
    assert "overlay a run's path" in capsys.readouterr().out
    args = ["run", "--steps", "20", "--seeds", "1", *SMALL, "--no-report"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0  # no --no-progress
    err = capsys.readouterr().err
    assert "step/s" not in err and "%|" not in err  # stderr is no terminal here
