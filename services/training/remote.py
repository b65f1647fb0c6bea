"""Remote logging, the sending side: a script on another machine streams its run to the dashboard.

``DashboardCallback(url="http://dashboard:8502", token="...")`` gives its events to a
:class:`RemoteSink` instead of the SQLite run store. Every event gets a sequence number, is
appended to a local spool file (JSON lines) at once, and is delivered in batches by a background
thread to the dashboard's ingest endpoint (:mod:`services.training.ingest`). The endpoint
applies each ``(client, seq)`` exactly once, so a batch re-sent after a lost answer adds no
duplicate row; while the dashboard is unreachable events wait in the spool (nothing is lost)
and go out when it answers again. Each answer carries the run's stop flag: Stop in the monitor
reaches the script on its next batch after the next answer.

The spool never stops training: a full disk keeps events in memory until delivered (then drops
and counts them), batches stay under the endpoint's body cap (:mod:`services.training.wire`),
and a spool folder that cannot be used is refused when the callback is created.

Leftovers (the script ended while the dashboard was down): ``python -m services.training.remote
deliver SPOOL --url URL --token TOKEN`` sends every usable event again in order (the endpoint
ignores repeats) and moves undecodable or malformed lines aside.

No Keras, no Streamlit: only the standard library.

Settings: this module runs on the script's machine, not the dashboard's, so it reads its own two
environment variables, here and only here (:func:`client_setting`): ``DASHBOARD_SPOOL_DIR`` and
``DASHBOARD_INGEST_TOKEN`` (the ``deliver`` command's default token). Their names come from
:class:`services.config.Env`, like every other variable's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from services import untrusted_json
from services.config import Env
from services.training import wire

BATCH_EVENTS = 500
"""Events per request at most (a batch is also kept under :data:`wire.MAX_BODY_BYTES`)."""
POLL_S = 0.5
"""Seconds between two deliveries (also how often the stop flag is asked for)."""
RETRY_S = 2.0
"""Seconds before trying an unreachable dashboard again."""
MEMORY_ONLY_BYTES = 64 * 1024 * 1024
"""Events the disk refused (full) are kept in memory up to this size until delivered; beyond it
they are dropped and counted."""
_RETRY_CODES = (408, 429)
"""4xx answers that mean "try again later", not "these events are refused"."""


class IngestRefused(Exception):
    """The dashboard answered but refused the events (wrong token, malformed request)."""


class SpoolUnusable(ValueError):
    """The spool folder cannot be used (a file, not writable); raised when the callback is created."""


def client_setting(name: str) -> str | None:
    """The value of the environment variable ``name`` (an :class:`Env` name) on the script's
    machine; None when unset or empty. The only environment read outside services.config."""
    return os.environ.get(name) or None


def default_spool_dir() -> Path:
    return Path(client_setting(Env.SPOOL_DIR) or Path.home() / ".cache" / "dashboard-callback")


def check_spool_dir(spool_dir: str | os.PathLike | None) -> Path:
    """The spool folder, created if needed; a file, or a folder that cannot be created or written,
    is refused with a sentence (before training starts, not inside ``fit``)."""
    folder = Path(spool_dir or default_spool_dir()).expanduser()
    advice = "pass spool_dir= a writable folder (or set DASHBOARD_SPOOL_DIR)"
    if folder.exists() and not folder.is_dir():
        raise SpoolUnusable(f"The spool folder {folder} is a file, not a folder: {advice}.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SpoolUnusable(f"The spool folder {folder} cannot be created ({error.strerror or error}): "
                            f"{advice}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SpoolUnusable(f"The spool folder {folder} is not writable: {advice}.")
    return folder


def post_events(url: str, token: str, client: str, events: list[dict], timeout: float = 10.0) -> dict:
    """POST one batch of events (dicts); see :func:`post_lines`."""
    return post_lines(url, token, client, [json.dumps(event).encode() for event in events], timeout)


def post_lines(url: str, token: str, client: str, lines: list[bytes], timeout: float = 10.0) -> dict:
    """POST one batch of events given as their JSON text; returns the endpoint's answer
    (``delivered``, ``rejected``, ``stop``). Raises :class:`IngestRefused` for a 4xx answer and
    ``OSError`` when the dashboard is unreachable or answers something that is not its answer."""
    body = b'{"client": ' + json.dumps(client).encode() + b', "events": [' + b",".join(lines) + b"]}"
    request = urllib.request.Request(url.rstrip("/") + wire.EVENTS_PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = untrusted_json.loads(response.read() or b"{}", what="the answer", expect=None)
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        if 400 <= error.code < 500 and error.code not in _RETRY_CODES:
            raise IngestRefused(f"the dashboard refused the run's events ({error.code}): {detail}") from None
        raise OSError(f"the dashboard answered {error.code}: {detail}") from None
    except ValueError:
        raise OSError("the answer was not the dashboard's (not JSON)") from None
    if not isinstance(answer, dict):
        raise OSError("the answer was not the dashboard's (not a JSON object)")
    return answer


def event_line(seq: int, op: str, args: dict[str, Any]) -> bytes:
    """One event as strict JSON the endpoint accepts: NaN and infinity become null, keys become
    text, values JSON cannot hold become numbers or text, nesting too deep becomes text."""
    event = {"seq": seq, "op": op, "args": args}
    try:
        line = json.dumps(event, default=_jsonable, allow_nan=False).encode()
        limit = wire.MAX_DEPTH - 2  # the request adds two levels around it
        if line.count(b"[") + line.count(b"{") <= limit or untrusted_json.json_depth(line) <= limit:  # cheap test first
            return line
    except (TypeError, ValueError, RecursionError):
        pass
    return json.dumps(_plain(event), allow_nan=False).encode()


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` as plain JSON data (see :func:`event_line`); nesting beyond the endpoint's limit becomes text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int)):
        return value
    if depth >= wire.MAX_DEPTH - 4:  # room for the request around the event
        return str(value)[:1000]
    if isinstance(value, dict):
        return {str(key): _plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item, depth + 1) for item in value]
    return _jsonable(value)


class Spool:
    """Events of one sender, in a JSON-lines file written before delivery; ``<file>.acked`` notes
    the highest sequence number the dashboard confirmed (for people; never trusted to skip or
    delete anything). Writing it never stops training: when the disk refuses (full), events
    wait in memory up to :data:`MEMORY_ONLY_BYTES`, then are dropped and counted."""

    def __init__(self, path: Path, client: str, *, append: bool = True):
        """``append=False``: a queue of events read from the file, which is not written to."""
        self.path = Path(path)
        self.client = client
        self._acked_path = self.path.with_name(self.path.name + ".acked")
        self._lock = threading.Lock()
        self._pending: list[tuple[int, bytes, bool]] = []
        """(seq, JSON line, written to disk) of the events not confirmed yet, in order."""
        self.next_seq = 0
        self.acked = -1
        self.dropped = 0
        """Events lost: larger than the endpoint accepts, or the disk full and the memory budget spent."""
        self.unwritten = 0
        """Events the disk refused (kept in memory until delivered)."""
        self.warnings: list[str] = []
        self._memory_only = 0
        self._torn = False  # the last write stopped inside a line: the next one starts a new line
        self._fd: int | None = None
        try:
            if append:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as error:
            self._warn(f"cannot open the spool {self.path} ({error.strerror or error})")

    def _warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            print(f"DashboardCallback: {message}; events wait in memory until delivered and are lost if this "
                  "process ends first.", file=sys.stderr)

    def _write(self, line: bytes) -> bool:
        """Append one line; False when the disk refused it (the spool file then ends in a torn
        line, which :func:`read_spool` sets aside)."""
        if self._fd is None:
            return False
        data = (b"\n" if self._torn else b"") + line + b"\n"
        try:
            written = os.write(self._fd, data)
        except OSError as error:
            self._warn(f"cannot write the spool {self.path} ({error.strerror or error})")
            return False
        self._torn = written < len(data)
        if self._torn:
            self._warn(f"cannot write the spool {self.path} (disk full)")
        return not self._torn

    def add(self, op: str, args: dict[str, Any]) -> None:
        with self._lock:
            seq, self.next_seq = self.next_seq, self.next_seq + 1
            try:
                line = event_line(seq, op, args)
            except (TypeError, ValueError, RecursionError) as error:  # never an exception inside fit
                self.dropped += 1
                print(f"DashboardCallback: a {op} event was dropped (cannot be written as JSON: {error}).",
                      file=sys.stderr)
                return
            if len(line) > wire.MAX_EVENT_BYTES:
                self.dropped += 1
                print(f"DashboardCallback: a {op} event of {len(line):,} bytes was dropped (the dashboard accepts "
                      f"at most {wire.MAX_EVENT_BYTES:,}).", file=sys.stderr)
                return
            on_disk = self._write(line)
            if not on_disk:
                if self._memory_only + len(line) > MEMORY_ONLY_BYTES:
                    self.dropped += 1
                    return
                self._memory_only += len(line)
                self.unwritten += 1
            self._pending.append((seq, line, on_disk))

    def extend(self, events: list[tuple[int, bytes]]) -> None:
        """Queue events read from a spool file (already on disk)."""
        with self._lock:
            self._pending.extend((seq, line, True) for seq, line in events)
            self.next_seq = max([self.next_seq, *(seq + 1 for seq, _ in events)])

    def batch(self) -> list[tuple[int, bytes]]:
        """The next events to send: at most :data:`BATCH_EVENTS`, in a body under :data:`wire.MAX_BODY_BYTES`."""
        budget, used, chosen = wire.MAX_BODY_BYTES - wire.ENVELOPE_BYTES, 0, []
        with self._lock:
            for seq, line, _ in self._pending[:BATCH_EVENTS]:
                if chosen and used + len(line) + 1 > budget:
                    break
                chosen.append((seq, line))
                used += len(line) + 1
        return chosen

    def confirm(self, up_to: int) -> None:
        with self._lock:
            self._memory_only -= sum(len(line) for seq, line, on_disk in self._pending if seq <= up_to and not on_disk)
            self._pending = [item for item in self._pending if item[0] > up_to]
            self.acked = max(self.acked, up_to)
            try:
                self._acked_path.write_text(str(self.acked))
            except OSError:
                pass  # a note for people only: nothing depends on it

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._pending

    def close(self, delete: bool) -> None:
        """Close the file (deleting it with ``delete``); undelivered events that never reached the
        disk are lost now and counted in :attr:`dropped`."""
        with self._lock:
            self.dropped += sum(1 for _, _, on_disk in self._pending if not on_disk)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if delete:
            for path in (self.path, self._acked_path):
                try:
                    path.unlink(missing_ok=True)
                except OSError:
                    pass


def _usable_event(line: bytes) -> tuple[int, bytes] | None:
    """(seq, line) of a spool line that is a well-formed event, else None."""
    try:  # bigger than an event: the endpoint would refuse the whole request
        event = untrusted_json.loads(line, what="a spool line", max_bytes=wire.MAX_EVENT_BYTES,
                                     max_depth=wire.MAX_DEPTH, allow_nan=True)
    except untrusted_json.BadJSON:
        return None
    if not isinstance(event.get("op"), str) or not isinstance(event.get("args"), dict):
        return None
    seq = event.get("seq")
    if type(seq) is not int or not 0 <= seq < 2**62:  # noqa: E721 (True is an int, but not a seq)
        return None
    return seq, line.strip()


def read_spool(path: Path) -> tuple[list[tuple[int, bytes]], list[bytes]]:
    """The usable events of a spool file in sequence order (a seq seen twice: the first), and the
    lines that are not (undecodable, malformed, a last line cut short by a crash)."""
    events: dict[int, bytes] = {}
    unusable = []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            found = _usable_event(line)
            if found is None or found[0] in events:
                unusable.append(line if line.endswith(b"\n") else line + b"\n")
            else:
                events[found[0]] = found[1]
    return sorted(events.items()), unusable


def read_events(path: Path) -> list[dict]:
    """The usable events of a spool file, as dicts (see :func:`read_spool`)."""
    return [json.loads(line) for _, line in read_spool(path)[0]]


def _jsonable(value: Any) -> Any:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return number if math.isfinite(number) else None


class RemoteSink:
    """The callback's sink for a dashboard on another machine (same methods as the local sink)."""

    def __init__(self, url: str, token: str, *, spool_dir: str | os.PathLike | None = None,
                 poll_interval: float = POLL_S, flush_timeout: float = 30.0):
        if not token:
            raise ValueError("remote logging needs the dashboard's ingest token (token=...)")
        self.url, self.token = url, token
        self.client = uuid.uuid4().hex
        folder = Path(spool_dir or default_spool_dir())
        try:
            folder = check_spool_dir(folder)
        except SpoolUnusable as error:  # checked when the callback was made: gone since; memory only
            print(f"DashboardCallback: {error}", file=sys.stderr)
        self.spool = Spool(folder / f"{self.client}.jsonl", self.client)
        self.poll_interval, self.flush_timeout = poll_interval, flush_timeout
        self.reachable: bool | None = None
        self.refused: str | None = None
        self.rejected: list[dict] = []
        """Events the dashboard refused, with its reason (the first 100)."""
        self.stop_flags: dict[str, bool] = {}
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._deliver_loop, name="dashboard-remote", daemon=True)
        self._thread.start()

    # --- what the callback calls (mirrors services.training.callback.LocalSink) -------------
    def create_run(self, run_id: str, **fields: Any) -> str:
        self.spool.add("create_run", {"run_id": run_id, **fields})
        return run_id

    def set_status(self, run_id: str, status: str, error: str | None = None, **fields: Any) -> None:
        self.spool.add("set_status", {"run_id": run_id, "status": status, "error": error, "fields": fields})

    def update_summary(self, run_id: str, **values: Any) -> None:
        self.spool.add("update_summary", {"run_id": run_id, "values": values})

    def log_metrics(self, run_id: str, values: dict[str, Any], *, epoch: int, step: int | None = None,
                    **run_fields: Any) -> None:
        self.spool.add("log_metrics", {"run_id": run_id, "values": values, "epoch": epoch, "step": step,
                                       "when": time.time(), "fields": run_fields})

    def delete_metrics_from(self, run_id: str, epoch: int) -> None:
        self.spool.add("delete_metrics_from", {"run_id": run_id, "epoch": epoch})

    def heartbeat(self, run_id: str) -> None:
        self.spool.add("heartbeat", {"run_id": run_id})

    def confusion_matrix(self, run_id: str, epoch: int, payload: dict) -> None:
        self.spool.add("confusion_matrix", {"run_id": run_id, "epoch": epoch, "payload": payload})

    def stop_requested(self, run_id: str) -> bool:
        return self.stop_flags.get(run_id, False)

    def close(self) -> bool:
        """Deliver what is left (waiting up to ``flush_timeout`` s); True when all arrived. A spool
        that could not be delivered stays on disk and its path is printed."""
        deadline = time.monotonic() + self.flush_timeout
        self._wake.set()
        while not self.spool.empty and time.monotonic() < deadline and self.refused is None:
            time.sleep(0.005)
            self._wake.set()
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout=5)
        delivered = self.spool.empty
        self.spool.close(delete=delivered)
        if not delivered:
            print(f"DashboardCallback: {self.refused or 'the dashboard is unreachable'}; the run's events are "
                  f"kept in {self.spool.path}. Send them later with: python -m services.training.remote "
                  f"deliver {self.spool.path} --url {self.url} --token <token>", file=sys.stderr)
        if self.spool.dropped or self.rejected:
            print(f"DashboardCallback: {self.spool.dropped} event(s) were dropped and {len(self.rejected)} refused "
                  "by the dashboard" + (f" (first: {self.rejected[0].get('error')})" if self.rejected else ""),
                  file=sys.stderr)
        return delivered and not self.spool.dropped

    # --- delivery ----------------------------------------------------------------------------
    def _deliver_once(self) -> None:
        batch = self.spool.batch()
        answer = post_lines(self.url, self.token, self.client, [line for _, line in batch])
        if batch:
            self.spool.confirm(batch[-1][0])
        rejected = answer.get("rejected")
        if isinstance(rejected, list):
            self.rejected.extend(item for item in rejected[:100 - len(self.rejected)] if isinstance(item, dict))
        stop = answer.get("stop")
        for run_id, flag in (stop.items() if isinstance(stop, dict) else ()):
            self.stop_flags[str(run_id)] = bool(flag)

    def _deliver_loop(self) -> None:
        while not self._closing.is_set():
            try:
                self._deliver_once()
                self.reachable = True
                delay = 0.0 if not self.spool.empty else self.poll_interval
            except IngestRefused as error:
                self.refused = str(error)
                delay = RETRY_S
            except (OSError, ValueError):
                self.reachable = False
                delay = RETRY_S
            self._wake.wait(delay)
            self._wake.clear()


