"""`grokjax dashboard [RUNS_DIR]`: a local web page of every run, comparison, sweep and
landscape under a directory, following runs in progress.

The server is the standard library's threading HTTP server bound to 127.0.0.1 only. It
answers a fixed set of routes and reads run directories as data: it never imports,
executes or serves as a page anything a run directory contains. Files are served only
from inside RUNS_DIR, only of the suffixes in `SERVED`, and a path with '..', an
absolute path or a link out of RUNS_DIR is a 404.

    /                     the index: every item under RUNS_DIR, a run's state beside it
    /api/index            the same as JSON (the index page refreshes from it)
    /run/PATH             a run's page: the views of `grokjax.report.views`; while the
                          run is running it asks /api/run/PATH every `POLL_MS` and
                          redraws in place (no reload)
    /api/run/PATH         the run's figures (plotly JSON), state, facts and summary
    /view/PATH            a comparison's, sweep's or landscape's page (`grokjax.report.items`)
    /file/PATH            a figure or table a job wrote (PNG, CSV, JSON)
    /static/plotly.min.js the bundled plotly.js (no network)

A run directory that cannot be read (half-written, corrupted) is listed with the reason
and its page says it; the other runs are served as before.
"""

from __future__ import annotations

import errno
import html
import json
import os
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

from grokjax.errors import ConfigError
from grokjax.host.live import run_state
from grokjax.host.rundata import RunDataError, is_run_dir, kind_of, load_run
from grokjax.report.html import STYLE, figure_divs, run_facts
from grokjax.report.items import VIEWS
from grokjax.report.views import run_figures, summary_table

HOST = "127.0.0.1"
POLL_MS = 2000
SERVED = {".png": "image/png", ".csv": "text/csv", ".json": "application/json"}
SKIP = {"checkpoints", "__pycache__", ".git"}


class Item(NamedTuple):
    kind: str  # a key of grokjax.host.rundata.KINDS
    path: str  # relative to the runs directory, '/'-separated
    state: str  # a run's state, or "-"
    error: str | None  # why it cannot be read, or None


def discover(root: Path) -> list[Item]:
    """Every run, comparison, sweep and landscape under `root`, sorted by path; a
    sweep's cells and a comparison's arms are listed after it (as 'sweep/cell')."""
    root = Path(root)
    items = []
    for directory, subdirs, _ in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if d not in SKIP and not d.startswith("."))
        here = Path(directory)
        kind = kind_of(here)
        if kind is None:
            continue
        rel = here.relative_to(root).as_posix()
        state, error = "-", None
        if kind == "run" and is_run_dir(here):
            try:
                json.loads((here / "config.json").read_text())
                state = run_state(here)
            except (OSError, ValueError) as err:
                error = f"config.json: {err}"
        items.append(Item(kind, rel, state, error))
    return sorted(items, key=lambda i: i.path)


def resolve(root: Path, rel: str) -> Path | None:
    """`root / rel` if it is inside `root` (after links), else None: no '..', no
    absolute paths, no way out."""
    if not rel or rel.startswith("/") or "\\" in rel or "\0" in rel:
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return None
    base = root.resolve()
    target = (base / Path(*parts)).resolve()
    if target != base and base not in target.parents:
        return None
    return target


def run_payload(run_dir: Path) -> dict[str, Any]:
    """What /api/run/PATH answers: figures as plotly JSON, state, facts, summary table."""
    try:
        data = load_run(run_dir)
    except RunDataError as err:
        return {"error": str(err), "state": run_state(run_dir)}
    figures = {}
    for name, fig in run_figures(data).items():
        fig.update_layout(uirevision=name)  # redraws keep zoom and legend clicks
        figures[name] = json.loads(fig.to_json())
    return {
        "title": data.title,
        "state": data.state,
        "evaluations": int(data.steps.size),
        "facts": run_facts(data),
        "figures": figures,
        "summary_html": summary_table(data.summary),
    }


def _js(obj: Any) -> str:
    """`obj` as a JavaScript literal that cannot end the <script> it sits in."""
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _page(title: str, body: str, script: str = "") -> bytes:
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{STYLE}"
        "a { color: #1f5fa0; } li { margin: 0.2em 0; } .error { color: #d62728; }</style>"
        "<script src='/static/plotly.min.js'></script></head>"
        f"<body>{body}<script>{script}</script></body></html>"
    ).encode()


