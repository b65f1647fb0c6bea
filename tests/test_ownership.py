"""Who made a dataset or a model is recorded, and deleting it needs its owner or an
administrator (everybody with sign-in off): the services, with real files (UI: test_ownership_pages)."""

from __future__ import annotations

import shutil

import pytest

from services.access import OPEN, Actor, NotAllowed
from services.config import confine
from services.datasets import index, records, sources, splits
from services.errors import UserFacingError
from services.jobs.context import run_inline
from tests.datasets_helpers import make_dataset

ALICE, BOB = Actor("alice@lab.org"), Actor("bob@lab.org")
ADMIN = Actor("pi@lab.org", frozenset({"pi@lab.org"}))


def import_dataset(data_root, tmp_path, name: str, owner: str | None) -> sources.DatasetInfo:
    """``name`` imported from a zip under the data root by the real ``dataset-import`` job."""
    folder = make_dataset(tmp_path / f"src-{name}" / "wrapper")
    shutil.make_archive(str(data_root / name), "zip", folder.parent)
    outcome = run_inline("dataset-import", {"dataset": name, "zip_path": f"{name}.zip", "owner": owner},
                         tmp_path / f"job-{name}")
    assert outcome.status == "finished", outcome.error
    return sources.dataset_info(name)


def test_an_import_records_its_owner_and_a_zip_cannot_forge_one(data_root, tmp_path):
    folder = make_dataset(tmp_path / "forged")
    (folder / records.RECORD).write_text('{"owner": "mallory@lab.org"}')
    shutil.make_archive(str(data_root / "forged"), "zip", folder)
    assert run_inline("dataset-import", {"dataset": "forged", "zip_path": "forged.zip", "owner": "Alice@Lab.org"},
                      tmp_path / "job").status == "finished"
    info = sources.dataset_info("forged")
    assert sources.dataset_owner(info) == "alice@lab.org"
    assert len(index.load_index(info.folder)) == 12  # the record is not a tile
    assert sources.dataset_owner(import_dataset(data_root, tmp_path, "open", None)) is None


def test_only_the_owner_or_an_administrator_deletes_a_dataset(data_root, tmp_path):
    info = import_dataset(data_root, tmp_path, "mine", "alice@lab.org")
    frame = index.load_index(info.folder)
    splits.save_split("mine", "s1", splits.make_split(frame))
    cache = index.cache_file(confine(info.folder))
    assert cache.is_file()
    with pytest.raises(NotAllowed) as refused:
        sources.delete_dataset("mine", BOB)
    assert "its owner (alice@lab.org)" in str(refused.value) and "bob@lab.org" in str(refused.value)
    assert info.folder.is_dir() and splits.list_splits("mine") == ["s1"]  # nothing touched
    sources.delete_dataset("mine", ALICE)
    assert "mine" not in [d.name for d in sources.list_datasets()]
    assert not (data_root / "datasets" / "mine").exists() and splits.list_splits("mine") == []
    assert not cache.exists()
    assert not [p for p in (data_root / "datasets").iterdir() if p.name.startswith(".deleting")]
    for number, actor in enumerate((ADMIN, OPEN)):  # an administrator, and anybody with sign-in off
        import_dataset(data_root, tmp_path / str(number), "again", "alice@lab.org")
        sources.delete_dataset("again", actor)
        assert not (data_root / "datasets" / "again").exists()


def test_downloads_need_an_administrator_and_the_demo_and_registered_folders_stay(data_root, tmp_path):
    make_dataset(data_root / "datasets" / "crc-val-he-7k" / "CRC-VAL-HE-7K")  # as the NCT job installs it
    info = sources.dataset_info("crc-val-he-7k")
    assert sources.managed_folder(info) == data_root / "datasets" / "crc-val-he-7k"
    with pytest.raises(NotAllowed, match="Only an administrator"):
        sources.delete_dataset("crc-val-he-7k", ALICE)
    sources.delete_dataset("crc-val-he-7k", ADMIN)
    assert not (data_root / "datasets" / "crc-val-he-7k").exists()
    make_dataset(data_root / "elsewhere" / "tiles")
    sources.register_folder(data_root / "elsewhere" / "tiles")
    for name in ("demo", "elsewhere/tiles"):
        with pytest.raises(UserFacingError, match="cannot be deleted here"):
            sources.delete_dataset(name, ADMIN)
    assert (data_root / "elsewhere" / "tiles" / "01_TUMOR").is_dir()


