"""Run states are written as ``RunState`` members (or its groups), never as bare strings.

``samon_core/runs/states.py`` is the one home of the states' words. This test walks the AST of
every module of ``samon_core``, ``samon_app``, ``app_pages`` and ``app.py`` and fails, naming
file:line, on a string constant equal to a ``RunState`` value ("queued", "running", ...) that is
used *as a run state*, which is when it is

1. compared (``==``, ``!=``, ``in``, ``not in``) with an expression that names a state: one
   whose subtree holds a name or attribute with "state" in it (``state``, ``info.state``,
   ``states``) or the constant ``"state"`` (``row["state"]``, ``status.get("state")``); the
   constant may sit in a tuple / list / set on either side (``state in ("queued", "running")``);
2. one of two or more such constants in one tuple / list / set literal (a group of states
   written out: ``{"queued", "running"}``, ``df.isin(["queued", "running"])``);
3. a key of a dict literal with two or more such keys (a table over states), or the value of
   a key with "state" in it in a dict literal (``{"state": "failed"}``);
4. assigned to ``x["state"]``, to a name or attribute with "state" in it, passed as a keyword
   argument with "state" in its name (``state=``, ``reused_state=``), the default of
   ``.get("state", ...)`` or of ``states.get(key, ...)``, the key of a subscript of something
   named for states (``counts_by_state["queued"]``), or the default of a parameter with
   "state" in its name;
5. passed positionally where a function of the scanned code has a parameter named ``state``
   (``store.write_status(run_id, "finished")``).

Left alone, because there the word is another concept: docstrings, comments and messages
(f-strings and plain text), dict keys or columns that reuse a word (the Playground's
``row["diverged"]``, ``c == "diverged"`` on a column name), and values that are not compared with
a state (``request_slices`` returns the *request's* ``"queued"`` / ``"pending"``).
``UNKNOWN_STATE`` ("unknown") is not a ``RunState`` and is not checked.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.paths import REPO

from samon_core.runs.states import RunState

SCANNED = ("samon_core", "samon_app", "app_pages", "app.py")
STATES = frozenset(s.value for s in RunState)

def _files() -> list[Path]:
    out = []
    for name in SCANNED:
        path = REPO / name
        out.extend([path] if path.is_file() else sorted(path.rglob("*.py")))
    return out


def _is_state(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) \
        and node.value in STATES


def _names_state(node: ast.AST) -> bool:
    """Whether an expression names a state: a name, attribute or keyword with "state" in it,
    or the constant "state" (a key)."""
    for sub in ast.walk(node):
        word = (sub.id if isinstance(sub, ast.Name) else sub.attr
                if isinstance(sub, ast.Attribute) else sub.value
                if isinstance(sub, ast.Constant) and isinstance(sub.value, str) else None)
        if isinstance(sub, ast.Constant):
            if word == "state":
                return True
        elif isinstance(word, str) and "state" in word.lower():
            return True
    return False


def _states_in(node: ast.AST) -> list[ast.Constant]:
    """The state constants of ``node`` itself or of its tuple / list / set literal."""
    if _is_state(node):
        return [node]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e for e in node.elts if _is_state(e)]
    return []


def state_parameters(trees: list[ast.AST]) -> dict[str, set[int]]:
    """Function name -> positions (``self`` / ``cls`` not counted) of a parameter named
    ``state``, over every function of the scanned code (rule 5)."""
    out: dict[str, set[int]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
                if names and names[0] in ("self", "cls"):
                    names = names[1:]
                if "state" in names:
                    out.setdefault(node.name, set()).add(names.index("state"))
    return out


def _call_name(func: ast.AST) -> str | None:
    return func.id if isinstance(func, ast.Name) else (
        func.attr if isinstance(func, ast.Attribute) else None)


def bare_states(tree: ast.AST, params: dict[str, set[int]]) -> Iterator[int]:
    """The line of every state constant used as a run state (rules 1-5 of the module doc)."""
    for node in ast.walk(tree):
        found: list[ast.AST] = []
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if all(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                for i, side in enumerate(sides):
                    if any(_names_state(o) for j, o in enumerate(sides) if j != i):
                        found += _states_in(side)
        elif isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            states = _states_in(node)
            found += states if len(states) >= 2 else []
        elif isinstance(node, ast.Dict):
            keys = [k for k in node.keys if k is not None and _is_state(k)]
            found += keys if len(keys) >= 2 else []
            found += [v for k, v in zip(node.keys, node.values, strict=True)
                      if isinstance(k, ast.Constant) and isinstance(k.value, str)
                      and "state" in k.value.lower() and _is_state(v)]
        elif isinstance(node, ast.Subscript):
            found += [node.slice] if _is_state(node.slice) and _names_state(node.value) else []
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_names_state(t) for t in targets):
                found += _states_in(node.value)
        elif isinstance(node, ast.Call):
            found += [k.value for k in node.keywords
                      if k.arg and "state" in k.arg.lower() and _is_state(k.value)]
            name = _call_name(node.func)
            if name in ("get", "setdefault") and len(node.args) == 2 and (
                    _names_state(node.args[0]) or _names_state(node.func)):
                found += _states_in(node.args[1])
            found += [a for i, a in enumerate(node.args)
                      if i in params.get(name or "", ()) and _is_state(a)]
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            pairs = [*zip(positional[len(positional) - len(args.defaults):], args.defaults,
                          strict=True),
                     *((a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                       if d is not None)]
            found += [d for a, d in pairs if "state" in a.arg.lower() and _is_state(d)]
        for const in found:
            yield const.lineno


def _scan() -> dict[str, list[int]]:
    trees = {p.relative_to(REPO).as_posix(): ast.parse(p.read_text(encoding="utf-8"), str(p))
             for p in _files()}
    params = state_parameters(list(trees.values()))
    return {name: sorted(set(bare_states(tree, params))) for name, tree in trees.items()}


def test_no_run_state_is_a_bare_string():
    found = [f"{name}:{line}" for name, lines in _scan().items() for line in lines]
    assert not found, ("run states written as bare strings (use RunState / its groups, "
                       "samon_core/runs/states.py): " + ", ".join(found))


_FLAGGED = """
if info.state == "finished": pass
if "cancelled" not in (chosen.get("state") or []): pass
if state in ("queued", "running"): pass
active = df["state"].isin(["queued", "running"])
if states & {"queued", "running"}: pass
TEXT = {"queued": "waiting", "running": "training"}
summary = {"state": "failed", "error": "x"}
status["state"] = "running"
replace(info, state="running")
ok = summary.get("state", "finished")
waiting = states["queued"]
out = {"reused_state": adm.states.get(rid, "queued")}
def f(state="queued"): pass
store.write_status(rid, "finished")
"""

_LEFT_ALONE = '''
def g():
    """A run ends 'failed' or "finished"."""
    row["diverged"] = o.diverged
    cells = ["yes" if c == "diverged" else "-" for c in columns]
    log(f"the run is running")
    answers = {"detached": "You left it.", "cancelled": "Cancelled."}
    flags = row.get("diverged")
    word = "cancelled before it started" if state == RunState.QUEUED else "cancelled"
    return "queued"
'''


@pytest.mark.parametrize("line", [x for x in _FLAGGED.strip().splitlines()])
def test_the_rule_finds_each_kind_of_bare_state(line):
    tree = ast.parse("def write_status(self, run_id, state): pass\n" + line)
    params = state_parameters([tree])
    assert list(bare_states(tree, params)), line


def test_the_rule_leaves_other_uses_of_the_words():
    tree = ast.parse(_LEFT_ALONE)
    assert list(bare_states(tree, state_parameters([tree]))) == []


def test_architecture_names_every_state_and_group():
    """ARCHITECTURE.md's "Status values" lists every RunState and names every group of
    states.py, so a state or group added there shows up missing here."""
    from samon_core.runs import states

    text = (REPO / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Status values", 1)[1].split("\n## ", 1)[0]
    groups = [n for n in vars(states) if n.endswith("_STATES")]
    assert len(groups) == 4
    missing = [w for w in [*(f"`{s.value}`" for s in RunState), *groups] if w not in section]
    assert not missing, missing
