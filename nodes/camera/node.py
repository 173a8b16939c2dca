"""The camera node: one event camera's whole pipeline, as a plain class (a Ray actor wraps it).

    packets ─▶ 1 window ─▶ [bounded queue, drops oldest] ─▶ 4 detect ─▶ 5 track ─▶ 2 voxelize
            ─▶ 3 anonymize ─▶ 6 embed ─▶ 7 publish (gRPC, background thread)   + 8 audit tap (Redis)
                                                                               + console tile (Redis)

The numbers are the design's stages (docs/ARCHITECTURE.md); :meth:`CameraNode.process_batch` runs them
one call each. Raw events and raw voxels never leave this object: the gallery receives sightings
(embeddings of anonymized crops, box summaries, time spans) and the audit stream ``audit:<camera>``
receives sampled *anonymized* voxels (and, in simulation only, the world's reference frame for the
adversary's scores).

Each stage is an object of its own module, and this class only wires them and keeps the counters:

- ``windows``: the window queue between the source's reader thread and the pipeline;
- ``segments``: the segment book (which tracked windows are embedded, where a sighting closes; pure);
- ``inference``: voxelize, E_an and E_reid, shaped by the model bundle (bins, crop, embedding, stride,
  head redaction: when the anonymizer was trained behind one, the events of each detected or tracked
  person's head band are dropped before voxelising, events/redaction.py);
- ``publisher``: sightings to the gallery on a background thread; ``audit_tap`` the same for the audit
  stream (both on ``background.BackgroundQueue``), ``audit_schedule`` which windows it samples;
- ``tiles``: the console tile writer; ``ground_truth``: scoring against the world (simulation only).

Design choices that keep four cameras in real time on two CPU cores:

- Detection and tracking run on the raw event counts (cheap, no network) before anything is
  voxelized, so only the windows that feed an embedding or the audit tap get a voxel grid; E_an then
  runs only on the boxes to embed plus a halo (``anonymize_region="boxes"``, same values as cropping a
  full-frame anonymization), and on the full frame only for the sampled audit windows, on the audit
  tap's own low-priority thread, which skips a burst rather than make a live camera wait.
- A tracked person is embedded every ``embed_every`` windows, not every window, and all crops of a
  batch of windows go through the ReId network in one forward pass.
- Sightings are published by a background thread, so a slow or restarting gallery stalls neither the
  pipeline nor the source (unacknowledged sightings are kept and retried; the client replays them).

Sighting ids are ``<camera>-<tracklet>-<seq>`` with tracklet ids derived from stream time, and a
tracklet's segments are cut at the window where they fall due, never at a batch boundary (batches
follow timing), so they are idempotency keys: replaying the same stream publishes the same ids, spans
and contents, however its windows are batched.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import redis as redis_py

from anonreid.events.detection import ActivityDetector
from anonreid.events.types import EventFormatError, SensorSize, validate_events
from anonreid.nodes.camera.audit_schedule import AuditSchedule
from anonreid.nodes.camera.audit_tap import AuditBoxes, AuditTap, AuditWindow
from anonreid.nodes.camera.ground_truth import GroundTruth, GroundTruthFn
from anonreid.nodes.camera.inference import Anonymized, Inference
from anonreid.nodes.camera.publisher import GalleryPublish, SightingPublisher, sighting_message
from anonreid.nodes.camera.segments import EmbedJob, Segment, SegmentBook, SegmentPolicy
from anonreid.nodes.camera.throughput import Throughput
from anonreid.nodes.camera.tiles import TileWriter, TrackView
from anonreid.nodes.camera.windows import WindowItem, WindowQueue
from anonreid.nodes.latency import BatchClock, SightingTiming
from anonreid.nodes.metrics import CameraMetrics
from anonreid.nodes.tracking import Box, Tracker
from anonreid.orchestration.config import CameraConfig, EventsConfig
from anonreid.proto.console_tiles import LATENCY_WINDOW_S

if TYPE_CHECKING:
    from anonreid.events.windowing import Window
    from anonreid.models.bundle import ModelBundle
    from anonreid.proto.v1.sighting_pb2 import Sighting

log = logging.getLogger(__name__)


@dataclass
class BatchPlan:
    """What detection and tracking decided for a batch: the embeddings to compute, the segments that
    closed (in window order) and the windows sampled for the audit tap, with their detections."""

    jobs: list[EmbedJob] = field(default_factory=list)
    closed: list[Segment] = field(default_factory=list)
    audit_pos: list[int] = field(default_factory=list)
    audit_boxes: dict[int, AuditBoxes] = field(default_factory=dict)
    #: window position -> every person box of the window (detections and active tracks): the head
    #: redaction's boxes, filled only when the models redact
    people: dict[int, list[Box]] = field(default_factory=dict)


class CameraNode:
    """One camera's pipeline. Feed it with :meth:`push` + :meth:`process_pending`, or :meth:`run` a source.

    ``gallery`` publishes sightings (a ``GalleryClient``; None: sightings are only returned); ``redis`` a
    redis-py client for the audit tap and the console tile (None disables both); ``models`` a
    ``ModelBundle`` (loaded with ``load_model_bundle(config.model_dir)`` when None), whose bins, crop
    size, embedding size and stride shape the pipeline; ``window_t0_us`` anchors the window grid (the
    live world's ground truth uses multiples of the window length from 0).
    """

    def __init__(
        self,
        camera_id: str,
        sensor: SensorSize,
        config: CameraConfig | None = None,
        events: EventsConfig | None = None,
        *,
        gallery: GalleryPublish | None = None,
        redis: redis_py.Redis | None = None,
        models: ModelBundle | None = None,
        ground_truth: GroundTruthFn | None = None,
        clock_anchor: float | None = None,
        window_t0_us: int | None = None,
    ) -> None:
        import torch

        from anonreid.events.windowing import FixedDurationWindower

        self.camera_id = camera_id
        self.sensor = sensor
        self.config = cfg = config or CameraConfig()
        self.events_config = events or EventsConfig()
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.device = torch.device(
            "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        if models is None:
            from anonreid.models.bundle import load_model_bundle

            models = load_model_bundle(cfg.model_dir or None)
        self.models = models
        self.model_version = str(models.version)
        self.inference = Inference(models, sensor, self.device, halo_px=cfg.halo_px,
                                   full_frame=cfg.anonymize_region == "full",
                                   columns_min_aspect=cfg.redact_columns_min_aspect)
        if self.events_config.num_bins != self.inference.num_bins:
            log.warning("camera %s: the model bundle %s takes %d voxel bins; events.num_bins (%d) is not used here",
                        camera_id, self.model_version, self.inference.num_bins, self.events_config.num_bins)
        self.metrics = CameraMetrics(camera_id)
        self.detector = ActivityDetector.from_config(sensor, cfg.detector)
        self.tracker = Tracker.from_config(cfg.tracker)
        self.segments = SegmentBook(camera_id, self.inference.embed_dim, SegmentPolicy(
            cfg.embed_every, cfg.min_embeddings, cfg.publish_every, cfg.close_after_misses))
        # windows on a fixed grid (the world's ground truth uses the same one); None: first event
        self.windower = FixedDurationWindower(self.events_config.window_us, t0_us=window_t0_us)
        self.queue = WindowQueue(cfg.queue_windows)
        self.ground_truth = GroundTruth(camera_id, ground_truth)
        self.clock_anchor = clock_anchor  # wall time of stream time 0 (live sources), for latency
        self.clock_kind = "recording"  # "wall" when stream time + clock_anchor is the wall clock (live sources)
        self.redis = redis
        self.tiles: TileWriter | None = None
        self.audit: AuditTap | None = None
        self.audit_schedule: AuditSchedule | None = None
        if redis is not None:
            self.tiles = TileWriter(camera_id, redis, (sensor.width, sensor.height), cfg.tile_every_s,
                                    self.inference.blank_frame)
            self.audit = AuditTap(
                camera_id, redis, self.inference.anonymize_full, self.model_version, self.metrics,
                maxlen=cfg.audit_maxlen, pending_bursts=cfg.audit_pending_bursts, burst=cfg.audit_burst,
                reference=self.ground_truth.reference if ground_truth is not None else None,
                on_frame=self.tiles.set_full_frame,
            )
            self.audit_schedule = AuditSchedule(cfg.audit_every_s, cfg.audit_offset_s, cfg.audit_burst,
                                                self._begin_audit_burst)
        #: a live source must not wait for the audit tap (a full tap skips the burst); ``run`` sets it
        self.audit_waits = True
        self.publisher = (SightingPublisher(camera_id, gallery, self.metrics, max_backoff_s=cfg.publish_backoff_max_s)
                          if gallery is not None else None)
        self._last_t: int | None = None
        self.throughput = Throughput()
        self.failed_batches = 0
        self._lock = threading.Lock()  # guards push vs. process on the windower

    @property
    def observations(self) -> collections.deque[tuple[str | None, str | None]]:
        """(ground-truth identity or None, sighting id or None) per box per window (simulation only)."""
        return self.ground_truth.observations

    # ------------------------------------------------------------------------------------ ingest

    def push(self, packet: np.ndarray, arrival_wall: float | None = None, block: bool = False) -> int:
        """Window one event packet and queue the completed windows; returns windows dropped.

        A bad packet (wrong dtype, time going backwards, pixel off the sensor) is rejected whole,
        counted under ``anonreid_camera_bad_input_total`` and logged; the node keeps running.
        """
        arrival_wall = time.time() if arrival_wall is None else arrival_wall
        self.throughput.arrived(arrival_wall)
        try:
            validate_events(packet, self.sensor, source=f"camera {self.camera_id}", previous_t=self._last_t)
        except EventFormatError as exc:
            reason = (
                "time_backwards" if "backwards" in exc.reason else "out_of_sensor" if "outside" in exc.reason else "malformed"
            )
            self.metrics.bad_input(reason)
            log.warning("camera %s: rejected packet: %s", self.camera_id, exc)
            return 0
        if len(packet):
            self._last_t = int(packet["t"][-1])
        self.throughput.events_in += len(packet)
        self.metrics.events.inc(len(packet))
        t0 = time.perf_counter()
        with self._lock:
            windows = self.windower.push(packet)
        self.metrics.observe_stage("window", time.perf_counter() - t0, max(len(windows), 1))
        return self._enqueue(windows, arrival_wall, block)

    def advance(self, until_us: int, block: bool = False) -> int:
        """The source has sent every event before ``until_us`` (its watermark, during a gap in a paced
        recording): queue the windows that ended by then, empty ones too; returns windows dropped."""
        with self._lock:
            windows = self.windower.advance(until_us)
        return self._enqueue(windows, time.time(), block) if windows else 0

    def end_of_stream(self, block: bool = False) -> None:
        """Flush the last partial window into the queue (end of a finite source)."""
        with self._lock:
            windows = self.windower.flush()
        self._enqueue(windows, time.time(), block)

    def _enqueue(self, windows: list[Window], arrival_wall: float, block: bool = False) -> int:
        queued = time.time()
        items = [
            WindowItem(w.index, int(w.start_us), int(w.end_us), w.events, arrival_wall, queued) for w in windows
        ]
        dropped = self.queue.put(items, block)
        if dropped:
            self.metrics.dropped.inc(dropped)
        self.metrics.queue_depth.set(len(self.queue))
        return dropped

    # -------------------------------------------------------------------------------- processing

    def process_pending(self, timeout: float | None = 0.0) -> int:
        """Process queued windows in batches until the queue is empty; returns windows processed."""
        done = 0
        while True:
            batch = self.queue.get_batch(self.config.max_batch, timeout if done == 0 else 0.0)
            if not batch:
                return done
            self.process_batch(batch)
            done += len(batch)

    def process_batch(self, batch: list[WindowItem]) -> list[Sighting]:
        """Run the pipeline on a batch of consecutive windows (inference batched across them).

        Returns the sightings it published, in window order. They are a function of the windows alone,
        whatever the batching: a sighting segment closes at the window where it falls due (decided while
        tracking, which already knows the windows that will give each track an embedding) and takes the
        embeddings of the windows up to it. One that needs none of the batch's embeddings is published
        as soon as tracking has closed it, the others once the batch's inference is done.
        """
        clock = BatchClock()
        t_batch = time.perf_counter()
        cpu_batch = time.thread_time()  # torch runs its (single) intra-op thread in this one
        plan = self._detect_and_track(batch, clock)  # 4, 5 (stage 1, windowing, ran in push)
        early = self._publish_ready(plan, clock)  # 7, what needs no embedding of this batch
        voxels = self._voxelize(batch, plan, clock)  # 2
        anonymized = self._anonymize(voxels, plan, clock, len(batch))  # 3
        embeddings = self._embed(anonymized, clock, len(batch))  # 6
        t0 = time.perf_counter()
        sightings = self._publish(plan, embeddings, early, clock)  # 7, the rest
        self._audit(batch, plan, voxels, anonymized)  # 8
        self._tile(batch, anonymized)  # the console's live tile
        self.metrics.observe_stage("publish", time.perf_counter() - t0, len(batch))
        self._account(batch, time.perf_counter() - t_batch, time.thread_time() - cpu_batch)  # 9
        return sightings

    def _detect_and_track(self, batch: list[WindowItem], clock: BatchClock) -> BatchPlan:
        """Stages 4 and 5, window by window: detect people on the raw event counts, track them, schedule
        their embeddings and close the segments due (scoring against ground truth in simulation, and
        sampling the audit windows)."""
        plan = BatchPlan()
        detect_s = track_s = 0.0
        gts = self.ground_truth.for_windows(batch[0].start_us, batch[-1].start_us)
        for pos, item in enumerate(batch):
            t0 = time.perf_counter()
            detections = self.detector.update(item.events) if len(item.events) else []  # empty: no data (a gap)
            t1 = time.perf_counter()
            update = self.tracker.update(detections, item.start_us, item.end_us, observed=len(item.events) > 0)
            track_s += time.perf_counter() - t1
            detect_s += t1 - t0
            if self.inference.redaction is not None:  # a coasting track still covers a missed detection
                plan.people[pos] = [d.box for d in detections] + [tr.box for tr in update.active]
            event_wall = self._event_wall(item)
            plan.jobs += self.segments.observe(pos, item.index, item.start_us, update.active, event_wall)
            if gts is not None:  # (before the segments close: this window's boxes belong to them)
                self.ground_truth.score_window(detections, update.active, gts.get(item.start_us),
                                               self.segments.current_id)
            plan.closed += self.segments.close_due(update.active, update.ended, len(plan.jobs), event_wall,
                                                   item.queued_wall)
            if self.audit_schedule is not None and self.audit_schedule.sample(item.start_us):
                plan.audit_pos.append(pos)
                by_box = {tr.box: tr.track_id for tr in update.active if tr.matched}
                plan.audit_boxes[pos] = [(d.box, by_box.get(d.box, "")) for d in detections]
        self.metrics.observe_stage("detect", detect_s, len(batch))
        self.metrics.observe_stage("track", track_s, len(batch))
        clock.mark("detect_track")
        return plan

    def _voxelize(self, batch: list[WindowItem], plan: BatchPlan, clock: BatchClock) -> dict[int, np.ndarray]:
        """Stage 2, only for the windows that feed an embedding or the audit tap; the others were fully
        served by detection and tracking."""
        voxels = self.inference.voxelize(batch, {job.pos for job in plan.jobs} | set(plan.audit_pos), plan.people)
        self.metrics.observe_stage("voxelize", clock.mark("voxelize"), len(batch))
        return voxels

    def _anonymize(self, voxels: dict[int, np.ndarray], plan: BatchPlan, clock: BatchClock, n: int) -> Anonymized:
        anonymized = self.inference.anonymize(voxels, plan.jobs, plan.audit_pos)
        self.metrics.observe_stage("anonymize", clock.mark("anonymize"), n)
        return anonymized

    def _embed(self, anonymized: Anonymized, clock: BatchClock, n: int) -> np.ndarray:
        embeddings = self.inference.embed(anonymized.crops)
        self.metrics.observe_stage("embed", clock.mark("embed"), n)
        return embeddings

    def _publish_ready(self, plan: BatchPlan, clock: BatchClock) -> dict[int, Sighting]:
        """Publish the closed segments that need none of this batch's embeddings, without waiting for its
        inference; returns them by ``id`` of their segment."""
        ready = self.segments.ready(plan.closed, plan.jobs)
        made = {id(seg): self._sighting(seg, self.segments.embedding(seg.track), clock.without_inference())
                for seg in ready}
        if made and self.publisher is not None:
            self.publisher.submit(list(made.values()))
        return made

    def _publish(self, plan: BatchPlan, embeddings: np.ndarray, made: dict[int, Sighting],
                 clock: BatchClock) -> list[Sighting]:
        """Add the batch's embeddings to their tracks and publish the other closed segments; returns every
        sighting of the batch in window order, however they went out."""
        waiting = [seg for seg in plan.closed if id(seg) not in made]
        late = [self._sighting(seg, emb, clock)
                for seg, emb in zip(waiting, self.segments.embeddings_at(waiting, plan.jobs, embeddings), strict=True)]
        if late and self.publisher is not None:
            self.publisher.submit(late)
        made.update(zip(map(id, waiting), late, strict=True))
        return [made[id(seg)] for seg in plan.closed]

    def _sighting(self, seg: Segment, embedding: np.ndarray, clock: BatchClock) -> Sighting:
        msg = sighting_message(self.camera_id, seg, embedding, (self.sensor.width, self.sensor.height),
                               self.model_version, self.clock_kind, self.clock_anchor)
        if self.publisher is not None:
            self.publisher.expect(msg.sighting_id,
                                  SightingTiming(seg.event_wall, seg.close_wall, seg.queued_wall, clock))
        return msg

    def _audit(self, batch: list[WindowItem], plan: BatchPlan, voxels: dict[int, np.ndarray],
               anonymized: Anonymized) -> None:
        """Stage 8: hand the sampled windows to the audit tap (E_an on the full frame runs on its thread,
        unless the pipeline already ran it)."""
        if self.audit is None:
            return
        for pos in plan.audit_pos:
            frame = anonymized.audit_frames.get(pos)
            self.audit.put(AuditWindow(batch[pos].start_us, batch[pos].end_us, plan.audit_boxes[pos],
                                       voxel=voxels[pos] if frame is None else None, anonymized=frame))

    def _begin_audit_burst(self, windows: int) -> bool:
        assert self.audit is not None
        return self.audit.begin_burst(windows, wait=self.audit_waits)

    def _tile(self, batch: list[WindowItem], anonymized: Anonymized) -> None:
        """The console tile: the regions anonymized since the last one, with the confirmed tracks."""
        if self.tiles is None:
            return
        self.tiles.add_regions(anonymized.regions)
        if self.tiles.due(batch[-1].end_us):
            pub = self.publisher
            self.tiles.publish(self._track_views,
                               (lambda: pub.recent_latencies(LATENCY_WINDOW_S)) if pub is not None else None)

    def _track_views(self) -> list[TrackView]:
        assignments = self.publisher.assignments if self.publisher is not None else {}
        return [
            TrackView(t.track_id, (float(t.box[0]), float(t.box[1]), float(t.box[2]), float(t.box[3])),
                      assignments.get(self.segments.last_id(t), ""))
            for t in self.tracker.tracks if t.confirmed
        ]

    def _account(self, batch: list[WindowItem], busy: float, cpu_s: float) -> None:
        """Stage 9: the batch's counters and gauges."""
        m = self.metrics
        stream_s = sum(item.end_us - item.start_us for item in batch) / 1e6
        rtf = self.throughput.batch(len(batch), stream_s, batch[-1].end_us, busy, cpu_s)
        m.windows.inc(len(batch))
        m.active_tracks.set(sum(1 for t in self.tracker.tracks if t.confirmed))
        m.queue_depth.set(len(self.queue))
        m.realtime_factor.set(rtf)

    def _event_wall(self, item: WindowItem) -> float:
        """Wall time at which the window's last event happened (live sources) or arrived (others). The
        last window of a stream ends after its last event (it is flushed short), so its events count."""
        if self.clock_anchor is not None:
            last_us = min(item.end_us, int(item.events["t"][-1])) if len(item.events) else item.end_us
            return self.clock_anchor + last_us / 1e6
        return item.arrival_wall

    # ----------------------------------------------------------------------------------- running

    def run(
        self,
        packets: Iterable[np.ndarray],
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        on_processed: Callable[[int], None] | None = None,
        backpressure: bool = False,
        watermark: Callable[[], int | None] | None = None,
    ) -> dict[str, Any]:
        """Pull ``packets`` on a reader thread, process on this one, until exhausted / stopped / duration.

        ``watermark``: the source's watermark (``EventSource.watermark_us``), read after each empty
        packet (a tick of a paced source in a gap) to complete the windows the gap has passed.

        ``on_processed(end_us)`` is called after each batch with the end time of the last processed
        window (a Redis source acknowledges its messages there). With ``backpressure`` a full queue
        makes the reader wait instead of dropping the oldest windows (for sources that buffer
        durably: files, Redis streams), and a full audit tap makes the pipeline wait instead of
        skipping a burst; a live source must not wait, so it drops windows and skips bursts.
        """
        stop = stop or threading.Event()
        self.audit_waits = backpressure
        reader_done = threading.Event()
        errors: list[BaseException] = []

        def reader() -> None:
            try:
                cpu0 = time.thread_time()
                for packet in packets:
                    if stop.is_set():
                        break
                    if len(packet) or watermark is None:
                        self.push(packet, block=backpressure)
                    elif (until := watermark()) is not None:
                        self.advance(until, block=backpressure)
                    self.throughput.source_cpu_s = time.thread_time() - cpu0
                if not stop.is_set():
                    self.end_of_stream(block=backpressure)
            except BaseException as exc:  # surfaced to the caller below
                errors.append(exc)
            finally:
                reader_done.set()
                self.queue.close()

        thread = threading.Thread(target=reader, name=f"source-{self.camera_id}", daemon=True)
        deadline = None if duration_s is None else time.monotonic() + duration_s
        thread.start()
        try:
            while not stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                batch = self.queue.get_batch(self.config.max_batch, 0.05)
                if batch:
                    try:
                        self.process_batch(batch)
                    except Exception:  # one bad batch must not take the camera down; it is logged and skipped
                        self.failed_batches += 1
                        log.exception("camera %s: batch of %d windows at %d us failed; skipped",
                                      self.camera_id, len(batch), batch[0].start_us)
                    if on_processed is not None:
                        on_processed(batch[-1].end_us)
                elif reader_done.is_set() and not len(self.queue):
                    break
        finally:
            self.throughput.ended_wall = time.time()
            stop.set()
            thread.join(timeout=5)
        if errors:
            raise errors[0]
        self.finish()
        return self.stats()

    def finish(self, timeout: float = 10.0, audit_timeout: float = 300.0) -> list[Sighting]:
        """End every live tracklet (publishing its final sighting) and wait for the acks, and for the audit
        tap to write what it has taken: ``timeout`` on a live stream, ``audit_timeout`` on a stream that
        buffers durably (its audit must not depend on timing). What is still unwritten then is counted in
        the stats (``audit_pending``) and logged; :meth:`close` writes it."""
        # every batch's embeddings are in: the final segments take all of them
        clock = BatchClock.none()
        now = time.time()
        segments = self.segments.close_due([], self.tracker.flush(), 0, now, now)
        sightings = [self._sighting(seg, self.segments.embedding(seg.track), clock) for seg in segments]
        if sightings and self.publisher is not None:
            self.publisher.submit(sightings)
        if self.publisher is not None:
            self.publisher.drain(timeout)
        if self.audit is not None and not self.audit.drain(audit_timeout if self.audit_waits else timeout):
            log.warning("camera %s: the audit tap still has %d sample(s) to write at the end of the stream",
                        self.camera_id, self.audit.pending())
        return sightings

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self.audit is not None:
            self.audit.close()

    def stats(self) -> dict[str, Any]:
        """Counters for the demo summary (plain Python types, cheap to send from an actor)."""
        pub = self.publisher
        return {
            "camera": self.camera_id,
            **self.throughput.summary(self.queue.dropped, len(self.queue)),
            "sightings_submitted": pub.submitted if pub else 0,
            "sightings_acked": pub.acked if pub else 0,
            "sightings_rejected": pub.rejected if pub else 0,
            "sightings_pending": pub.pending() if pub else 0,
            "audit_samples": self.audit.samples if self.audit else 0,  # written to audit:<camera>
            "audit_pending": self.audit.pending() if self.audit else 0,  # taken, not written yet
            "audit_skipped_bursts": self.audit.skipped_bursts if self.audit else 0,
            "audit_cpu_s": self.audit.cpu_s if self.audit else 0.0,
            "failed_batches": self.failed_batches,
            "active_tracks": sum(1 for t in self.tracker.tracks if t.confirmed),
            "model_version": self.model_version,
            "detection": self.ground_truth.detection_summary(),
        }

    def evaluation(self) -> dict[str, Any]:
        """Ground-truth observations and the gallery's acks (identity, latency) for the demo summary."""
        pub = self.publisher
        return {
            "observations": list(self.ground_truth.observations),
            "assignments": dict(pub.assignments) if pub else {},
            "latencies_s": list(pub.latencies_s) if pub else [],
            "latency_stages": list(pub.stages) if pub else [],  # seconds per stage, per sighting (nodes/latency.py)
        }
