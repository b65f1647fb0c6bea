"""User-controlled text before Markdown and HTML (issue 12): dashboard.widgets.md and swatches_html."""

from __future__ import annotations

import re

from dashboard.widgets import md, swatches_html

HOSTILE = "<img src=x onerror=alert(1)>"


def test_markdown_escaping_neutralises_links_images_html_latex_and_directives():
    text = md(f"{HOSTILE} ![t](http://evil/p.png) [x](javascript:alert(1)) $x$ :red[big]\n# heading")
    assert not re.search(r"(?<!\\)[<>\[\]$]", text)  # every active character is backslash-escaped
    assert "\n" not in text
    assert text.startswith("\\<img src=x onerror=alert(1)\\>") and "DASHBOARD_MAX_ZIP_BYTES" in md(
        "DASHBOARD_MAX_ZIP_BYTES")
    assert md("a | b") == "a \\| b"  # a name cannot end a Markdown table cell (Home's table)


def test_swatches_escape_labels_and_drop_colours_that_are_not_hex():
    html = swatches_html([(HOSTILE, "#a0b1c2"), ("x", "red;background:url(http://evil)"), ("y", None)])
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img" not in html
    assert "#a0b1c2" in html and "evil" not in html and html.count("<small>") == 1
