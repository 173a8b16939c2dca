"""The stream clock of every stored sighting, so operators see real times (nodes/stream_clock.py).

A camera's clock (how its stream time reads as a time of day) changes only when its stream restarts,
so the gallery keeps, per camera, the runs of FAISS ids that share one clock instead of a clock per
sighting: FAISS ids grow with every stored sighting, and a sighting's clock is the one of the last run
of its camera that starts at or before its id. The runs live in the Redis hash ``P:clocks`` (camera ->
JSON ``[[first_fid, kind, epoch_us or null], ...]``), written before the sighting that starts a run is
committed (a run whose sighting is rolled back is harmless: the next sighting takes the same id). They
hold no personal data (a camera, a clock, a range of ids), so forget and retention leave them; a
camera switching clocks more than :data:`MAX_RUNS` times keeps only its newest runs.
"""

from __future__ import annotations

import bisect
import json
import logging
from typing import Any

import redis

from anonreid.gallery.errors import Unavailable
from anonreid.gallery.types import StreamClock

log = logging.getLogger(__name__)

MAX_RUNS = 10_000
UNKNOWN = StreamClock()


class ClockBook:
    """Per camera, the runs of FAISS ids on one stream clock (module docstring)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}:clocks"
        self._starts: dict[str, list[int]] = {}
        self._clocks: dict[str, list[StreamClock]] = {}

    def load(self) -> None:
        """Read the runs from Redis (a gallery starting)."""
        try:
            raw = self.client.hgetall(self.key)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis unavailable while reading the stream clocks: {exc}", reason="redis") from exc
        self._starts, self._clocks = {}, {}
        for camera, runs in raw.items():
            name = camera.decode() if isinstance(camera, bytes) else str(camera)
            try:
                parsed = [(int(fid), StreamClock(str(kind), None if epoch is None else int(epoch)))
                          for fid, kind, epoch in json.loads(runs)]
            except (ValueError, TypeError) as exc:
                log.error("stream clocks of camera %s in %s unreadable (%s): its times show as elapsed", name,
                          self.key, exc)
                continue
            parsed.sort(key=lambda r: r[0])
            self._starts[name] = [fid for fid, _ in parsed]
            self._clocks[name] = [c for _, c in parsed]

    def note(self, camera: str, clock: StreamClock, fid: int) -> None:
        """The sighting with FAISS id ``fid`` of ``camera`` is on ``clock`` (called before it is committed;
        writes Redis only when the camera's clock changes)."""
        clocks = self._clocks.get(camera, [])
        if clocks and clocks[-1] == clock:
            return
        starts = [*self._starts.get(camera, []), fid][-MAX_RUNS:]
        clocks = [*clocks, clock][-MAX_RUNS:]
        runs = json.dumps([[f, c.kind, c.epoch_us] for f, c in zip(starts, clocks, strict=True)])
        try:
            self.client.hset(self.key, camera, runs)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis unavailable while writing the stream clock of {camera}: {exc}",
                              reason="redis") from exc
        self._starts[camera], self._clocks[camera] = starts, clocks

    def clock(self, camera: str, fid: int) -> StreamClock:
        """The clock of ``camera``'s sighting with FAISS id ``fid`` (unknown before its first run)."""
        starts = self._starts.get(camera)
        if not starts:
            return UNKNOWN
        i = bisect.bisect_right(starts, fid) - 1
        return self._clocks[camera][i] if i >= 0 else UNKNOWN


def describe_time(stream_us: int, clock: StreamClock) -> str:
    """A stream time as an operator reads it: the local wall-clock time for a live source, the
    recording's own clock (its calendar time when known, else the time since its start) labelled
    ``(recording)``, and for a clock not said the stream time labelled ``(stream)``."""
    from datetime import datetime, timedelta

    if clock.epoch_us is not None and clock.kind in ("wall", "recording"):
        at = datetime.fromtimestamp((clock.epoch_us + stream_us) / 1e6).astimezone()
        text = at.isoformat(sep=" ", timespec="milliseconds")
        return text if clock.kind == "wall" else f"{text} (recording)"
    elapsed = str(timedelta(microseconds=stream_us // 1000 * 1000))
    elapsed = elapsed if "." in elapsed else elapsed + ".000000"
    return f"+{elapsed[:-3]} ({'recording' if clock.kind == 'recording' else 'stream'})"
