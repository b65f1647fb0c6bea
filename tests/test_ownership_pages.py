"""Deleting datasets and uploaded models on the pages, signed in as different people (Streamlit's
AppTest with a faked ``st.user``; the real services and files underneath)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.adapters import job_manager
from services.config import Env
from services.datasets import sources
from tests.datasets_helpers import make_dataset
from tests.test_auth import AUTH, secrets_file  # noqa: F401 (a fixture)
from tests.test_ownership import darknet_upload, import_dataset

PAGES = Path(__file__).resolve().parent.parent / "pages"
EXPLORER, DETECTOR = str(PAGES / "dataset_explorer.py"), str(PAGES / "detector.py")


@pytest.fixture(autouse=True)
def admins(monkeypatch, secrets_file):  # noqa: F811 (the fixture imported above)
    """pi@lab.org administers; no developer's secrets file is read."""
    monkeypatch.setenv(Env.ADMINS, "pi@lab.org")


def open_page(page: str, email: str | None, **state) -> AppTest:
    """``page`` as ``email`` signed in (None: sign-in off), after its background jobs finished."""
    app = AppTest.from_file(page, default_timeout=60)
    if email:
        app.secrets["auth"] = AUTH
        app.user = {"is_logged_in": True, "email": email, "name": email}
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    for job in job_manager().list():
        job_manager().wait(job.id, timeout=60)
    return app.run()


def texts(app: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("error", "warning", "success", "caption") for e in getattr(app, kind))


def click(app: AppTest, label: str) -> AppTest:
    next(button for button in app.button if button.label == label).click()
    return app.run()


def test_the_explorer_passes_the_importer_as_owner(data_root, tmp_path):
    folder = make_dataset(tmp_path / "mine")
    shutil.make_archive(str(data_root / "mine"), "zip", folder)
    app = open_page(EXPLORER, "Alice@Lab.org")
    app.text_input(key="explorer_add_path").set_value("mine.zip").run()
    click(app, "Add")
    assert not app.exception
    [job] = job_manager().list(kind="dataset-import")
    assert job.params["owner"] == "alice@lab.org" and job.owner == "alice@lab.org"
    assert job_manager().wait(job.id, timeout=60).status == "finished"
    assert sources.dataset_owner(sources.dataset_info("mine")) == "alice@lab.org"


def test_a_dataset_is_deleted_by_its_owner_after_a_confirmation_and_refused_to_others(data_root, tmp_path):
    import_dataset(data_root, tmp_path, "mine", "alice@lab.org")
    bob = open_page(EXPLORER, "bob@lab.org", explorer_dataset="mine")
    assert "Created by alice@lab.org" in texts(bob)
    click(bob, "Delete dataset")
    assert "Only its owner (alice@lab.org) or an administrator can delete the dataset 'mine'" in texts(bob)
    assert not [b for b in bob.button if b.label == "Delete permanently"]
    assert (data_root / "datasets" / "mine").is_dir()

    alice = open_page(EXPLORER, "alice@lab.org", explorer_dataset="mine")
    click(alice, "Delete dataset")
    assert "Delete the dataset 'mine' for good?" in texts(alice)
    click(alice, "Keep it")
    assert (data_root / "datasets" / "mine").is_dir() and "for good" not in texts(alice)
    click(click(alice, "Delete dataset"), "Delete permanently")
    assert not alice.exception
    assert "Deleted the dataset 'mine'." in texts(alice)
    assert not (data_root / "datasets" / "mine").exists()
    assert alice.selectbox(key="explorer_dataset").value == "demo"
    assert not [b for b in alice.button if b.label == "Delete dataset"]  # never the demo set


def test_downloads_are_deleted_by_an_administrator_or_anybody_with_sign_in_off(data_root):
    for email in ("alice@lab.org", "pi@lab.org", None):
        make_dataset(data_root / "datasets" / "kather2016" / "Kather_texture_2016_image_tiles_5000")
        app = open_page(EXPLORER, email, explorer_dataset="kather2016")
        assert "Created by nobody" in texts(app)
        click(app, "Delete dataset")
        if email == "alice@lab.org":
            assert "Only an administrator can delete the dataset 'kather2016'" in texts(app)
            assert (data_root / "datasets" / "kather2016").is_dir()
            shutil.rmtree(data_root / "datasets" / "kather2016")
            continue
        # Opening the explorer on a freshly placed set indexes it in a job, and a set being indexed is
        # (rightly) refused for deletion: wait for that job, then ask again.
        manager = job_manager()
        for _ in range(5):  # a rerun may start the next index job (the demo set, this set again)
            active = [job for job in manager.list() if job.active]
            if not active:
                break
            for job in active:
                manager.wait(job.id, 120)
            app.run()
        if not [b for b in app.button if b.label == "Delete permanently"]:
            click(app, "Delete dataset")
        click(app, "Delete permanently")
        assert not app.exception and not (data_root / "datasets" / "kather2016").exists(), email


def test_an_uploaded_model_is_deleted_by_its_uploader_or_an_admin(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    darknet_upload("alice@lab.org")
    bob = open_page(DETECTOR, "bob@lab.org", det_model_choice="upload:mine")
    assert bob.selectbox(key="det_model").value == "upload:mine" and "Created by alice@lab.org" in texts(bob)
    click(bob, "Delete model")
    assert "Only its owner (alice@lab.org) or an administrator can delete the model 'mine'" in texts(bob)
    click(open_page(DETECTOR, "alice@lab.org", det_model_choice="upload:mine"), "Delete model")
    from services.detection import registry

    assert registry.uploaded_models() == ["mine"]  # asked first, nothing deleted yet
    admin = open_page(DETECTOR, "pi@lab.org", det_model_choice="upload:mine")
    click(click(admin, "Delete model"), "Delete permanently")
    assert not admin.exception and registry.uploaded_models() == []
    assert "Deleted the model 'mine'." in texts(admin)
    assert admin.selectbox(key="det_model").value == registry.DEMO_KEY
    assert not [b for b in admin.button if b.label == "Delete model"]  # built-in models are not deletable
