"""The app loads nothing from outside: a workshop network may have no internet. The pages may
*link* to the outside (the paper on arXiv: a click away, never fetched), but no asset (favicon,
image, font, script, style sheet) may come from a URL, and the Streamlit configuration names no
remote font."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from support.paths import REPO as ROOT

SOURCES = sorted([ROOT / "app.py", *(ROOT / "app_pages").rglob("*.py"),
                  *(ROOT / "samon_app").rglob("*.py")])
URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'<>)\]]*""")
# A URL the user may follow: a Markdown link target or an <a href>. Anything else is loaded.
LINK_TARGET = re.compile(r"""\]\(\s*$|<a\s[^>]*href=["']?\s*$""")


def urls_outside_links(text: str) -> list[str]:
    """URLs of ``text`` that are not the target of a Markdown link or an <a href>."""
    found = []
    for m in URL.finditer(text):
        if m.group().startswith("//") and text[max(0, m.start() - 1)] == ":":
            continue  # the tail of a match already seen
        before = text[max(0, m.start() - 200):m.start()]
        if not LINK_TARGET.search(before):
            found.append(m.group())
    return found


def string_constants(path: Path) -> list[str]:
    """Every string literal of a Python file (comments and docstrings are not loaded by a
    browser, so only literals count; f-string parts included)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [node.value for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_the_checks_can_fail():
    assert urls_outside_links("st.image('https://example.org/logo.png')")
    assert urls_outside_links('<img src="//cdn.example.com/x.svg">')
    assert not urls_outside_links("[arXiv 2306.04226](https://arxiv.org/abs/2306.04226)")
    assert not urls_outside_links('<a href="https://arxiv.org/abs/2306.04226">paper</a>')


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_load_no_remote_assets(path):
    for text in string_constants(path):
        assert not urls_outside_links(text), f"{path.name}: loads {urls_outside_links(text)}"


def page_icons() -> list[object]:
    """The ``page_icon`` arguments of every ``st.set_page_config`` call of the pages."""
    icons = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "set_page_config":
                icons += [ast.literal_eval(k.value) for k in node.keywords
                          if k.arg == "page_icon"]
    return icons


def test_the_favicon_is_bundled():
    """Streamlit's browser code fetches a ``:material/...:`` favicon from fonts.gstatic.com; an
    emoji is drawn from an inline SVG and a local file is served by the app itself."""
    icons = page_icons()
    assert icons, "no st.set_page_config(page_icon=...): Streamlit's default favicon is fine, " \
                  "but this test expects the app to set its own"
    for icon in icons:
        assert isinstance(icon, str) and not icon.startswith(":material"), icon
        assert not URL.search(icon), icon
        if "." in icon:  # a file name: it must be in the repository
            assert (ROOT / icon).is_file(), icon


def test_streamlit_config_names_no_remote_font_or_asset():
    for path in (ROOT / ".streamlit").glob("*.toml"):
        lines = [ln.split("#", 1)[0] for ln in path.read_text().splitlines()]
        assert not URL.search("\n".join(lines)), f"{path.name} loads something from a URL"
