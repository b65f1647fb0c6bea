"""services/run_layout.py is the only code that names the files inside run and job folders."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMES = re.compile(r"""["'](best\.keras|last\.keras|final\.keras|worker\.log)["']""")


def test_only_run_layout_names_run_folder_files():
    offenders = []
    for folder in ("services", "pages", "dashboard", "bench"):
        for path in (REPO / folder).rglob("*.py"):
            if path.name == "run_layout.py":
                continue
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if NAMES.search(line):
                    offenders.append(f"{path.relative_to(REPO)}:{number}: {line.strip()}")
    assert offenders == []
