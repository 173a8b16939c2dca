"""Which windows the audit tap samples: bursts of consecutive windows on a stream-time schedule.

A burst of ``burst`` consecutive windows (the recurrent attacker needs temporal context) starts at the
first window that starts at least ``every_s`` of stream time after the previous burst's start; the
first burst starts at the stream's first window, and ``offset_s`` (the demo spreads its cameras' bursts
over the interval) then shifts every later one. The tap may refuse a burst (no room: a live stream skips
it); the schedule moves on all the same. Pure: stream time in, decisions out.
"""

from __future__ import annotations

from collections.abc import Callable


class AuditSchedule:
    """``begin_burst(windows)`` reserves room in the tap for a burst; False when it was skipped."""

    def __init__(self, every_s: float, offset_s: float, burst: int, begin_burst: Callable[[int], bool]) -> None:
        self.every_s = every_s
        self.burst = burst
        self._offset_s = offset_s  # applied once, after the first burst
        self._begin_burst = begin_burst
        self._next_us: int | None = None
        self._left = 0  # windows of the current burst still to sample

    def sample(self, start_us: int) -> bool:
        """Whether the window starting at ``start_us`` (windows in stream order) goes to the audit tap."""
        if self._next_us is None:
            self._next_us = start_us
        # the next burst starts when it falls due and the last one is complete
        if start_us >= self._next_us and self._left == 0:
            self._left = self.burst if self._begin_burst(self.burst) else 0
            # the first sample comes at once; the offset then shifts the whole schedule
            offset, self._offset_s = self._offset_s, 0.0
            self._next_us = start_us + int((self.every_s + offset) * 1e6)
        if self._left > 0:
            self._left -= 1
            return True
        return False
