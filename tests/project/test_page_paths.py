"""The pages' scripts have one home (``app_pages/paths.py``) and their addresses another
(``samon_app/page_paths.py``, which the view models' link checks read too): app.py's navigation
registers each script under its address, so every link and page switch the pages make lands on
a page, and no other module writes a page's script or address itself."""

from __future__ import annotations

import ast
from pathlib import Path

from support.apptest import goto, session
from support.paths import REPO as ROOT


def _page_paths() -> dict[str, str]:
    from app_pages import paths

    return {name: value for name, value in vars(paths).items() if name.endswith("_PAGE")}


def test_every_page_script_is_a_page_path_and_app_registers_each(runs):
    from app_pages import paths

    scripts = _page_paths()
    files = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app_pages").glob("*.py")}
    assert set(scripts.values()) <= files
    # Home, Launch, Live, Compare, Playground, Claims, Class verdict, Room: one path each
    assert len(set(scripts.values())) == len(scripts) == 8
    assert set(paths.URL_PATHS) == set(scripts.values())
    assert len(set(paths.URL_PATHS.values())) == 8  # one address per page
    at = session()
    for name, path in scripts.items():
        goto(at, path)  # an unregistered path raises in switch_page
        assert at.title or at.header or at.markdown, name


def _literals(path: Path) -> list[tuple[int, str]]:
    """The string constants of ``path`` that are a page's script or a ``url_path=`` value."""
    from app_pages import paths

    scripts = set(paths.URL_PATHS)
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and node.value in scripts:
            out.append((node.lineno, node.value))
        if isinstance(node, ast.keyword) and node.arg == "url_path" and isinstance(
                node.value, ast.Constant):
            out.append((node.lineno, f"url_path={node.value.value!r}"))
    return out


def test_only_paths_py_writes_a_page_script_or_address():
    found = {p.relative_to(ROOT).as_posix(): lines
             for p in [ROOT / "app.py", *sorted((ROOT / "app_pages").glob("*.py"))]
             if p.name != "paths.py" and (lines := _literals(p))}
    assert not found, found


def test_the_rule_sees_a_script_and_an_address_written_elsewhere(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('st.switch_page("app_pages/live.py")\nst.Page(x, url_path="live")\n')
    assert [line for line, _ in _literals(page)] == [1, 2]


def test_home_the_default_page_is_named_home_for_the_link_checks():
    from app_pages import paths
    from samon_app import page_paths

    assert page_paths.page_name("") == "home" == paths.URL_PATHS[paths.HOME_PAGE]
    assert page_paths.page_name("live") == "live"


def _addresses() -> set[str]:
    from samon_app import page_paths

    return {v for k, v in vars(page_paths).items() if k.isupper() and isinstance(v, str)}


def test_every_address_is_written_once_in_page_paths():
    """URL_PATHS and the link checks (``urlparams.page_params``) read the addresses from
    ``page_paths``: neither module, nor app.py nor link_params.py, writes one itself."""
    from app_pages import paths

    assert set(paths.URL_PATHS.values()) == _addresses()
    found = {}
    for name in ("app.py", "app_pages/paths.py", "app_pages/link_params.py",
                 "samon_app/urlparams.py"):
        tree = ast.parse((ROOT / name).read_text(encoding="utf-8"))
        lines = [n.lineno for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and n.value in _addresses()]
        if lines:
            found[name] = lines
    assert not found, found


def test_the_link_checks_know_the_pages_by_their_addresses():
    from app_pages import paths
    from samon_app import urlparams

    def options(name):
        return {"presets": ["p"], "groups": {"g"}, "filter_values": {}}[name]

    declared = {p: urlparams.page_params(paths.URL_PATHS[p], options) for p in paths.URL_PATHS}
    assert declared[paths.HOME_PAGE] == {}
    assert "preset" in declared[paths.LAUNCH_PAGE]
    assert "view" in declared[paths.LIVE_PAGE] and "c_metric" in declared[paths.COMPARE_PAGE]
    assert declared[paths.ROOM_PAGE] is None and declared[paths.PLAYGROUND_PAGE] is None
