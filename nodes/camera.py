"""The camera node: one event camera's whole pipeline, as a plain class (a Ray actor wraps it).

    packets ─▶ window ─▶ [bounded queue, drops oldest] ─▶ voxelize ─▶ detect ─▶ track
            ─▶ anonymize ─▶ embed ─▶ publish (gRPC, background thread)    + audit tap (Redis)

Raw events and raw voxels never leave this object: the gallery receives sightings (embeddings of
anonymized crops, box summaries, time spans) and the audit stream ``audit:<camera>`` receives sampled
*anonymized* voxels (and, in simulation only, the world's reference frame for the adversary's
scores).

Design choices that keep four cameras in real time on two CPU cores:

- Detection runs on the raw event-count image inside the node (cheap, no network); the anonymizer then
  runs only where it is needed: on the union of the boxes to embed plus a halo at least as wide as
  its receptive field (``anonymize_region="boxes"``), which gives the same values as cropping a
  full-frame anonymization (tested in tests/test_camera_node.py), and on the full frame only for the
  sampled audit windows, on the audit tap's own low-priority thread (nodes/audit_tap.py), which skips
  a burst rather than make a live camera wait.
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
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anonreid.events.types import EventFormatError, SensorSize, validate_events
from anonreid.nodes.audit_tap import AuditTap, AuditWindow
from anonreid.nodes.detection import ActivityDetector, Detection, DetectorConfig, box_iou
from anonreid.nodes.latency import BatchClock, SightingTiming
from anonreid.nodes.metrics import CameraMetrics
from anonreid.nodes.publisher import SightingPublisher
from anonreid.nodes.stream_clock import stream_clock
from anonreid.nodes.tracking import Box, Track, Tracker, TrackerConfig
from anonreid.orchestration.config import CameraConfig, EventsConfig

log = logging.getLogger(__name__)

EMBED_DIM = 256


#: simulation-only side channel: ground truth of the windows starting in ``[t0_us, t1_us)`` (boxes,
#: identities; reference frames too when ``frames``), for evaluation and the audit tap, never published
GroundTruthFn = Callable[[int, int, bool], list[Any]]


@dataclass
class WindowItem:
    """A complete window waiting in the queue."""

    index: int
    start_us: int
    end_us: int
    events: np.ndarray
    arrival_wall: float
    queued_wall: float = 0.0  # when it entered the queue (a sighting's latency stages, nodes/latency.py)


class WindowQueue:
    """Bounded FIFO of windows: when full, the oldest window is dropped and counted."""

    def __init__(self, maxlen: int) -> None:
        self._items: collections.deque[WindowItem] = collections.deque()
        self._maxlen = maxlen
        self._cond = threading.Condition()
        self.dropped = 0
        self.closed = False

    def put(self, items: Iterable[WindowItem], block: bool = False) -> int:
        """Append windows; when full, drop the oldest (live sources) or wait for room (``block``:
        sources that buffer durably themselves, such as a file or a Redis stream)."""
        dropped = 0
        with self._cond:
            for item in items:
                while block and len(self._items) >= self._maxlen and not self.closed:
                    self._cond.wait(0.1)
                if len(self._items) >= self._maxlen:
                    self._items.popleft()
                    dropped += 1
                self._items.append(item)
            self.dropped += dropped
            self._cond.notify_all()
        return dropped

    def get_batch(self, max_items: int, timeout: float | None) -> list[WindowItem]:
        with self._cond:
            if not self._items and not self.closed:
                self._cond.wait(timeout)
            n = min(max_items, len(self._items))
            batch = [self._items.popleft() for _ in range(n)]
            if batch:
                self._cond.notify_all()  # room for a blocked producer
            return batch

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class TrackState:
    """Camera-node state of one tracklet (kept in ``Track.extra``)."""

    emb_sum: np.ndarray = field(default_factory=lambda: np.zeros(EMBED_DIM, np.float64))
    emb_count: int = 0  # embeddings scheduled (those of the batch in flight are added to emb_sum after it)
    seg_emb_count: int = 0
    seq: int = 0
    seg_start_us: int = -1
    seg_windows: int = 0
    seg_boxes: int = 0
    seg_area: float = 0.0
    seg_score: float = 0.0
    last_embed_index: int = -(10**9)
    published: int = 0
    last_event_wall: float = 0.0


@dataclass
class _Segment:
    """A sighting segment closed at one window: all of its sighting but the embedding, which is the
    track's running mean once the batch's first ``jobs_before`` embedding jobs are added."""

    track: Track
    seq: int
    start_us: int
    end_us: int
    box: Box
    num_boxes: int
    mean_area: float
    velocity: tuple[float, float]
    quality: float
    event_wall: float  # its last event (nodes/latency.py)
    close_wall: float  # the window it closed at (ended, or arrived)
    queued_wall: float  # that window entered the queue
    jobs_before: int


@dataclass
class EvalCounts:
    """Detection quality against ground truth (simulation only)."""

    gt_boxes: int = 0
    detections: int = 0
    matched: int = 0


class CameraNode:
    """One camera's pipeline. Feed it with :meth:`push` + :meth:`process_pending`, or :meth:`run` a source.

    ``gallery`` is anything with ``publish(list[Sighting]) -> list[PublishAck]`` (a GalleryClient);
    ``redis`` a redis-py client for the audit tap (None disables it); ``models`` a
    ``ModelBundle`` (loaded with ``load_model_bundle(config.model_dir)`` when None);
    ``window_t0_us`` anchors the window grid (the live world's ground truth uses multiples of the
    window length from 0).
    """

    def __init__(
        self,
        camera_id: str,
        sensor: SensorSize,
        config: CameraConfig | None = None,
        events: EventsConfig | None = None,
        *,
        gallery: Any = None,
        redis: Any = None,
        models: Any = None,
        ground_truth: GroundTruthFn | None = None,
        clock_anchor: float | None = None,
        detector: DetectorConfig | None = None,
        tracker: TrackerConfig | None = None,
        window_t0_us: int | None = None,
    ) -> None:
        import torch

        from anonreid.events.windowing import FixedDurationWindower

        self.camera_id = camera_id
        self.sensor = sensor
        self.config = config or CameraConfig()
        self.events_config = events or EventsConfig()
        cfg = self.config
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.device = torch.device(
            "cuda" if cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()) else "cpu"
        )
        if models is None:
            from anonreid.models.bundle import load_model_bundle

            models = load_model_bundle(cfg.model_dir or None)
        self.models = models
        # channels-last runs these convolutions ~3x (E_an) and ~1.1x (ReId) faster on CPU (oneDNN)
        self.anonymizer = models.anonymizer.to(self.device, memory_format=torch.channels_last).eval()
        self.reid = models.reid.to(self.device, memory_format=torch.channels_last).eval()
        self.model_version = str(models.version)
        self.crop_hw = tuple(models.crop_hw)
        self.metrics = CameraMetrics(camera_id)
        self.detector = ActivityDetector(sensor, detector)
        self.tracker = Tracker(tracker)
        # windows on a fixed grid (the world's ground truth uses the same one); None: first event
        self.windower = FixedDurationWindower(self.events_config.window_us, t0_us=window_t0_us)
        self.queue = WindowQueue(cfg.queue_windows)
        self.ground_truth = ground_truth
        self.clock_anchor = clock_anchor  # wall time of stream time 0 (live sources), for latency
        self.clock_kind = "recording"  # "wall" when stream time + clock_anchor is the wall clock (live sources)
        self.redis = redis
        self.audit: AuditTap | None = None
        if redis is not None:
            self.audit = AuditTap(
                camera_id, redis, self._anonymize_full, self.model_version, self.metrics,
                maxlen=cfg.audit_maxlen, pending_bursts=cfg.audit_pending_bursts, burst=cfg.audit_burst,
                reference=self._reference if ground_truth is not None else None, on_frame=self._set_tile_frame,
            )
        #: a live source must not wait for the audit tap (a full tap skips the burst); ``run`` sets it
        self.audit_waits = True
        self._next_audit_us: int | None = None
        self._audit_offset_s = cfg.audit_offset_s  # applied once, after the first sample
        self._audit_burst_left = 0
        self._last_t: int | None = None
        self._events_in = 0
        self._windows_done = 0
        self._busy_s = 0.0
        self._process_cpu0 = 0.0
        self._pipeline_cpu_s = 0.0  # CPU time of the processing thread (independent of machine load)
        self._source_cpu_s = 0.0  # CPU time of the reader thread (the source: a live world renders here)
        self._stream_s_done = 0.0
        self._started_wall: float | None = None
        self._ended_wall: float | None = None  # when ``run`` stopped processing (rates exclude the final drain)
        self._last_window_end_us = 0
        self.eval = EvalCounts()
        #: (ground-truth identity or None, sighting id or None) per box per window (simulation only)
        self.observations: collections.deque[tuple[str | None, str | None]] = collections.deque(maxlen=500_000)
        self.failed_batches = 0
        self._next_tile_us = 0
        self._tile_full: np.ndarray | None = None
        self._tile_blank: np.ndarray | None = None
        self._tile_regions: list[tuple[int, int, Any]] = []
        self.publisher = SightingPublisher(camera_id, gallery, self.metrics) if gallery is not None else None
        self._rtf_window: collections.deque[tuple[float, float]] = collections.deque(maxlen=64)
        self._lock = threading.Lock()  # guards push vs. process on the windower

    # ------------------------------------------------------------------------------------ ingest

    def push(self, packet: np.ndarray, arrival_wall: float | None = None, block: bool = False) -> int:
        """Window one event packet and queue the completed windows; returns windows dropped.

        A bad packet (wrong dtype, time going backwards, pixel off the sensor) is rejected whole,
        counted under ``anonreid_camera_bad_input_total`` and logged; the node keeps running.
        """
        arrival_wall = time.time() if arrival_wall is None else arrival_wall
        if self._started_wall is None:
            self._started_wall = arrival_wall
            self._process_cpu0 = time.process_time()
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
        self._events_in += len(packet)
        self.metrics.events.inc(len(packet))
        t0 = time.perf_counter()
        with self._lock:
            windows = self.windower.push(packet)
        self.metrics.observe_stage("window", time.perf_counter() - t0, max(len(windows), 1))
        return self._enqueue(windows, arrival_wall, block)

    def end_of_stream(self, block: bool = False) -> None:
        """Flush the last partial window into the queue (end of a finite source)."""
        with self._lock:
            windows = self.windower.flush()
        self._enqueue(windows, time.time(), block)

    def _enqueue(self, windows: list[Any], arrival_wall: float, block: bool = False) -> int:
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

    def process_batch(self, batch: list[WindowItem]) -> list[Any]:
        """Run the pipeline on a batch of consecutive windows (inference batched across them).

        Returns the sightings it published, in window order. They are a function of the windows alone,
        whatever the batching: a sighting segment closes at the window where it falls due (decided while
        tracking, which already knows the windows that will give each track an embedding) and takes the
        embeddings of the windows up to it. One that needs none of the batch's embeddings is published
        as soon as tracking has closed it, the others once the batch's inference is done.
        """
        import torch

        from anonreid.events.voxel import events_to_voxel

        cfg = self.config
        m = self.metrics
        clock = BatchClock()
        t_batch = time.perf_counter()
        cpu_batch = time.thread_time()  # torch runs its (single) intra-op thread in this one
        ev_cfg = self.events_config
        w, h = self.sensor.width, self.sensor.height

        jobs: list[tuple[int, Track, Box]] = []  # (position in batch, track, its box in that window) to embed
        closed: list[_Segment] = []  # sighting segments closed in this batch, in window order
        audit_pos: list[int] = []
        audit_boxes: dict[int, list[tuple[tuple[float, float, float, float], str]]] = {}
        detect_s = track_s = 0.0
        gts = self._ground_truth_for(batch)
        for pos, item in enumerate(batch):
            t0 = time.perf_counter()
            detections = self.detector.update(item.events) if len(item.events) else []  # empty: no data (a gap)
            t1 = time.perf_counter()
            update = self.tracker.update(detections, item.start_us, item.end_us, observed=len(item.events) > 0)
            track_s += time.perf_counter() - t1
            detect_s += t1 - t0
            event_wall = self._event_wall(item)
            for tr in update.active:
                st = _state(tr)
                if not tr.matched:
                    continue
                if st.seg_start_us < 0:
                    st.seg_start_us = tr.start_us if st.seq == 0 else item.start_us
                st.seg_windows += 1
                st.seg_boxes += 1
                st.seg_area += _area(tr.box)
                st.seg_score += tr.score
                st.last_event_wall = event_wall
                if item.index - st.last_embed_index >= cfg.embed_every:
                    st.last_embed_index = item.index
                    st.emb_count += 1  # its embedding is computed below, with the whole batch's
                    st.seg_emb_count += 1
                    jobs.append((pos, tr, tr.box))  # the box of *this* window (later windows move it)
            if gts is not None:  # (before the segments close: this window's boxes belong to them)
                self._evaluate_window(item, detections, update.active, gts.get(item.start_us))
            closed += self._close_segments(update.active, update.ended, len(jobs), item)
            if self._next_audit_us is None:
                self._next_audit_us = item.start_us
            if self.audit is not None:
                # a burst of ``audit_burst`` consecutive windows: the recurrent attacker needs temporal context;
                # the next one starts when it falls due and the last one is complete
                if item.start_us >= self._next_audit_us and self._audit_burst_left == 0:
                    taken = self.audit.begin_burst(cfg.audit_burst, wait=self.audit_waits)
                    self._audit_burst_left = cfg.audit_burst if taken else 0
                    # the first sample comes at once; the offset then shifts the whole schedule
                    offset, self._audit_offset_s = self._audit_offset_s, 0.0
                    self._next_audit_us = item.start_us + int((cfg.audit_every_s + offset) * 1e6)
                if self._audit_burst_left > 0:
                    self._audit_burst_left -= 1
                    audit_pos.append(pos)
                    by_box = {tr.box: tr.track_id for tr in update.active if tr.matched}
                    audit_boxes[pos] = [(d.box, by_box.get(d.box, "")) for d in detections]
        m.observe_stage("detect", detect_s, len(batch))
        m.observe_stage("track", track_s, len(batch))
        clock.mark("detect_track")
        # a segment that needs none of this batch's embeddings (no job of its track before it) goes out now,
        # without waiting for the batch's inference; the others after it
        made = {id(seg): self._make_sighting(seg, clock.without_inference()) for seg in closed
                if not any(tr is seg.track for _pos, tr, _box in jobs[: seg.jobs_before])}
        if made and self.publisher is not None:
            self.publisher.submit(list(made.values()))

        # only windows that feed an embedding or the audit tap need a voxel grid (normalised over the
        # whole frame, as E_an was trained); the others were fully served by detection and tracking
        needed = {pos for pos, _tr, _box in jobs} | set(audit_pos)
        voxels = {
            pos: events_to_voxel(
                batch[pos].events, ev_cfg.num_bins, h, w, normalize=True, t_range=(batch[pos].start_us, batch[pos].end_us)
            )
            for pos in sorted(needed)
        }
        m.observe_stage("voxelize", clock.mark("voxelize"), len(batch))

        crops, full_frames = self._anonymize(voxels, batch, jobs, audit_pos)
        m.observe_stage("anonymize", clock.mark("anonymize"), len(batch))

        emb = np.zeros((0, EMBED_DIM), np.float32)
        if crops is not None:
            with torch.inference_mode():
                feats = self.reid(crops.contiguous(memory_format=torch.channels_last))
            emb = torch.nn.functional.normalize(feats.float(), dim=1).cpu().numpy()
        m.observe_stage("embed", clock.mark("embed"), len(batch))

        t0 = time.perf_counter()
        waiting = [seg for seg in closed if id(seg) not in made]
        late = self._emit(waiting, jobs, emb, clock)
        if late and self.publisher is not None:
            self.publisher.submit(late)
        made.update(zip(map(id, waiting), late, strict=True))
        sightings = [made[id(seg)] for seg in closed]  # in window order, however they went out
        if self.audit is not None:
            for pos in audit_pos:  # E_an on the full frame runs on the tap's thread (unless it ran above)
                anon = full_frames.get(pos)
                self.audit.put(AuditWindow(batch[pos].start_us, batch[pos].end_us, audit_boxes[pos],
                                           voxel=voxels[pos] if anon is None else None, anonymized=anon))
        if self.redis is not None and batch[-1].end_us >= self._next_tile_us:
            self._next_tile_us = batch[-1].end_us + int(cfg.tile_every_s * 1e6)
            self._publish_tile()
        m.observe_stage("publish", time.perf_counter() - t0, len(batch))

        busy = time.perf_counter() - t_batch
        self._pipeline_cpu_s += time.thread_time() - cpu_batch
        stream_s = sum(item.end_us - item.start_us for item in batch) / 1e6
        self._busy_s += busy
        self._stream_s_done += stream_s
        self._windows_done += len(batch)
        self._last_window_end_us = batch[-1].end_us
        self._rtf_window.append((stream_s, busy))
        m.windows.inc(len(batch))
        m.active_tracks.set(sum(1 for t in self.tracker.tracks if t.confirmed))
        m.queue_depth.set(len(self.queue))
        rtf = sum(s for s, _ in self._rtf_window) / max(sum(b for _, b in self._rtf_window), 1e-9)
        m.realtime_factor.set(rtf)
        return sightings

    def _event_wall(self, item: WindowItem) -> float:
        """Wall time at which the window's last event happened (live sources) or arrived (others). The
        last window of a stream ends after its last event (it is flushed short), so its events count."""
        if self.clock_anchor is not None:
            last_us = min(item.end_us, int(item.events["t"][-1])) if len(item.events) else item.end_us
            return self.clock_anchor + last_us / 1e6
        return item.arrival_wall

    # ------------------------------------------------------------------------ anonymize + crop

    def _anonymize(
        self, voxels: dict[int, np.ndarray], batch: list[WindowItem], jobs: list[tuple[int, Track, Box]], audit_pos: list[int]
    ) -> tuple[Any, dict[int, np.ndarray]]:
        """Anonymized crops (N, B, h, w) for the embed jobs, and full anonymized frames for the audit tap."""
        import torch

        from anonreid.events.voxel import crop_resize_voxel

        full_frames: dict[int, Any] = {}  # position in batch -> anonymized full frame (tensor)
        crops: list[Any] = []
        if self.config.anonymize_region == "full":
            with torch.inference_mode():
                for p in sorted({pos for pos, _tr, _box in jobs}):  # one frame at a time: a batch of full
                    # frames thrashes the CPU caches (3 frames: 0.47 s batched, 0.36 s one by one, measured)
                    full_frames[p] = self.anonymizer(_to_device(voxels[p][None], self.device))[0]
        for pos, _tr, box in jobs:  # crops in job order (the embeddings are matched back by position)
            if pos in full_frames:
                region, (ox, oy) = full_frames[pos], (0, 0)
            else:
                # one region per box: cost follows the people's area, not the distance between them
                x1, y1, x2, y2 = self._region([box])
                x = _to_device(voxels[pos][None, :, y1:y2, x1:x2], self.device)
                with torch.inference_mode():
                    region = self.anonymizer(x)[0]
                ox, oy = x1, y1
                if self.redis is not None:  # the console tile shows the regions since the last one
                    self._tile_regions.append((x1, y1, region))
            bx1, by1, bx2, by2 = box
            crops.append(crop_resize_voxel(region, (bx1 - ox, by1 - oy, bx2 - ox, by2 - oy), self.crop_hw))
        audit_frames = {p: full_frames[p].float().cpu().numpy() for p in audit_pos if p in full_frames}
        return (torch.stack(crops) if crops else None), audit_frames

    def _anonymize_full(self, voxel: np.ndarray) -> np.ndarray:
        """E_an on one full (B, H, W) voxel grid (the audit tap's thread calls it)."""
        import torch

        with torch.inference_mode():
            return self.anonymizer(_to_device(voxel[None], self.device))[0].float().cpu().numpy()

    def _set_tile_frame(self, anon: np.ndarray) -> None:
        self._tile_full = anon

    def _region(self, boxes: list[tuple[float, float, float, float]]) -> tuple[int, int, int, int]:
        """Union of boxes plus the halo, aligned to 8 px (strided anonymizers stay shift-equivariant)."""
        halo = self.config.halo_px
        x1 = min(b[0] for b in boxes) - halo
        y1 = min(b[1] for b in boxes) - halo
        x2 = max(b[2] for b in boxes) + halo
        y2 = max(b[3] for b in boxes) + halo
        x1 = max(0, math.floor(x1 / 8) * 8)
        y1 = max(0, math.floor(y1 / 8) * 8)
        x2 = min(self.sensor.width, math.ceil(x2 / 8) * 8)
        y2 = min(self.sensor.height, math.ceil(y2 / 8) * 8)
        return x1, y1, x2, y2

    # ------------------------------------------------------------------------------- sightings

    def _close_segments(
        self, active: list[Track], ended: list[Track], jobs_before: int, item: WindowItem | None
    ) -> list[_Segment]:
        """Close the sighting segments due at window ``item`` (None: the end of the stream): a live
        tracklet's first sighting (once it has ``min_embeddings`` embeddings scheduled) or its update
        (every ``publish_every`` seen windows); the open segment of a tracklet missed for
        ``close_after_misses`` windows in a row, as soon as that is known (what the track does after
        starts its next segment); and the final sighting of every tracklet that ended here with an open
        segment. O(tracks) per window.
        """
        cfg = self.config
        out = []
        for tr in active:
            st = _state(tr)
            first_due = st.published == 0 and st.emb_count >= cfg.min_embeddings
            update_due = st.published > 0 and st.seg_windows >= cfg.publish_every and st.seg_emb_count > 0
            missed_due = 0 < cfg.close_after_misses <= tr.misses and st.emb_count > 0 and st.seg_windows > 0
            if first_due or update_due or missed_due:
                out.append(self._close(tr, st, jobs_before, item))
        for tr in ended:
            st = _state(tr)
            if st.emb_count > 0 and st.seg_windows > 0:
                out.append(self._close(tr, st, jobs_before, item))
        return out

    def _close(self, tr: Track, st: TrackState, jobs_before: int, item: WindowItem | None) -> _Segment:
        """Snapshot the track's segment as of window ``item`` and start its next one."""
        vx, vy = tr.mean_velocity_px_s()
        seg = _Segment(
            track=tr, seq=st.seq, start_us=st.seg_start_us, end_us=tr.last_us, box=tr.box,
            num_boxes=st.seg_boxes, mean_area=st.seg_area / max(st.seg_boxes, 1), velocity=(vx, vy),
            quality=float(np.clip(st.seg_score / max(st.seg_boxes, 1) * min(1.0, st.emb_count / 4), 0, 1)),
            event_wall=st.last_event_wall, jobs_before=jobs_before,
            close_wall=self._event_wall(item) if item is not None else time.time(),
            queued_wall=item.queued_wall if item is not None else time.time(),
        )
        st.seq += 1
        st.published += 1
        st.seg_start_us = -1
        st.seg_windows = st.seg_boxes = st.seg_emb_count = 0
        st.seg_area = st.seg_score = 0.0
        return seg

    def _emit(
        self, closed: list[_Segment], jobs: list[tuple[int, Track, Box]], emb: np.ndarray, clock: BatchClock
    ) -> list[Any]:
        """Add the batch's embeddings to their tracks in window order, and turn each closed segment
        into its sighting when the embeddings of the windows up to its own are in."""
        out = []
        done = 0
        for seg in [*closed, None]:  # in window order, so jobs_before never decreases
            upto = len(jobs) if seg is None else seg.jobs_before
            for (_pos, tr, _box), e in zip(jobs[done:upto], emb[done:upto], strict=True):
                _state(tr).emb_sum += e
            done = upto
            if seg is not None:
                out.append(self._make_sighting(seg, clock))
        return out

    def _make_sighting(self, seg: _Segment, clock: BatchClock) -> Any:
        from anonreid.proto.v1 import sighting_pb2

        emb_sum = _state(seg.track).emb_sum
        emb = emb_sum / max(np.linalg.norm(emb_sum), 1e-12)
        x1, y1, x2, y2 = map(float, np.clip(seg.box, 0, [self.sensor.width, self.sensor.height] * 2))  # in frame
        sid = f"{self.camera_id}-{seg.track.track_id}-{seg.seq}"
        msg = sighting_pb2.Sighting(
            sighting_id=sid,
            camera_id=self.camera_id,
            tracklet_id=seg.track.track_id,
            span=sighting_pb2.TimeSpan(start_us=seg.start_us, end_us=seg.end_us),
            box=sighting_pb2.BoxSummary(
                x1=x1, y1=y1, x2=x2, y2=y2, num_boxes=seg.num_boxes, mean_area=seg.mean_area,
                velocity_x=seg.velocity[0], velocity_y=seg.velocity[1],
            ),
            embedding=emb.astype(np.float32).tolist(),
            quality=seg.quality,
            model_version=self.model_version,
            published_at_us=int(time.time() * 1e6),  # stamped again when handed to the gallery client
            event_at_us=int(seg.event_wall * 1e6),
            clock=stream_clock(self.clock_kind, self.clock_anchor, seg.start_us),
        )
        if self.publisher is not None:
            self.publisher.expect(sid, SightingTiming(seg.event_wall, seg.close_wall, seg.queued_wall, clock))
        return msg

    def current_sighting_id(self, tr: Track) -> str:
        return f"{self.camera_id}-{tr.track_id}-{_state(tr).seq}"

    # -------------------------------------------------------------------- ground truth (sim only)

    def _ground_truth_for(self, batch: list[WindowItem]) -> dict[int, Any] | None:
        if self.ground_truth is None:
            return None
        try:
            windows = self.ground_truth(batch[0].start_us, batch[-1].start_us + 1, False)
        except Exception:  # evaluation must never take the pipeline down
            log.exception("camera %s: ground truth unavailable", self.camera_id)
            return None
        return {int(g.start_us): g for g in windows}

    def _reference(self, start_us: int) -> Any:
        """Ground truth with the reference frame of one window (audit samples in simulation)."""
        if self.ground_truth is None:
            return None
        try:
            windows = self.ground_truth(start_us, start_us + 1, True)
        except Exception:
            log.exception("camera %s: reference frame unavailable", self.camera_id)
            return None
        return windows[0] if windows else None

    def _evaluate_window(self, item: WindowItem, detections: list[Detection], active: list[Track], gt: Any) -> None:
        gt_boxes = np.zeros((0, 4)) if gt is None else np.asarray(gt.boxes, np.float64).reshape(-1, 4)
        gt_ids = [] if gt is None else [str(i) for i in gt.identities]
        keep = np.isfinite(gt_boxes).all(axis=1)
        gt_boxes = gt_boxes[keep]
        gt_ids = [gt_ids[i] for i in np.flatnonzero(keep)]
        det_boxes = np.array([d.box for d in detections], np.float64).reshape(-1, 4)
        self.eval.gt_boxes += len(gt_boxes)
        self.eval.detections += len(det_boxes)
        if len(gt_boxes) and len(det_boxes):
            self.eval.matched += _match_count(box_iou(gt_boxes, det_boxes), 0.5)
        tracks = [t for t in active if t.matched]
        tr_boxes = np.array([t.box for t in tracks], np.float64).reshape(-1, 4)
        pairs: dict[int, int] = {}
        if len(gt_boxes) and len(tracks):
            pairs = _match_pairs(box_iou(gt_boxes, tr_boxes), 0.5)
        for g, gid in enumerate(gt_ids):
            t = pairs.get(g)
            self.observations.append((gid, self.current_sighting_id(tracks[t]) if t is not None else None))
        matched_tracks = set(pairs.values())
        for t, tr in enumerate(tracks):
            if t not in matched_tracks:
                self.observations.append((None, self.current_sighting_id(tr)))

    # ------------------------------------------------------------------------------ console tile

    def _publish_tile(self) -> None:
        """The console's live tile: anonymized activity only, with the current tracks.

        The picture is the last full anonymized frame (audit windows) or, in between, E_an's output
        for an empty frame with the anonymized regions computed for the embeddings since the last
        tile pasted in, drawn as the departure from E_an's empty-frame output (so a scene without
        activity is black); raw events or voxels never go into it.
        """
        import torch

        from anonreid.nodes.console_tiles import TrackView, activity_png, publish_tile
        from anonreid.proto.console_tiles import LATENCY_WINDOW_S

        try:
            if self._tile_blank is None:
                zero = _to_device(np.zeros((1, self.events_config.num_bins, self.sensor.height, self.sensor.width)),
                                  self.device)
                with torch.inference_mode():
                    self._tile_blank = self.anonymizer(zero)[0].float().cpu().numpy()
            if self._tile_full is not None:
                canvas = self._tile_full
            else:
                canvas = self._tile_blank.copy()
                for x1, y1, region in self._tile_regions:
                    r = region.float().cpu().numpy()
                    canvas[:, y1 : y1 + r.shape[1], x1 : x1 + r.shape[2]] = r
            assignments = self.publisher.assignments if self.publisher is not None else {}
            tracks = [
                TrackView(t.track_id, tuple(float(v) for v in t.box),  # type: ignore[arg-type]
                          assignments.get(f"{self.camera_id}-{t.track_id}-{_state(t).seq - 1}", ""))
                for t in self.tracker.tracks if t.confirmed
            ]
            publish_tile(self.redis, self.camera_id, activity_png(canvas, self._tile_blank), tracks,
                         (self.sensor.width, self.sensor.height),
                         self.publisher.recent_latencies(LATENCY_WINDOW_S) if self.publisher is not None else None)
        except Exception as exc:  # the console must never stop the camera
            log.warning("camera %s: console tile not published: %s", self.camera_id, exc)
        finally:
            self._tile_full = None
            self._tile_regions = []

    # ----------------------------------------------------------------------------------- running

    def run(
        self,
        packets: Iterable[np.ndarray],
        duration_s: float | None = None,
        stop: threading.Event | None = None,
        on_processed: Callable[[int], None] | None = None,
        backpressure: bool = False,
    ) -> dict[str, Any]:
        """Pull ``packets`` on a reader thread, process on this one, until exhausted / stopped / duration.

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
                    self.push(packet, block=backpressure)
                    self._source_cpu_s = time.thread_time() - cpu0
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
            self._ended_wall = time.time()
            stop.set()
            thread.join(timeout=5)
        if errors:
            raise errors[0]
        self.finish()
        return self.stats()

    def finish(self, timeout: float = 10.0) -> list[Any]:
        """End every live tracklet (publishing its final sighting) and wait for the acks."""
        # every batch's embeddings are in: the final segments take all of them
        clock = BatchClock.none()
        sightings = [self._make_sighting(seg, clock) for seg in self._close_segments([], self.tracker.flush(), 0, None)]
        if sightings and self.publisher is not None:
            self.publisher.submit(sightings)
        if self.publisher is not None:
            self.publisher.drain(timeout)
        if self.audit is not None:
            self.audit.drain(timeout)
        return sightings

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.close()
        if self.audit is not None:
            self.audit.close()

    def stats(self) -> dict[str, Any]:
        """Counters for the demo summary (plain Python types, cheap to send from an actor)."""
        wall = (self._ended_wall or time.time()) - self._started_wall if self._started_wall else 0.0
        stream_s = self._stream_s_done
        pub = self.publisher
        return {
            "camera": self.camera_id,
            "events": self._events_in,
            "windows": self._windows_done,
            "windows_dropped": self.queue.dropped,
            "queue_depth": len(self.queue),
            "wall_s": wall,
            "stream_s": stream_s,
            "busy_s": self._busy_s,
            "events_per_s": self._events_in / wall if wall > 0 else 0.0,
            "windows_per_s": self._windows_done / wall if wall > 0 else 0.0,
            "realtime_factor": stream_s / self._busy_s if self._busy_s > 0 else 0.0,
            "pipeline_cpu_s": self._pipeline_cpu_s,
            "source_cpu_s": self._source_cpu_s,
            # stream seconds per CPU second of the pipeline: the real-time factor on an idle core
            "cpu_realtime_factor": stream_s / self._pipeline_cpu_s if self._pipeline_cpu_s > 0 else 0.0,
            "process_cpu_s": time.process_time() - self._process_cpu0 if self._started_wall else 0.0,
            "stream_rate": stream_s / wall if wall > 0 else 0.0,
            "sightings_submitted": pub.submitted if pub else 0,
            "sightings_acked": pub.acked if pub else 0,
            "sightings_rejected": pub.rejected if pub else 0,
            "sightings_pending": pub.pending() if pub else 0,
            "audit_samples": self.audit.samples if self.audit else 0,
            "audit_skipped_bursts": self.audit.skipped_bursts if self.audit else 0,
            "audit_cpu_s": self.audit.cpu_s if self.audit else 0.0,
            "failed_batches": self.failed_batches,
            "active_tracks": sum(1 for t in self.tracker.tracks if t.confirmed),
            "model_version": self.model_version,
            "detection": {
                "gt_boxes": self.eval.gt_boxes,
                "detections": self.eval.detections,
                "matched": self.eval.matched,
                "precision": self.eval.matched / self.eval.detections if self.eval.detections else 0.0,
                "recall": self.eval.matched / self.eval.gt_boxes if self.eval.gt_boxes else 0.0,
            },
        }

    def evaluation(self) -> dict[str, Any]:
        """Ground-truth observations and the gallery's acks (identity, latency) for the demo summary."""
        pub = self.publisher
        return {
            "observations": list(self.observations),
            "assignments": dict(pub.assignments) if pub else {},
            "latencies_s": list(pub.latencies_s) if pub else [],
            "latency_stages": list(pub.stages) if pub else [],  # seconds per stage, per sighting (nodes/latency.py)
        }


def _to_device(array: np.ndarray, device: Any) -> Any:
    """(N, B, H, W) numpy -> channels-last float tensor on ``device``."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device)
    return x.contiguous(memory_format=torch.channels_last)


def _state(track: Track) -> TrackState:
    st = track.extra.get("camera")
    if st is None:
        st = track.extra["camera"] = TrackState()
    return st


def _area(box: tuple[float, float, float, float]) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def _match_pairs(iou: np.ndarray, threshold: float) -> dict[int, int]:
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(-iou)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True) if iou[r, c] >= threshold}


def _match_count(iou: np.ndarray, threshold: float) -> int:
    return len(_match_pairs(iou, threshold))
