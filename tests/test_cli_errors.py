"""Every subcommand meets bad input with one line naming the problem and exit status 2,
before any compute and without a traceback; damaged run directories likewise."""

import json
import os
from pathlib import Path

import pytest

from grokjax.cli import main

SMALL = ["--set", "data.modulus=11", "--set", "model.d_model=32", "--set", "model.d_mlp=64"]
QUIET = ["--no-progress"]

# (subcommand arguments, a word the message must contain)
BAD = [
    # non-finite numbers, in config fields and hyperparameters
    (["run", "--set", "learning_rate=inf"], "learning_rate"),
    (["run", "--set", "learning_rate=nan"], "learning_rate"),
    (["run", "--set", "init_scale=inf"], "init_scale"),
    (["run", "--set", "optim.fixed_norm=inf"], "optim.fixed_norm"),
    (["run", "--set", "optim.filter.lamb=nan"], "optim.filter.lamb"),
    (["run", "--set", "optim.wand.bias_strength=nan"], "optim.wand.bias_strength"),
    (["run", "--set", "optim.wand.x_min=-inf"], "optim.wand.x_min"),
    (["run", "--set", "optim.wand.force_cap=nan"], "optim.wand.force_cap"),
    (["run", "--set", "eval.divergence_loss=0"], "eval.divergence_loss"),
    (["run", "--set", "temperature=-inf"], "temperature"),
    # other bad values and arguments
    (["run", "--preset", "no-such-preset"], "preset"),
    (["run", "--seeds", "0"], "seeds"),
    (["run", "--seed-start", "-1"], "seed_start"),
    (["run", "--member-batch", "0"], "member_batch"),
    (["run", "--devices", "many"], "devices"),
    (["run", "--set", "modulus"], "field=value"),
    (["run", "--set", "eval.waiting_times=x"], "eval.waiting_times"),
    (["compare", "--preset", "default", "--preset", "default"], "once"),
    (["compare", "--preset", "default"], "at least two"),
    (["compare", "--preset", "default", "--preset", "nope"], "preset"),
    (["compare", "--preset", "default", "--preset", "mlp-add", "--seeds", "0"], "seeds"),
    (["sweep", "--grid", "none"], "grid has no axis"),
    (["sweep", "--grid", "learning_rate=1e-3,inf"], "learning_rate"),
    (["sweep", "--grid", "width=1,2"], "width"),
    (["sweep", "--grid", "learning_rate"], "FIELD=V1,V2"),
    (["sweep", "--seeds", "0"], "seeds"),
    (["sweep", "--axes", "learning_rate"], "axes"),
    (["sweep", "--group", "nope"], "group"),
    (["sweep", "--preset", "nope"], "preset"),
    (["landscape", "--preset", "nope"], "preset"),
    (["landscape", "--set", "steps=-1"], "steps"),
    (["landscape", "--set", "temperature=nan"], "temperature"),
    (["landscape", "--set", "x_min=-inf"], "x_min"),
    (["landscape", "--set", "model.modulus=1"], "data.modulus"),
    (["landscape", "--set", "nope=1"], "nope"),
    (["landscape", "--trajectory", "A=/no/such/run"], "trajectory"),
]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("grokjax: error: "), err
    return lines[0]


@pytest.mark.parametrize(("args", "word"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_is_one_line_and_status_2_before_compute(tmp_path, capsys, args, word):
    out = tmp_path / "out"
    assert main([*args, "--out", str(out), *QUIET]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert word in line, line
    assert not out.exists()  # refused before anything was written


@pytest.mark.parametrize("target", ["/proc/grokjax-x", "/sys/grokjax-x"])
def test_an_output_directory_the_filesystem_refuses_is_one_line(capsys, target):
    if not Path(target).parent.is_dir():
        pytest.skip(f"{Path(target).parent} does not exist here")
    assert main(["run", "--out", target, *QUIET, *SMALL]) == 2
    assert "out=" in _one_error_line(capsys.readouterr().err)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny finished run directory, copied by the tests that damage it."""
    out = tmp_path_factory.mktemp("finished") / "run"
    args = ["run", "--steps", "20", "--seeds", "1", "--out", str(out), *QUIET, *SMALL]
    args += ["--set", "eval.every=10", "--set", "eval.chunk_evals=1"]
    assert main(args) == 0
    return out, args


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


def test_resume_of_a_malformed_config_json_is_one_line(finished_run, tmp_path, capsys):
    run, args = finished_run
    out = _copy(run, tmp_path / "run")
    (out / "config.json").write_text('{"config": {"modulus": 11,')  # cut short
    assert main([*_with_out(args, out), "--resume"]) == 2
    assert "config.json" in _one_error_line(capsys.readouterr().err)


def test_resume_mismatch_names_the_field_that_differs(finished_run, tmp_path, capsys):
    run, args = finished_run
    out = _copy(run, tmp_path / "run")
    assert main([*_with_out(args, out), "--resume", "--set", "model.d_mlp=32"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "config.model.d_mlp" in line and "saved 64" in line and "now 32" in line, line


def test_overwrite_refuses_a_directory_that_is_no_grokjax_run(tmp_path, capsys):
    precious = tmp_path / "thesis"
    precious.mkdir()
    (precious / "chapter1.tex").write_text("years of work")
    assert main(["run", "--out", str(precious), "--overwrite", *QUIET, *SMALL]) == 2
    assert "not a grokjax run" in _one_error_line(capsys.readouterr().err)
    assert (precious / "chapter1.tex").read_text() == "years of work"


def test_every_json_file_a_run_writes_is_strict(finished_run):
    run, _ = finished_run

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    files = sorted(run.rglob("*.json"))
    assert {"config.json", "summary.json"} <= {p.name for p in files}
    for path in files:
        json.loads(path.read_text(), parse_constant=refuse)
    config = json.loads((run / "config.json").read_text())["config"]
    assert config["optim"]["wand"]["force_cap"] == "inf"  # read back as float("inf") on resume


def _with_out(args: list[str], out: Path) -> list[str]:
    args = list(args)
    args[args.index("--out") + 1] = str(out)
    return args


def test_unexpected_errors_are_one_line_unless_asked(monkeypatch, tmp_path, capsys):
    import grokjax.host.experiment

    def broken(*args, **kwargs):
        raise RuntimeError("something inside broke\nover two lines")

    monkeypatch.setattr(grokjax.host.experiment, "run_ensemble", broken)
    argv = ["run", "--out", str(tmp_path / "r"), *QUIET, *SMALL]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "internal error: RuntimeError: something inside broke over two lines" in err
    monkeypatch.setenv("GROKJAX_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(argv)
    assert os.environ["GROKJAX_TRACEBACK"] == "1"
