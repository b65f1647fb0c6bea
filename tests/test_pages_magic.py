"""No page renders stray text: Streamlit's "magic" writes every bare expression of a page script
(a string after an assignment, meant as a variable's docstring, shows up as a paragraph). The
pages are run through Streamlit's own magic transformation and every string it would write fails."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from streamlit.runtime.scriptrunner.magic import add_magic

from dashboard.pages_registry import PAGES, PAGES_DIR

SCRIPTS = [spec.path for spec in PAGES] + [PAGES_DIR.parent / "dashboard" / "app.py"]


def magic_strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of each constant string that Streamlit's magic would write on the page."""
    tree = add_magic(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "transparent_write":
            found += [(arg.lineno, arg.value) for arg in node.args
                      if isinstance(arg, ast.Constant) and isinstance(arg.value, str)]
    return found


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_no_page_writes_a_bare_string(script):
    assert magic_strings(script) == []


def test_the_check_finds_a_variable_docstring(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('"""Module docstring: not written."""\nSTORES = {}\n"""Stores by prefix."""\n\n'
                    'def f():\n    """Function docstring: not written."""\n    x = 1\n    "stray"\n')
    assert magic_strings(page) == [(3, "Stores by prefix."), (8, "stray")]
