"""Remote logging, the receiving side: a small HTTP endpoint next to the app that writes remote
runs into the same run store.

``python -m services.training.ingest [--host 127.0.0.1] [--port 8502]`` (``make run`` starts it).
It binds to 127.0.0.1 unless told otherwise, like the app. Every request needs
``Authorization: Bearer <token>``: the token is ``DASHBOARD_INGEST_TOKEN`` when set, else the
one in ``<data root>/runs/ingest.token`` (created on first start, readable by its owner only).

``POST /v1/events`` with ``{"client": id, "events": [{"seq", "op", "args"}, ...]}`` applies each
event once (:meth:`RunStore.deliver`: a repeated ``(client, seq)`` changes nothing) and answers
``{"delivered": n, "rejected": [{"seq", "code", "error"}], "stop": {run_id: bool}}``. Events are
untrusted: only the operations below, with checked values (finite numbers, bounded ids and
sizes: :mod:`services.training.wire`), and only on runs the endpoint created (source
``remote``). A bad event is refused alone; every request gets an answer.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import secrets
import sqlite3
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from services import run_layout, untrusted_json
from services.config import DEFAULT_INGEST_PORT, get_settings
from services.training import store as run_store
from services.training import wire

REMOTE = "remote"
_SETTABLE = {"epochs", "epochs_done", "steps_per_epoch", "device", "host", "pid", "started", "ended"}


class BadEvent(ValueError):
    """An event that cannot be applied (unknown operation, wrong values, not a remote run)."""


def token_path() -> Path:
    return get_settings().runs_dir / "ingest.token"


def ingest_token() -> str:
    """The token remote scripts must send (created on first use)."""
    token = get_settings().ingest_token
    if token:
        return token
    path = token_path()
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(24)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(token)
    return token


# --- applying events ---------------------------------------------------------------------------
def _text(value: Any, limit: int = 500) -> str | None:
    return None if value is None else str(value)[:limit]


def _int(value: Any, low: int = -1, high: int = 10**9) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise BadEvent(f"not a usable number: {value!r}"[:100])  # NaN fails the comparison too
    return int(value)


def _time(value: Any) -> float:
    """A time stamp in seconds, finite and between 1970 and :data:`wire.MAX_TIME`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= wire.MAX_TIME:
        raise BadEvent(f"not a usable time stamp: {value!r}"[:100])
    return float(value)


def _json_bytes(value: Any) -> int:
    return len(json.dumps(value, default=str))


def _values(values: Any) -> dict[str, float | None]:
    if not isinstance(values, dict) or len(values) > 200:
        raise BadEvent("metric values must be a small object of name -> number")
    clean: dict[str, float | None] = {}
    for name, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise BadEvent(f"metric {str(name)[:40]!r} is not a number")
        clean[str(name)[:100]] = None if value is None else float(value)
    return clean


def _fields(fields: Any) -> dict[str, Any]:
    if not isinstance(fields, dict):
        return {}
    clean: dict[str, Any] = {}
    for key, value in fields.items():
        if key not in _SETTABLE or value is None:
            continue
        clean[key] = _text(value, 200) if key in ("device", "host") else (
            _time(value) if key in ("started", "ended") else _int(value, 0, 10**9))
    return clean