INDEX_SCRIPT = """
const SHOWN = %s, POLL_MS = %d;
async function watch() {
  try {
    const now = await (await fetch('/api/index')).json();
    if (JSON.stringify(now) !== JSON.stringify(SHOWN)) { location.reload(); return; }
  } catch (e) {}
  setTimeout(watch, POLL_MS);
}
setTimeout(watch, POLL_MS);
"""


def index_page(root: Path, items: list[Item]) -> bytes:
    """Every item with its state; the page reloads itself when a run starts, finishes
    or changes state."""
    script = INDEX_SCRIPT % (_js([i._asdict() for i in items]), 2 * POLL_MS)
    if not items:
        body = (
            f"<h1>grokjax dashboard</h1><p id='empty'>No runs under {html.escape(str(root))} "
            "yet: start one with <code>grokjax run --out DIR</code> inside it.</p>"
        )
        return _page("grokjax dashboard", body, script)
    rows = []
    for item in items:
        link = f"/{'run' if item.kind == 'run' else 'view'}/{item.path}"
        name = html.escape(item.path if item.path != "." else "(this directory)")
        state = (
            f" <span class='state {item.state}' data-state='{item.state}'>{item.state}</span>"
            if item.kind == "run"
            else ""
        )
        error = (
            f" <span class='error'>unreadable: {html.escape(item.error)}</span>"
            if item.error
            else ""
        )
        rows.append(
            f"<li data-kind='{item.kind}' data-path='{html.escape(item.path)}'>{item.kind}: "
            f"<a href='{html.escape(link)}'>{name}</a>{state}{error}</li>"
        )
    body = f"<h1>grokjax dashboard</h1><p>{html.escape(str(root))}</p><ul>{''.join(rows)}</ul>"
    return _page("grokjax dashboard", body, script)


RUN_SCRIPT = """
const PATH = %s, POLL_MS = %d;
const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
  ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
async function refresh() {
  let d;
  const url = '/api/run/' + PATH.split('/').map(encodeURIComponent).join('/');
  try { d = await (await fetch(url)).json(); }
  catch (e) { setTimeout(refresh, POLL_MS); return; }
  const state = document.getElementById('state');
  state.textContent = d.state; state.className = 'state ' + d.state;
  document.getElementById('error').textContent = d.error || '';
  if (!d.error) {
    document.getElementById('title').textContent = d.title;
    document.getElementById('evaluations').textContent = d.evaluations;
    document.getElementById('facts').innerHTML = d.facts.map(
      ([k, v]) => '<dt>' + esc(k) + '</dt><dd>' + esc(v) + '</dd>').join('');
    const figures = document.getElementById('figures');
    for (const [name, fig] of Object.entries(d.figures)) {
      let div = document.getElementById('fig-' + name);
      if (!div) {
        div = document.createElement('div'); div.id = 'fig-' + name;
        div.className = 'figure'; figures.appendChild(div);
      }
      Plotly.react(div, fig.data, fig.layout, {responsive: true});
    }
    document.getElementById('summary').innerHTML =
      d.summary_html || '<p>No summary yet: the run has not finished.</p>';
  }
  document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  if (d.state === 'running') setTimeout(refresh, POLL_MS);
}
refresh();
"""


def run_page(rel: str) -> bytes:
    body = (
        "<p><a href='/'>all runs</a></p>"
        f"<h1><span id='title'>{html.escape(rel)}</span> "
        "<span id='state' class='state'></span></h1>"
        "<p class='error' id='error'></p><dl id='facts'></dl>"
        "<p><span id='evaluations'>0</span> evaluations</p>"
        "<div id='figures'></div><h2>Summary</h2><div id='summary'></div>"
    )
    return _page(rel, body, RUN_SCRIPT % (_js(rel), POLL_MS))