class Delivery:
    """What :func:`deliver_spool` did: events sent, new to the dashboard, refused, set aside."""

    def __init__(self) -> None:
        self.sent = self.new = 0
        self.refused: list[dict] = []
        self.set_aside = 0
        self.notes: list[str] = []

    def report(self) -> str:
        text = (f"delivered {self.sent} event(s): {self.new - len(self.refused)} new, "
                f"{self.sent - self.new} already on the dashboard, {len(self.refused)} refused")
        if self.refused:
            text += f" (first: {self.refused[0].get('error')})"
        return "\n".join([*self.notes, text])


def deliver_spool(path: str | os.PathLike, url: str, token: str) -> Delivery:
    """Send every usable event of a spool file in order (the endpoint ignores the ones it already
    has, so a stale or corrupted ``.acked`` file can neither lose nor double anything). Unusable
    lines are moved to ``<spool>.unusable``; the spool is deleted only when every event was
    answered for and the unusable lines are kept."""
    path = Path(path)
    done = Delivery()
    events, unusable = read_spool(path)
    acked_note = _check_acked(path, events)
    if acked_note:
        done.notes.append(acked_note)
    kept = True
    if unusable:
        done.set_aside = len(unusable)
        aside = path.with_name(path.name + ".unusable")
        try:
            with open(aside, "ab") as handle:
                handle.writelines(unusable)
            done.notes.append(f"{len(unusable)} line(s) of the spool were not usable events (undecodable or "
                              f"malformed); they were moved to {aside} and the rest delivered.")
        except OSError as error:
            kept = False
            done.notes.append(f"{len(unusable)} line(s) of the spool were not usable events and could not be moved "
                              f"aside ({error.strerror or error}); the spool is kept.")
    spool = Spool(path, path.stem, append=False)
    spool.extend(events)
    while not spool.empty:
        batch = spool.batch()
        answer = post_lines(url, token, spool.client, [line for _, line in batch])
        spool.confirm(batch[-1][0])
        done.sent += len(batch)
        done.new += int(answer.get("delivered") or 0)
        rejected = answer.get("rejected")
        done.refused += [item for item in rejected if isinstance(item, dict)] if isinstance(rejected, list) else []
    if kept:
        for leftover in (path, path.with_name(path.name + ".acked")):
            leftover.unlink(missing_ok=True)
    return done


def _check_acked(path: Path, events: list[tuple[int, bytes]]) -> str | None:
    """A sentence when the spool's ``.acked`` note does not match its events (it is never used)."""
    acked_path = path.with_name(path.name + ".acked")
    if not acked_path.exists():
        return None
    last = events[-1][0] if events else -1
    try:
        acked = int(acked_path.read_text(errors="replace").strip() or -1)
    except (OSError, ValueError):
        acked = None
    if acked is None or not -1 <= acked <= last:
        return (f"the acknowledgement file {acked_path.name} does not match the spool (whose last event is "
                f"{last}); it was ignored and every event sent (the dashboard ignores the ones it already has).")
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.training.remote", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    deliver = commands.add_parser("deliver", help="send a spool file left by a run")
    deliver.add_argument("spool")
    deliver.add_argument("--url", required=True)
    deliver.add_argument("--token", default=client_setting(Env.INGEST_TOKEN))
    args = parser.parse_args(argv)
    try:
        done = deliver_spool(args.spool, args.url, args.token or "")
    except (OSError, IngestRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(done.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
