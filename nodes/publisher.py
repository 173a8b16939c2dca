"""The camera node's sighting publisher: a background thread that hands sightings to the gallery client,
records the acks and each sighting's latency (:mod:`anonreid.nodes.latency`)."""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

from anonreid.nodes.latency import SightingTiming
from anonreid.nodes.metrics import CameraMetrics

log = logging.getLogger(__name__)

#: acknowledged sightings kept for the live latency window (the console's p95)
RECENT_MAX = 2000
STAGES_KEPT = 10_000


class SightingPublisher:
    """Background thread that publishes sightings to the gallery and records the acks.

    Sightings wait in an in-memory list until acknowledged; a failed publish is retried with
    exponential backoff (1 s .. 30 s), so nothing is lost while the gallery restarts (the gallery is
    idempotent by sighting id, so a retry after a lost ack changes nothing). A sighting whose timing
    was given (:meth:`expect`) is stamped ``published_at_us`` when first handed to the client, and its
    ack records its latency and stages (:meth:`CameraMetrics.observe_sighting`).
    """

    def __init__(self, camera_id: str, client: Any, metrics: CameraMetrics) -> None:
        self.camera_id = camera_id
        self.client = client
        self.metrics = metrics
        self._pending: list[Any] = []
        self._cond = threading.Condition()
        self._closed = False
        self._inflight = 0
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
        self._thread = threading.Thread(target=self._loop, name=f"publish-{camera_id}", daemon=True)
        self._thread.start()

    def expect(self, sighting_id: str, timing: SightingTiming) -> None:
        """The timing of a sighting about to be submitted (its latency is recorded at its ack)."""
        self._timing[sighting_id] = timing

    def submit(self, sightings: list[Any]) -> None:
        with self._cond:
            self._pending.extend(sightings)
            self.submitted += len(sightings)
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._pending) + self._inflight

    def recent_latencies(self, window_s: float, now: float | None = None) -> list[float]:
        """Event-to-identity latencies of the sightings acknowledged in the last ``window_s`` seconds."""
        since = (time.time() if now is None else now) - window_s
        return [lat for acked, lat in list(self._recent) if acked >= since]

    def drain(self, timeout: float) -> bool:
        """Wait until every submitted sighting is acknowledged (or ``timeout``); True when drained."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._pending or self._inflight) and time.monotonic() < deadline:
                self._cond.wait(0.05)
            return not (self._pending or self._inflight)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def _stamp_sent(self, batch: list[Any]) -> None:
        """Stamp the hand-over of sightings sent for the first time (a retry keeps the first stamp)."""
        now = time.time()
        for msg in batch:
            timing = self._timing.get(msg.sighting_id)
            if timing is not None and not timing.sent:
                timing.sent = now
                msg.published_at_us = int(now * 1e6)

    def _loop(self) -> None:
        backoff = 1.0
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                batch, self._pending = self._pending, []
                self._inflight = len(batch)
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
                log.warning("camera %s: publishing %d sightings failed (%s); retrying in %.0f s",
                            self.camera_id, len(batch), exc, backoff)
                with self._cond:
                    self._pending = batch + self._pending
                    self._inflight = 0
                    self._cond.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            backoff = 1.0
            self._settle(list(acks), len(batch))
            log.debug("camera %s: %d sightings acked in %.1f ms", self.camera_id, len(acks),
                      1e3 * (time.perf_counter() - t0))

    def _settle(self, acks: list[Any], batch_size: int) -> None:
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
            self._inflight = 0
            self._cond.notify_all()
