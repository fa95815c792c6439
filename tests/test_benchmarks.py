"""The benchmarks run end to end on a tiny size and report every figure (not their speed)."""

import json
import os
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "ensemble_throughput.py"


def _keep_xla_flags(monkeypatch):
    """The benchmarks add grokjax's recommended CPU flags to XLA_FLAGS when they load;
    put the variable back as it was after the test."""
    monkeypatch.setenv("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))


def test_throughput_benchmark_reports_its_figures(tmp_path, monkeypatch, capsys):
    _keep_xla_flags(monkeypatch)
    out = tmp_path / "bench.json"
    argv = [
        str(BENCH),
        "--modulus",
        "11",
        "--steps",
        "3",
        "--repeats",
        "1",
        "--members",
        "1",
        "2",
        "--json",
        str(out),
        "--torch",
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(BENCH), run_name="__main__")
    text = capsys.readouterr().out
    assert "matmul peak" in text and "matmul ceiling" in text and "WanD/AdamW" in text
    assert "MB/member" in text and "2 members against 1" in text
    assert "PyTorch reference: skipped" in text or "/ PyTorch =" in text
    assert "torch.compile: skipped (" in text or "/ torch.compile =" in text
    record = json.loads(out.read_text())
    assert [(r["members"], r["member_batch"]) for r in record["rows"]] == [
        (1, "all"),
        (2, "all"),
        (2, 1),
    ]
    for row in record["rows"]:
        assert row["member_steps_per_s"] > 0 and row["flops_per_step"] > 0
        assert 0 < row["fraction_of_peak"]
    assert record["wand_over_adamw"] > 0
    torch_row = record["pytorch_reference"]
    if torch_row is not None:  # torch is an optional benchmark dependency
        assert torch_row["member_steps_per_s"] > 0 and torch_row["grokjax_over_torch"] > 0
        assert torch_row["variant"] == "eager" and torch_row["threads"] > 0
    compiled = record["pytorch_compiled"]
    if compiled is None:  # torch missing, or torch.compile failed here: said so
        assert "torch.compile: skipped (" in text
    else:
        assert compiled["variant"] == "torch.compile" and compiled["compile_s"] > 0
        assert compiled["member_steps_per_s"] > 0 and compiled["grokjax_over_torch_compile"] > 0
        assert compiled["threads"] == torch_row["threads"]
        assert torch_row["grokjax_over_torch_compile"] == compiled["grokjax_over_torch_compile"]


def test_wlmd_cost_benchmark_reports_its_figures(tmp_path, monkeypatch, capsys):
    _keep_xla_flags(monkeypatch)
    script = BENCH.parent / "wlmd_cost.py"
    out = tmp_path / "wlmd.json"
    argv = [
        str(script),
        "--modulus",
        "11",
        "--steps",
        "2",
        "--repeats",
        "1",
        "--walkers",
        "1",
        "--json",
        str(out),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    text = capsys.readouterr().out
    assert "wlmd/cv-grad" in text and "H200" in text
    record = json.loads(out.read_text())
    row = record["rows"][0]
    assert row["walkers"] == 1 and row["wlmd_walker_steps_per_s"] > 0
    assert row["cost_vs_cv_grad"] > 0 and row["flops_per_walker_step"] > 0
    assert record["h200_estimate"]["paper_gpu_hours"] == 6000


# 100 s on two cores: kept out of the default suite to hold it near 14 minutes
@pytest.mark.slow
def test_accelerator_script_dry_run_runs_every_stage(tmp_path):
    """`accelerator.sh --dry-run`: every stage, on CPU at tiny sizes, prints its figures
    and writes its records, so the script cannot first break on a GPU."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    result = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "accelerator.sh"), "--dry-run", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    text = result.stdout
    assert "backend cpu, devices" in text  # the device and versions stage
    assert "matmul peak (256^3" in text and "matmul ceiling" in text
    assert "member-steps/s" in text and "2 members against 1" in text and "WanD/AdamW" in text
    assert "PyTorch reference: skipped" in text or "/ PyTorch =" in text
    assert "torch.compile: skipped (" in text or "/ torch.compile =" in text
    assert "wlmd/cv-grad" in text and "H200" in text
    assert "paper's PyTorch figure" in text  # the script ran to its end

    throughput = json.loads((tmp_path / "throughput.json").read_text())
    assert throughput["backend"] == "cpu" and throughput["matmul_peak_flops"] > 0
    assert [(r["members"], r["member_batch"]) for r in throughput["rows"]] == [
        (1, "all"),
        (2, "all"),
        (2, 1),
    ]
    assert all(r["member_steps_per_s"] > 0 for r in throughput["rows"])
    assert throughput["wand_over_adamw"] > 0
    if throughput["pytorch_reference"] is not None:
        assert throughput["pytorch_reference"]["grokjax_over_torch"] > 0
    wlmd = json.loads((tmp_path / "wlmd_cost.json").read_text())
    assert wlmd["modulus"] == 11 and wlmd["peak_flops"] > 0
    assert wlmd["rows"][0]["walkers"] == 1 and wlmd["rows"][0]["wlmd_walker_steps_per_s"] > 0
    assert wlmd["h200_estimate"]["h200_hours"] > 0


def test_live_overhead_benchmark_reports_its_figures(tmp_path, monkeypatch, capsys):
    _keep_xla_flags(monkeypatch)
    script = BENCH.parent / "live_overhead.py"
    out = tmp_path / "live.json"
    argv = [str(script), "--modulus", "11", "--members", "2", "--steps", "40", "--every", "10"]
    argv += ["--chunk-evals", "2", "--repeats", "1", "--tensorboard", "--json", str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(script), run_name="__main__")
    text = capsys.readouterr().out
    assert "live stream overhead:" in text and "target at most 2 %" in text
    arms = json.loads(out.read_text())["arms"]
    assert set(arms) == {"stream off", "stream on", "stream + tensorboard"}
    assert all(a["median"] > 0 and a["min"] <= a["median"] <= a["max"] for a in arms.values())
    assert arms["stream off"]["slower_%"] == 0.0
