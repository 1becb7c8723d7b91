"""The house rules that keep the code easy to change (ARCHITECTURE.md), read from the source with ``ast``:

- layers: a package imports only packages on lower layers — module-level and function-level imports alike;
- no import cycle between modules;
- no function over 60 lines outside bench/ and tests/.

A rule broken in a file another branch is rewriting is listed in ``KNOWN``; the test fails when such an entry is
no longer true, so the list only shrinks.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Lowest first: a package may import only packages with a smaller number (and itself).
LAYERS = {"gradcam_core": 1, "models": 2, "analysis": 3, "store": 4, "report": 4, "cli": 5, "dashboard": 6,
          "pages": 7, "app": 7}
#: Above the line but still not allowed: the Streamlit side never imports the command line.
FORBIDDEN = {("dashboard", "cli"), ("pages", "cli"), ("app", "cli")}
MAX_FUNCTION_LINES = 60

#: Broken today in files other branches are rewriting: the lead's models/ and the CLI's move to cli/, the core's
#: engine and image decoding.
KNOWN: set[str] = set()


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the layered packages (pages/*.py as pages.<name>, app.py as app)."""
    found = {}
    for package in LAYERS:
        if (ROOT / f"{package}.py").is_file():
            found[package] = ROOT / f"{package}.py"
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            parts = path.relative_to(ROOT).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Project modules ``name`` imports anywhere in its file (a function body included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..y import z
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    return {t for t in targets if t.split(".")[0] in LAYERS and t != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {t for t in _imports(name, path, modules)} for name, path in modules.items()}


def _layer_violations(graph: dict[str, set[str]]) -> set[str]:
    found = set()
    for source, targets in graph.items():
        here = source.split(".")[0]
        for target in targets:
            there = target.split(".")[0]
            if there != here and (LAYERS[there] >= LAYERS[here] or (here, there) in FORBIDDEN):
                found.add(f"upward import {source} -> {target}")
    return found


def _cycles(graph: dict[str, set[str]]) -> set[str]:
    """Each strongly connected group of modules, as one cycle through it (Tarjan's algorithm)."""
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return {"import cycle " + " -> ".join([*group, group[0]]) for group in groups}


def _long_functions() -> set[str]:
    found = set()
    for path in _modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and lines > MAX_FUNCTION_LINES:
                found.add(f"function {path.relative_to(ROOT)} {node.name}")
    return found


def test_the_reader_sees_function_level_and_relative_imports(tmp_path):
    module = tmp_path / "probe.py"
    module.write_text("import os\nfrom models import x\n\ndef f():\n    from dashboard.state import Key\n"
                      "    import analysis.forward\n")
    modules = {"dashboard.state": module, "analysis.forward": module}
    assert _imports("gradcam_core.probe", module, modules) == {"models", "dashboard.state", "analysis.forward"}
    assert _layer_violations({"gradcam_core.probe": {"models", "gradcam_core.engine"}}) == {
        "upward import gradcam_core.probe -> models"}
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}, "a.w": {"a.x"}}) == {
        "import cycle a.x -> a.y -> a.z -> a.x"}


def package_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    edges = defaultdict(set)
    for source, targets in graph.items():
        for target in targets:
            if source.split(".")[0] != target.split(".")[0]:
                edges[source.split(".")[0]].add(target.split(".")[0])
    return edges


def test_no_upward_import_and_no_cycle():
    graph = _graph()
    edges = package_edges(graph)  # shown with pytest -s: which package imports which
    print("\n" + "\n".join(f"{p} -> {', '.join(sorted(edges[p], key=LAYERS.get))}"
                            for p in sorted(edges, key=LAYERS.get)))
    assert {"dashboard.state", "analysis.forward", "pages.explorer", "app"} <= graph.keys()
    found = _layer_violations(graph) | _cycles(graph)
    assert found - KNOWN == set(), "new import problems (see ARCHITECTURE.md for the layers)"
    assert {k for k in KNOWN if not k.startswith("function")} - found == set(), \
        "fixed: remove these from KNOWN"


def test_no_function_over_60_lines():
    found = _long_functions()
    assert found - KNOWN == set()
    assert {k for k in KNOWN if k.startswith("function")} - found == set(), "fixed: remove these from KNOWN"
