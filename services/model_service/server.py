"""The model service process: loads and caches models and answers the pages' requests.

``python -m services.model_service`` (started by :mod:`services.model_service.client` on first
need, in a session of its own). One per data root: it holds ``model-service.lock``; a second
one exits at once. Each connection carries one request and its reply (see ``protocol``); each
runs on its own thread, and requests for the same model are serialised by the model's lock in
the :class:`~services.model_service.cache.ModelCache`. It exits after
``DASHBOARD_SERVICE_IDLE_S`` seconds (default 1800; 60 under the cloud profile) without a request.
"""

from __future__ import annotations

import fcntl
import hmac
import importlib
import logging
import os
import secrets
import shutil
import signal
import socketserver
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from services.config import Env, get_settings
from services.errors import UserFacingError
from services.model_service import address, protocol
from services.model_service.cache import ModelCache
from services.model_service.ops import OPS

log = logging.getLogger("model_service")
REQUEST_TIMEOUT_S = 60.0


def _op_function(name: str):
    target = OPS.get(name)
    if target is None:
        raise UserFacingError(f"The model service has no operation {name[:60]!r}.")
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name)


class Service:
    def __init__(self, token: str, max_models: int):
        self.token = token
        self.cache = ModelCache(max_models)
        self.last_request = time.monotonic()
        self.requests = 0

    def answer(self, header: dict, arrays: dict) -> tuple[dict, dict]:
        if not hmac.compare_digest(str(header.get("token", "")), self.token):
            return {"ok": False, "kind": "auth", "message": "The model service refused the request (bad token)."}, {}
        self.last_request = time.monotonic()
        self.requests += 1
        op = str(header.get("op", ""))
        args = header.get("args") if isinstance(header.get("args"), dict) else {}
        try:
            result, out_arrays = _op_function(op)(self.cache, args, arrays)
        except UserFacingError as error:
            return {"ok": False, "kind": "user", "message": str(error)}, {}
        except MemoryError:
            log.error("out of memory in %s\n%s", op, traceback.format_exc())
            return {"ok": False, "kind": "internal", "message": "The model service ran out of memory."}, {}
        except Exception as error:  # noqa: BLE001 - one bad request never ends the service
            log.error("operation %s failed\n%s", op, traceback.format_exc())
            return {"ok": False, "kind": "internal",
                    "message": f"The model service could not answer ({type(error).__name__})."}, {}
        return {"ok": True, "result": result}, out_arrays


def _handler(service: Service):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.settimeout(REQUEST_TIMEOUT_S)
            try:
                header, arrays = protocol.receive_message(self.request)
            except (protocol.ProtocolError, OSError):
                return
            reply, out_arrays = service.answer(header, arrays)
            try:
                protocol.send_message(self.request, reply, out_arrays)
            except (OSError, TypeError, ValueError) as error:
                log.error("could not send the reply: %s", error)
                try:
                    protocol.send_message(self.request, {"ok": False, "kind": "internal",
                                                         "message": "The model service could not send its answer."})
                except OSError:
                    pass

    return Handler


class _Server(socketserver.UnixStreamServer):
    """Answers each connection on a thread of a fixed pool: TensorFlow sets up per-thread state
    on a thread's first operation, which a fresh thread per request would pay every time."""

    def __init__(self, address: str, handler, threads: int = 8):
        super().__init__(address, handler)
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="model-service")

    def process_request(self, request, client_address):
        self.pool.submit(self._answer, request, client_address)

    def _answer(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: BLE001 - one broken connection never ends the service
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)


def _private_tmp():
    """TensorFlow's autograph (and others) write temporary files: keep them in the service's own
    folder, emptied at every start and removed at exit, so nothing piles up in /tmp."""
    scratch = address.service_dir() / "tmp"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    os.environ[Env.TMPDIR] = str(scratch)
    tempfile.tempdir = str(scratch)
    return scratch


def _import_tensorflow() -> None:
    from services.runtime import tensorflow

    tensorflow()
    import keras  # noqa: F401


def _write_token(path) -> str:
    token = secrets.token_hex(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    os.replace(temporary, path)
    return token


def idle_seconds() -> float:
    """The service exits after this long without a request (``DASHBOARD_SERVICE_IDLE_S``;
    1800 s, 60 s under the cloud profile)."""
    return get_settings().service_idle_s


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    address.service_dir().mkdir(parents=True, exist_ok=True)
    lock = open(address.lock_file(), "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return 0
    scratch = _private_tmp()
    idle_s = idle_seconds()
    max_models = get_settings().service_models
    service = Service(_write_token(address.token_file()), max_models)
    server = _Server(address.socket_address(), _handler(service))
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
    log.info("model service %d listening", os.getpid())
    threading.Thread(target=_import_tensorflow, daemon=True).start()  # the first request is quicker
    root = address.service_dir()
    ended = threading.Event()  # SIGTERM (the job runner under one_tensorflow_process): a clean exit
    signal.signal(signal.SIGTERM, lambda number, frame: ended.set())
    while time.monotonic() - service.last_request < idle_s and root.is_dir() and not ended.is_set():
        ended.wait(1.0)
    server.shutdown()
    log.info("model service %d idle, exiting", os.getpid())
    shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
