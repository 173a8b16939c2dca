"""Stage 9's counters: how much a camera took in and processed, in wall, busy and CPU time.

The real-time factor is stream seconds per busy second of the pipeline thread; the CPU real-time factor
is stream seconds per CPU second of that thread, which does not depend on how loaded the machine is.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field

#: batches in the moving real-time factor (the ``anonreid_camera_realtime_factor`` gauge)
RTF_BATCHES = 64


@dataclass
class Throughput:
    events_in: int = 0
    windows_done: int = 0
    busy_s: float = 0.0
    stream_s: float = 0.0
    pipeline_cpu_s: float = 0.0  # CPU time of the processing thread (independent of machine load)
    source_cpu_s: float = 0.0  # CPU time of the reader thread (the source: a live world renders here)
    started_wall: float | None = None  # the first packet arrived
    ended_wall: float | None = None  # ``run`` stopped processing (rates exclude the final drain)
    last_window_end_us: int = 0
    _process_cpu0: float = 0.0
    _recent: collections.deque[tuple[float, float]] = field(
        default_factory=lambda: collections.deque(maxlen=RTF_BATCHES)
    )

    def arrived(self, arrival_wall: float) -> None:
        """A packet arrived (the first one starts the clocks, valid or not)."""
        if self.started_wall is None:
            self.started_wall = arrival_wall
            self._process_cpu0 = time.process_time()

    def batch(self, windows: int, stream_s: float, end_us: int, busy_s: float, cpu_s: float) -> float:
        """A processed batch; returns the real-time factor of the recent batches."""
        self.pipeline_cpu_s += cpu_s
        self.busy_s += busy_s
        self.stream_s += stream_s
        self.windows_done += windows
        self.last_window_end_us = end_us
        self._recent.append((stream_s, busy_s))
        return sum(s for s, _ in self._recent) / max(sum(b for _, b in self._recent), 1e-9)

    def summary(self, windows_dropped: int, queue_depth: int) -> dict[str, float | int]:
        """The demo summary's throughput figures (plain Python types)."""
        wall = (self.ended_wall or time.time()) - self.started_wall if self.started_wall else 0.0
        stream_s = self.stream_s
        return {
            "events": self.events_in,
            "windows": self.windows_done,
            "windows_dropped": windows_dropped,
            "queue_depth": queue_depth,
            "wall_s": wall,
            "stream_s": stream_s,
            "busy_s": self.busy_s,
            "events_per_s": self.events_in / wall if wall > 0 else 0.0,
            "windows_per_s": self.windows_done / wall if wall > 0 else 0.0,
            "realtime_factor": stream_s / self.busy_s if self.busy_s > 0 else 0.0,
            "pipeline_cpu_s": self.pipeline_cpu_s,
            "source_cpu_s": self.source_cpu_s,
            # stream seconds per CPU second of the pipeline: the real-time factor on an idle core
            "cpu_realtime_factor": stream_s / self.pipeline_cpu_s if self.pipeline_cpu_s > 0 else 0.0,
            "process_cpu_s": time.process_time() - self._process_cpu0 if self.started_wall else 0.0,
            "stream_rate": stream_s / wall if wall > 0 else 0.0,
        }
