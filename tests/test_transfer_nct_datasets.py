"""NCT-CRC-HE-100K and CRC-VAL-HE-7K as known datasets: download or point to the zip, verified,
extracted and listed like Kather 2016 (a small zip in the same layout stands in for the real one)."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from services.datasets import nct, sources
from services.download import file_digest
from services.errors import UserFacingError
from tests.conftest import serve_folder


def nct_like_zip(path) -> bytes:
    """The archive's layout (one wrapper folder, class folders of 224 px TIFFs), 2 classes x 2."""
    with zipfile.ZipFile(path, "w") as archive:
        for label in ("ADI", "TUM"):
            for index in range(2):
                buffer = io.BytesIO()
                Image.fromarray(np.full((224, 224, 3), 40 * index + 100, np.uint8)).save(buffer, "TIFF")
                archive.writestr(f"CRC-VAL-HE-7K/{label}/{label}-TEST{index}.tif", buffer.getvalue())
    return path.read_bytes()


def run(params, folder):
    """The ``nct-download`` job, inline: (result, progress messages); a failure raises its message."""
    from services.jobs.context import run_inline

    outcome = run_inline("nct-download", params, folder)
    if outcome.status == "failed":
        raise UserFacingError(outcome.error)
    return outcome.result, [message for _, message in outcome.reports]


def test_the_known_archives_carry_zenodo_names_sizes_and_hashes():
    assert nct.NCT_100K.size == 11_690_284_003 and nct.NCT_100K.md5 == "6fd702d11df6292bc054397ae038a464"
    assert nct.CRC_VAL_7K.size == 800_276_929 and nct.CRC_VAL_7K.md5 == "2fd1651b4f94ebd818ebf90ad2b6ce06"
    assert nct.NCT_100K.url == "https://zenodo.org/records/1214456/files/NCT-CRC-HE-100K.zip?download=1"
    with pytest.raises(UserFacingError, match="not a usable dataset name"):
        sources.check_new_name("crc-val-he-7k")  # the name is reserved for the known archive


def test_download_verifies_extracts_and_lists_the_dataset(data_root, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    data = nct_like_zip(served / "CRC-VAL-HE-7K.zip")
    with serve_folder(served) as server:
        wrong = {"url": server.url + "CRC-VAL-HE-7K.zip", "size": len(data), "md5": "0" * 32}
        with pytest.raises(UserFacingError, match="md5"):
            run({"dataset": "crc-val-he-7k", "source": wrong}, tmp_path / "job-wrong")
        assert not nct.CRC_VAL_7K.is_installed()
        right = {**wrong, "md5": file_digest(served / "CRC-VAL-HE-7K.zip", "md5")}
        result, messages = run({"dataset": "crc-val-he-7k", "source": right}, tmp_path / "job")
    assert result == {"dataset": "crc-val-he-7k", "files": 4, "usable": 4}
    assert any(message and message.startswith("downloading") for message in messages)
    info = sources.dataset_info("crc-val-he-7k")
    assert info.title.startswith("CRC-VAL-HE-7K") and sorted(p.name for p in info.folder.iterdir()) == ["ADI", "TUM"]


def test_a_zip_under_the_data_root_is_taken_as_it_is(data_root, tmp_path):
    data = nct_like_zip(data_root / "my-copy.zip")
    result, _ = run({"dataset": "nct-crc-he-100k", "zip_path": "my-copy.zip",
                     "source": {"size": len(data), "md5": file_digest(data_root / "my-copy.zip", "md5")}},
                    tmp_path / "job")
    assert result["usable"] == 4 and "nct-crc-he-100k" in [d.name for d in sources.list_datasets()]
    with pytest.raises(UserFacingError, match="unknown NCT-CRC-HE archive"):
        run({"dataset": "kather2016"}, tmp_path / "bad")