def item_page(kind: str, rel: str, target: Path) -> bytes:
    """The page of a comparison, sweep or landscape: its figures, drawn once."""
    try:
        figures, table = VIEWS[kind](target)
    except RunDataError as err:
        body = f"<p><a href='/'>all runs</a></p><h1>{html.escape(rel)}</h1>"
        return _page(rel, body + f"<p class='error' id='error'>{html.escape(str(err))}</p>")
    body = (
        f"<p><a href='/'>all runs</a></p><h1>{html.escape(rel)} <small>{kind}</small></h1>"
        f"{figure_divs(figures)}<div id='table'>{table}</div>"
    )
    return _page(rel, body)


class Dashboard:
    """The dashboard of `root` on 127.0.0.1:`port` (0: any free port); `serve()` blocks,
    `start()` serves on a thread and returns the URL, `stop()` shuts it down."""

    def __init__(self, root: Path, port: int = 8050):
        root = Path(root)
        if not root.is_dir():
            raise ConfigError(f"runs_dir={str(root)!r} is not a directory")
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError(f"port={port!r} is not allowed: an int in 0..65535")
        self.root = root
        handler = _handler(root)
        try:
            self.server = ThreadingHTTPServer((HOST, port), handler)
        except OSError as err:
            if err.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port={port} is in use on {HOST}: choose another with --port"
                ) from None
            raise
        self.server.daemon_threads = True
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_address[1]}/"

    def serve(self) -> None:
        self.server.serve_forever(poll_interval=0.2)

    def start(self) -> str:
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()
        return self.url

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs().encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "grokjax"

        def log_message(self, format: str, *args: Any) -> None:  # quiet by default
            pass

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            self.wfile.write(body)

        def _not_found(self) -> None:
            self._send(HTTPStatus.NOT_FOUND, b"not found", "text/plain; charset=utf-8")

        def _json(self, obj: Any) -> None:
            self._send(HTTPStatus.OK, json.dumps(obj).encode(), "application/json")

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            route = unquote(urlsplit(self.path).path)
            try:
                self._route(route)
            except BrokenPipeError:
                pass
            except Exception as err:  # one bad run directory must not stop the server
                body = f"error: {type(err).__name__}: {err}".encode()
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body, "text/plain; charset=utf-8")

        def _route(self, route: str) -> None:
            prefixed: dict[str, Callable[[Path, str], None]] = {
                "/run/": lambda p, rel: self._send(
                    HTTPStatus.OK, run_page(rel), "text/html; charset=utf-8"
                ),
                "/api/run/": lambda p, rel: self._json(run_payload(p)),
                "/view/": lambda p, rel: self._send(
                    HTTPStatus.OK, item_page(kind_of(p), rel, p), "text/html; charset=utf-8"
                ),
                "/file/": self._file,
            }
            if route == "/":
                self._send(
                    HTTPStatus.OK, index_page(root, discover(root)), "text/html; charset=utf-8"
                )
            elif route == "/api/index":
                self._json([item._asdict() for item in discover(root)])
            elif route == "/static/plotly.min.js":
                self._send(HTTPStatus.OK, plotly_js, "application/javascript")
            else:
                for prefix, answer in prefixed.items():
                    if route.startswith(prefix):
                        rel = route[len(prefix) :]
                        target = resolve(root, rel)
                        if target is None or not _serves(prefix, target):
                            return self._not_found()
                        return answer(target, rel)
                self._not_found()

        def _file(self, target: Path, rel: str) -> None:
            kind = SERVED.get(target.suffix.lower())
            if kind is None or not target.is_file():
                return self._not_found()
            self._send(HTTPStatus.OK, target.read_bytes(), kind)

    return Handler


def _serves(prefix: str, target: Path) -> bool:
    """Whether the route `prefix` answers for `target` (a run, another item, a file)."""
    if prefix == "/file/":
        return True  # checked by suffix and kind in Handler._file
    if prefix == "/view/":
        return kind_of(target) in VIEWS
    return is_run_dir(target)


def serve_dashboard(root: Path, port: int) -> None:
    """Serve until interrupted (the CLI's `grokjax dashboard`)."""
    dashboard = Dashboard(root, port)
    print(f"grokjax dashboard of {root} at {dashboard.url} (Ctrl-C stops it)", flush=True)
    try:
        dashboard.serve()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.server.server_close()