def _remote_run(connection, run_id: Any) -> str:
    run_id = run_store.check_run_id(str(run_id))
    row = connection.execute("SELECT source FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None or row[0] != REMOTE:
        raise BadEvent(f"run {run_id} is not a remote run of this dashboard")
    return run_id


def _create_run(connection, store: run_store.RunStore, args: dict) -> None:
    run_id = run_store.check_new_run_id(args.get("run_id"))
    if connection.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
        _remote_run(connection, run_id)  # continuing a remote run (a resumed script)
        return
    hyper = args.get("hyperparameters") if isinstance(args.get("hyperparameters"), dict) else {}
    if _json_bytes(hyper) > wire.MAX_PART_BYTES:
        raise BadEvent(f"hyper-parameters must be under {wire.MAX_PART_BYTES:,} bytes")
    store._insert_run(connection, run_id, _text(args.get("name"), 200), model=_text(args.get("model"), 100),
                      dataset=_text(args.get("dataset"), 100), split=None, source=REMOTE, config={},
                      hyperparameters=hyper, epochs=_int(args["epochs"], 0) if args.get("epochs") else None,
                      status=run_store.RUNNING, synthetic=False)
    store.run_dir(run_id).mkdir(parents=True, exist_ok=True)


def apply_event(connection, store: run_store.RunStore, op: str, args: dict) -> None:
    """Apply one event inside the delivery's transaction; a bad one raises BadEvent (or RunNotFound)."""
    if not isinstance(args, dict):
        raise BadEvent("event args must be an object")
    bad_number = wire.first_non_finite(args)
    if bad_number:
        raise BadEvent(f"{bad_number[:80]} is not a finite number (NaN or infinity)")
    if op == "create_run":
        _create_run(connection, store, args)
        return
    run_id = _remote_run(connection, args.get("run_id"))
    if op in ("log_metrics", "heartbeat"):  # alive again after an outage that outlasted the heartbeat timeout
        connection.execute("UPDATE runs SET status = ?, ended = NULL, error = NULL WHERE id = ? AND status = ?",
                           (run_store.RUNNING, run_id, run_store.INTERRUPTED))
    if op == "set_status":
        status = args.get("status")
        if status not in run_store.ACTIVE + run_store.ENDED:
            raise BadEvent(f"unknown status {status!r}"[:100])
        store._update_run(connection, run_id, run_store.status_fields(status, _text(args.get("error")),
                                                                      _fields(args.get("fields"))))
    elif op == "update_summary":
        values = args.get("values")
        if not isinstance(values, dict):
            raise BadEvent("summary values must be an object")
        store._update_summary(connection, run_id, values, max_bytes=wire.MAX_PART_BYTES)
    elif op == "log_metrics":
        step, when = args.get("step"), args.get("when")
        store._log_metrics(connection, run_id, _values(args.get("values")), _int(args.get("epoch"), 0),
                           None if step is None else _int(step), None if when is None else _time(when),
                           True, _fields(args.get("fields")))
    elif op == "delete_metrics_from":
        store._delete_metrics_from(connection, run_id, _int(args.get("epoch"), 0))
    elif op == "heartbeat":
        store._update_run(connection, run_id, {"heartbeat": time.time()})
    elif op == "confusion_matrix":
        epoch, payload = _int(args.get("epoch"), 0), wire.confusion_payload(args.get("payload"))
        path = run_layout.confusion_matrix_file(store.run_dir(run_id), epoch)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"epoch": epoch, **payload}))
        connection.execute("INSERT OR REPLACE INTO artifacts VALUES (?,?,?,?,?)",
                           (run_id, "confusion_matrix", str(path), epoch, time.time()))
    else:
        raise BadEvent(f"unknown operation {op!r}"[:100])


_REFUSED = (BadEvent, run_store.RunNotFound, ValueError, TypeError, OverflowError, sqlite3.IntegrityError)
"""What an event's own values can raise: that event is refused alone, the batch goes on."""


def _apply_alone(connection, store: run_store.RunStore, op: Any, args: Any) -> str | None:
    """Apply one event inside a savepoint: a refused event leaves no half-written rows. Returns
    the reason it was refused, or None."""
    connection.execute("SAVEPOINT event")
    try:
        apply_event(connection, store, op, args)
    except _REFUSED as error:
        connection.execute("ROLLBACK TO event")
        return str(error)[:200] or type(error).__name__
    finally:
        connection.execute("RELEASE event")
    return None


def deliver(store: run_store.RunStore, client: str, seq: int, apply) -> bool:
    """Apply one remote event exactly once: ``apply(connection, store)`` runs in the same
    transaction that records ``(client, seq)`` in the store's ``deliveries`` table, so a repeated
    delivery (the sender retrying after a lost answer) changes nothing. Returns False for a repeat."""
    with store._transaction() as connection:
        cursor = connection.execute("INSERT OR IGNORE INTO deliveries VALUES (?,?,?)",
                                    (str(client), int(seq), time.time()))
        if cursor.rowcount == 0:
            return False
        apply(connection, store)
    return True


def ingest(store: run_store.RunStore, client: str, events: list) -> dict:
    """Apply a batch of events (each once). The answer counts the new ones (``delivered``), lists
    the refused ones with their reason (``rejected``: seq, code 400, error; recorded, so a
    re-send does not retry them) and names the stop flags of the runs touched."""
    if not isinstance(client, str) or not 8 <= len(client) <= 64 or not client.isascii() or not client.isalnum():
        raise BadEvent("client must be an id of 8 to 64 letters and digits")
    if not isinstance(events, list) or len(events) > wire.MAX_EVENTS:
        raise BadEvent(f"events must be a list of at most {wire.MAX_EVENTS}")
    delivered, runs, rejected = 0, set(), []
    for event in events:
        seq = event.get("seq") if isinstance(event, dict) else None
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**62:
            rejected.append({"seq": seq if type(seq) is int else None, "code": 400,  # noqa: E721 (not a bool)
                             "error": "each event must be an object with a whole-number seq"})
            continue
        op, args = event.get("op"), event.get("args")
        if isinstance(args, dict):
            try:
                runs.add(run_store.check_run_id(str(args.get("run_id"))))
            except run_store.RunNotFound:
                pass  # refused below, with the reason

        def apply(connection, store, op=op, args=args, seq=seq):
            reason = _apply_alone(connection, store, op, args)
            if reason is not None:  # recorded as delivered: it will never apply
                rejected.append({"seq": seq, "code": 400, "error": reason})

        if deliver(store, client, seq, apply):
            delivered += 1
    found = (store.find_run(run_id) for run_id in runs)  # one read per run touched
    return {"delivered": delivered, "rejected": rejected,
            "stop": {run.id: run.stop_requested for run in found if run is not None}}


