"""The real-tissue demo chain end to end against a local HTTP server serving generated files in
the real layouts (tests/demo_helpers.py): completes with range requests on and off, fetches one
member of the larger-images zip, refuses a wrong checksum, resumes after its worker is killed."""

from __future__ import annotations

import json
import os
import signal
import uuid

import pytest

from services.jobs import FAILED, FINISHED, JobManager, run_inline
from tests import demo_helpers
from tests.conftest import REPO, serve_folder, wait_for

FAST = {"image_size": 32, "epochs": 4}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    demo_helpers.build_served_files(folder, tmp_path_factory.mktemp("work"))
    return folder


def _requests_of(server, name: str) -> int:
    return sum(1 for file, _ in server.stats["requests"] if file == name)


def test_the_chain_completes_fetching_one_member_by_range_requests(served, data_root, tmp_path, monkeypatch):
    from services.training.store import RunStore

    with serve_folder(served) as server:
        monkeypatch.setenv("DASHBOARD_DEMO_SOURCES", str(demo_helpers.sources_file(tmp_path / "s.json", served,
                                                                                     server.url)))
        job_id = uuid.uuid4().hex[:12]
        outcome = run_inline("real-tissue-demo", FAST, data_root / "jobs" / job_id)
        larger_requests = _requests_of(server, demo_helpers.LARGER_ZIP)
        assert outcome.status == "finished", outcome.error
        result = outcome.result
        # one member only: directory + local header + one image, far less than the zip with its filler
        zip_size = (served / demo_helpers.LARGER_ZIP).stat().st_size
        assert result["image"]["method"] == "range requests"
        assert result["image"]["image"] == demo_helpers.FIRST_IMAGE
        assert result["image"]["bytes"] < zip_size / 3, (result["image"]["bytes"], zip_size)
        assert larger_requests >= 3 and all(h for f, h in server.stats["requests"] if f == demo_helpers.LARGER_ZIP)
        # honest numbers and labels
        calibrated = result["calibrate"]
        low, high = calibrated["test_ci95"]
        assert calibrated["test_n"] > 0 and low <= calibrated["test_accuracy"] <= high
        assert 0.05 <= calibrated["temperature"] <= 20
        assert 0 <= calibrated["test_ece_after"] <= 1 and 0 <= calibrated["test_ece_before"] <= 1
        assert result["labels"]["generated"] and result["labels"]["random_weights"]
        assert "GENERATED" in result["labels"]["data"] and "random init" in result["labels"]["weights"]
        from services.models import weights

        assert "mirror" in weights.weights_status("mobilenet_v2").reason  # not claimed as Keras's own file
        run = RunStore().get_run(result["run_id"])
        assert run.synthetic and run.summary["weights"] == "random init" and run.summary["head_pooling"] == "avg"
        # the map and its report
        folder = data_root / "jobs" / job_id / result["map"]["folder"]
        assert {"overlay.png", "areas.csv", "report.html"} <= {p.name for p in folder.iterdir()}
        report = (folder / "report.html").read_text()
        assert "SYNTHETIC" in report and "RANDOM INIT weights" in report
        assert "held-out test accuracy" in report and f"n = {calibrated['test_n']}" in report
        assert "Calibration" in report  # the run's temperature, applied to the map's probabilities
        assert result["map"]["tiles"] > 0 and result["map"]["areas"]
        # a second run reuses every file (nothing is downloaded again) and the finished run, its
        # calibration and its map: no training
        before, runs = len(server.stats["requests"]), len(RunStore().list_runs())
        again = run_inline("real-tissue-demo", {**FAST, "reuse": job_id}, data_root / "jobs" / "demo2")
        assert again.status == "finished", again.error
        assert len(server.stats["requests"]) == before
        assert again.result["image"]["method"] == "already there"
        assert again.result["reused_from"] == job_id and again.result["run_id"] == result["run_id"]
        assert len(RunStore().list_runs()) == runs, "nothing trained again"
        assert (data_root / "jobs" / "demo2" / again.result["map"]["folder"] / "overlay.png").is_file()
        other = run_inline("real-tissue-demo", {**FAST, "epochs": 3, "reuse": job_id}, data_root / "jobs" / "demo3")
        assert other.status == "finished" and other.result["reused_from"] is None  # other settings: trained anew
        assert other.result["run_id"] != result["run_id"]
    _home_opens_the_finished_result(data_root, job_id, result)
    _the_tissue_map_page_lists_the_demo_map(data_root, job_id, result)


def _the_tissue_map_page_lists_the_demo_map(data_root, job_id: str, result: dict) -> None:
    """The demo's map is a tissue map: listed on the Tissue map page with its areas and ratio."""
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(REPO / "pages" / "tissue_map.py"), default_timeout=60).run()
    assert not app.exception, app.exception
    picker = next(box for box in app.selectbox if box.label == "Map")
    labels = list(picker.options)  # AppTest holds the shown labels
    assert any(label.startswith(f"Real-tissue demo · map of {demo_helpers.FIRST_IMAGE}") for label in labels), labels
    assert any("Tumour-stroma ratio" in m.value for m in app.markdown)


