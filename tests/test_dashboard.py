"""The dashboard and report: what the server answers (over real HTTP), and what a real
headless Chromium draws (the browser tests need Debian's chromium and chromium-driver,
which `.ci/run` installs; elsewhere they are skipped unless GROKJAX_REQUIRE_BROWSER=1)."""

import http.client
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from browser import headless_chromium, installed

from grokjax.config import Hparams
from grokjax.errors import ConfigError
from grokjax.host.compare import compare_named
from grokjax.host.experiment import run_ensemble
from grokjax.host.live import LiveStream
from grokjax.host.sweep import run_sweep
from grokjax.report.html import write_report
from grokjax.report.server import Dashboard, discover, resolve

HP = Hparams(learning_rate=3e-3, weight_decay=1.0)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A runs directory with a finished run, a sweep and a corrupted run."""
    from grokjax.config import Config

    cfg = Config(
        steps=30,
        **{
            "data.modulus": 11,
            "model.d_model": 32,
            "model.n_heads": 4,
            "model.d_mlp": 64,
            "eval.every": 10,
        },
    )
    root = tmp_path_factory.mktemp("runs")
    done = cfg.replace(**{"eval.waiting_times": (0, 10), "eval.progress_frequencies": 2})
    run_ensemble(done, HP, [0, 1], root / "done", progress=False)
    run_sweep(cfg, HP, {"weight_decay": (0.0, 1.0)}, 1, root / "sweep", progress=False)
    broken = root / "broken"
    shutil.copytree(root / "done", broken)
    (broken / "metrics.parquet").write_bytes(b"PAR1 cut short")
    bad_sweep = root / "bad-sweep"
    shutil.copytree(root / "sweep", bad_sweep)
    (bad_sweep / "seeds.parquet").write_bytes(b"not parquet")
    compare_named(
        ["default", "mlp-add"],
        range(2),
        settings=["steps=20", "data.modulus=11"],
        out_dir=root / "cmp",
        progress=False,
    )
    _landscape(root / "land")
    return root


def _landscape(directory: Path) -> None:
    """A landscape directory with known numbers (the files `grokjax.host.measure` writes)."""
    directory.mkdir()
    x, y = np.linspace(-6, 0, 6), np.linspace(0.1, 0.9, 5)
    entropy = -np.add.outer((x + 3) ** 2, 10 * (y - 0.5) ** 2)
    (directory / "landscape.json").write_text(json.dumps({"steps": 1000}))
    np.savez(
        directory / "landscape.npz", entropy=entropy, histogram=np.ones_like(entropy), x=x, y=y
    )
    positions = np.stack([np.linspace(0, -6, 50), np.linspace(0.2, 0.8, 50)], -1)[:, None]
    np.savez(directory / "trajectories.npz", positions=positions)
    rows = [{"chunk": c, "step": 100 * (c + 1), "visited_bins": 10 + c} for c in range(3)]
    (directory / "convergence.json").write_text(json.dumps(rows))
    curve = {"x": x.tolist(), "y": [0.5] * 6}
    analysis = {"equilibrium_curve": curve, "convergence": {"converged": True, "reason": "ok"}}
    (directory / "analysis.json").write_text(json.dumps(analysis))


@pytest.fixture(scope="module")
def server(runs):
    dashboard = Dashboard(runs, port=0)
    dashboard.start()
    yield dashboard
    dashboard.stop()


def get(server, path: str) -> tuple[int, bytes]:
    """GET `path` exactly as written (no client-side normalisation of '..')."""
    conn = http.client.HTTPConnection("127.0.0.1", server.server.server_address[1], timeout=30)
    conn.request("GET", path)
    response = conn.getresponse()
    return response.status, response.read()


def test_server_binds_to_loopback_only(server):
    assert server.server.server_address[0] == "127.0.0.1"


def test_index_lists_runs_sweeps_and_what_is_unreadable(server, runs):
    kinds = {item.path: item for item in discover(runs)}
    assert kinds["done"].kind == "run" and kinds["done"].state == "finished"
    assert kinds["sweep"].kind == "sweep"
    assert any(p.startswith("sweep/") and i.kind == "run" for p, i in kinds.items())  # cells
    status, body = get(server, "/api/index")
    assert status == 200 and {i["path"] for i in json.loads(body)} == set(kinds)


def test_a_corrupted_run_says_so_and_the_others_are_served(server):
    status, body = get(server, "/api/run/broken")
    assert status == 200 and "metrics.parquet" in json.loads(body)["error"]
    status, body = get(server, "/api/run/done")
    payload = json.loads(body)
    assert status == 200 and payload["state"] == "finished"
    assert {"accuracy", "loss", "norms", "ageing"} <= set(payload["figures"])
    assert "censored" in payload["summary_html"] or "<table" in payload["summary_html"]


@pytest.mark.parametrize(
    "path",
    [
        "/file/../README.md",
        "/file/done/../../x",
        "/file//etc/passwd",
        "/file/%2Fetc%2Fpasswd",
        "/file/done/%2e%2e/%2e%2e/etc/passwd",
        "/run/../done",
        "/api/run//tmp",
        "/file/done/config.py",
        "/file/done/checkpoints",
        "/nothing",
    ],
)
def test_paths_out_of_the_runs_directory_are_404(server, path):
    assert get(server, path)[0] == 404


def test_comparison_sweep_and_landscape_pages(server):
    status, body = get(server, "/view/sweep")
    assert status == 200 and b"fig-phases" in body and b"fig-survival" in body
    assert b"seed 0: memorised" in body  # the hover text of a cell names its seeds
    status, body = get(server, "/view/cmp")
    assert status == 200 and b"fig-accuracy" in body and b"mlp-add" in body
    status, body = get(server, "/view/land")
    assert status == 200 and b"fig-landscape" in body and b"fig-convergence" in body
    status, body = get(server, "/view/bad-sweep")
    assert status == 200 and b"seeds.parquet" in body and b"id='error'" in body
    assert get(server, "/view/done")[0] == 404  # a run has its own page
    assert get(server, "/run/sweep")[0] == 404


def test_reports_of_every_kind(runs, tmp_path):
    for name, figure in (
        ("sweep", "fig-phases"),
        ("cmp", "fig-accuracy"),
        ("land", "fig-landscape"),
        ("done", "fig-accuracy"),
    ):
        text = write_report(runs / name, tmp_path / f"{name}.html").read_text()
        assert figure in text and "<script src=" not in text, name
    with pytest.raises(ConfigError, match="not a grokjax run"):
        write_report(tmp_path)


def test_names_from_run_directories_are_escaped(runs, tmp_path):
    odd = tmp_path / "<img src=x onerror=alert(1)>"
    shutil.copytree(runs / "done", odd)
    dashboard = Dashboard(tmp_path, port=0)
    dashboard.start()
    try:
        status, body = get(dashboard, "/")
        assert status == 200 and b"<img" not in body and b"&lt;img" in body
        status, body = get(dashboard, "/run/%3Cimg%20src=x%20onerror=alert(1)%3E")
        assert status == 200 and b"<img" not in body
    finally:
        dashboard.stop()


def test_progress_measures_are_drawn_when_recorded(runs):
    from grokjax.host.rundata import load_run
    from grokjax.report.views import run_figures

    with_them = run_figures(load_run(runs / "done"))
    assert len(with_them["progress"].data) > 0 and len(with_them["fourier"].data) > 0
    cell = next(p.parent for p in (runs / "sweep").rglob("metrics.parquet"))
    assert not {"progress", "fourier"} & set(run_figures(load_run(cell)))


def test_files_a_job_wrote_are_served(server):
    status, body = get(server, "/file/done/accuracy.png")
    assert status == 200 and body.startswith(b"\x89PNG")


def test_resolve_refuses_links_out_of_the_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path)
    assert resolve(tmp_path / "root", "out/x") is None
    assert (
        resolve(tmp_path / "root", "/etc") is None and resolve(tmp_path / "root", "a/../b") is None
    )


def test_bad_input_gets_one_line(tmp_path, server):
    with pytest.raises(ConfigError, match="not a directory"):
        Dashboard(tmp_path / "missing")
    with pytest.raises(ConfigError, match="in use"):
        Dashboard(tmp_path, port=server.server.server_address[1])
    empty = Dashboard(tmp_path, port=0)
    empty.start()
    try:
        status, body = get(empty, "/")
        assert status == 200 and b"No runs under" in body
    finally:
        empty.stop()


def test_dashboard_cli_on_an_occupied_port_exits_2(tmp_path, capsys):
    from grokjax.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["dashboard", str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"port={port} is in use" in err[0]


def test_report_is_written_and_cli_errors_are_one_line(runs, tmp_path, capsys):
    from grokjax.cli import main

    path = write_report(runs / "done", tmp_path / "r.html")
    text = path.read_text()
    assert "<script src=" not in text and "http" not in text.split("<body>")[1][:2000]
    assert main(["report", str(runs / "broken")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.parquet" in err[0]


# The browser.

needs_browser = pytest.mark.skipif(
    not installed() and os.environ.get("GROKJAX_REQUIRE_BROWSER") != "1",
    reason="Debian's chromium and chromium-driver are not installed",
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("selenium.webdriver")
    driver = headless_chromium(tmp_path_factory.mktemp("chromium"))
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 30.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def drawn_traces(browser, figure: str) -> int:
    """Scatter traces plotly has drawn as SVG in the figure's div."""
    return browser.execute_script(
        "const d = document.getElementById(arguments[0]);"
        "return d ? d.querySelectorAll('g.scatterlayer g.trace').length : 0;",
        f"fig-{figure}",
    )


