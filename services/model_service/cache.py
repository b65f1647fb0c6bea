"""The model service's cache of loaded models, with one lock per model."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import Any


def file_key(path: str | os.PathLike) -> tuple[str, int, int]:
    """A cache key that changes when the file is replaced: (path, size, mtime in ns)."""
    stat = Path(path).stat()
    return str(path), stat.st_size, stat.st_mtime_ns


class ModelCache:
    """Least-recently-used models (at most ``max_entries``); ``lock(key)`` serialises requests
    per model, so two sessions never run the same Keras model at once."""

    def __init__(self, max_entries: int = 6):
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._locks: dict[Hashable, threading.RLock] = {}
        self._guard = threading.Lock()

    def lock(self, key: Hashable) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(key, threading.RLock())

    def get(self, key: Hashable, loader: Callable[[], Any]) -> Any:
        with self._guard:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        with self.lock(("load", key)):
            with self._guard:
                if key in self._entries:
                    return self._entries[key]
            value = loader()
            with self._guard:
                self._entries[key] = value
                while len(self._entries) > self.max_entries:
                    old, _ = self._entries.popitem(last=False)
                    self._locks.pop(old, None)
            return value

    @contextlib.contextmanager
    def using(self, key: Hashable, loader: Callable[[], Any]) -> Iterator[Any]:
        """``with cache.using(key, loader) as model:`` the cached model, held exclusively."""
        model = self.get(key, loader)
        with self.lock(key):
            yield model

    def __len__(self) -> int:
        return len(self._entries)

    def keys(self) -> list[Hashable]:
        with self._guard:
            return list(self._entries)