def parse_body(body: bytes) -> dict:
    """The request's JSON object; too deep or malformed is a BadEvent (depth is checked before parsing)."""
    try:  # NaN and infinity pass: each event's values are checked where they are applied
        return untrusted_json.loads(body, what="the request", max_bytes=wire.MAX_BODY_BYTES, max_depth=wire.MAX_DEPTH,
                                    allow_nan=True)
    except untrusted_json.BadJSON as error:
        raise BadEvent(str(error)[:200]) from None


# --- HTTP ----------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    server_version = "dashboard-ingest"
    store: run_store.RunStore
    token: str
    lock: threading.Lock
    timeout = wire.READ_TIMEOUT_S  # a slow or silent client is dropped, not waited for forever

    def _answer(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client went away: nobody to answer
            self.close_connection = True

    def _authorised(self) -> bool:
        header = self.headers.get("Authorization", "")
        sent = header[7:] if header.startswith("Bearer ") else ""
        if not hmac.compare_digest(sent.encode(errors="replace"), self.token.encode()):
            self._answer(401, {"error": "wrong or missing token"})
            return False
        return True

    def do_GET(self):  # noqa: N802 (http.server API)
        if self.path != "/v1/health":
            self._answer(404, {"error": "not found"})
        elif self._authorised():
            self._answer(200, {"ok": True})

    def do_POST(self):  # noqa: N802
        try:
            code, answer = self._post()
        except Exception:  # every request is answered, and without a traceback
            code, answer = 500, {"error": "the endpoint failed on this request; nothing of it was stored"}
        if code:
            self._answer(code, answer)

    def _post(self) -> tuple[int, dict]:
        if self.path != wire.EVENTS_PATH:
            return 404, {"error": "not found"}
        if not self._authorised():
            return 0, {}
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= wire.MAX_BODY_BYTES:
            self.close_connection = True
            return (413, {"error": f"body larger than {wire.MAX_BODY_BYTES:,} bytes"}) if length > wire.MAX_BODY_BYTES \
                else (400, {"error": "body missing"})
        try:
            raw = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            return 408, {"error": f"the body did not arrive within {self.timeout:g} s"}
        if len(raw) < length:
            self.close_connection = True
            return 400, {"error": "the body ended early"}
        try:
            body = parse_body(raw)
            with self.lock:  # one writer per process: keeps delivery order within a client
                return 200, ingest(self.store, body.get("client"), body.get("events"))
        except BadEvent as error:
            return 400, {"error": str(error)[:300]}
        except run_store.StoreError as error:
            return 503, {"error": str(error)[:300]}
        except OSError as error:  # the dashboard's disk (full, read-only): the sender tries again later
            return 503, {"error": f"the dashboard could not write the run's files ({error.strerror or 'error'}); "
                                  "the events were not stored and will be accepted when it can"}

    def log_message(self, *args):
        pass


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_INGEST_PORT, store: run_store.RunStore | None = None,
                token: str | None = None, read_timeout: float = wire.READ_TIMEOUT_S) -> ThreadingHTTPServer:
    """The endpoint, bound but not yet serving (``serve_forever``); port 0 picks a free one."""
    handler = type("IngestHandler", (_Handler,), {"store": store or run_store.RunStore(), "token": token or ingest_token(),
                                                  "lock": threading.Lock(), "timeout": read_timeout})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.training.ingest", description=__doc__.splitlines()[0])
    settings = get_settings()
    parser.add_argument("--host", default=settings.ingest_host)
    parser.add_argument("--port", type=int, default=settings.ingest_port)
    args = parser.parse_args(argv)
    try:
        server = make_server(args.host, args.port)
    except (OSError, run_store.StoreError) as error:
        print(f"ingest endpoint not started: {error}", file=sys.stderr)
        return 1
    print(f"remote-logging endpoint on http://{args.host}:{server.server_port} "
          f"(token in {token_path()} or $DASHBOARD_INGEST_TOKEN)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
