"""Reading JSON nobody vouches for: files under the data root, store columns, spool lines, request
bodies, protocol headers and environment values.

One set of checks, in this order, each failure a :class:`BadJSON` (a ``ValueError`` and a
``UserFacingError``) whose text is one sentence naming ``what`` was read:

1. size: more than ``max_bytes`` is refused before it is read or parsed;
2. depth: objects and lists nested deeper than ``max_depth`` are refused before parsing (a linear
   scan, so a hostile text nested 100,000 deep never reaches the parser's recursion);
3. syntax, and ``NaN`` / ``Infinity`` (not JSON, though Python writes and reads them) unless
   ``allow_nan`` (for text this app wrote itself with ``json.dumps``' default);
4. shape: the top-level value must be an instance of ``expect`` (``dict`` by default; ``None``:
   anything).

Standard library only at import (the remote-logging sender imports this on machines without the
dashboard's requirements); :func:`json_depth` imports numpy when a text needs the full scan.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from services.errors import UserFacingError

MAX_BYTES = 32 * 1024 * 1024
"""Default size cap (bytes of JSON text)."""
MAX_DEPTH = 256
"""Default nesting cap: far below Python's recursion limit, far above anything the app writes."""
_SHAPES = {dict: "a JSON object", list: "a JSON list", str: "a JSON string"}


class BadJSON(UserFacingError, ValueError):
    """JSON that is too big, too deep, malformed, not finite or not the expected shape."""


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[]{}"))


def json_depth(text: bytes | str) -> int:
    """How deeply objects and lists nest in a JSON text, found without parsing it (strings are
    removed first, then the brackets are counted with numpy)."""
    import numpy as np

    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    brackets = _STRING.sub(b'""', data).translate(None, _NOT_BRACKETS)
    if not brackets:
        return 0
    codes = np.frombuffer(brackets, dtype=np.uint8)
    steps = np.where((codes == ord("[")) | (codes == ord("{")), 1, -1)
    return int(np.cumsum(steps).max())


def _too_deep(text: bytes | str, limit: int) -> bool:
    binary = isinstance(text, (bytes, bytearray))
    opening = text.count(b"[" if binary else "[") + text.count(b"{" if binary else "{")
    return opening > limit and json_depth(text) > limit  # the cheap count first


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


_STRICT, _LENIENT = json.JSONDecoder(parse_constant=_refuse_constant), json.JSONDecoder()


def loads(text: bytes | str, *, what: str = "the data", expect: type | None = dict, max_bytes: int | None = MAX_BYTES,
          max_depth: int | None = MAX_DEPTH, allow_nan: bool = False) -> Any:
    """The value of the JSON ``text`` after the checks of the module docstring."""
    if max_bytes is not None and len(text) > max_bytes // 4:  # a str's UTF-8 takes at most 4 bytes a character
        size = len(text) if isinstance(text, (bytes, bytearray)) else len(text.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise BadJSON(f"{what} is larger than {max_bytes:,} bytes.")
    if max_depth is not None and _too_deep(text, max_depth):
        raise BadJSON(f"{what} nests objects or lists deeper than {max_depth} levels")
    try:
        if isinstance(text, (bytes, bytearray)):
            text = bytes(text).decode(json.detect_encoding(text), "surrogatepass")
        value = (_LENIENT if allow_nan else _STRICT).decode(text)
    except RecursionError:  # only without a depth cap
        raise BadJSON(f"{what} nests too deeply") from None
    except ValueError as error:  # also UnicodeDecodeError
        raise BadJSON(f"{what} is not JSON: {error}"[:300]) from None
    if expect is not None and not isinstance(value, expect):
        raise BadJSON(f"{what} must be {_SHAPES.get(expect, expect.__name__)}")
    return value


def loads_or(text: bytes | str | None, default: Any, **checks: Any) -> Any:
    """:func:`loads`, or ``default`` when ``text`` is None or fails a check (a damaged store column
    reads as its empty value)."""
    if text is None:
        return default
    try:
        return loads(text, **checks)
    except BadJSON:
        return default


def read(path: Path, *, what: str | None = None, **checks: Any) -> Any:
    """The JSON file at ``path`` (its size checked before it is read), with :func:`loads`' checks;
    a file that cannot be read is a :class:`BadJSON` too."""
    path = Path(path)
    what = what or path.name
    limit = checks.get("max_bytes", MAX_BYTES)
    try:
        if limit is not None and path.stat().st_size > limit:
            raise BadJSON(f"{what} is larger than {limit:,} bytes.")
        data = path.read_bytes()
    except OSError as error:
        raise BadJSON(f"{what} could not be read ({error.strerror or type(error).__name__}).") from None
    return loads(data, what=what, **checks)


def read_or(path: Path, default: Any, **checks: Any) -> Any:
    """:func:`read`, or ``default`` when the file is missing, unreadable or fails a check."""
    try:
        return read(path, **checks)
    except BadJSON:
        return default