def _home_opens_the_finished_result(data_root, job_id: str, result: dict) -> None:
    """Home shows the finished demo at once: the map over the image, areas, the held-out score
    with its interval and n, and the labels saying the data was generated and the weights random."""
    from streamlit.testing.v1 import AppTest

    from services.jobs import kinds
    from services.jobs.store import open_store

    store = open_store(data_root / "jobs")
    store.create(kinds.REAL_TISSUE_DEMO, "demo", "tensorflow", FAST, [], job_id=job_id)
    store.finish(job_id, FINISHED, result=result)
    app = AppTest.from_file(str(REPO / "dashboard" / "app.py"), default_timeout=60).run()
    assert not app.exception
    shown = " ".join(m.value for m in app.markdown)
    calibrated = result["calibrate"]
    assert f"{calibrated['test_correct']} of {calibrated['test_n']} tiles" in shown
    assert "Wilson 95 % interval" in shown and "grouped by source image" in shown
    assert "GENERATED test data" in " ".join(w.value for w in app.warning)
    assert "random init" in " ".join(c.value for c in app.caption)
    assert any(b.label == "Run the real-tissue demo again" for b in app.button)
    assert len(app.dataframe) == 1 and "percent" in app.dataframe[0].value.columns


def test_a_wrong_checksum_is_refused_with_a_sentence(served, data_root, tmp_path, monkeypatch):
    from services.datasets import kather

    with serve_folder(served) as server:
        monkeypatch.setenv("DASHBOARD_DEMO_SOURCES", str(demo_helpers.sources_file(
            tmp_path / "s.json", served, server.url, tiles_md5="0" * 32)))
        outcome = run_inline("real-tissue-demo", FAST, data_root / "jobs" / "wrong")
    assert outcome.status == "failed"
    assert "md5" in outcome.error and "refused" in outcome.error and "Traceback" not in outcome.error
    assert not kather.is_installed() and not kather.download_path().exists()
    assert outcome.result.get("steps") == []


def test_offline_names_every_missing_file_and_where_to_place_it(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    outcome = run_inline("real-tissue-demo", FAST, data_root / "jobs" / "offline")
    assert outcome.status == "failed"
    for expected in ("<data root>/downloads/Kather_texture_2016_image_tiles_5000.zip",
                     "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
                     "<data root>/datasets/kather2016_larger/", "Resume"):
        assert expected in outcome.error


def test_a_killed_chain_resumes_without_downloading_again(served, data_root, tmp_path, monkeypatch):
    """Ranges off: the larger image comes from the whole zip; the worker is killed mid-chain."""
    monkeypatch.setenv("DASHBOARD_WARM_WORKER", "0")
    with serve_folder(served, ranges=False) as server:
        monkeypatch.setenv("DASHBOARD_DEMO_SOURCES", str(demo_helpers.sources_file(tmp_path / "s.json", served,
                                                                                     server.url)))
        manager = JobManager(data_root / "jobs")
        job_id = manager.submit("real-tissue-demo", "demo", FAST)
        state_file = manager.job_dir(job_id) / "demo.json"

        def image_done() -> int | None:
            state = manager.get(job_id)
            assert state.status not in (FINISHED, FAILED), state.error
            done = json.loads(state_file.read_text())["done"] if state_file.is_file() else {}
            return state.pid if "image" in done else None

        pid = wait_for(image_done, 240)
        os.kill(pid, signal.SIGKILL)
        killed = manager.wait(job_id, 60)
        assert killed.status == FAILED and killed.signal == "SIGKILL"
        requests_before = list(server.stats["requests"])
        manager.resume(job_id)
        finished = manager.wait(job_id, 400)
        assert finished.status == FINISHED, finished.error
        assert server.stats["requests"] == requests_before  # nothing downloaded again
    assert _requests_of(server, demo_helpers.TILES_ZIP) == 1
    assert finished.result["image"]["method"] == "whole zip"
    assert (manager.job_dir(job_id) / finished.result["map"]["folder"] / "report.html").is_file()


def test_the_command_line_says_which_files_are_missing_and_exits_non_zero(data_root, tmp_path):
    import subprocess
    import sys

    env = {**os.environ, "DASHBOARD_OFFLINE": "1", "DASHBOARD_DATA_DIR": str(tmp_path / "elsewhere")}
    done = subprocess.run([sys.executable, "-m", "services.demo", "--data-dir", str(data_root)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("The demo cannot start: Downloads are off")
    assert "<data root>/downloads/Kather_texture_2016_image_tiles_5000.zip" in done.stderr
    assert "Traceback" not in done.stderr and str(data_root) not in done.stderr
    assert not (data_root / "jobs").exists()  # nothing started


def test_offline_the_chain_completes_from_files_placed_by_hand(served, data_root, tmp_path, monkeypatch):
    """The three files copied where the page says (the whole larger-images zip included): no network."""
    import shutil

    from services.datasets import kather
    from services.demo import sources
    from services.tissuemap import kather_large

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "no-keras"))
    monkeypatch.setenv("DASHBOARD_DEMO_SOURCES", str(demo_helpers.sources_file(
        tmp_path / "s.json", served, "http://127.0.0.1:9/")))  # nothing listens there
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    kather.download_path().parent.mkdir(parents=True)
    shutil.copy(served / demo_helpers.TILES_ZIP, kather.download_path())
    shutil.copy(served / demo_helpers.LARGER_ZIP, kather_large.download_path())
    sources.weights_file().parent.mkdir(parents=True)
    shutil.copy(served / sources.weights_file().name, sources.weights_file())
    outcome = run_inline("real-tissue-demo", FAST, data_root / "jobs" / "offline-placed")
    assert outcome.status == "finished", outcome.error
    assert outcome.result["image"] == {"image": demo_helpers.FIRST_IMAGE, "method": "whole zip", "bytes": 0}
    assert [p.name for p in kather_large.installed_images()] == [demo_helpers.FIRST_IMAGE]  # one image only
