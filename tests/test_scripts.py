"""The results scripts run end to end on a tiny budget and write what they promise."""

import runpy
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def test_wand_results_writes_tables_and_figures(tmp_path, monkeypatch):
    doc = tmp_path / "wand-results.md"
    argv = [
        "wand_results.py",
        "--out",
        str(tmp_path / "runs"),
        "--seeds",
        "2",
        "--ablation-seeds",
        "1",
        "--max-steps",
        "20",
        "--doc",
        str(doc),
        "--figures",
        str(tmp_path / "figures"),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(SCRIPTS / "wand_results.py"), run_name="__main__")
    text = doc.read_text()
    for arm in ("wand-capped-add", "wand-adamw-add", "paper-adamw-square", "wand-loss-force-add"):
        assert f"| {arm} |" in text
    assert "0 / 2 (20 steps)" in text  # nobody groks in 20 steps: censored, not a number
    assert len(list((tmp_path / "figures").glob("wand-*.png"))) == 4
    # a second call resumes every finished arm and rebuilds the same document
    runpy.run_path(str(SCRIPTS / "wand_results.py"), run_name="__main__")
    assert doc.read_text() == text
