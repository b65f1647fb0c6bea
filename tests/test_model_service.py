"""The model service process: requests, errors, authentication, crashes and restarts."""

from __future__ import annotations

import socket
import threading

import numpy as np
import pytest

from services.errors import UserFacingError
from services.model_service import address, client, protocol
from services.model_service.cache import ModelCache, file_key


@pytest.fixture
def service(data_root):
    client.ensure_service()
    yield
    client.stop_service()


def test_ping_starts_the_service_in_another_process(service):
    import os

    reply = client.call("system.ping")
    assert reply.result["pid"] != os.getpid()


def test_unknown_operation_is_a_clear_refusal(service):
    with pytest.raises(UserFacingError, match="no operation"):
        client.call("no.such.op")


def test_a_killed_service_is_restarted_and_the_request_refused_once(service):
    before = client.call("system.ping").result["pid"]
    with pytest.raises(client.ServiceRestarted, match="restarted"):
        client.call("system.crash")
    after = client.call("system.ping").result["pid"]
    assert after != before


def test_concurrent_requests_are_all_answered(service):
    answers, errors = [], []

    def ask(seconds):
        try:
            answers.append(client.call("system.sleep", {"seconds": seconds}).result["slept"])
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=ask, args=(0.2,)) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and answers == [0.2] * 6


def test_a_request_without_the_token_is_refused(service):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address.socket_address())
    protocol.send_message(sock, {"op": "system.ping", "args": {}, "token": "guess"})
    header, _ = protocol.receive_message(sock)
    sock.close()
    assert header["ok"] is False and header["kind"] == "auth"
    assert oct(address.token_file().stat().st_mode)[-3:] == "600"


def test_garbage_on_the_socket_does_not_end_the_service(service):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address.socket_address())
    sock.sendall(b"\x00\x00\x00\x05{nope")
    sock.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(address.socket_address())
    sock.sendall(b"\xff\xff\xff\xff")  # a header "length" of 4 GiB: refused, nothing allocated
    sock.close()
    assert client.call("system.ping").result["pid"]


def test_arrays_round_trip_without_pickle():
    left, right = socket.socketpair()
    arrays = {"tile": np.arange(24, dtype=np.uint8).reshape(2, 4, 3), "scores": np.array([0.5, 1.5])}
    protocol.send_message(left, {"op": "x"}, arrays)
    header, received = protocol.receive_message(right)
    assert header["op"] == "x"
    np.testing.assert_array_equal(received["tile"], arrays["tile"])
    object_array = np.array([{"a": 1}], dtype=object)
    with pytest.raises(ValueError):
        protocol.send_message(left, {"op": "x"}, {"bad": object_array})
    left.close()
    right.close()


def test_model_cache_is_lru_and_reloads_replaced_files(tmp_path):
    cache = ModelCache(max_entries=2)
    loads = []
    for key in ("a", "b", "a", "c", "b"):
        cache.get(key, lambda key=key: loads.append(key) or key.upper())
    assert loads == ["a", "b", "c", "b"]
    path = tmp_path / "model.keras"
    path.write_bytes(b"1")
    first = file_key(path)
    path.write_bytes(b"22")
    assert file_key(path) != first
