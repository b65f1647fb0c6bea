"""services/download.py and the Kather job against a local HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from services.datasets import kather, tasks
from services.download import download
from services.errors import DownloadFailed, OfflineError
from services.jobs import kinds
from services.jobs.context import run_inline
from tests.datasets_helpers import make_dataset, zip_bytes


class ZipServer:
    """Serves ``payload`` at /file.zip with Range support; ``cut_after`` bytes into the first
    full response it closes the connection (an interrupted transfer)."""

    def __init__(self, payload: bytes):
        self.payload, self.cut_after, self.requests = payload, None, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append(self.headers.get("Range"))
                data, start = server.payload, 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_after is not None and start == 0:
                    body, server.cut_after = body[: server.cut_after], None
                    self.wfile.write(body)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def payload(tmp_path):
    folder = make_dataset(tmp_path / "src" / "Kather_texture_2016_image_tiles_5000", sources=2)
    members = {str(p.relative_to(tmp_path / "src")): p.read_bytes() for p in folder.rglob("*.tif")}
    return zip_bytes(members)  # a small dataset zip (a few kB)


@pytest.fixture
def server(payload):
    served = ZipServer(payload)
    yield served
    served.close()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_reports_progress_and_verifies(data_root, server, payload):
    seen = []
    dest = download(server.url, data_root / "downloads" / "a.zip", size=len(payload), md5=_md5(payload),
                    progress=lambda done, total: seen.append((done, total)))
    assert dest.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload)) and all(t == len(payload) for _, t in seen)
    assert download(server.url, dest, size=len(payload), md5=_md5(payload)) == dest  # no second transfer
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(data_root, server, payload):
    server.cut_after = len(payload) // 3
    dest = data_root / "downloads" / "b.zip"
    with pytest.raises(DownloadFailed, match="expected"):
        download(server.url, dest, size=len(payload), md5=_md5(payload))
    part = dest.with_name(dest.name + ".part")
    assert part.stat().st_size == len(payload) // 3 and not dest.exists()
    seen = []
    download(server.url, dest, size=len(payload), md5=_md5(payload), progress=lambda d, t: seen.append(d))
    assert server.requests == [None, f"bytes={len(payload) // 3}-"]
    assert dest.read_bytes() == payload and not part.exists()
    assert seen[0] > len(payload) // 3  # progress continues from the resumed offset


def test_checksum_mismatch_is_refused_and_nothing_kept(data_root, server, payload):
    dest = data_root / "downloads" / "c.zip"
    with pytest.raises(DownloadFailed, match="md5"):
        download(server.url, dest, size=len(payload), md5="0" * 32)
    assert not dest.exists() and not dest.with_name("c.zip.part").exists()


def test_offline_and_unreachable_give_the_url_and_the_place(data_root, monkeypatch):
    dest = data_root / "downloads" / "d.zip"
    monkeypatch.setenv("DASHBOARD_OFFLINE", "1")
    with pytest.raises(OfflineError, match="put it at"):
        download("http://127.0.0.1:9/file.zip", dest)
    monkeypatch.setenv("DASHBOARD_OFFLINE", "")
    with pytest.raises(OfflineError) as error:
        download("http://127.0.0.1:9/file.zip", dest, timeout=5)
    assert "http://127.0.0.1:9/file.zip" in str(error.value) and "<data root>/downloads/d.zip" in str(error.value)
    assert str(data_root) not in str(error.value)


def test_kather_job_downloads_extracts_and_indexes(data_root, server, payload):
    source = {"url": server.url, "size": len(payload), "md5": _md5(payload)}
    state = run_inline(kinds.KATHER_DOWNLOAD, {"source": source}, data_root / "jobs" / "kather")
    assert state.status == "finished", state.error
    assert state.result == {"dataset": "kather2016", "files": 8, "usable": 8}
    assert kather.download_path().read_bytes() == payload
    assert (kather.install_folder() / "Kather_texture_2016_image_tiles_5000" / "01_TUMOR").is_dir()


def test_the_download_mirror_serves_the_file_under_its_name_with_the_same_checks(tmp_path, monkeypatch):
    from tests.conftest import serve_folder

    folder = tmp_path / "mirror"
    folder.mkdir()
    payload = b"genuine bytes" * 100
    (folder / "weights.h5").write_bytes(payload)
    public = "https://example.invalid/models/weights.h5?download=1"
    with serve_folder(folder) as mirror:
        monkeypatch.setenv("DASHBOARD_OFFLINE", "")
        monkeypatch.setenv("DASHBOARD_DOWNLOAD_MIRROR", mirror.url)
        got = download(public, tmp_path / "a" / "weights.h5", size=len(payload),
                       sha256=hashlib.sha256(payload).hexdigest())
        assert got.read_bytes() == payload and mirror.stats["requests"][0][0] == "weights.h5"
        with pytest.raises(DownloadFailed, match="sha256"):  # the mirror must hold the genuine file
            download(public, tmp_path / "b" / "weights.h5", sha256="0" * 64)
        assert not (tmp_path / "b" / "weights.h5").exists()
