"""The demo's sources: real values by default, replaced by DASHBOARD_DEMO_SOURCES, refused with a
sentence when that file is unusable; where each file goes offline."""

from __future__ import annotations

import json

import pytest

from services.datasets import kather
from services.demo import sources
from services.errors import UserFacingError
from services.tissuemap import kather_large


def test_the_real_sources_carry_the_published_sizes_checksums_and_licences(data_root):
    found = sources.demo_sources()
    assert found["tiles"].size == 258_098_431 and found["tiles"].checks == {"md5": kather.MD5}
    assert found["larger"].size == 742_020_106 and found["larger"].checks == {"sha256": kather_large.SHA256}
    assert "CC BY 4.0" in found["tiles"].licence and "Apache 2.0" in found["weights"].licence
    assert not any(s.replaced or s.generated or s.random_weights for s in found.values())


@pytest.mark.parametrize(("content", "expected"), [
    ("{not json", "not a readable JSON file"),
    (json.dumps({"tiles": "x"}), "JSON object of objects"),
    (json.dumps({"tiles": {"url": "http://127.0.0.1/x.zip"}}), "needs its size"),
    (json.dumps({"larger": {"url": "http://127.0.0.1/x.zip", "size": -3}}), "positive whole number"),
    (json.dumps({"weights": {"md5": "x"}}), "needs a url"),
])
def test_an_unusable_sources_file_is_refused_with_a_sentence(data_root, tmp_path, monkeypatch, content, expected):
    path = tmp_path / "sources.json"
    path.write_text(content)
    monkeypatch.setenv("DASHBOARD_DEMO_SOURCES", str(path))
    with pytest.raises(UserFacingError, match=expected) as raised:
        sources.demo_sources()
    assert str(tmp_path) not in str(raised.value)


def test_placements_follow_the_files_present(data_root, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(data_root / "no-keras"))
    assert sources.missing_text(sources.placements()).count("Place ") == 3
    kather.download_path().parent.mkdir(parents=True)
    kather.download_path().write_bytes(b"placed by hand")  # checked by the chain, not here
    (kather_large.install_folder()).mkdir(parents=True)
    (kather_large.install_folder() / "CRC-Prim-HE-01_APPLICATION.tif").write_bytes(b"x")
    text = sources.missing_text(sources.placements())
    assert text.count("Place ") == 1 and "mobilenet_v2_weights" in text and "<data root>/models/" in text
