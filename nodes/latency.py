"""Where a sighting's time goes, from its last event to its global identity (camera side).

A sighting's latency runs from the wall-clock time of the last event it covers (live sources: the
source's clock anchor + the stream time of the end of that window; other sources: when the window's
packet arrived) to the moment the camera holds the gallery's ack. On the camera it is cut into
consecutive stages, each the difference of two wall-clock stamps, so together they are exactly the time
from the event to the hand-over to the gallery client:

==============  ===================================================================================
``hold``        the tracker held the segment open after its last event: a sighting closes at a window
                where the track was not matched (its final segment once the track has missed
                ``camera.close_after_misses`` windows); 0 for a first sighting or an update
``window``      the window it closed at waited for the packet that completes it, and was cut
``queue``       that window waited in the node's window queue for the pipeline thread
``detect_track``  detection, tracking (and, in simulation, ground-truth bookkeeping) of its batch
``voxelize``    the batch's voxel grids
``anonymize``   E_an on the batch's boxes
``embed``       the batch's ReId forward pass
``publish``     turning the segment into a sighting and the publisher thread taking it to the gallery
==============  ===================================================================================

A sighting that needs none of its batch's embeddings (an update or a last segment whose track has no
embedding job in the batch before it) is published before the batch's inference: its ``voxelize``,
``anonymize`` and ``embed`` are 0.

The rest, from the hand-over to the ack in the camera's hands, is the gallery round trip; the gallery
cuts its own part into ``transport``, ``associate``, ``persist`` and ``ack``
(:mod:`anonreid.gallery.metrics`), reading the sighting's ``published_at_us`` (the hand-over) and
``event_at_us``. Every stage of a batch is counted in full for each of the batch's sightings: a
sighting waits for its whole batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

#: the camera's stages of a sighting's latency, in order (module docstring)
CAMERA_STAGES = ("hold", "window", "queue", "detect_track", "voxelize", "anonymize", "embed", "publish")
BATCH_STAGES = ("detect_track", "voxelize", "anonymize", "embed")


@dataclass
class BatchClock:
    """Wall-clock stamps (``time.time()``) of one batch: its start and the end of each batch stage."""

    start: float = field(default_factory=time.time)
    ends: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> float:
        """Stamp the end of ``stage`` (one of :data:`BATCH_STAGES`, in order); returns its duration."""
        now = time.time()
        previous = self.ends[BATCH_STAGES[BATCH_STAGES.index(stage) - 1]] if stage != BATCH_STAGES[0] else self.start
        self.ends[stage] = now
        return now - previous

    @classmethod
    def none(cls) -> BatchClock:
        """No batch (the end of a stream): every batch stage takes no time."""
        clock = cls()
        clock.ends = dict.fromkeys(BATCH_STAGES, clock.start)
        return clock

    def without_inference(self) -> BatchClock:
        """This batch as seen by a sighting published before its inference (after ``detect_track``)."""
        done = self.ends[BATCH_STAGES[0]]
        return BatchClock(self.start, {BATCH_STAGES[0]: done, **dict.fromkeys(BATCH_STAGES[1:], done)})


@dataclass
class SightingTiming:
    """The stamps of one sighting on its way through the camera (wall clock, seconds)."""

    event: float  # its last event happened (live) or arrived (other sources)
    closed: float  # the window it closed at ended (live) or arrived
    queued: float  # that window entered the queue
    batch: BatchClock
    sent: float = 0.0  # handed to the gallery client (the first time: a retry keeps it)

    def stages(self) -> dict[str, float]:
        """Seconds per stage (:data:`CAMERA_STAGES`); they sum to ``sent - event``. Clock steps between
        the anchor and the stamps are clipped to 0 and charged to the next stage, so the sum holds."""
        stamps = [self.event, self.closed, self.queued, self.batch.start,
                  *(self.batch.ends[s] for s in BATCH_STAGES), self.sent]
        out: dict[str, float] = {}
        reached = stamps[0]
        for stage, stamp in zip(CAMERA_STAGES, stamps[1:], strict=True):
            out[stage] = max(0.0, stamp - reached)
            reached = max(reached, stamp)
        return out
