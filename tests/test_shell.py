"""The app shell: navigation, home page, configuration, runtime service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services import readiness
from services.config import confine, get_settings
from services.errors import PathOutsideRoot
from services.style import fast_models
from services.tissuemap import kather_large

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "dashboard" / "app.py")


def test_home_page_renders_device_and_tensorflow_version(data_root):
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert not app.exception
    labels = [metric.label for metric in app.metric]
    assert "TensorFlow" in labels
    assert any(label in ("CPU", "GPU") for label in labels)
    assert "Applied deep learning" in app.title[0].value


def test_home_page_starts_here_and_shows_the_demo_banner(data_root):
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert not app.exception
    assert any(header.value == "Start here" for header in app.subheader)
    banner = app.warning[0].value
    assert "Running on demo data" in banner
    assert "Work fully now:** System." in banner
    table = app.expander[0].markdown[0].value
    for title in ("Dataset explorer", "Training monitor", "Transfer learning", "Tissue map", "Style transfer",
                  "Object detector"):
        assert title in banner and f"| {title} |" in table
    assert "Kather" in table and "VGG19" in table and "Magenta" in table and "yolov3" in table
    assert "larger images" in table
    start_here = [link.label for link in app.get("page_link")]
    assert "4. Tissue map" in start_here
    assert str(data_root) not in table  # places are named relative to the data root


def _install_everything(data_root: Path) -> None:
    """Real data and every model file present (contents are not checked by the Home page)."""
    (data_root / "datasets" / "kather2016").mkdir(parents=True)
    models = data_root / "models"
    (models / "darknet").mkdir(parents=True)
    (models / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5").write_bytes(b"x")
    (models / "darknet" / "yolov3-tiny.weights").write_bytes(b"x")
    (models / "magenta").mkdir()
    for item in fast_models.files_for():
        (models / "magenta" / item.file_name).write_bytes(b"x")
    (data_root / "datasets" / kather_large.FOLDER_NAME).mkdir()
    (data_root / "datasets" / kather_large.FOLDER_NAME / "CRC-Prim-HE-01.tif").write_bytes(b"x")


def test_readiness_follows_the_files_present(data_root, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(data_root / "no-keras"))
    state = readiness.readiness()
    assert state.limited and not state.real_data and not state.offline
    assert {item.page for item in state.pages if item.state == readiness.READY} == {"system.py"}
    _install_everything(data_root)
    state = readiness.readiness()
    assert state.real_data
    assert all(item.state == readiness.READY for item in state.pages), state.pages
    assert not state.limited
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert not app.warning and not app.expander


def test_offline_banner_says_to_copy_files_by_hand(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    app = AppTest.from_file(APP, default_timeout=30).run()
    banner = app.warning[0].value
    assert "Running offline and on demo data" in banner
    assert "Downloads are off" in banner
    table = app.expander[0].markdown[0].value
    assert "downloaded elsewhere" in table and "download button" not in table


def test_home_page_does_not_import_tensorflow(data_root):
    code = (
        "import sys; from streamlit.testing.v1 import AppTest;"
        "AppTest.from_file('dashboard/app.py', default_timeout=30).run();"
        "print('tensorflow' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip().splitlines()[-1] == "False"


def _make_run_environment(tmp_path: Path, *make_args: str) -> str:
    """What `make run` hands to its launcher (which starts Streamlit), with a stand-in for the
    virtualenv's python."""
    fake_python = tmp_path / "python"
    fake_python.write_text('#!/bin/sh\necho "ADDRESS=$STREAMLIT_SERVER_ADDRESS ARGS=$*"\n')
    fake_python.chmod(0o755)
    result = subprocess.run(["make", "-s", "run", f"VENV={tmp_path}", f"PY={fake_python}", *make_args],
                            cwd=REPO, capture_output=True, text=True, check=True, timeout=30)
    return next(line for line in result.stdout.splitlines() if "services.supervisor" in line)


def test_make_run_listens_on_localhost_unless_told_otherwise(tmp_path):
    assert _make_run_environment(tmp_path).startswith("ADDRESS=127.0.0.1 ")
    served = _make_run_environment(tmp_path, "ADDRESS=0.0.0.0")
    assert served.startswith("ADDRESS=0.0.0.0 ") and "--address 0.0.0.0" in served


def test_settings_follow_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DASHBOARD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DASHBOARD_MAX_ZIP_MEMBERS", "7")
    settings = get_settings()
    assert settings.data_root == tmp_path.resolve()
    assert settings.model_cache_dir == tmp_path.resolve() / "models"
    assert settings.max_zip_members == 7


def test_confine_refuses_paths_outside_the_root(data_root, tmp_path):
    assert confine("a/b", data_root) == data_root / "a" / "b"
    for outside in ("../x", "/etc/passwd", str(tmp_path)):
        with pytest.raises(PathOutsideRoot):
            confine(outside, data_root)
    (data_root / "link").symlink_to("/etc")
    with pytest.raises(PathOutsideRoot):
        confine("link/passwd", data_root)
