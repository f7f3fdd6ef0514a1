"""Loaded models per process, keyed by the immutable ModelVersion.id.

A new active version is a new key, so there is no invalidation protocol: a request takes one
reference to a Detector and keeps it for the whole batch, and never sees half a swap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from models import Detector


class ModelCache:
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[int, Detector] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, version_id: int) -> Detector | None:
        """The model if this process holds it, without loading: what scoring has while the
        database does not answer."""
        with self._lock:
            return self._items.get(version_id)

    def get(self, version_id: int, load: Callable[[], Detector]) -> Detector:
        with self._lock:
            det = self._items.get(version_id)
            if det is not None:
                self._items.move_to_end(version_id)
                return det
        det = load()  # outside the lock: loading must not stall other lines' scoring
        with self._lock:
            self._items[version_id] = det
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return det