# --- uploaded models -----------------------------------------------------------------------

def darknet_upload(owner: str | None, seed: int = 0):
    from services.detection import registry
    from services.detection.cfg import parse_cfg
    from services.detection.weights import random_weights_bytes
    from tests.detection_helpers import SYNTHETIC_CFG

    weights = random_weights_bytes(parse_cfg(SYNTHETIC_CFG), seed=seed)
    return registry.save_upload(("mine.cfg", SYNTHETIC_CFG.encode()), ("mine.weights", weights),
                                ("mine.names", b"a\nb\n"), owner)


def test_darknet_uploads_record_the_uploader_and_only_they_or_an_admin_delete(data_root):
    from services.detection import registry

    assert darknet_upload("Alice@Lab.org").model.key == "upload:mine"
    assert registry.upload_owner("mine") == "alice@lab.org"
    assert registry.load_uploaded("mine").names == ["a", "b"]  # the owner file does not disturb loading
    with pytest.raises(NotAllowed, match=r"its owner \(alice@lab.org\)"):
        registry.delete_upload("mine", BOB)
    assert registry.uploaded_models() == ["mine"]
    registry.delete_upload("mine", ALICE)
    assert registry.uploaded_models() == [] and not list(registry.darknet_dir().glob("uploads/*"))
    for actor in (ADMIN, OPEN):
        darknet_upload(None)
        assert registry.upload_owner("mine") is None
        with pytest.raises(NotAllowed, match="Only an administrator"):
            registry.delete_upload("mine", ALICE)
        registry.delete_upload("mine", actor)
        assert registry.uploaded_models() == []
    with pytest.raises(UserFacingError, match="no uploaded Darknet model called '../x'"):
        registry.delete_upload("../x", ADMIN)


def test_onnx_uploads_record_the_uploader_and_only_they_or_an_admin_delete(data_root):
    import numpy as np

    from services.detection import onnx_store
    from tests.detection_helpers import constant_detector

    output = np.zeros((1, 4, 7), np.float32)
    saved = onnx_store.save_onnx("tiny.onnx", constant_detector(output), ["cat", "dog"], "yolov5", "alice@lab.org")
    assert onnx_store.onnx_owner(saved.info.stem) == "alice@lab.org"
    with pytest.raises(NotAllowed, match="bob@lab.org"):
        onnx_store.delete_onnx("tiny", BOB)
    assert onnx_store.onnx_models() == ["tiny"]
    onnx_store.delete_onnx("tiny", ALICE)
    assert onnx_store.onnx_models() == [] and not list(onnx_store.onnx_dir().iterdir())
    onnx_store.save_onnx("tiny.onnx", constant_detector(output), ["cat", "dog"], "yolov5")
    onnx_store.delete_onnx("tiny", ADMIN)
    assert onnx_store.onnx_models() == []
    with pytest.raises(UserFacingError, match="no uploaded ONNX model"):
        onnx_store.delete_onnx("tiny", OPEN)


def test_installed_backbone_weights_record_who_installed_them(data_root, tmp_path, monkeypatch):
    from services.models import weights

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    name = "mobilenet_v1_0.25"
    generated = weights.write_weights_file(weights.BACKBONES[name].build(), tmp_path / "generated.h5")
    path = weights.install_weights_file(name, generated.read_bytes(), original_name="mine.h5", owner="alice@lab.org")
    assert weights.installed_weights_owner(name) == "alice@lab.org"
    assert weights.weights_status(name).usable
    with pytest.raises(NotAllowed, match="alice@lab.org"):
        weights.delete_installed_weights(name, BOB)
    assert path.is_file()
    weights.delete_installed_weights(name, ALICE)
    assert not path.exists() and not weights.read_manifest(path) and not weights.weights_status(name).usable
    with pytest.raises(UserFacingError, match="no user-installed"):
        weights.delete_installed_weights(name, ADMIN)
