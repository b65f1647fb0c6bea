"""The dashboard's processes, found in ``/proc``: what each one is, which data root it serves, its
memory, and ending them.

A process belongs to the dashboard when its command line is one of the app's (see ``ROLES``);
its data root is the ``--jobs-dir`` parent for the runner and workers, else its
``DASHBOARD_DATA_DIR`` (default ``data``) resolved against its working folder, as
:func:`services.config.get_settings` resolves it. Only this user's processes can be read; the
others are skipped. Linux only (elsewhere nothing is found).
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from services.config import DEFAULT_DATA_DIR, Env

WEB_SERVER, LAUNCHER, INGEST = "web server", "launcher", "ingest server"
RUNNER, WORKER, WARM_WORKER, MODEL_SERVICE = "job runner", "job worker", "warm worker", "model service"
BACKGROUND = (RUNNER, WORKER, WARM_WORKER, MODEL_SERVICE)
"""The processes that outlive the page that started them (each in a session of its own)."""
_MODULES = {"services.jobs.runner": RUNNER, "services.model_service": MODEL_SERVICE,
            "services.training.ingest": INGEST, "services.supervisor": LAUNCHER}
APP_SCRIPT = ("dashboard", "app.py")
PSS, RSS = "PSS", "RSS"


@dataclass(frozen=True)
class AppProcess:
    pid: int
    role: str
    data_root: Path | None
    parent: int
    started: float
    """Seconds since boot (``/proc/PID/stat`` start time), to tell a reused pid from the original."""
    cwd: Path | None


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError:
        return None


def _role(argv: list[str]) -> str | None:
    for index, arg in enumerate(argv[:-1]):
        if arg == "-m" and argv[index + 1] in _MODULES:
            return _MODULES[argv[index + 1]]
        if arg == "-m" and argv[index + 1] == "services.jobs.worker":
            return WARM_WORKER if "--warm" in argv else WORKER
    for index, arg in enumerate(argv[:-1]):  # `python -m streamlit run X` or `streamlit run X`
        if arg == "run" and index and Path(argv[index - 1]).name == "streamlit" \
                and Path(argv[index + 1]).parts[-2:] == APP_SCRIPT:
            return WEB_SERVER
    return None


def _stat(pid: int) -> tuple[str, int, float] | None:
    """(state, parent pid, start time in seconds since boot)."""
    data = _read(f"/proc/{pid}/stat")
    if data is None:
        return None
    fields = data.rsplit(b")", 1)[-1].split()
    try:
        return fields[0].decode(), int(fields[1]), int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (IndexError, ValueError):
        return None


def _data_root(pid: int, argv: list[str], cwd: Path | None) -> Path | None:
    if "--jobs-dir" in argv[:-1]:
        jobs_dir = Path(argv[argv.index("--jobs-dir") + 1])
        return ((cwd or Path("/")) / jobs_dir).resolve().parent
    environ = _read(f"/proc/{pid}/environ")
    if environ is None or cwd is None:
        return None
    values = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
    data_dir = values.get(os.fsencode(Env.DATA_DIR)) or os.fsencode(DEFAULT_DATA_DIR)
    return (cwd / Path(os.fsdecode(data_dir)).expanduser()).resolve()


def describe(pid: int) -> AppProcess | None:
    """The dashboard process ``pid``, or None (not the dashboard's, gone, a zombie, not ours)."""
    command = _read(f"/proc/{pid}/cmdline")
    if not command:
        return None
    argv = [os.fsdecode(arg) for arg in command.rstrip(b"\0").split(b"\0")]
    role = _role(argv)
    stat = _stat(pid) if role else None
    if stat is None or stat[0] == "Z":
        return None
    try:
        cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        cwd = None
    return AppProcess(pid, role, _data_root(pid, argv, cwd), stat[1], stat[2], cwd)


def find(data_root: Path | None = None, roles: tuple[str, ...] | None = None) -> list[AppProcess]:
    """The dashboard's processes (of ``data_root`` and in ``roles`` when given), by pid."""
    root = data_root.resolve() if data_root is not None else None
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if not name.isdigit():
            continue
        process = describe(int(name))
        if process is None or (roles is not None and process.role not in roles):
            continue
        if root is None or process.data_root == root:
            found.append(process)
    return sorted(found, key=lambda process: process.pid)


def memory(pid: int) -> tuple[int | None, str]:
    """(bytes, measure): the proportional set size (PSS: shared pages split among the processes
    that map them, so a sum over processes counts them once) when ``/proc/PID/smaps_rollup`` is
    readable, else the resident set size (RSS: shared pages counted in every process)."""
    for path, key, measure in ((f"/proc/{pid}/smaps_rollup", b"Pss:", PSS), (f"/proc/{pid}/status", b"VmRSS:", RSS)):
        data = _read(path)
        for line in (data or b"").splitlines():
            if line.startswith(key):
                try:
                    return int(line.split()[1]) * 1024, measure
                except (IndexError, ValueError):
                    break
    return None, RSS


@dataclass(frozen=True)
class Usage:
    role: str
    pid: int
    bytes: int | None
    measure: str


def app_usage(data_root: Path, server_pid: int | None = None) -> list[Usage]:
    """Every process of the app on ``data_root`` with its memory (see :func:`memory`), the web
    server ``server_pid`` (the one asking) first even where its command line is not recognised
    (a test harness)."""
    found = [(process.role, process.pid) for process in find(data_root) if process.pid != server_pid]
    if server_pid is not None:
        found.insert(0, (WEB_SERVER, server_pid))
    return [Usage(role, pid, *memory(pid)) for role, pid in found]


def total_bytes(usages: list[Usage]) -> int:
    """Memory of the processes summed (PSS sums count shared pages once; see :func:`memory`)."""
    return sum(usage.bytes or 0 for usage in usages)


def loaded_tensorflow(pid: int) -> bool:
    """Whether process ``pid`` has TensorFlow's library mapped (False when it cannot be read)."""
    maps = _read(f"/proc/{pid}/maps")
    return maps is not None and b"libtensorflow" in maps


def alive(process: AppProcess) -> bool:
    """Whether this very process still runs (not a zombie, not a new one under a reused pid)."""
    stat = _stat(process.pid)
    return stat is not None and stat[0] != "Z" and stat[2] == process.started


def _send(process: AppProcess, number: int) -> None:
    """Signal the process, and its whole group when it leads one (workers, runner and model
    service lead their own session, and whatever they started is in it)."""
    if not alive(process):
        return
    try:
        if os.getpgid(process.pid) == process.pid:
            os.killpg(process.pid, number)
        else:
            os.kill(process.pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def end(found: list[AppProcess], timeout: float = 3.0) -> list[AppProcess]:
    """SIGTERM each process, SIGKILL those still alive after ``timeout``; returns the ones that
    needed SIGKILL. Waits (up to 2 s more) until they are gone."""
    for process in found:
        _send(process, signal.SIGTERM)
    forced = _wait_gone(found, timeout)
    for process in forced:
        _send(process, signal.SIGKILL)
    _wait_gone(forced, 2.0)
    return forced


def _wait_gone(found: list[AppProcess], timeout: float) -> list[AppProcess]:
    deadline = time.monotonic() + timeout
    while True:
        left = [process for process in found if alive(process)]
        if not left or time.monotonic() >= deadline:
            return left
        time.sleep(0.05)
