"""The package's import graph: no import cycle between any two modules or sub-packages, and the
regime engine reaches no lmms-eval import, so it works on any transformers model (notebooks,
other harnesses). Read from the source (every import, also those inside functions)."""

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1]
# Where each folder is installed (setup.cfg's package_dir).
FOLDERS = {"lmms_eval_flow": "lmms_eval_flow", "model_wrappers": "lmms_eval_flow.model_wrappers",
           "tasks": "lmms_eval_flow.tasks"}
ENGINE = "lmms_eval_flow.engine"


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules ``name`` imports: project modules by name, others by their top-level package."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names}
    return {t if t in known else t.split(".")[0] for t in targets}


def graph() -> nx.DiGraph:
    found = modules()
    edges = nx.DiGraph()
    for name, path in found.items():
        edges.add_node(name)
        edges.add_edges_from((name, target) for target in imports(name, path, set(found)) if target != name)
    return edges


def test_no_import_cycle_between_modules():
    project = graph().subgraph(modules())
    assert list(nx.simple_cycles(project)) == []


def test_no_import_cycle_between_sub_packages():
    """Between engine, harness, scoring, analysis, reporting, tiny, toy, the tasks and the wrappers
    (the top-level modules, cli and atomic, count as packages of their own)."""
    found = modules()
    packages = nx.DiGraph()
    for source, target in graph().subgraph(found).edges:
        a, b = ".".join(source.split(".")[:2]), ".".join(target.split(".")[:2])
        if a != b:
            packages.add_edge(a, b)
    assert list(nx.simple_cycles(packages)) == []


def test_the_engine_reaches_no_lmms_eval_import():
    edges = graph()
    engine = [module for module in edges if module.startswith(ENGINE)]
    reached = set(engine).union(*(nx.descendants(edges, module) for module in engine))
    assert "lmms_eval" not in reached
    assert not [m for m in reached if m.startswith(("lmms_eval_flow.tasks", "lmms_eval_flow.model_wrappers"))]


def test_the_graph_sees_imports_inside_functions():
    """A check on the checker: a lazy import is an import too (it once hid a cycle)."""
    edges = graph()
    assert edges.has_edge("lmms_eval_flow.cli", "lmms_eval_flow.toy.demo")  # imported inside cmd_demo
    assert edges.has_edge("lmms_eval_flow.harness.flow_model", "lmms_eval")


def test_the_tests_have_one_conftest():
    """Test files import shared helpers with ``from conftest import ...``: a second conftest.py is
    imported under the same name and shadows the first for every file collected after it."""
    assert sorted(path.relative_to(ROOT) for path in (ROOT / "tests").rglob("conftest.py")) == [Path("tests/conftest.py")]
