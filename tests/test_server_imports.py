"""The Streamlit server process never imports TensorFlow or Keras.

Every page of the navigation is run with Streamlit's AppTest in a fresh Python process (the
test process itself has TensorFlow loaded by other tests), on the demo data; then that
process's ``sys.modules`` must hold neither ``tensorflow`` nor ``keras``. TensorFlow work
happens in the model service and in job workers (other processes, which the pages start).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import json, sys
sys.path.insert(0, {repo!r})
from streamlit.testing.v1 import AppTest
from dashboard.pages_registry import PAGES

problems = []
for spec in PAGES:
    app = AppTest.from_file({app!r}, default_timeout=180)
    app.run()
    app.switch_page(spec.link).run()
    if app.exception:
        problems.append(f"{{spec.file}}: {{app.exception[0].message}}")
    if spec.file == "system.py":
        next(b for b in app.button if "probe" in b.label.lower()).click().run()
print(json.dumps({{"pages": [s.file for s in PAGES], "problems": problems,
                  "loaded": sorted(m for m in ("tensorflow", "keras") if m in sys.modules)}}))
"""


def test_no_page_imports_tensorflow_into_the_server(data_root):
    from services.datasets import demo

    demo.ensure_demo_dataset()
    completed = subprocess.run([sys.executable, "-c", SCRIPT.format(repo=str(REPO), app=str(REPO / "dashboard" / "app.py"))], cwd=REPO,
                               capture_output=True, text=True, timeout=900)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert "system.py" in report["pages"] and len(report["pages"]) >= 6
    assert report["loaded"] == [], f"the server process imported {report['loaded']}"
    assert report["problems"] == []
