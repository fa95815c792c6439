"""Screenshots of the dashboard's views in headless Chromium: docs/figures/dashboard-*.png.

    python scripts/dashboard_screenshots.py --runs runs [--run PATH] [--sweep PATH]
        [--comparison PATH] [--landscape PATH] [--out docs/figures]
    python scripts/dashboard_screenshots.py --demo --runs runs/demo \
        --landscape-from runs/landscape-parity/landscape-seed0

With --demo it first makes what RUNS lacks of a small demo set (about 5 minutes on two
cores): annealed WanD on x+y mod 67 (4 seeds, 1,200 steps, waiting times 100, 300 and
600), a 2 x 2 sweep of weight decay and learning rate on `default` (2 seeds, 1,500
steps), and `default` against `mlp-add` (2 seeds, 1,000 steps); a landscape is copied
from --landscape-from (measuring one takes longer). Then it serves RUNS on a free port
of 127.0.0.1, opens the index and one item of each kind (the first found, or the PATH
given, relative to RUNS), waits until plotly has drawn every figure, and saves a
full-page PNG of each. Needs Debian's chromium and
chromium-driver and selenium (`pip install -e ".[test]"`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from grokjax.report.server import Dashboard, discover

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser import headless_chromium  # noqa: E402  (the tests' helper, tests/browser.py)


def settle(driver, timeout: float = 60.0) -> None:
    """Wait until every plotly figure on the page has drawn (and a run's page has
    fetched its data once)."""
    end = time.monotonic() + timeout
    script = (
        "const figs = [...document.querySelectorAll('.js-plotly-plot')];"
        "const run = document.getElementById('evaluations');"
        "return (!run || Number(document.body.dataset.refreshed || 0) > 0) &&"
        " figs.every(f => f.querySelector('.main-svg'));"
    )
    while time.monotonic() < end and not driver.execute_script(script):
        time.sleep(0.3)
    time.sleep(1.0)  # transitions


def shoot(driver, url: str, path: Path, width: int) -> Path:
    driver.get(url)
    settle(driver)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(width, min(int(height) + 40, 6000))
    settle(driver, 10)
    driver.save_screenshot(str(path))
    print(f"wrote {path}")
    return path


def make_demo(root: Path, landscape_from: str | None) -> None:
    """The demo runs of the module docstring, each only if RUNS lacks it."""
    from grokjax.config import Hparams
    from grokjax.host.compare import compare_named
    from grokjax.host.experiment import run_preset
    from grokjax.host.sweep import run_sweep
    from grokjax.presets import get_preset

    root.mkdir(parents=True, exist_ok=True)
    if not (root / "wand-annealed" / "summary.json").exists():
        settings = ["steps=1200", "eval.waiting_times=100,300,600"]
        run_preset(
            "wand-annealed-add",
            range(4),
            settings=settings,
            out_dir=root / "wand-annealed",
            overwrite=True,
        )
    if not (root / "sweep" / "cells.csv").exists():
        base = get_preset("default")
        axes = {"weight_decay": (0.1, 1.0), "learning_rate": (1e-3, 3e-3)}
        hparams = Hparams(learning_rate=3e-3, weight_decay=1.0)
        run_sweep(base.config, hparams, axes, 2, root / "sweep", overwrite=True)
    if not (root / "comparison" / "comparison.json").exists():
        compare_named(
            ["default", "mlp-add"],
            range(2),
            settings=["steps=1000"],
            out_dir=root / "comparison",
            overwrite=True,
        )
    if landscape_from and not (root / "landscape").exists():
        shutil.copytree(
            landscape_from, root / "landscape", ignore=shutil.ignore_patterns("checkpoints")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--demo", action="store_true", help="make the demo runs first")
    parser.add_argument("--landscape-from", help="a landscape directory to copy (--demo)")
    for kind in ("run", "sweep", "comparison", "landscape"):
        parser.add_argument(f"--{kind}", help=f"the {kind} to show (default: the first found)")
    args = parser.parse_args()
    root, out = Path(args.runs), Path(args.out)
    if args.demo:
        make_demo(root, args.landscape_from)
    out.mkdir(parents=True, exist_ok=True)
    items = discover(root)
    chosen = {}
    for kind in ("run", "sweep", "comparison", "landscape"):
        given = getattr(args, kind)
        found = [i.path for i in items if i.kind == kind and i.error is None]
        if given or found:
            chosen[kind] = given or found[0]
        else:
            print(f"no {kind} under {root}: no screenshot of its view")
    dashboard = Dashboard(root, port=0)
    url = dashboard.start()
    with tempfile.TemporaryDirectory() as profile:
        driver = headless_chromium(profile, args.width, 1000)
        try:
            shoot(driver, url, out / "dashboard-index.png", args.width)
            for kind, path in chosen.items():
                route = "run" if kind == "run" else "view"
                shoot(driver, f"{url}{route}/{path}", out / f"dashboard-{kind}.png", args.width)
        finally:
            driver.quit()
            dashboard.stop()


if __name__ == "__main__":
    main()
