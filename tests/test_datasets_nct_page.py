"""The Dataset explorer's panels for NCT-CRC-HE-100K and CRC-VAL-HE-7K (the Kather 2016 panel,
generalised): download, or point to the zip under the data root, verified against the published
size and md5 (AppTest; a tiny zip in the archive's layout stands in for the real one)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard.adapters import job_manager
from services.datasets import nct, published, sources
from services.download import file_digest
from tests.test_transfer_nct_datasets import nct_like_zip

PAGE = str(Path(__file__).resolve().parent.parent / "pages" / "dataset_explorer.py")


def alerts(app: AppTest) -> str:
    return " ".join(str(e.value) for kind in ("error", "success", "info", "markdown", "caption")
                    for e in getattr(app, kind))


def test_every_published_set_has_a_panel_with_its_size_and_md5(data_root, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not app.exception
    assert [tab.label for tab in app.tabs][:3] == ["Kather 2016 download", "NCT-CRC-HE-100K download",
                                                   "CRC-VAL-HE-7K download"]
    text = alerts(app)
    assert "(11.7 GB, md5 `6fd702d11df6292bc054397ae038a464`)" in text
    assert "(800 MB, md5 `2fd1651b4f94ebd818ebf90ad2b6ce06`)" in text and "Zenodo record 1214456" in text
    app.button(key="published-download-nct-crc-he-100k").click().run()
    assert "NCT-CRC-HE-100K.zip?download=1" in " ".join(e.value for e in app.error)
    assert job_manager().list(kind="nct-download") == []  # offline: nothing started
    assert published.by_file_name("CRC-VAL-HE-7K.zip").name == "crc-val-he-7k"


def test_a_zip_pointed_to_is_verified_and_a_wrong_one_refused_with_a_clear_message(data_root):
    (data_root / "mine").mkdir()
    nct_like_zip(data_root / "mine" / "CRC-VAL-HE-7K.zip")  # the right name, not the published file
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    app.text_input(key="published-path-crc-val-he-7k").set_value("mine/CRC-VAL-HE-7K.zip").run()
    app.button(key="published-zip-crc-val-he-7k").click().run()
    assert not app.exception
    [job] = job_manager().list(kind="nct-download")
    assert job.params == {"dataset": "crc-val-he-7k", "zip_path": "mine/CRC-VAL-HE-7K.zip"}
    assert job_manager().wait(job.id, timeout=60).status == "failed"
    errors = " ".join(e.value for e in app.run().error)
    assert "CRC-VAL-HE-7K.zip: expected 800,276,929 bytes, got" in errors and str(data_root) not in errors
    assert not nct.CRC_VAL_7K.is_installed() and (data_root / "mine" / "CRC-VAL-HE-7K.zip").is_file()
    app.text_input(key="published-path-crc-val-he-7k").set_value("mine/none.zip").run()
    app.button(key="published-zip-crc-val-he-7k").click().run()
    assert "none.zip is not a file under the data root" in " ".join(e.value for e in app.error)


def test_the_folder_tab_recognises_the_archives_by_name(data_root):
    nct_like_zip(data_root / "NCT-CRC-HE-100K.zip")
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    app.text_input(key="explorer_add_path").set_value("NCT-CRC-HE-100K.zip").run()
    next(b for b in app.button if b.label == "Add").click().run()
    [job] = job_manager().list(kind="nct-download")
    assert job.params == {"dataset": "nct-crc-he-100k", "zip_path": "NCT-CRC-HE-100K.zip"}
    job_manager().wait(job.id, timeout=60)


def test_an_installed_archive_is_listed_and_explored(data_root):
    path = data_root / "CRC-VAL-HE-7K.zip"
    data = nct_like_zip(path)
    nct.CRC_VAL_7K.install(path, size=len(data), md5=file_digest(path, "md5"))
    app = AppTest.from_file(PAGE, default_timeout=60).run()
    assert "CRC-VAL-HE-7K is installed; pick it in the Dataset list." in alerts(app)
    assert not [b for b in app.button if b.key == "published-download-crc-val-he-7k"]
    app.selectbox(key="explorer_dataset").set_value("crc-val-he-7k").run()
    for state in job_manager().list():
        job_manager().wait(state.id, timeout=60)
    app.run()
    assert not app.exception
    assert {m.label: m.value for m in app.metric}["Tiles"] == "4"
    assert sources.dataset_info("crc-val-he-7k").title.startswith("CRC-VAL-HE-7K")
