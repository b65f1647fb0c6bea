"""Forms submit only from their button: pressing Enter in a field (the training form's Epochs or
Run name) must never start a run. Every ``st.form`` of the app passes ``enter_to_submit=False``."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def forms_submitting_on_enter(path: Path) -> list[int]:
    """Lines of the ``st.form(...)`` calls in ``path`` that leave Enter submitting the form."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "form":
            enter = next((k.value for k in node.keywords if k.arg == "enter_to_submit"), None)
            if not (isinstance(enter, ast.Constant) and enter.value is False):
                lines.append(node.lineno)
    return lines


def test_no_form_submits_on_enter():
    scripts = sorted((REPO / "pages").glob("*.py")) + sorted((REPO / "dashboard").glob("*.py"))
    offenders = {p.name: lines for p in scripts if (lines := forms_submitting_on_enter(p))}
    assert offenders == {}


def test_the_check_sees_a_form_without_the_option(tmp_path):
    page = tmp_path / "page.py"
    page.write_text('import streamlit as st\nwith st.form("a"):\n    pass\nwith st.form("b", enter_to_submit=False):\n'
                    '    pass\n')
    assert forms_submitting_on_enter(page) == [2]
