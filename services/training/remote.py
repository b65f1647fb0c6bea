"""Remote logging, the sending side: a script on another machine streams its run to the dashboard.

``DashboardCallback(url="http://dashboard:8502", token="...")`` gives its events to a
:class:`RemoteSink` instead of the SQLite run store. Every event gets a sequence number, is
appended to a local spool file (JSON lines) at once, and is delivered in batches by a background
thread to the dashboard's ingest endpoint (:mod:`services.training.ingest`). The endpoint
applies each ``(client, seq)`` exactly once, so a batch re-sent after a lost answer adds no
duplicate row; while the dashboard is unreachable events wait in the spool (nothing is lost)
and go out when it answers again. Each answer carries the run's stop flag: Stop in the monitor
reaches the script on its next batch after the next answer.

Leftovers (the script ended while the dashboard was down): ``python -m services.training.remote
deliver SPOOL --url URL --token TOKEN``.

No Keras, no Streamlit: only the standard library.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

EVENTS_PATH = "/v1/events"
BATCH_EVENTS = 500
"""Events per request."""
POLL_S = 0.5
"""Seconds between two deliveries (also how often the stop flag is asked for)."""
RETRY_S = 2.0
"""Seconds before trying an unreachable dashboard again."""


class IngestRefused(Exception):
    """The dashboard answered but refused the events (wrong token, malformed request)."""


def default_spool_dir() -> Path:
    return Path(os.environ.get("DASHBOARD_SPOOL_DIR") or Path.home() / ".cache" / "dashboard-callback")


def post_events(url: str, token: str, client: str, events: list[dict], timeout: float = 10.0) -> dict:
    """POST one batch; returns the endpoint's answer (``delivered``, ``stop``). Raises
    :class:`IngestRefused` for a 4xx answer and ``OSError`` when the dashboard is unreachable."""
    body = json.dumps({"client": client, "events": events}).encode()
    request = urllib.request.Request(url.rstrip("/") + EVENTS_PATH, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")[:300]
        if 400 <= error.code < 500:
            raise IngestRefused(f"the dashboard refused the run's events ({error.code}): {detail}") from None
        raise OSError(f"the dashboard answered {error.code}") from None


class Spool:
    """Events of one sender, in a JSON-lines file; ``<file>.acked`` holds the highest sequence
    number the dashboard confirmed (everything up to it was applied)."""

    def __init__(self, path: Path, client: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.client = client
        self._acked_path = self.path.with_name(self.path.name + ".acked")
        self._lock = threading.Lock()
        self._pending: list[dict] = []
        self.next_seq = 0
        self.acked = -1
        if self.path.exists():  # a spool left by an earlier attempt: load what was not confirmed
            self.acked = self._read_acked()
            for event in read_events(self.path):
                self.next_seq = max(self.next_seq, event["seq"] + 1)
                if event["seq"] > self.acked:
                    self._pending.append(event)
        self._file = open(self.path, "a", encoding="utf-8")

    def _read_acked(self) -> int:
        try:
            return int(self._acked_path.read_text().strip() or -1)
        except (OSError, ValueError):
            return -1

    def add(self, op: str, args: dict[str, Any]) -> None:
        with self._lock:
            line = json.dumps({"seq": self.next_seq, "op": op, "args": args}, default=_jsonable)
            self.next_seq += 1
            self._pending.append(json.loads(line))  # kept as written: plain JSON, converted once
            self._file.write(line + "\n")
            self._file.flush()

    def pending(self, limit: int = BATCH_EVENTS) -> list[dict]:
        with self._lock:
            return self._pending[:limit]

    def confirm(self, up_to: int) -> None:
        with self._lock:
            self._pending = [e for e in self._pending if e["seq"] > up_to]
            self.acked = max(self.acked, up_to)
            self._acked_path.write_text(str(self.acked))

    @property
    def empty(self) -> bool:
        with self._lock:
            return not self._pending

    def close(self, delete: bool) -> None:
        self._file.close()
        if delete:
            for path in (self.path, self._acked_path):
                path.unlink(missing_ok=True)


def read_events(path: Path) -> list[dict]:
    """The events of a spool file (a last line cut short by a crash is skipped)."""
    events = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and isinstance(event.get("seq"), int):
                events.append(event)
    return events


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


class RemoteSink:
    """The callback's sink for a dashboard on another machine (same methods as the local sink)."""

    def __init__(self, url: str, token: str, *, spool_dir: str | os.PathLike | None = None,
                 poll_interval: float = POLL_S, flush_timeout: float = 30.0):
        if not token:
            raise ValueError("remote logging needs the dashboard's ingest token (token=...)")
        self.url, self.token = url, token
        self.client = uuid.uuid4().hex
        self.spool = Spool(Path(spool_dir or default_spool_dir()) / f"{self.client}.jsonl", self.client)
        self.poll_interval, self.flush_timeout = poll_interval, flush_timeout
        self.reachable: bool | None = None
        self.refused: str | None = None
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
        return delivered

    # --- delivery ----------------------------------------------------------------------------
    def _deliver_once(self) -> None:
        events = self.spool.pending()
        answer = post_events(self.url, self.token, self.client, events)
        if events:
            self.spool.confirm(events[-1]["seq"])
        for run_id, flag in (answer.get("stop") or {}).items():
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


def deliver_spool(path: str | os.PathLike, url: str, token: str) -> int:
    """Send the undelivered events of a spool file; returns how many were sent."""
    path = Path(path)
    spool = Spool(path, path.stem)
    sent = 0
    try:
        while not spool.empty:
            events = spool.pending()
            post_events(url, token, spool.client, events)
            spool.confirm(events[-1]["seq"])
            sent += len(events)
    finally:
        spool.close(delete=spool.empty)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.training.remote", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    deliver = commands.add_parser("deliver", help="send a spool file left by a run")
    deliver.add_argument("spool")
    deliver.add_argument("--url", required=True)
    deliver.add_argument("--token", default=os.environ.get("DASHBOARD_INGEST_TOKEN"))
    args = parser.parse_args(argv)
    try:
        sent = deliver_spool(args.spool, args.url, args.token or "")
    except (OSError, IngestRefused) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"delivered {sent} event(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
