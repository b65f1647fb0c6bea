"""The deployment profile: ``cloud`` is picked up on a Streamlit-Community-Cloud-like machine
and changes only defaults; explicit settings win."""

from pathlib import Path

import pytest

from services import config, disk_marker
from services.errors import UserFacingError
from services.jobs import limits
from services.model_service import server

PROFILE_VARS = ("DASHBOARD_PROFILE", "DASHBOARD_PREWARM", "DASHBOARD_WARM_WORKER", "DASHBOARD_RUNNER_IDLE_S",
                "DASHBOARD_SERVICE_IDLE_S", "DASHBOARD_MAX_CONCURRENT_RUNS")


@pytest.fixture
def clean_env(monkeypatch):
    for name in PROFILE_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_lab_is_the_default_here(clean_env, tmp_path):
    assert config.profile({}, str(tmp_path), tmp_path) == config.LAB
    assert config.get_settings().profile == config.LAB
    assert limits.prewarm_enabled() and limits.warm_worker_enabled()
    assert limits.runner_idle_seconds() == 600 and server.idle_seconds() == 1800


@pytest.mark.parametrize("cwd, checkout", [("/mount/src/my-dashboard", "/mount/src/my-dashboard"),
                                           ("/", "/mount/src/my-dashboard"),
                                           ("/mount/src/my-dashboard/dashboard", "/opt/elsewhere")])
def test_a_checkout_under_mount_src_is_community_cloud(cwd, checkout):
    assert config.profile({}, cwd, Path(checkout)) == config.CLOUD


def test_a_host_named_streamlit_alone_is_not_enough(tmp_path):
    """``HOSTNAME=streamlit`` counts only where Community Cloud's ``/mount/src`` exists."""
    expected = config.CLOUD if config.COMMUNITY_CLOUD_CHECKOUTS.is_dir() else config.LAB
    assert config.profile({"HOSTNAME": "streamlit"}, str(tmp_path), tmp_path) == expected
    assert config.profile({"HOSTNAME": "labserver"}, str(tmp_path), tmp_path) == config.LAB


def test_an_explicit_profile_wins():
    cloud_like = ("/mount/src/app", Path("/mount/src/app"))
    assert config.profile({"DASHBOARD_PROFILE": "lab"}, *cloud_like) == config.LAB
    assert config.profile({"DASHBOARD_PROFILE": " Cloud "}, "/srv", Path("/srv")) == config.CLOUD
    with pytest.raises(UserFacingError, match="DASHBOARD_PROFILE"):
        config.profile({"DASHBOARD_PROFILE": "huge"}, "/srv", Path("/srv"))


def test_community_cloud_checkout_applies_the_cloud_defaults(clean_env):
    """The app's own checkout seen under /mount/src (as Community Cloud clones it): the cloud
    profile is chosen with no setting, and with it every small-box default."""
    clean_env.setattr(config, "_REPO_ROOT", Path("/mount/src/pathology-dashboard"))
    settings = config.get_settings()
    assert settings.profile == config.CLOUD and settings.models_on_click
    assert not limits.prewarm_enabled() and not limits.warm_worker_enabled()
    assert limits.runner_idle_seconds() == 60 and server.idle_seconds() == 60
    assert limits.resource_limits()["tensorflow"] == 1


def test_explicit_settings_win_over_the_profile_defaults(clean_env):
    clean_env.setenv("DASHBOARD_PROFILE", "cloud")
    clean_env.setenv("DASHBOARD_PREWARM", "1")
    clean_env.setenv("DASHBOARD_WARM_WORKER", "yes")
    clean_env.setenv("DASHBOARD_RUNNER_IDLE_S", "5")
    clean_env.setenv("DASHBOARD_SERVICE_IDLE_S", "7")
    assert limits.prewarm_enabled() and limits.warm_worker_enabled()
    assert limits.runner_idle_seconds() == 5 and server.idle_seconds() == 7


def test_the_system_page_under_cloud_asks_tensorflow_only_after_the_toggle(data_root, clean_env):
    from streamlit.testing.v1 import AppTest

    from services import processes
    from tests.conftest import REPO

    clean_env.setenv("DASHBOARD_PROFILE", "cloud")
    app = AppTest.from_file(str(REPO / "pages" / "system.py"), default_timeout=30).run()
    assert not app.exception
    assert app.toggle(key="sys_devices").value is False
    assert not processes.find(data_root, roles=(processes.MODEL_SERVICE,))
    assert any("Processes of the app" in header.value for header in app.subheader)


def test_the_data_root_marker_tells_a_fresh_disk_from_a_kept_one(tmp_path):
    root = tmp_path / "data"
    first = disk_marker.note_start(root)
    assert first.fresh and (root / disk_marker.MARKER).is_file()
    again = disk_marker.note_start(root)
    assert not again.fresh and again.since == first.since
    (root / disk_marker.MARKER).write_text('{"since": "garbage"')
    assert not disk_marker.note_start(root).fresh  # damaged, but the disk was kept


def _home(data_root, clean_env, profile: str):
    from streamlit.testing.v1 import AppTest

    clean_env.setenv("DASHBOARD_PROFILE", profile)
    app = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"),
                            default_timeout=30).run()
    assert not app.exception
    return app


def test_home_says_when_the_cloud_disk_started_empty(data_root, clean_env):
    fresh = _home(data_root, clean_env, "cloud")
    assert any("disk was empty when it started" in box.value for box in fresh.info)


def test_home_under_cloud_with_a_kept_disk_only_notes_since_when(data_root, clean_env):
    disk_marker.note_start(data_root)  # a previous server wrote the marker
    kept = _home(data_root, clean_env, "cloud")
    assert not any("disk was empty" in box.value for box in kept.info)
    assert any("Data kept since" in caption.value for caption in kept.caption)


def test_home_under_lab_says_nothing_about_the_disk(data_root, clean_env):
    lab = _home(data_root, clean_env, "lab")
    assert not any("disk was empty" in box.value for box in lab.info)
    assert not any("Data kept since" in caption.value for caption in lab.caption)
