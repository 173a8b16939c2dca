"""Stage 1's output: complete windows, and the bounded queue between the source and the pipeline.

The source's reader thread windows packets and puts the complete windows here; the pipeline thread
takes them in batches. A live source must never wait, so a full queue drops the oldest window (and
counts it); a source that buffers durably (a file, a Redis stream) waits for room instead.

The bound is on windows that hold events. A window without any event (a gap in a recording: the
sensor sent nothing) costs neither memory nor processing to speak of, and a source without a watermark
(one replayed as fast as it goes, or a stream pushed so) completes a whole gap's windows at once, when
the first event after it arrives: a 5 s pause is 150 empty windows in one burst, which a bound of 60
would have "dropped" though the node was idle (issue #18; a paced replay ticks through the gap instead,
``EventSource.watermark_us``). Empty
windows therefore do not count against ``maxlen``; they are bounded on their own at
:data:`EMPTY_FACTOR` x ``maxlen`` (past it the oldest empty window goes, counted like any other).
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


#: empty windows (gaps) are bounded at this many times the queue's bound on windows with events
EMPTY_FACTOR = 10


class WindowQueue:
    """Bounded FIFO of windows: when full, the oldest window is dropped and counted (module docstring:
    windows without events are bounded separately)."""

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[WindowItem] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self._loaded = 0  # queued windows that hold events
        self.dropped = 0
        self.closed = False

    def _full(self, item: WindowItem) -> bool:
        if len(item.events):
            return self._loaded >= self._maxlen
        return len(self._items) - self._loaded >= EMPTY_FACTOR * self._maxlen

    def _drop_oldest_like(self, item: WindowItem) -> None:
        """Drop the oldest queued window of the same kind (with events, or empty) as ``item``."""
        loaded = bool(len(item.events))
        for k, queued in enumerate(self._items):
            if bool(len(queued.events)) == loaded:
                del self._items[k]
                self._loaded -= loaded
                return

    def put(self, items: Iterable[WindowItem], block: bool = False) -> int:
        """Append windows; when full, drop the oldest (live sources) or wait for room (``block``:
        sources that buffer durably themselves, such as a file or a Redis stream)."""
        dropped = 0
        with self._cond:
            for item in items:
                while block and self._full(item) and not self.closed:
                    self._cond.wait(0.1)
                if self._full(item):
                    self._drop_oldest_like(item)
                    dropped += 1
                self._items.append(item)
                self._loaded += bool(len(item.events))
            self.dropped += dropped
            self._cond.notify_all()
        return dropped

    def get_batch(self, max_items: int, timeout: float | None) -> list[WindowItem]:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            self._loaded -= sum(1 for item in batch if len(item.events))
            if batch:
                self._cond.notify_all()  # room for a blocked producer
            return batch

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)
