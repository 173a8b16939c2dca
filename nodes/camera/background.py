"""A queue of work done on a background thread: the base of the sighting publisher and the audit tap.

Both hand work from the pipeline thread to a thread of their own (the pipeline never waits for the
gallery or for a full-frame E_an pass) and offer the same control: ``pending`` (queued plus in
flight), ``drain(timeout)`` (wait until all of it is done) and ``close`` (stop the thread). The
subclass writes the thread's loop with :meth:`_take` (wait for work: the whole queue or one item),
:meth:`_done` (the taken work is finished) and :meth:`_requeue` (put it back in front and wait before
trying again).
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")


class BackgroundQueue(Generic[T]):
    """Items queued by :meth:`_put` and taken by :meth:`_run` on a daemon thread named ``name``, started
    with the first item. ``finish_on_close``: the thread takes what is still queued before it stops
    (the audit tap); otherwise it stops at once and leaves the rest (the publisher: unacknowledged
    sightings are the gallery client's to replay)."""

    finish_on_close = False

    def __init__(self, name: str) -> None:
        self._name = name
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._inflight = 0  # items taken and not done yet
        self._thread: threading.Thread | None = None

    def _put(self, items: Iterable[T]) -> int:
        """Queue ``items`` (never blocks); returns how many."""
        with self._cond:
            n = len(self._items)
            self._items.extend(items)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify_all()
            return len(self._items) - n

    def _take(self, everything: bool) -> list[T] | None:
        """On the thread: wait for work and take it (the whole queue, or the oldest item); None once closed."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if self._closed and (not self.finish_on_close or not self._items):
                return None
            taken = list(self._items) if everything else [self._items.popleft()]
            if everything:
                self._items.clear()
            self._inflight = len(taken)
            return taken

    def _done(self) -> None:
        """On the thread: the taken items are finished (``drain`` may return)."""
        with self._cond:
            self._inflight = 0
            self._cond.notify_all()

    def _requeue(self, taken: list[T], wait_s: float) -> None:
        """On the thread: put ``taken`` back in front of the queue and wait ``wait_s`` (or until closed)."""
        with self._cond:
            self._items.extendleft(reversed(taken))
            self._inflight = 0
            self._cond.wait(wait_s)

    def _run(self) -> None:
        raise NotImplementedError

    def pending(self) -> int:
        """Items queued or in flight."""
        with self._cond:
            return len(self._items) + self._inflight

    def drain(self, timeout: float) -> bool:
        """Wait until every queued item is done (or ``timeout``); True when drained."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._items or self._inflight) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not (self._items or self._inflight)

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (after the queued items when ``finish_on_close``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
