"""The job runner: one small supervisor process per data root that starts job workers.

``python -m services.jobs.runner --jobs-dir D`` (started by :class:`~services.jobs.JobManager`
on first need, in a session of its own so it outlives the Streamlit server). It holds an
exclusive lock on ``runner.lock`` (a second runner exits at once) and loops:

- claims queued jobs while their resource class has a free slot, and hands each to a worker
  process: TensorFlow jobs to a *warm* worker that has already imported TensorFlow, the others
  to a fresh worker;
- keeps one warm worker ready (``DASHBOARD_WARM_WORKER=0`` turns this off), and besides it at most
  one *reused* worker: a warm worker that ran a job of a kind that reuses its worker (tissue maps)
  and said ``ready`` again; only jobs of such kinds go to it (it keeps their models loaded);
- records the signal or exit code and the end of the log of a worker that died with its job
  still running (a segfault, the OOM killer); marks jobs whose worker vanished without a trace
  (a previous runner's) ``interrupted``;
- ends a job that ignores Stop for ``STOP_GRACE_S`` seconds (SIGTERM, then SIGKILL);
- every ``SWEEP_S`` seconds calls the sweeps of :data:`~services.jobs.kinds.SWEEPS` (a training
  run whose job ended without the run recording it takes the job's ending);
- exits after ``DASHBOARD_RUNNER_IDLE_S`` seconds (default 600) with nothing to do.

The runner never imports TensorFlow and never runs a job itself, so a crashing job cannot take
it down either.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from services import processes, run_layout
from services.config import child_environment, get_settings
from services.jobs import store as job_store
from services.jobs import kinds
from services.jobs.kinds import KINDS, RESOURCES, TENSORFLOW
from services.jobs.limits import resource_limits, runner_idle_seconds, stale_seconds, warm_worker_enabled
from services.jobs.logs import describe_exit, log_tail

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOP_S = 0.1
BEAT_S = 1.0
SWEEP_S = 2.0
AUTO_RESUME_ATTEMPTS = 3
STOP_GRACE_S = 15.0
KILL_GRACE_S = 5.0
LOCK_FILE = "runner.lock"
LOCK_WAIT_S = 15.0
"""How long a new runner waits for the lock of one that is exiting (it ends within seconds)."""
LOG_FILE = "runner.log"


def worker_environment() -> dict[str, str]:
    return child_environment()


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own child not yet reaped) is not alive
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


@dataclass
class Worker:
    process: subprocess.Popen
    resource: str
    warm: bool
    job_id: str | None = None
    ready: bool = False
    buffer: bytes = b""
    served: int = 0
    """Jobs it ran (a warm worker that said ``ready`` again after a job of a reusing kind)."""


class Runner:
    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir
        self.store = job_store.open_store(jobs_dir)
        self.workers: dict[int, Worker] = {}
        self.stop_seen: dict[str, float] = {}
        self.warm_failures: list[float] = []
        self.last_busy = time.monotonic()
        self.last_beat = 0.0
        self.last_sweep = 0.0
        self.running = True

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, arguments: list[str], resource: str, warm: bool, job_id: str | None) -> Worker:
        log_path = run_layout.worker_log(self.jobs_dir / job_id) if job_id else self.jobs_dir / LOG_FILE
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "services.jobs.worker", "--jobs-dir", str(self.jobs_dir), *arguments],
                cwd=REPO_ROOT, env=worker_environment(), stdin=subprocess.PIPE if warm else subprocess.DEVNULL,
                stdout=subprocess.PIPE if warm else log, stderr=log, start_new_session=True)
        worker = Worker(process, resource, warm, job_id)
        self.workers[process.pid] = worker
        if job_id:
            self.store.set_pid(job_id, process.pid)
        return worker

    def _warm_workers(self, resource: str, reused: bool = False) -> list[Worker]:
        """Idle warm workers of ``resource``: fresh ones, or (``reused``) those that ran jobs already."""
        return [w for w in self.workers.values()
                if w.warm and w.job_id is None and w.resource == resource and bool(w.served) == reused]

    def _read_ready(self) -> None:
        """A warm worker's ``ready``: its import is done, or (after a job) it takes another job."""
        for worker in self.workers.values():
            if not worker.warm or worker.ready or worker.process.stdout is None:
                continue
            readable, _, _ = select.select([worker.process.stdout], [], [], 0)
            if readable:
                chunk = os.read(worker.process.stdout.fileno(), 4096)
                worker.buffer += chunk
                if b"ready" in worker.buffer:
                    worker.ready, worker.buffer = True, b""
                    if worker.job_id is not None:
                        worker.job_id, worker.served = None, worker.served + 1
        self._keep_one_reused()

    def _keep_one_reused(self) -> None:
        """At most one idle reused worker per resource (the one that served last); others end."""
        for resource in RESOURCES:
            reused = sorted((w for w in self._warm_workers(resource, reused=True) if w.ready), key=lambda w: w.served)
            for worker in reused[:-1]:
                _signal(worker.process, signal.SIGTERM)
                worker.ready = False

    def _ensure_warm(self) -> None:
        if not warm_worker_enabled():
            return
        recent = [t for t in self.warm_failures if time.monotonic() - t < 300]
        self.warm_failures = recent
        if len(recent) >= 3:
            return  # warm workers keep dying at start-up: fall back to cold workers for a while
        limit = resource_limits()[TENSORFLOW]
        running = self.store.count(job_store.RUNNING, TENSORFLOW)
        queued = self.store.count(job_store.QUEUED, TENSORFLOW)
        wanted = max(1, min(queued, max(0, limit - running)))
        for _ in range(wanted - len(self._warm_workers(TENSORFLOW))):
            self._spawn(["--warm", "--resource", TENSORFLOW], TENSORFLOW, warm=True, job_id=None)

    def _ready_worker(self, resource: str, reused: bool) -> Worker | None:
        return next((w for w in self._warm_workers(resource, reused) if w.ready), None)

    def _dispatch(self, resource: str, limit: int) -> None:
        while True:
            warm = None
            if resource == TENSORFLOW and warm_worker_enabled() and len(self.warm_failures) < 3:
                warm = self._ready_worker(resource, reused=False)
                if warm is None and self._ready_worker(resource, reused=True) is None:
                    return  # wait for the warm worker (it is importing TensorFlow)
            job_id = self.store.claim_next(resource, limit, os.getpid())
            if job_id is None:
                return
            self.last_busy = time.monotonic()
            self._read_ready()  # a worker says ready before its job's end frees the slot just claimed
            state = self.store.get(job_id)
            kind = KINDS.get(state.kind) if state else None
            reused = self._ready_worker(resource, reused=True) if kind and kind.reuses_worker else None
            warm = reused or warm
            if resource == TENSORFLOW and get_settings().one_tensorflow_process:
                self._stop_model_service()
            if warm is not None:
                self._hand_over(warm, job_id)
            else:
                self._spawn(["--job", job_id], resource, warm=False, job_id=job_id)

    def _hand_over(self, warm: Worker, job_id: str) -> None:
        """Send a claimed job to a ready warm worker (stdin stays open: a reused worker reads the next id)."""
        warm.job_id, warm.ready = job_id, False
        self.store.set_pid(job_id, warm.process.pid)
        try:
            warm.process.stdin.write(f"{job_id}\n".encode())
            warm.process.stdin.flush()
        except OSError:
            pass  # it died just now: _reap records the failure

    def _stop_model_service(self) -> None:
        """End this data root's model service (it exits cleanly on SIGTERM), so the TensorFlow job
        about to start is the only TensorFlow process; the next page that needs the service
        after the job starts it again."""
        found = processes.find(self.jobs_dir.parent, (processes.MODEL_SERVICE,))
        if found:
            processes.end(found, timeout=10.0)

    def _reap(self) -> None:
        for pid, worker in list(self.workers.items()):
            returncode = worker.process.poll()
            if returncode is None:
                continue
            del self.workers[pid]
            for pipe in (worker.process.stdout, worker.process.stdin):
                if pipe is not None:
                    try:
                        pipe.close()
                    except OSError:
                        pass  # a broken pipe to a dead worker
            if worker.job_id is None:
                if worker.warm and returncode != 0:
                    self.warm_failures.append(time.monotonic())
                continue
            state = self.store.get(worker.job_id)
            if state is None or state.status != job_store.RUNNING:
                continue  # the worker published its own end state
            signal_name, exit_code, sentence = describe_exit(returncode)
            tail = log_tail(run_layout.worker_log(self.jobs_dir / worker.job_id))
            if state.stop_requested:
                self.store.finish(worker.job_id, job_store.STOPPED, message="stopped on request (ended by force)",
                                  signal=signal_name, exit_code=exit_code, only_if_running=True)
            else:
                self.store.finish(worker.job_id, job_store.FAILED, error=sentence, signal=signal_name,
                                  exit_code=exit_code, log_tail=tail, only_if_running=True)

    def _check_running(self) -> None:
        """Jobs whose worker vanished or stopped beating, and jobs that ignore Stop."""
        ours = {w.job_id: w for w in self.workers.values() if w.job_id}
        now = time.time()
        for state in self.store.running():
            worker = ours.get(state.id)
            stale = state.heartbeat is None or now - state.heartbeat > stale_seconds()
            if worker is None and not pid_alive(state.pid):
                self._interrupt(state, "the worker of this job ended without a word (the machine or the job "
                                       "runner restarted)")
                continue
            if stale:  # alive but silent: frozen, or stuck in something that blocks its heartbeat
                if worker is not None:
                    _signal(worker.process, signal.SIGKILL)
                elif state.pid:
                    _kill_group(state.pid)
                self._interrupt(state, f"the worker of this job stopped responding for {stale_seconds():.0f} s and was ended")
                continue
            if worker is not None and state.stop_requested:
                seen = self.stop_seen.setdefault(state.id, time.monotonic())
                waited = time.monotonic() - seen
                if waited > STOP_GRACE_S + KILL_GRACE_S:
                    _signal(worker.process, signal.SIGKILL)
                elif waited > STOP_GRACE_S:
                    _signal(worker.process, signal.SIGTERM)

    def _interrupt(self, state: job_store.JobState, message: str) -> None:
        """Mark a job interrupted; a resumable one that was not asked to stop is queued again to
        continue where it was (at most ``AUTO_RESUME_ATTEMPTS`` attempts in all)."""
        if not self.store.finish(state.id, job_store.INTERRUPTED, message=message, only_if_running=True):
            return
        kind = KINDS.get(state.kind)
        if kind is not None and kind.resumable and not state.stop_requested and state.attempts < AUTO_RESUME_ATTEMPTS:
            self.store.requeue(state.id, resumed=True)
            self.store.report_message(state.id, f"resuming automatically: {message}")

    def _sweep(self) -> None:
        """Let the records kept beside the jobs follow their endings (:data:`kinds.SWEEPS`);
        a sweep that fails is logged and tried again at the next one."""
        for path in kinds.SWEEPS:
            try:
                kinds.load(path)(self.jobs_dir, self.store.get)
            except Exception as error:  # noqa: BLE001 - the runner must keep serving jobs
                print(f"sweep {path} failed: {type(error).__name__}: {error}", file=sys.stderr, flush=True)

    # --- loop ------------------------------------------------------------------------------

    def busy(self) -> bool:
        return any(w.job_id for w in self.workers.values()) or self.store.count(job_store.QUEUED) > 0

    def loop(self) -> None:
        self.store.runner_beat(os.getpid(), started=time.time())
        self._check_running()
        while self.running:
            now = time.monotonic()
            if now - self.last_beat >= BEAT_S:
                self.store.runner_beat(os.getpid())
                self._check_running()
                self.last_beat = now
            if now - self.last_sweep >= SWEEP_S:
                self._sweep()
                self.last_sweep = now
            self._reap()
            self._read_ready()
            if self.busy():
                self.last_busy = now
            self._ensure_warm()
            limits = resource_limits()
            for resource in RESOURCES:
                self._dispatch(resource, limits[resource])
            if not self.jobs_dir.is_dir() or (now - self.last_busy > runner_idle_seconds() and self._withdrawn()):
                break
            time.sleep(LOOP_S)
        self.shutdown()

    def _withdrawn(self) -> bool:
        """Withdraw this runner's heartbeat, then look at the queue once more: a job submitted while
        the heartbeat still looked fresh (its submitter started no runner) is served, not stranded.
        A job submitted after the withdrawal starts a new runner, which waits for this one's lock."""
        self.store.clear_runner(os.getpid())
        if self.store.count(job_store.QUEUED) == 0:
            return True
        self.store.runner_beat(os.getpid())
        self.last_busy = time.monotonic()
        return False

    def shutdown(self) -> None:
        for worker in list(self.workers.values()):
            if worker.job_id is None:  # idle warm workers go; busy ones finish their job
                _signal(worker.process, signal.SIGTERM)
        self.store.clear_runner(os.getpid())


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _signal(process: subprocess.Popen, number: int) -> None:
    try:
        os.killpg(process.pid, number)
    except (ProcessLookupError, PermissionError):
        pass


def _take_lock(lock, wait_s: float = LOCK_WAIT_S) -> bool:
    """The data root's runner lock; waits ``wait_s`` for a runner that is exiting to let it go."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs-dir", required=True, type=Path)
    arguments = parser.parse_args(argv)
    jobs_dir = arguments.jobs_dir.resolve()
    jobs_dir.mkdir(parents=True, exist_ok=True)
    lock = open(jobs_dir / LOCK_FILE, "a")
    if not _take_lock(lock):
        return 0  # another runner serves this data root
    runner = Runner(jobs_dir)

    def on_term(number, frame):
        runner.running = False

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    runner.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
