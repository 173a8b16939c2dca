"""How a camera's stream time reads as a time of day: the ``clock`` of every sighting it publishes.

Sighting spans are in the stream's own microseconds (the association compares them across cameras),
which for the live world start at 0 and for a recording are whatever the file records. An operator
needs a real time, so each sighting says which clock its span is on (``StreamClock`` in
proto/anonreid/v1/sighting.proto):

- ``WALL``: a live source paced by the wall clock; ``epoch_us`` is the wall-clock time of stream time 0
  (the source's clock anchor), so ``epoch_us + t`` is when it happened;
- ``RECORDING``: a replayed file, a Redis stream or an offline run; the span is the recording's own
  clock, shown as such. Its timestamps are a calendar time only when they are Unix times (AEDAT4 records
  them so): a stream time of at least :data:`UNIX_TIME_FLOOR_US` (2001-09-09) cannot be an elapsed time
  of a recording, so it is read as one (``epoch_us`` = 0); otherwise ``epoch_us`` is not set and the
  time is shown as elapsed since the recording's start.
"""

from __future__ import annotations

from anonreid.proto.v1 import sighting_pb2

#: 10^15 us since 1970 = 2001-09-09; no recording runs for 31 years, so later stream times are Unix times
UNIX_TIME_FLOOR_US = 10**15


def stream_clock(kind: str, anchor_s: float | None, stream_us: int) -> sighting_pb2.StreamClock:
    """The clock of a sighting at stream time ``stream_us`` of a stream of ``kind`` ("wall" or
    "recording") whose stream time 0 is wall-clock time ``anchor_s`` (None when not paced)."""
    if kind not in ("wall", "recording"):
        raise ValueError(f"stream clock kind must be 'wall' or 'recording', got {kind!r}")
    if kind == "wall" and anchor_s is not None:
        return sighting_pb2.StreamClock(kind=sighting_pb2.StreamClock.WALL, epoch_us=round(anchor_s * 1e6))
    if stream_us >= UNIX_TIME_FLOOR_US:
        return sighting_pb2.StreamClock(kind=sighting_pb2.StreamClock.RECORDING, epoch_us=0)
    return sighting_pb2.StreamClock(kind=sighting_pb2.StreamClock.RECORDING)
