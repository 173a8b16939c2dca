"""The camera's audit tap: sampled anonymized windows for the adversary node, off the pipeline thread.

The camera node decides *which* windows are sampled (bursts of consecutive windows on a stream-time
schedule) and hands each one over with its raw voxel grid; this tap runs the full-frame anonymizer
on it and XADDs the anonymized voxel (plus, in simulation only, the world's reference frame and
ground-truth boxes) to ``audit:<camera>``. It works on a thread of its own, so the pipeline never
waits for a full-frame E_an pass (three of them are about 0.4 s of CPU, longer than the 2 s window
queue tolerates on a contended machine).

The tap holds at most ``pending_bursts`` bursts. On a live stream a burst that finds no room is
skipped and counted (``skipped_bursts``, ``anonreid_camera_audit_skipped_bursts_total``): the
audit slows down under load, the camera never drops a window for it. A stream that buffers durably
(a file, a Redis stream) waits for room instead, so what it audits does not depend on timing. The
thread runs at the lowest CPU priority (the adversary's attack loop does too): where the cores are
contended the cameras' real-time work comes first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import redis

from anonreid.nodes.camera.background import BackgroundQueue
from anonreid.nodes.camera.ground_truth import TruthWindow
from anonreid.nodes.metrics import CameraMetrics
from anonreid.nodes.priority import lower_cpu_priority

log = logging.getLogger(__name__)

#: detections of a sampled window: (x1, y1, x2, y2) and the tracklet id ("" when unmatched)
AuditBoxes = list[tuple[tuple[float, float, float, float], str]]


@dataclass
class AuditWindow:
    """One sampled window: its span, the node's detections and either its raw voxel grid (the tap runs
    E_an) or its full anonymized frame when the pipeline already computed it."""

    start_us: int
    end_us: int
    boxes: AuditBoxes
    voxel: np.ndarray | None = None
    anonymized: np.ndarray | None = None


class AuditTap(BackgroundQueue[AuditWindow]):
    """Background writer of ``audit:<camera>`` (its queue takes what is still queued before it closes).

    ``anonymize(voxel (B, H, W)) -> anonymized (B, H, W)`` is the camera's full-frame E_an;
    ``reference(start_us)`` the world's ground truth with its reference frame (None outside
    simulation); ``on_frame`` receives every anonymized frame (the console tile shows the latest).
    """

    finish_on_close = True

    def __init__(
        self,
        camera_id: str,
        redis: redis.Redis,
        anonymize: Callable[[np.ndarray], np.ndarray],
        model_version: str,
        metrics: CameraMetrics,
        *,
        maxlen: int,
        pending_bursts: int,
        burst: int,
        reference: Callable[[int], TruthWindow | None] | None = None,
        on_frame: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        super().__init__(f"audit-{camera_id}")
        self.camera_id = camera_id
        self.redis = redis
        self.key = f"audit:{camera_id}"
        self._anonymize = anonymize
        self._reference = reference
        self._on_frame = on_frame
        self.model_version = model_version
        self.metrics = metrics
        self.maxlen = maxlen
        self.capacity = pending_bursts * burst  # windows reserved or waiting
        self._free = self.capacity
        self.samples = 0
        self.skipped_bursts = 0
        self.cpu_s = 0.0

    def begin_burst(self, windows: int, wait: bool) -> bool:
        """Reserve room for the next ``windows`` sampled windows. With no room: wait for it (``wait``)
        or skip the burst and count it; False when skipped."""
        if windows <= 0:
            raise ValueError(f"camera {self.camera_id}: an audit burst needs windows > 0, got {windows}")
        windows = min(windows, self.capacity)
        with self._cond:
            while wait and self._free < windows and not self._closed:
                self._cond.wait(0.1)
            if self._free < windows or self._closed:
                self.skipped_bursts += 1
                self.metrics.audit_skipped.inc()
                return False
            self._free -= windows
            return True

    def put(self, window: AuditWindow) -> None:
        """Queue a window of a reserved burst (never blocks)."""
        self._put([window])

    def _run(self) -> None:
        lower_cpu_priority(f"camera {self.camera_id}: audit tap")
        cpu0 = time.thread_time()
        while (taken := self._take(everything=False)) is not None:
            window, = taken
            try:
                self._write(window)
            except Exception:  # the audit tap must not stop the camera; the adversary sees the gap
                log.exception("camera %s: audit sample at %d us not written", self.camera_id, window.start_us)
            finally:
                with self._cond:
                    self._free += 1
                    self.cpu_s = time.thread_time() - cpu0
                self._done()

    def _write(self, window: AuditWindow) -> None:
        """XADD one anonymized window (+ reference frame and ground truth in simulation)."""
        from anonreid.proto.v1 import audit_pb2, sighting_pb2

        t0 = time.perf_counter()
        anon = window.anonymized
        if anon is None:
            assert window.voxel is not None
            anon = self._anonymize(window.voxel)
        if self._on_frame is not None:
            self._on_frame(anon)
        sample = audit_pb2.AuditSample(
            camera_id=self.camera_id,
            window=sighting_pb2.TimeSpan(start_us=window.start_us, end_us=window.end_us),
            bins=anon.shape[0],
            height=anon.shape[1],
            width=anon.shape[2],
            anonymized_voxel=np.ascontiguousarray(anon, dtype=np.float16).tobytes(),
            model_version=self.model_version,
        )
        for (x1, y1, x2, y2), tracklet in window.boxes:
            sample.detections.add(x1=x1, y1=y1, x2=x2, y2=y2, tracklet_id=tracklet)
        gt = self._reference(window.start_us) if self._reference is not None else None
        if gt is not None:
            frame = getattr(gt, "reference_frame", None)
            if frame is not None:
                sample.reference_frame = np.ascontiguousarray(frame, dtype=np.uint8).tobytes()
            identities = [str(i) for i in getattr(gt, "identities", [])]
            sample.identity_ids.extend(identities)
            for box, identity in zip(np.asarray(gt.boxes, np.float64).reshape(-1, 4), identities, strict=False):
                if np.isfinite(box).all():
                    sample.ground_truth.add(x1=box[0], y1=box[1], x2=box[2], y2=box[3], identity_id=identity)
        try:
            self.redis.xadd(self.key, {"sample": sample.SerializeToString()}, maxlen=self.maxlen, approximate=True)
        except Exception as exc:  # Redis away: this sample is lost, the next ones are tried
            log.warning("camera %s: audit tap write failed: %s", self.camera_id, exc)
            return
        self.samples += 1
        self.metrics.audit_samples.inc()
        self.metrics.observe_stage("audit", time.perf_counter() - t0)
