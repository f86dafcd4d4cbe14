"""The pages' scripts have one home (``app_pages/common.py``'s ``*_PAGE``): app.py's navigation
registers each of them, so every link and page switch the pages make lands on a page."""

from __future__ import annotations

from pathlib import Path

from support.apptest import goto, session

ROOT = Path(__file__).resolve().parents[1]


def _page_paths() -> dict[str, str]:
    from app_pages import common

    return {name: value for name, value in vars(common).items() if name.endswith("_PAGE")}


def test_every_page_script_is_a_page_path_and_app_registers_each(runs):
    paths = _page_paths()
    scripts = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app_pages").glob("*.py")}
    assert set(paths.values()) <= scripts
    # Home, Launch, Live, Compare, Playground, Claims, Class verdict, Room: one path each
    assert len(set(paths.values())) == len(paths) == 8
    at = session()
    for name, path in paths.items():
        goto(at, path)  # an unregistered path raises in switch_page
        assert at.title or at.header or at.markdown, name
