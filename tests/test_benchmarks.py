"""The benchmark runs end to end on a tiny size and reports every figure (not its speed)."""

import json
import runpy
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "ensemble_throughput.py"


def test_throughput_benchmark_reports_its_figures(tmp_path, monkeypatch, capsys):
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


def test_wlmd_cost_benchmark_reports_its_figures(tmp_path, monkeypatch, capsys):
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
