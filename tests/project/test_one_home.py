"""A run folder's file names have one home: ``samon_core/runs/files.py``.

The AST of every module of ``samon_core``, ``samon_app``, ``app_pages`` and ``app.py`` is
walked; the test fails, naming file:line, on

* a string constant that holds one of the names (``"meta.json"``, the text of an f-string such
  as ``f"runs/{rid}/config.json"`` or ``f"config.json: {exc}"``): a message shows a name built
  from the constant (``f"{CONFIG_FILE}: {exc}"``). Docstrings (and bare string statements,
  which do nothing) and comments are prose, and left alone;
* a module-level name of files.py (``CONFIG_FILE``, ...) assigned anywhere else (a second
  definition, or an alias ``CONFIG_FILE = files.CONFIG_FILE``);
* ``from X import CONFIG_FILE`` with another ``X`` than ``samon_core.runs.files`` (a
  re-export that a later edit could turn into a second home).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from support.paths import REPO

from samon_core.runs import files

SCANNED = ("samon_core", "samon_app", "app_pages", "app.py")
HOME = REPO / "samon_core" / "runs" / "files.py"
HOME_MODULE = "samon_core.runs.files"
NAMES = files.RUN_FILE_NAMES
CONSTANTS = frozenset(
    name for name, value in vars(files).items() if name.isupper() and not name.startswith("_"))


def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        path = REPO / name
        out.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return [p for p in out if p != HOME]


def _prose(tree: ast.AST) -> set[int]:
    """ids of the string constants that are statements of their own (docstrings)."""
    return {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)}


def spelled_names(source: str) -> Iterator[tuple[int, str]]:
    """(line, name) of each file name held by a string constant of ``source`` that is not
    prose (f-strings' text parts included)."""
    tree = ast.parse(source)
    prose = _prose(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and id(node) not in prose:
            for name in NAMES:
                if name in node.value:
                    yield node.lineno, name


def _bound_names(targets: list[ast.expr]) -> Iterator[str]:
    """The names an assignment binds (``A = ...``, ``A, B = ...``), not the names it reads
    (``d[f"{METRICS_FILE}: ..."] = ...`` binds none)."""
    for target in targets:
        if isinstance(target, ast.Name):
            yield target.id
        elif isinstance(target, (ast.Tuple, ast.List)):
            yield from _bound_names(target.elts)
        elif isinstance(target, ast.Starred):
            yield from _bound_names([target.value])


def second_homes(source: str) -> Iterator[tuple[int, str]]:
    """(line, what) of each assignment to one of files.py's names and each import of one from
    another module than files.py."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for name in _bound_names(targets):
                if name in CONSTANTS:
                    yield node.lineno, f"{name} assigned"
        elif isinstance(node, ast.ImportFrom) and node.module != HOME_MODULE:
            for alias in node.names:
                if alias.name in CONSTANTS:
                    yield node.lineno, f"{alias.name} imported from {node.module}"


def _found(check) -> list[str]:
    found = []
    for path in _files():
        for line, what in check(path.read_text(encoding="utf-8")):
            found.append(f"{path.relative_to(REPO)}:{line}: {what}")
    return found


def test_no_module_but_files_py_spells_a_run_file_name() -> None:
    assert _found(spelled_names) == [], "use the constants of samon_core/runs/files.py"


def test_the_names_are_defined_and_imported_from_files_py_only() -> None:
    assert _found(second_homes) == [], "import the names from samon_core.runs.files"


def test_the_scan_finds_a_reintroduced_literal() -> None:
    """The scan can fail: a plain literal, a path in an f-string and a message's text are
    found; the same names in a docstring, a comment or through the constant are not."""
    source = '''
"""The module's docstring names meta.json."""
NAME = "meta.json"  # a comment names summary.json
def f(rid, exc):
    """A docstring: config.json."""
    path = f"runs/{rid}/metrics.jsonl"
    return path, f"checkpoint.pt: {exc}", f"{CONFIG_FILE}: {exc}"
'''
    assert sorted(spelled_names(source)) == [
        (3, "meta.json"), (6, "metrics.jsonl"), (7, "checkpoint.pt")]


def test_the_scan_finds_a_second_home() -> None:
    source = ("from samon_core.runs.listing import META_FILE\n"
              "from samon_core.runs.files import CONFIG_FILE\n"
              "STATUS_FILE = 'x'\n"
              "seen[f'{METRICS_FILE}: x'] = None\n")
    assert sorted(second_homes(source)) == [
        (1, "META_FILE imported from samon_core.runs.listing"), (3, "STATUS_FILE assigned")]


def test_files_py_names_every_file_once_and_imports_nothing() -> None:
    assert len(set(NAMES)) == len(NAMES) == 6
    assert {getattr(files, name) for name in CONSTANTS - {"RUN_FILE_NAMES"}} == set(NAMES)
    imports = [node for node in ast.walk(ast.parse(HOME.read_text(encoding="utf-8")))
               if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [ast.unparse(node) for node in imports] == ["from __future__ import annotations"]
