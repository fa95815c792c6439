"""Screenshots of the dashboard's views in headless Chromium: docs/figures/dashboard-*.png.

    python scripts/dashboard_screenshots.py --runs runs [--run PATH] [--sweep PATH]
        [--comparison PATH] [--landscape PATH] [--out docs/figures]

Serves RUNS on a free port of 127.0.0.1, opens the index and one item of each kind
(the first found, or the PATH given, relative to RUNS), waits until plotly has drawn
every figure, and saves a full-page PNG of each. Needs Debian's chromium and
chromium-driver and selenium (`pip install -e ".[test]"`).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from grokjax.report.server import Dashboard, discover

FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


def browser(profile: str, width: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},1000"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default="runs")
    parser.add_argument("--out", default="docs/figures")
    parser.add_argument("--width", type=int, default=1200)
    for kind in ("run", "sweep", "comparison", "landscape"):
        parser.add_argument(f"--{kind}", help=f"the {kind} to show (default: the first found)")
    args = parser.parse_args()
    root, out = Path(args.runs), Path(args.out)
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
        driver = browser(profile, args.width)
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
