"""Asking the model service (a separate process) to run a model: ``call(op, args, arrays)``.

The service is started on first need and again whenever it is found dead. A request that was
under way when the service died is not retried (it may be what killed it): it fails with
:class:`ServiceRestarted`, and the next request finds a fresh service.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from services.config import child_environment, get_settings
from services.errors import UserFacingError
from services.model_service import address, protocol

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
_start_lock = threading.Lock()
_spawned: dict[str, subprocess.Popen] = {}


class ModelServiceError(UserFacingError):
    """The model service could not answer (message meant for the user)."""


class ServiceRestarted(ModelServiceError):
    """The service died while answering; it has been started again."""


@dataclass
class Reply:
    result: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def _token(data_root: Path | None = None) -> str | None:
    try:
        return address.token_file(data_root).read_text().strip()
    except OSError:
        return None


def _connect(timeout: float, data_root: Path | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address.socket_address(data_root))
    except OSError:
        sock.close()
        raise
    return sock


def _exchange(op: str, args: dict, arrays: dict | None, timeout: float,
              data_root: Path | None = None) -> tuple[dict, dict, bool]:
    """(header, arrays, sent): ``sent`` tells whether the request reached the service."""
    sock = _connect(5.0, data_root)
    try:
        sock.settimeout(timeout)
        protocol.send_message(sock, {"op": op, "args": args, "token": _token(data_root) or ""}, arrays)
        try:
            header, reply_arrays = protocol.receive_message(sock)
        except (protocol.ProtocolError, OSError) as error:
            raise _BrokenMidRequest() from error
        return header, reply_arrays, True
    finally:
        sock.close()


class _BrokenMidRequest(Exception):
    pass


def service_alive(data_root: Path | None = None) -> bool:
    try:
        header, _, _ = _exchange("system.ping", {}, None, 5.0, data_root)
    except (OSError, _BrokenMidRequest):
        return False
    return bool(header.get("ok"))


def _spawn_service() -> subprocess.Popen:
    address.service_dir().mkdir(parents=True, exist_ok=True)
    env = child_environment()
    with open(address.log_file(), "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "services.model_service"], cwd=REPO_ROOT, env=env,
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _refuse_beside_a_tensorflow_job() -> None:
    """Under ``one_tensorflow_process`` (the cloud profile), the service does not start while a
    TensorFlow job runs: the two together would not fit the small box."""
    if not get_settings().one_tensorflow_process:
        return
    from services.jobs import store as job_store
    from services.jobs.kinds import TENSORFLOW

    jobs_dir = get_settings().jobs_dir
    if (jobs_dir / job_store.STORE_FILE).is_file() and \
            job_store.open_store(jobs_dir).count(job_store.RUNNING, TENSORFLOW):
        raise ModelServiceError("A TensorFlow job is running; on this small-memory deployment one TensorFlow "
                                "process runs at a time, so this waits until the job has finished (or is "
                                "stopped). Try again then.")


def ensure_service(timeout: float = START_TIMEOUT_S) -> None:
    """Start the model service of this data root unless it answers; wait until it does.

    A process we started that has not answered yet is given time (it may be starting, or be
    a dying one not yet reaped); once it has ended, another is started."""
    if service_alive():
        return
    _refuse_beside_a_tensorflow_job()
    root = str(get_settings().data_root)
    with _start_lock:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if service_alive():
                return
            process = _spawned.get(root)
            if process is None or process.poll() is not None:  # poll() also reaps an ended one
                _spawned[root] = _spawn_service()
            time.sleep(0.1)
    raise ModelServiceError("The model service did not start; see run/model-service.log under the data root.")


def call(op: str, args: dict | None = None, arrays: dict[str, np.ndarray] | None = None,
         timeout: float = 300.0) -> Reply:
    """Run operation ``op`` (listed in ``services/model_service/ops.py``) in the model service."""
    args = dict(args or {})
    for attempt in range(2):
        try:
            header, reply_arrays, _ = _exchange(op, args, arrays, timeout)
        except _BrokenMidRequest:
            ensure_service()
            raise ServiceRestarted("The model service stopped while answering and has been restarted; "
                                   "try again.") from None
        except OSError:
            if attempt:
                raise ModelServiceError("The model service is not answering.") from None
            ensure_service()
            continue
        if header.get("ok"):
            result = header.get("result")
            return Reply(result if isinstance(result, dict) else {}, reply_arrays)
        message = str(header.get("message") or "The model service could not answer.")
        if header.get("kind") == "auth" and attempt == 0:
            continue  # the service restarted with a new token between reading and sending
        if header.get("kind") == "user":
            raise UserFacingError(message)
        raise ModelServiceError(message)
    raise ModelServiceError("The model service is not answering.")


def stop_service(timeout: float = 10.0, data_root: Path | None = None) -> bool:
    """End the model service of a data root (default: this one) if one answers; True if it did."""
    try:
        header, _, _ = _exchange("system.shutdown", {}, None, 5.0, data_root)
    except (OSError, _BrokenMidRequest):
        return False
    deadline = time.monotonic() + timeout
    while service_alive(data_root) and time.monotonic() < deadline:
        time.sleep(0.05)
    process = _spawned.pop(str(data_root or get_settings().data_root), None)
    if process is not None:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return bool(header.get("ok"))