@needs_browser
def test_browser_index_lists_the_run_and_the_sweep(server, browser):
    browser.get(server.url)
    items = wait_for(
        lambda: browser.execute_script(
            "return [...document.querySelectorAll('li')]"
            ".map(l => [l.dataset.kind, l.dataset.path]);"
        )
    )
    assert ["run", "done"] in items and ["sweep", "sweep"] in items
    broken = browser.execute_script(
        "return document.querySelector(\"li[data-path='broken']\").textContent"
    )
    assert "run" in broken


@needs_browser
def test_browser_draws_the_sweep_comparison_and_landscape(server, browser):
    browser.get(server.url + "view/sweep")
    assert wait_for(
        lambda: browser.execute_script(
            "const d = document.getElementById('fig-phases');"
            "return d && d._fullData && d.querySelectorAll('g.hm').length;"
        )
    )
    hover = browser.execute_script(
        "return document.getElementById('fig-phases')._fullData[0].hovertext.flat().join(' ');"
    )
    assert "seed 0: memorised" in hover and "generalised" in hover
    assert wait_for(lambda: drawn_traces(browser, "survival")) > 0
    browser.get(server.url + "view/cmp")
    assert wait_for(lambda: drawn_traces(browser, "accuracy")) > 0
    browser.get(server.url + "view/land")
    assert wait_for(
        lambda: browser.execute_script(
            "const d = document.getElementById('fig-landscape');"
            "return d && d.querySelectorAll('g.hm').length;"
        )
    )
    assert wait_for(lambda: drawn_traces(browser, "convergence")) > 0


