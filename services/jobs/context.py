"""What a running job body sees (:class:`JobContext`), and running a body inline.

The same body runs in a worker process (its context reports to the job store) or inline in a
test, notebook or CLI (:func:`run_inline`, whose context keeps everything in memory).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from services.errors import UserFacingError


class JobStopped(Exception):
    """Raised by :meth:`JobContext.check_stop` to end a job that was asked to stop."""


class Reporter(Protocol):
    """Where a context sends progress and asks for the stop flag (the store, or memory)."""

    def report(self, progress: float, message: str | None, result: dict[str, Any]) -> None: ...

    def stop_requested(self) -> bool: ...


class _StopFlag:
    """Event-like view of the stop flag, for code that takes ``stop=event`` (downloads)."""

    def __init__(self, context: "JobContext"):
        self._context = context

    def is_set(self) -> bool:
        return self._context.should_stop()


class JobContext:
    """Progress, partial results and the stop flag of one running job.

    Reports are throttled (at most every ``report_interval`` seconds, except the first and any
    that changes the result) and the stop flag is read at most every ``stop_interval`` seconds,
    so bodies may call these in tight loops.
    """

    def __init__(self, reporter: Reporter, folder: Path, params: dict[str, Any], *, resumed: bool = False,
                 job_id: str = "inline", owner: str | None = None, report_interval: float = 0.25,
                 stop_interval: float = 0.2):
        self._reporter = reporter
        self.dir = Path(folder)
        self.params = params
        self.resumed = resumed
        self.job_id = job_id
        self.owner = owner
        """Who submitted the job (recorded on what it creates: runs, datasets); None: unknown."""
        self.stop_event = _StopFlag(self)
        self._progress = 0.0
        self._message: str | None = None
        self._result: dict[str, Any] = {}
        self._report_interval, self._stop_interval = report_interval, stop_interval
        self._last_report = 0.0
        self._last_stop_check, self._stopped = 0.0, False

    @property
    def result(self) -> dict[str, Any]:
        return dict(self._result)

    @property
    def closing_message(self) -> str:
        """What a finished job says: the body's last message if it reported completion with it
        (``progress(1.0, "12 tiles mapped")``), else nothing; a progress message such as
        "epoch 2/3, about 2 s left" must not outlive the work it described."""
        return (self._message or "") if self._progress >= 1.0 else ""

    def progress(self, fraction: float, message: str | None = None) -> None:
        value = float(fraction)
        self._progress = max(0.0, min(1.0, value)) if value == value else self._progress
        if message is not None:
            self._message = message
        self._flush(force=False)

    def update_result(self, **values: Any) -> None:
        """Publish partial results (e.g. the latest preview's file name) while running."""
        self._result.update(values)
        self._flush(force=False)

    def flush(self) -> None:
        self._flush(force=True)

    def _flush(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self._report_interval:
            return
        self._last_report = now
        self._reporter.report(self._progress, self._message, dict(self._result))

    def should_stop(self) -> bool:
        if self._stopped:
            return True
        now = time.monotonic()
        if now - self._last_stop_check >= self._stop_interval:
            self._last_stop_check = now
            self._stopped = bool(self._reporter.stop_requested())
        return self._stopped

    def check_stop(self) -> None:
        if self.should_stop():
            raise JobStopped()


class MemoryReporter:
    """Keeps the last report in memory; ``stop_after`` reports ends the job (for tests)."""

    def __init__(self, stop_after: int | None = None):
        self.reports: list[tuple[float, str | None]] = []
        self.result: dict[str, Any] = {}
        self.stop_after = stop_after

    def report(self, progress: float, message: str | None, result: dict[str, Any]) -> None:
        self.reports.append((progress, message))
        self.result = result

    def stop_requested(self) -> bool:
        return self.stop_after is not None and len(self.reports) >= self.stop_after


@dataclass
class InlineResult:
    status: str
    """``finished``, ``stopped`` or ``failed``."""
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    reports: list[tuple[float, str | None]] = field(default_factory=list)


def merge_result(partial: dict[str, Any], returned: Any) -> dict[str, Any]:
    if isinstance(returned, dict):
        return {**partial, **returned}
    return partial if returned is None else {**partial, "value": returned}


def run_inline(kind: str, params: dict[str, Any], folder: str | Path, files: dict[str, bytes] | None = None,
               *, resumed: bool = False, stop_after: int | None = None) -> InlineResult:
    """Run the body of ``kind`` in this process (tests, notebooks, CLIs).

    ``folder`` becomes the job folder (created; ``files`` are written into it first). A
    :class:`UserFacingError` becomes a ``failed`` result with its message; other exceptions
    propagate, so a test sees the real traceback.
    """
    from services.jobs.kinds import kind_of

    body = kind_of(kind).load_body()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in (files or {}).items():
        (folder / name).write_bytes(data)
    reporter = MemoryReporter(stop_after=stop_after)
    context = JobContext(reporter, folder, dict(params), resumed=resumed, report_interval=0.0, stop_interval=0.0)
    try:
        returned = body(dict(params), context)
    except JobStopped:
        return InlineResult("stopped", context.result, None, reporter.reports)
    except UserFacingError as error:
        return InlineResult("failed", context.result, str(error), reporter.reports)
    status = "stopped" if context.should_stop() else "finished"
    return InlineResult(status, merge_result(context.result, returned), None, reporter.reports)
