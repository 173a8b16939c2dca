"""Stage 1's output: complete windows, and the bounded queue between the source and the pipeline.

The source's reader thread windows packets and puts the complete windows here; the pipeline thread
takes them in batches. A live source must never wait, so a full queue drops the oldest window (and
counts it); a source that buffers durably (a file, a Redis stream) waits for room instead.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass
class WindowItem:
    """A complete window waiting in the queue."""

    index: int
    start_us: int
    end_us: int
    events: np.ndarray
    arrival_wall: float
    queued_wall: float = 0.0  # when it entered the queue (a sighting's latency stages, nodes/latency.py)


class WindowQueue:
    """Bounded FIFO of windows: when full, the oldest window is dropped and counted."""

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[WindowItem] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, items: Iterable[WindowItem], block: bool = False) -> int:
        """Append windows; when full, drop the oldest (live sources) or wait for room (``block``:
        sources that buffer durably themselves, such as a file or a Redis stream)."""
        dropped = 0
        with self._cond:
            for item in items:
                while block and len(self._items) >= self._maxlen and not self.closed:
                    self._cond.wait(0.1)
                if len(self._items) >= self._maxlen:
                    self._items.popleft()
                    dropped += 1
                self._items.append(item)
            self.dropped += dropped
            self._cond.notify_all()
        return dropped

    def get_batch(self, max_items: int, timeout: float | None) -> list[WindowItem]:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            if batch:
                self._cond.notify_all()  # room for a blocked producer
            return batch

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
