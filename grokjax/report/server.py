"""`grokjax dashboard [RUNS_DIR]`: a local web page of every run, comparison, sweep and
landscape under a directory, following runs in progress.

The server is the standard library's threading HTTP server bound to 127.0.0.1 only. It
answers the routes below and reads run directories as data: it never imports, executes
or serves as a page anything a run directory contains. Files are served only from inside
RUNS_DIR, only of the suffixes in `SERVED`; '..', an absolute path or a link out of
RUNS_DIR is a 404.

    /                     the index: every item under RUNS_DIR, a run's state beside it
    /api/index            the same as JSON (the index page refreshes from it)
    /run/PATH             a run's views (`grokjax.report.views`); while the run is running
                          it redraws in place from /api/run/PATH every `POLL_MS`
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
from grokjax.report.html import document, figure_divs, run_facts
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
    if "\\" in rel or "\0" in rel or any(p in ("", ".", "..") for p in rel.split("/")):
        return None  # also '' and an absolute path (an empty first part)
    base = root.resolve()
    target = (base / rel).resolve()
    return target if target == base or base in target.parents else None


def run_payload(run_dir: Path) -> dict[str, Any]:
    """What /api/run/PATH answers: figures as plotly JSON, state, facts, summary table."""
    try:
        data = load_run(run_dir)
    except RunDataError as err:
        return {"error": str(err), "state": run_state(run_dir)}
    figures = {  # uirevision: redraws keep zoom and legend clicks
        name: json.loads(fig.update_layout(uirevision=name).to_json())
        for name, fig in run_figures(data).items()
    }
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
    return document(title, f"{body}<script>{script}</script>", "/static/plotly.min.js").encode()


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


def _row(item: Item) -> str:
    name = html.escape(item.path if item.path != "." else "(this directory)")
    link = html.escape(f"/{'run' if item.kind == 'run' else 'view'}/{item.path}")
    state = f" <span class='state {item.state}' data-state='{item.state}'>{item.state}</span>"
    error = f" <span class='error'>unreadable: {html.escape(item.error or '')}</span>"
    return (
        f"<li data-kind='{item.kind}' data-path='{html.escape(item.path)}'>{item.kind}: "
        f"<a href='{link}'>{name}</a>{state if item.kind == 'run' else ''}"
        f"{error if item.error else ''}</li>"
    )


def index_page(root: Path, items: list[Item]) -> bytes:
    """Every item with its state; the page reloads itself when a run starts, finishes
    or changes state."""
    where = html.escape(str(root))
    body = (
        f"<p>{where}</p><ul>{''.join(map(_row, items))}</ul>"
        if items
        else f"<p id='empty'>No runs under {where} yet: start one with "
        "<code>grokjax run --out DIR</code> inside it.</p>"
    )
    script = INDEX_SCRIPT % (_js([i._asdict() for i in items]), 2 * POLL_MS)
    return _page("grokjax dashboard", f"<h1>grokjax dashboard</h1>{body}", script)


RUN_SCRIPT = """
const PATH = %s, POLL_MS = %d, $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) =>
  ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'})[c]);
async function refresh() {
  let d;
  const url = '/api/run/' + PATH.split('/').map(encodeURIComponent).join('/');
  try { d = await (await fetch(url)).json(); }
  catch (e) { setTimeout(refresh, POLL_MS); return; }
  $('state').textContent = d.state; $('state').className = 'state ' + d.state;
  $('error').textContent = d.error || '';
  if (!d.error) {
    $('title').textContent = d.title; $('evaluations').textContent = d.evaluations;
    $('facts').innerHTML = d.facts.map(
      ([k, v]) => '<dt>' + esc(k) + '</dt><dd>' + esc(v) + '</dd>').join('');
    for (const [name, fig] of Object.entries(d.figures)) {
      let div = $('fig-' + name);
      if (!div) {
        div = document.createElement('div'); div.id = 'fig-' + name;
        div.className = 'figure'; $('figures').appendChild(div);
      }
      Plotly.react(div, fig.data, fig.layout, {responsive: true});
    }
    $('summary').innerHTML = d.summary_html || '<p>No summary yet: the run has not finished.</p>';
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
    head = f"<p><a href='/'>all runs</a></p><h1>{html.escape(rel)}"
    try:
        figures, table = VIEWS[kind](target)
    except RunDataError as err:
        return _page(rel, f"{head}</h1><p class='error' id='error'>{html.escape(str(err))}</p>")
    body = f"{head} <small>{kind}</small></h1>{figure_divs(figures)}<div id='table'>{table}</div>"
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


HTML, TEXT = "text/html; charset=utf-8", "text/plain; charset=utf-8"


def _file(target: Path, rel: str) -> tuple[bytes, str] | None:
    kind = SERVED.get(target.suffix.lower())
    return (target.read_bytes(), kind) if kind is not None and target.is_file() else None


# prefix -> the answer (body, content type) for the resolved path and the relative
# path, or something false (a 404) when the route does not serve that path
PREFIXED: dict[str, Callable[[Path, str], Any]] = {
    "/run/": lambda p, rel: is_run_dir(p) and (run_page(rel), HTML),
    "/api/run/": lambda p, rel: is_run_dir(p) and _json(run_payload(p)),
    "/view/": lambda p, rel: kind_of(p) in VIEWS and (item_page(kind_of(p), rel, p), HTML),
    "/file/": _file,
}


def _json(obj: Any) -> tuple[bytes, str]:
    return json.dumps(obj).encode(), "application/json"


def _handler(root: Path) -> type[BaseHTTPRequestHandler]:
    from plotly.offline import get_plotlyjs

    plotly_js = get_plotlyjs().encode()

    def answer(route: str) -> Any:
        if route == "/":
            return index_page(root, discover(root)), HTML
        if route == "/api/index":
            return _json([item._asdict() for item in discover(root)])
        if route == "/static/plotly.min.js":
            return plotly_js, "application/javascript"
        for prefix, page in PREFIXED.items():
            if route.startswith(prefix):
                rel = route[len(prefix) :]
                return (target := resolve(root, rel)) is not None and page(target, rel)
        return None

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

        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            try:
                found = answer(unquote(urlsplit(self.path).path))
                if found:
                    self._send(HTTPStatus.OK, *found)
                else:
                    self._send(HTTPStatus.NOT_FOUND, b"not found", TEXT)
            except BrokenPipeError:
                pass
            except Exception as err:  # one bad run directory must not stop the server
                body = f"error: {type(err).__name__}: {err}".encode()
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, body, TEXT)

    return Handler


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
