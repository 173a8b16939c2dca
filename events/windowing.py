"""Exact windowing of an event stream: fixed-duration (default 33.3 ms) or fixed-count windows.

One protocol for the offline datasets and the streaming camera path: compute window boundaries, then
slice the sorted events with ``searchsorted`` (tonic's ``Slicer`` idea). Windows are half-open
``[start_us, end_us)``: an event exactly on a boundary belongs to the later window, so no event is lost
or duplicated whatever the packet boundaries are. Windows without events are reported (empty), so
window ``k`` always covers ``[t0 + k * window_us, t0 + (k + 1) * window_us)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from anonreid.events.types import EventFormatError, concat_events, empty_events, validate_events
from anonreid.orchestration.infra.timebase import DEFAULT_WINDOW_US

__all__ = ["DEFAULT_WINDOW_US", "FixedCountWindower", "FixedDurationWindower", "Window", "iter_windows"]


@dataclass(frozen=True)
class Window:
    """Events with ``start_us <= t < end_us``; ``index`` counts windows from the stream's start."""

    index: int
    start_us: int
    end_us: int
    events: np.ndarray

    def __len__(self) -> int:
        return len(self.events)


class _Buffered:
    """Keeps the not-yet-emitted events of a stream and checks packets as they arrive."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._pending: list[np.ndarray] = []
        self._last_t: int | None = None
        self._seen = 0

    def _accept(self, packet: np.ndarray) -> np.ndarray | None:
        validate_events(packet, source=self.source, index_offset=self._seen, previous_t=self._last_t)
        if len(packet) == 0:
            return None
        self._seen += len(packet)
        self._last_t = int(packet["t"][-1])
        self._pending.append(packet)
        return packet

    def _take_pending(self) -> np.ndarray:
        events = self._pending[0] if len(self._pending) == 1 else concat_events(self._pending)
        self._pending = []
        return events


class FixedDurationWindower(_Buffered):
    """Cuts a stream of sorted packets into ``window_us`` windows, emitting each once it is complete.

    A window is complete when an event at or after its end has arrived (events are sorted, so nothing
    can still fall into it). ``t0_us`` is the start of window 0 (default: the first event's time);
    events before it are an error. ``flush()`` emits the last, partial window at the end of a stream.
    """

    def __init__(self, window_us: int = DEFAULT_WINDOW_US, t0_us: int | None = None, source: str = "stream") -> None:
        if window_us <= 0:
            raise ValueError(f"window_us must be positive, got {window_us}")
        super().__init__(source)
        self.window_us = int(window_us)
        self.t0_us = None if t0_us is None else int(t0_us)
        self.next_index = 0  # index of the first window not emitted yet

    def window_start(self, index: int) -> int:
        """Start (us) of window ``index``."""
        if self.t0_us is None:
            raise RuntimeError("the windower has no start time yet (no event seen and no t0_us)")
        return self.t0_us + index * self.window_us

    def push(self, packet: np.ndarray) -> list[Window]:
        """Add a packet (sorted, continuing the stream); return the windows it completed, empty ones too."""
        if self._accept(packet) is None:
            return []
        if self.t0_us is None:
            self.t0_us = int(packet["t"][0])
        first_t = int(self._pending[0]["t"][0])
        if first_t < self.window_start(self.next_index):
            raise EventFormatError(
                self.source,
                f"event at {first_t} us falls before window {self.next_index} "
                f"(starting {self.window_start(self.next_index)} us), which is already closed or before t0",
            )
        assert self._last_t is not None
        complete_until = (self._last_t - self.t0_us) // self.window_us  # windows < this index are complete
        if complete_until <= self.next_index:
            return []
        return self._emit(self._take_pending(), complete_until)

    def advance(self, until_us: int) -> list[Window]:
        """The source says no event before ``until_us`` is still to come (a watermark: a paced replay
        waiting through a gap in its recording): emit every window that ends at or before it, empty
        ones too. An event before ``until_us`` arriving afterwards is an error, as one before a closed
        window is. Nothing happens before the first event (the grid starts there) unless ``t0_us`` was
        given."""
        if self.t0_us is None:
            return []
        complete_until = (int(until_us) - self.t0_us) // self.window_us
        if complete_until <= self.next_index:
            return []
        return self._emit(self._take_pending(), complete_until)

    def flush(self) -> list[Window]:
        """Emit the window holding the remaining events (if any); the stream may continue afterwards."""
        if not self._pending or self.t0_us is None:
            return []
        assert self._last_t is not None
        return self._emit(self._take_pending(), (self._last_t - self.t0_us) // self.window_us + 1)

    def _emit(self, events: np.ndarray, stop_index: int) -> list[Window]:
        """Slice ``events`` into windows ``next_index .. stop_index - 1``; keep the rest pending."""
        indices = np.arange(self.next_index, stop_index, dtype=np.int64)
        starts = self.window_start(0) + indices * self.window_us
        cuts = np.searchsorted(events["t"], np.append(starts[1:], starts[-1] + self.window_us), side="left")
        windows = []
        begin = 0
        for index, start, cut in zip(indices.tolist(), starts.tolist(), cuts.tolist(), strict=True):
            windows.append(Window(index, start, start + self.window_us, events[begin:cut]))
            begin = cut
        if begin < len(events):
            self._pending = [events[begin:]]
        self.next_index = stop_index
        return windows


class FixedCountWindower(_Buffered):
    """Windows of exactly ``count`` events; ``[start_us, end_us)`` spans first event .. last event + 1 us."""

    def __init__(self, count: int, source: str = "stream") -> None:
        if count <= 0:
            raise ValueError(f"count must be positive, got {count}")
        super().__init__(source)
        self.count = int(count)
        self.next_index = 0
        self._pending_len = 0

    def push(self, packet: np.ndarray) -> list[Window]:
        """Add a packet; return every full window of ``count`` events now available."""
        if self._accept(packet) is None:
            return []
        self._pending_len += len(packet)
        if self._pending_len < self.count:
            return []
        events = self._take_pending()
        full = len(events) // self.count * self.count
        windows = [self._window(events[i : i + self.count]) for i in range(0, full, self.count)]
        if full < len(events):
            self._pending = [events[full:]]
        self._pending_len = len(events) - full
        return windows

    def flush(self) -> list[Window]:
        """Emit the remaining (fewer than ``count``) events as a last window, if there are any."""
        if not self._pending:
            return []
        self._pending_len = 0
        return [self._window(self._take_pending())]

    def _window(self, events: np.ndarray) -> Window:
        window = Window(self.next_index, int(events["t"][0]), int(events["t"][-1]) + 1, events)
        self.next_index += 1
        return window


def iter_windows(
    events_or_chunks: np.ndarray | Iterable[np.ndarray],
    window_us: int = DEFAULT_WINDOW_US,
    t0_us: int | None = None,
    source: str = "events",
) -> Iterator[Window]:
    """Offline windowing of an event array or an iterable of chunks (e.g. a reader), last partial window
    included. Window ``k`` covers ``[t0 + k * window_us, t0 + (k + 1) * window_us)``; empty ones are yielded.
    """
    windower = FixedDurationWindower(window_us, t0_us, source=source)
    chunks = [events_or_chunks] if isinstance(events_or_chunks, np.ndarray) else events_or_chunks
    for chunk in chunks:
        yield from windower.push(chunk)
    yield from windower.flush()


def empty_window(index: int, start_us: int, end_us: int) -> Window:
    """A window with no events (for sources that know a window passed without activity)."""
    return Window(index, start_us, end_us, empty_events())
