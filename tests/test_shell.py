"""The app shell: navigation, home page, configuration, runtime service."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from services.config import confine, get_settings
from services.errors import PathOutsideRoot

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def test_home_page_renders_device_and_tensorflow_version(data_root):
    app = AppTest.from_file(APP, default_timeout=30).run()
    assert not app.exception
    labels = [metric.label for metric in app.metric]
    assert "TensorFlow" in labels
    assert any(label in ("CPU", "GPU") for label in labels)
    assert "Applied deep learning" in app.title[0].value


def test_home_page_does_not_import_tensorflow(data_root):
    code = (
        "import sys; from streamlit.testing.v1 import AppTest;"
        "AppTest.from_file('dashboard/app.py', default_timeout=30).run();"
        "print('tensorflow' in sys.modules)"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip().splitlines()[-1] == "False"


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
