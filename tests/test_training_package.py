"""`pip install` of the repository gives the callback without Streamlit: the wheel is built from
pyproject.toml, pip-installed into a fresh virtual environment (no network: no dependencies are
downloaded; numpy, pandas and TensorFlow come from the test environment through a .pth file), and
a fit there streams to an ingest endpoint over 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path


from services.training.store import FINISHED, RunStore
from tests.test_training_remote import TOKEN, Endpoint

REPO = Path(__file__).resolve().parent.parent
SCRIPT = """
import json, sys
import numpy as np
from services.runtime import tensorflow
tensorflow()
import keras
from services.training.callback import DashboardCallback
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
                          keras.layers.Dense(2, activation="softmax")])
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
x, y = np.random.default_rng(0).random((8, 8, 8, 3)), np.arange(8) % 2
callback = DashboardCallback("from a fresh venv", url=sys.argv[1], token=sys.argv[2], spool_dir=sys.argv[3])
model.fit(x, y, batch_size=4, epochs=2, verbose=0, callbacks=[callback])
import services, importlib.metadata as metadata
print(json.dumps({"services": services.__file__, "streamlit": "streamlit" in sys.modules,
                  "delivered": callback.delivered, "run_id": callback.run_id,
                  "requires": metadata.requires("pathology-dashboard-callback")}))
"""


def test_the_pip_installed_callback_works_without_streamlit(data_root, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    shutil.copy(REPO / "pyproject.toml", source)
    shutil.copytree(REPO / "services", source / "services", ignore=shutil.ignore_patterns("__pycache__"))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q", "-w", str(tmp_path / "wheels"),
                    str(source)], check=True, cwd=tmp_path)
    [wheel] = (tmp_path / "wheels").glob("pathology_dashboard_callback-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # numpy, pandas, TF

    endpoint = Endpoint(RunStore()).start()
    try:
        done = subprocess.run([str(python), "-c", SCRIPT, endpoint.url, TOKEN, str(tmp_path / "spool")],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "TF_CPP_MIN_LOG_LEVEL": "3"})
    finally:
        endpoint.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["services"].startswith(str(site))  # the installed copy, not the repository
    assert report["streamlit"] is False and report["delivered"] is True
    assert any(requirement.startswith("numpy") for requirement in report["requires"])  # metadata was read
    assert not any("streamlit" in requirement.lower() for requirement in report["requires"])
    run = endpoint.store.get_run(report["run_id"])
    assert (run.status, run.source, run.epochs_done) == (FINISHED, "remote", 2)
