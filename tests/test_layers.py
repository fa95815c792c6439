"""The package's import layering: no cycles, and nothing imports a layer above its own.

Layers, bottom up (a module may import its own layer and those below):

    0 foundations: errors, io, section, hparams, xla_flags, wanglandau
    1 problem: tasks, data, models, metrics, ... (what a network learns)
    2 optim: the optimizer table and its transformations
    3 config (composes the sections), train, landscape, stats (pure statistics),
      figures (backend-free descriptions of figures)
    4 presets
    5 plots and host (disk, devices, processes, figures as files)
    6 report (views of run directories)
    7 the command and the package's face (cli, __init__)

Every import counts, also inside functions and under TYPE_CHECKING.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "grokjax"

LAYERS = {
    "grokjax.errors": 0,
    "grokjax.io": 0,
    "grokjax.section": 0,
    "grokjax.hparams": 0,
    "grokjax.xla_flags": 0,
    "grokjax.wanglandau": 0,
    "grokjax.problem": 1,
    "grokjax.optim": 2,
    "grokjax.config": 3,
    "grokjax.train": 3,
    "grokjax.landscape": 3,
    "grokjax.stats": 3,
    "grokjax.figures": 3,
    "grokjax.presets": 4,
    "grokjax.plots": 5,
    "grokjax.host": 5,
    "grokjax.report": 6,
    "grokjax.cli": 7,
    "grokjax": 7,  # the package's __init__
}
NEVER = {  # the pure layers never reach the host, the report or the figures
    prefix: ("grokjax.host", "grokjax.report", "grokjax.plots")
    for prefix in ("grokjax.stats", "grokjax.problem", "grokjax.optim", "grokjax.wanglandau")
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The grokjax modules `name` imports (a `from package import module` counts as the
    module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            submodules = {f"{base}.{a.name}" for a in node.names} & modules.keys()
            # `from package import module` imports the module, not the package's face
            found |= submodules if len(submodules) == len(node.names) else {base, *submodules}
    return {m for m in found if m in modules and m != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def test_every_module_has_a_layer():
    assert all(any(m == p or m.startswith(p + ".") for p in LAYERS) for m in _graph())


def test_no_import_cycles():
    graph, state, cycles = _graph(), {}, []

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_nothing_imports_upward():
    upward = [
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
        for a, targets in _graph().items()
        for b in targets
        if _layer(b) > _layer(a) and not b.startswith(a + ".")  # a package's face may
    ]
    assert not upward, upward


def test_the_pure_layers_never_reach_host_report_or_plots():
    bad = [
        f"{a} imports {b}"
        for a, targets in _graph().items()
        for prefix, banned in NEVER.items()
        if a == prefix or a.startswith(prefix + ".")
        for b in targets
        if b.startswith(banned)
    ]
    assert not bad, bad
