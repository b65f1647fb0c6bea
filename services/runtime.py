"""The compute runtime: the one place that imports and configures TensorFlow.

``tensorflow()`` imports TensorFlow on first use, enables GPU memory growth and quiets its
logging; every model service gets TensorFlow through it. ``quick_summary()`` answers "which
device and which TensorFlow?" without importing TensorFlow, so the home page renders fast.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import shutil
import subprocess
import threading
import time
from dataclasses import dataclass
from types import ModuleType

from services.config import Env

_lock = threading.Lock()
_tf: ModuleType | None = None


def tensorflow() -> ModuleType:
    """Import TensorFlow once, with GPU memory growth enabled (safe to call from any thread)."""
    global _tf
    if _tf is not None:
        return _tf
    with _lock:
        if _tf is None:
            os.environ.setdefault(Env.TF_LOG_LEVEL, "2")
            import tensorflow as tf

            for gpu in tf.config.list_physical_devices("GPU"):
                try:
                    tf.config.experimental.set_memory_growth(gpu, True)
                except RuntimeError:
                    pass  # already initialised by someone else; growth cannot change now
            _tf = tf
    return _tf


def tensorflow_version() -> str | None:
    """The installed TensorFlow version, read from package metadata (no import)."""
    for package in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


@dataclass(frozen=True)
class DeviceInfo:
    name: str
    kind: str  # "GPU" or "CPU"
    memory_mb: int | None = None


@functools.lru_cache(maxsize=1)
def _nvidia_smi_gpus() -> tuple[DeviceInfo, ...]:
    """The GPUs the NVIDIA driver reports, asked once per process (Home shows them on every rerun)."""
    executable = shutil.which("nvidia-smi")
    if not executable:
        return ()
    try:
        output = subprocess.run(
            [executable, "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=3, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    devices = []
    for line in output.strip().splitlines():
        name, _, memory = line.partition(",")
        devices.append(DeviceInfo(name.strip(), "GPU", int(memory) if memory.strip().isdigit() else None))
    return tuple(devices)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"CPU ({os.cpu_count()} cores)"


def available_memory_bytes() -> int | None:
    """Bytes of memory available to a new allocation now (MemAvailable, else free pages), None
    where unknown: what size checks estimate against before allocating."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def quick_summary() -> list[DeviceInfo]:
    """GPUs reported by the NVIDIA driver, else the CPU; never imports TensorFlow."""
    return list(_nvidia_smi_gpus()) or [DeviceInfo(_cpu_name(), "CPU")]


def devices() -> list[DeviceInfo]:
    """The devices TensorFlow itself sees (imports TensorFlow)."""
    tf = tensorflow()
    gpu_memory = [gpu.memory_mb for gpu in _nvidia_smi_gpus()]
    found = []
    gpu_index = 0
    for device in tf.config.list_physical_devices():
        if device.device_type == "GPU":
            details = tf.config.experimental.get_device_details(device)
            memory = gpu_memory[gpu_index] if gpu_index < len(gpu_memory) else None
            found.append(DeviceInfo(details.get("device_name") or device.name, "GPU", memory))
            gpu_index += 1
        else:
            found.append(DeviceInfo(_cpu_name(), device.device_type))
    return found


def has_gpu() -> bool:
    return bool(tensorflow().config.list_physical_devices("GPU"))


def set_mixed_precision(enabled: bool) -> str:
    """Use float16 compute with float32 variables on GPU (``mixed_float16``); float32 otherwise.

    Returns the policy in force. On CPU mixed precision is slower, so it is refused there.
    """
    import keras

    policy = "mixed_float16" if enabled and has_gpu() else "float32"
    keras.mixed_precision.set_global_policy(policy)
    return policy


@dataclass(frozen=True)
class ProbeResult:
    device: str
    size: int
    seconds: float
    gflops: float


def matmul_probe(sizes: tuple[int, ...] = (100, 2000), repeats: int = 5) -> list[ProbeResult]:
    """The book's ch. 2 demonstration: time an n x n matmul on each device.

    A 100 x 100 product is no faster on a GPU (launch overhead dominates); a large one is
    dramatically faster. Returns the best of ``repeats`` timings per device and size.
    """
    tf = tensorflow()
    targets = ["/CPU:0"] + [f"/GPU:{i}" for i, _ in enumerate(tf.config.list_physical_devices("GPU"))]
    results = []
    for target in targets:
        for size in sizes:
            with tf.device(target):
                a = tf.random.uniform((size, size), seed=1)
                b = tf.random.uniform((size, size), seed=2)
                tf.matmul(a, b).numpy()  # warm-up, also places the data
                best = float("inf")
                for _ in range(repeats):
                    start = time.perf_counter()
                    tf.matmul(a, b).numpy()
                    best = min(best, time.perf_counter() - start)
            results.append(ProbeResult(target, size, best, 2 * size**3 / best / 1e9))
    return results
