"""Stage 7, publish: closed segments become Sightings, which a background thread hands to the gallery
client (:class:`GalleryPublish`), recording the acks and each sighting's latency (:mod:`anonreid.nodes.latency`).

A slow or restarting gallery stalls neither the pipeline nor the source: unacknowledged sightings are
kept and retried (the client replays them).
"""

from __future__ import annotations

import collections
import logging
import time
from typing import TYPE_CHECKING, Protocol

import numpy as np

from anonreid.nodes.camera.background import BackgroundQueue
from anonreid.nodes.camera.segments import Segment, sighting_id
from anonreid.nodes.latency import SightingTiming
from anonreid.nodes.metrics import CameraMetrics
from anonreid.nodes.stream_clock import stream_clock

if TYPE_CHECKING:
    from anonreid.proto.v1.gallery_pb2 import PublishAck
    from anonreid.proto.v1.sighting_pb2 import Sighting

log = logging.getLogger(__name__)

#: acknowledged sightings kept for the live latency window (the console's p95)
RECENT_MAX = 2000
STAGES_KEPT = 10_000
#: the first wait before retrying a failed publish; it doubles with each failure up to ``max_backoff_s``
FIRST_BACKOFF_S = 1.0


class GalleryPublish(Protocol):
    """The camera's seam to the gallery (a ``GalleryClient``): publish sightings, their acks in order.
    A partial refusal raises an exception carrying ``acks`` (stored) and ``rejected`` (refused)."""

    def publish(self, sightings: list[Sighting]) -> list[PublishAck]: ...


def sighting_message(
    camera_id: str, seg: Segment, embedding: np.ndarray, sensor_wh: tuple[int, int], model_version: str,
    clock_kind: str, clock_anchor: float | None,
) -> Sighting:
    """The Sighting of a closed segment: its box clipped to the frame, ``embedding`` (L2-normalised), its
    stream clock; ``published_at_us`` is stamped again when it is handed to the gallery client."""
    from anonreid.proto.v1 import sighting_pb2

    width, height = sensor_wh
    x1, y1, x2, y2 = map(float, np.clip(seg.box, 0, [width, height] * 2))
    return sighting_pb2.Sighting(
        sighting_id=sighting_id(camera_id, seg.track, seg.seq),
        camera_id=camera_id,
        tracklet_id=seg.track.track_id,
        span=sighting_pb2.TimeSpan(start_us=seg.start_us, end_us=seg.end_us),
        box=sighting_pb2.BoxSummary(
            x1=x1, y1=y1, x2=x2, y2=y2, num_boxes=seg.num_boxes, mean_area=seg.mean_area,
            velocity_x=seg.velocity[0], velocity_y=seg.velocity[1],
        ),
        embedding=embedding.astype(np.float32).tolist(),
        quality=seg.quality,
        model_version=model_version,
        published_at_us=int(time.time() * 1e6),
        event_at_us=int(seg.event_wall * 1e6),
        clock=stream_clock(clock_kind, clock_anchor, seg.start_us),
    )


class SightingPublisher(BackgroundQueue["Sighting"]):
    """Background thread that publishes sightings to the gallery and records the acks.

    Sightings wait in an in-memory list until acknowledged; a failed publish is retried with
    exponential backoff (1 s .. ``max_backoff_s``, config ``camera.publish_backoff_max_s``), so nothing
    is lost while the gallery restarts (the gallery is idempotent by sighting id, so a retry after a
    lost ack changes nothing). A sighting whose timing
    was given (:meth:`expect`) is stamped ``published_at_us`` when first handed to the client, and its
    ack records its latency and stages (:meth:`CameraMetrics.observe_sighting`).
    """

    def __init__(self, camera_id: str, client: GalleryPublish, metrics: CameraMetrics, *, max_backoff_s: float) -> None:
        super().__init__(f"publish-{camera_id}")
        self.camera_id = camera_id
        self.client = client
        self.metrics = metrics
        self.max_backoff_s = max_backoff_s
        self.submitted = 0
        self.acked = 0
        self.rejected = 0
        self.assignments: dict[str, str] = {}
        self._timing: dict[str, SightingTiming] = {}
        self.latencies_s: collections.deque[float] = collections.deque(maxlen=100_000)
        #: seconds per stage of the latest acknowledged sightings, in ack order (nodes/latency.py, plus "gallery");
        #: bounded (under 1 KB each) for long runs: the Prometheus histograms keep the whole history
        self.stages: collections.deque[dict[str, float]] = collections.deque(maxlen=STAGES_KEPT)
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=RECENT_MAX)  # (acked, s)

    def expect(self, sighting_id: str, timing: SightingTiming) -> None:
        """The timing of a sighting about to be submitted (its latency is recorded at its ack)."""
        self._timing[sighting_id] = timing

    def submit(self, sightings: list[Sighting]) -> None:
        with self._cond:
            self.submitted += self._put(sightings)

    def recent_latencies(self, window_s: float, now: float | None = None) -> list[float]:
        """Event-to-identity latencies of the sightings acknowledged in the last ``window_s`` seconds."""
        since = (time.time() if now is None else now) - window_s
        return [lat for acked, lat in list(self._recent) if acked >= since]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread (unacknowledged sightings stay with the client) and close the client."""
        super().close(timeout)
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def _stamp_sent(self, batch: list[Sighting]) -> None:
        """Stamp the hand-over of sightings sent for the first time (a retry keeps the first stamp)."""
        now = time.time()
        for msg in batch:
            timing = self._timing.get(msg.sighting_id)
            if timing is not None and not timing.sent:
                timing.sent = now
                msg.published_at_us = int(now * 1e6)

    def _run(self) -> None:
        first = min(FIRST_BACKOFF_S, self.max_backoff_s)
        backoff = first
        while (batch := self._take(everything=True)) is not None:
            t0 = time.perf_counter()
            self._stamp_sent(batch)
            try:
                acks = self.client.publish(batch)
            except Exception as exc:
                stored = getattr(exc, "acks", None)  # PublishRejected: some refused as bad input, rest stored
                if stored is not None:
                    for r in getattr(exc, "rejected", []):
                        log.error("camera %s: gallery refused sighting %s: %s", self.camera_id, r.sighting_id, r.details)
                        self._timing.pop(r.sighting_id, None)
                    self._settle(list(stored), len(batch))
                    continue
                log.warning("camera %s: publishing %d sightings failed (%s); retrying in %.3g s",
                            self.camera_id, len(batch), exc, backoff)
                self._requeue(batch, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                continue
            backoff = first
            self._settle(list(acks), len(batch))
            log.debug("camera %s: %d sightings acked in %.1f ms", self.camera_id, len(acks),
                      1e3 * (time.perf_counter() - t0))

    def _settle(self, acks: list[PublishAck], batch_size: int) -> None:
        """Record the acks of a finished publish call (identity, latency, stages) and release the batch."""
        now = time.time()
        for ack in acks:
            sid = ack.sighting_id
            self.assignments[sid] = ack.identity_id
            timing = self._timing.pop(sid, None)
            if timing is not None and not ack.duplicate:
                latency = now - timing.event
                stages = {**timing.stages(), "gallery": max(0.0, now - timing.sent)}
                self.metrics.observe_sighting(stages, latency)
                self.latencies_s.append(latency)
                self.stages.append(stages)
                self._recent.append((now, latency))
        self.metrics.sightings.inc(len(acks))
        with self._cond:
            self.acked += len(acks)
            self.rejected += batch_size - len(acks)
        self._done()
