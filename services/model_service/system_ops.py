"""Model-service operations about the machine itself (and two for the tests)."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict


def ping(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    return {"pid": os.getpid(), "models": len(cache)}, {}


def devices(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    from services import runtime

    return {"devices": [asdict(device) for device in runtime.devices()]}, {}


def matmul_probe(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    from services import runtime

    return {"results": [asdict(result) for result in runtime.matmul_probe()]}, {}


def crash(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """Tests only: the service dies mid-request, as a segfault in a model would kill it."""
    os.kill(os.getpid(), signal.SIGKILL)
    return {}, {}


def sleep(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    seconds = min(float(args.get("seconds", 0.1)), 30.0)
    time.sleep(seconds)
    return {"slept": seconds}, {}


def shutdown(cache, args: dict, arrays: dict) -> tuple[dict, dict]:
    """End the service shortly after answering (tests, CLIs, ``stop_service``)."""
    import threading

    threading.Timer(0.2, os._exit, args=(0,)).start()
    return {"stopping": os.getpid()}, {}
