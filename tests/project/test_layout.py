"""The layout rules of the code, read from the source with ``ast`` (nothing is imported):

* no import cycle between samon_core modules, function-level imports included (a lazy import
  hides a cycle from Python, not from the design);
* no module of samon_core / samon_app over 500 lines unless its docstring says why (a line with
  "longer than 500 lines because"), and no function over 80 lines.

Which layer may import which (streamlit never in samon_core, among others) is the import-linter
contracts' (.importlinter, tests/project/test_import_contracts.py).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from support.paths import REPO

PACKAGES = ("samon_core", "samon_app")
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80
LONG_MODULE_REASON = "longer than 500 lines because"


def module_files(package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``package`` (``__init__`` = the
    package itself)."""
    out = {}
    for path in sorted((REPO / package).rglob("*.py")):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth (functions included), except those under
    ``if TYPE_CHECKING:`` (never executed, so they cannot make a cycle)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        children = list(ast.iter_child_nodes(node))
        if _type_checking_only(node):
            children = list(node.orelse)
        stack.extend(children)


def imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that module ``name`` (at ``path``) imports. ``from a import b``
    imports ``a.b`` when that is a module, else ``a``; relative imports are resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in runtime_imports(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base
                       for a in node.names]
        out.update(t for t in targets if t in known and t != name)
    return out


def import_graph(package: str) -> dict[str, set[str]]:
    files = module_files(package)
    known = set(files)
    return {name: imported_modules(name, path, known) for name, path in files.items()}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a -> ... -> a) per strongly connected component with more than one module
    (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    comp.append(member)
                    if member == node:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))
    return [_cycle_in(graph, comp) for comp in components]


def _cycle_in(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """A shortest cycle through the first module of a strongly connected component (BFS)."""
    members = set(component)
    start = component[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    return component  # not reached: a component of 2+ modules always has a cycle


def test_find_cycles_reports_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_samon_core():
    graph = import_graph("samon_core")
    assert "samon_core.runs.config" in graph  # the walk sees the package
    cycles = find_cycles(graph)
    text = "\n".join(" -> ".join(c) for c in cycles)
    assert not cycles, f"import cycles in samon_core:\n{text}"


def test_modules_and_functions_are_short():
    long_modules, long_functions = [], []
    for package in PACKAGES:
        for name, path in module_files(package).items():
            text = path.read_text()
            tree = ast.parse(text, str(path))
            n_lines = len(text.splitlines())
            doc = ast.get_docstring(tree) or ""
            if n_lines > MAX_MODULE_LINES and LONG_MODULE_REASON not in doc:
                long_modules.append(f"{name}: {n_lines} lines")
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long_functions.append(f"{name}.{node.name} (line {node.lineno}): "
                                              f"{length} lines")
    problems = []
    if long_modules:
        problems.append(f"modules over {MAX_MODULE_LINES} lines whose docstring does not say "
                        f"why ('{LONG_MODULE_REASON} ...'):\n  " + "\n  ".join(long_modules))
    if long_functions:
        problems.append(f"functions over {MAX_FUNCTION_LINES} lines:\n  "
                        + "\n  ".join(long_functions))
    assert not problems, "\n".join(problems)
