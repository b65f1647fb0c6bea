"""The model service's wire format: JSON headers and ``.npy`` arrays, never pickle.

A message is a 4-byte big-endian header length, the UTF-8 JSON header, then the arrays named in
``header["arrays"]`` (``[{"name", "nbytes"}]``) as ``.npy`` bytes in that order. Arrays are read
with ``allow_pickle=False``, and sizes are checked against caps before anything is allocated.
"""

from __future__ import annotations

import io
import json
import socket
import struct

import numpy as np

from services import untrusted_json

MAX_HEADER_BYTES = 16 * 1024 * 1024
MAX_ARRAY_BYTES = 2 * 1024**3


class ProtocolError(Exception):
    """The other side sent something that is not a valid message (or hung up mid-message)."""


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def send_message(sock: socket.socket, header: dict, arrays: dict[str, np.ndarray] | None = None) -> None:
    blobs = [(name, _array_bytes(np.asarray(array))) for name, array in (arrays or {}).items()]
    header = {**header, "arrays": [{"name": name, "nbytes": len(blob)} for name, blob in blobs]}
    encoded = json.dumps(header, allow_nan=False, default=_json_default).encode("utf-8")
    sock.sendall(struct.pack(">I", len(encoded)) + encoded)
    for _, blob in blobs:
        sock.sendall(blob)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise ProtocolError("connection closed mid-message")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def receive_message(sock: socket.socket) -> tuple[dict, dict[str, np.ndarray]]:
    (length,) = struct.unpack(">I", _read_exactly(sock, 4))
    if length > MAX_HEADER_BYTES:
        raise ProtocolError("header too large")
    try:  # written by json.dumps on both sides: NaN passes
        header = untrusted_json.loads(_read_exactly(sock, length), what="the header", max_bytes=None, allow_nan=True)
    except untrusted_json.BadJSON as error:
        raise ProtocolError(str(error)) from None
    arrays: dict[str, np.ndarray] = {}
    for entry in header.pop("arrays", []) or []:
        if not isinstance(entry, dict) or not isinstance(entry.get("nbytes"), int):
            raise ProtocolError("bad array entry")
        if not 0 < entry["nbytes"] <= MAX_ARRAY_BYTES:
            raise ProtocolError("array too large")
        try:
            arrays[str(entry.get("name"))] = np.load(io.BytesIO(_read_exactly(sock, entry["nbytes"])),
                                                     allow_pickle=False)
        except ValueError as error:
            raise ProtocolError("bad array") from error
    return header, arrays