@needs_browser
def test_browser_draws_a_runs_plots(server, browser):
    browser.get(server.url + "run/done")
    for figure in ("accuracy", "loss", "norms", "progress", "fourier", "ageing"):
        assert wait_for(lambda f=figure: drawn_traces(browser, f)) > 0, figure
    assert "finished" in browser.find_element("id", "state").text
    assert browser.find_element("css selector", "#summary table") is not None


@needs_browser
def test_browser_follows_a_run_in_progress_without_reload(server, runs, browser):
    live_dir = runs / "live"
    shutil.copytree(
        runs / "done",
        live_dir,
        ignore=shutil.ignore_patterns(
            "metrics.parquet", "summary.json", "live.jsonl", "status.json"
        ),
    )
    steps = np.arange(0, 60, 10)
    values = {"train_acc": np.linspace(0, 1, 12).reshape(2, 6), "test_acc": np.zeros((2, 6))}
    stream = LiveStream(live_dir, steps)
    stream.append(0, 3, values)
    browser.get(server.url + "run/live")
    wait_for(lambda: browser.find_element("id", "evaluations").text == "3")
    assert browser.find_element("id", "state").text == "running"
    browser.execute_script("window.notReloaded = true;")
    stream.append(3, 6, values)  # a chunk arrives while the page is open
    wait_for(lambda: browser.find_element("id", "evaluations").text == "6", timeout=15)
    assert browser.execute_script("return window.notReloaded === true;")
    points = browser.execute_script(
        "return document.getElementById('fig-accuracy')._fullData.find("
        "t => t.name === 'train (median)').x.length;"
    )
    assert points == 5  # steps 10..50 (step 0 is off the log axis)
    stream.finish([])
    wait_for(lambda: browser.find_element("id", "state").text == "finished", timeout=15)


@needs_browser
def test_browser_renders_the_report_offline(runs, browser, tmp_path):
    path = write_report(runs / "done", tmp_path / "report.html")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd(
        "Network.emulateNetworkConditions",
        {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0},
    )
    try:
        browser.get(Path(path).as_uri())
        for figure in ("accuracy", "loss", "norms", "ageing"):
            assert wait_for(lambda f=figure: drawn_traces(browser, f)) > 0, figure
    finally:
        browser.execute_cdp_cmd(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1},
        )
