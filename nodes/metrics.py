"""Prometheus collectors of the camera node: every camera metric is defined here and only here.

Names follow ``.build/CONTRACTS.md`` (the Grafana dashboard uses exactly these). Labels are bounded:
``camera`` (a handful of ids), ``stage`` (the fixed pipeline stages) and ``reason`` (the fixed bad-input
reasons); never a person, tracklet or sighting id. The collectors live in the process-wide default
registry: each camera actor is its own process and serves it with :func:`serve_metrics`.
"""

from __future__ import annotations

import logging
import threading

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from anonreid.nodes.latency import CAMERA_STAGES

log = logging.getLogger(__name__)

#: pipeline stages, and "audit": the audit tap's full-frame E_an + write, on its own thread
STAGES = ("window", "voxelize", "anonymize", "detect", "track", "embed", "publish", "audit")
BAD_INPUT_REASONS = ("malformed", "time_backwards", "out_of_sensor", "unknown_camera", "decode_error")

# 50 us .. 5 s: a window's stage costs from well under a millisecond (track) to tens of ms (embed)
LATENCY_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
)

EVENTS = Counter("anonreid_camera_events", "Events received by the camera node", ["camera"])
WINDOWS = Counter("anonreid_camera_windows", "Windows processed through the whole pipeline", ["camera"])
WINDOWS_DROPPED = Counter(
    "anonreid_camera_windows_dropped", "Windows dropped (oldest first) because the node fell behind", ["camera"]
)
STAGE_LATENCY = Histogram(
    "anonreid_camera_stage_latency_seconds",
    "Time spent per window in each pipeline stage (batched stages divide the batch time)",
    ["camera", "stage"],
    buckets=LATENCY_BUCKETS,
)
# a sighting's latency and its stages: a fraction of a millisecond (embed) to the seconds of a backlog
SIGHTING_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0, 30.0,
)
#: the camera's stages of a sighting (nodes/latency.py) and "gallery": from the hand-over to the ack
SIGHTING_STAGES = (*CAMERA_STAGES, "gallery")
SIGHTING_STAGE = Histogram(
    "anonreid_camera_sighting_stage_seconds",
    "Time each acknowledged sighting spent in each stage, from its last event to its identity (nodes/latency.py); "
    "the stages of a sighting add up to its anonreid_camera_event_to_identity_seconds",
    ["camera", "stage"],
    buckets=SIGHTING_BUCKETS,
)
EVENT_TO_IDENTITY = Histogram(
    "anonreid_camera_event_to_identity_seconds",
    "From the last event a sighting covers to its global identity in the camera's hands (the gallery's ack)",
    ["camera"],
    buckets=SIGHTING_BUCKETS,
)
QUEUE_DEPTH = Gauge("anonreid_camera_queue_depth", "Windows waiting to be processed", ["camera"])
SIGHTINGS_PUBLISHED = Counter(
    "anonreid_camera_sightings_published", "Sightings acknowledged by the gallery", ["camera"]
)
REALTIME_FACTOR = Gauge(
    "anonreid_camera_realtime_factor",
    "Stream seconds processed per second of pipeline time (>= 1: the node keeps up with real time)",
    ["camera"],
)
ACTIVE_TRACKS = Gauge("anonreid_camera_active_tracks", "Confirmed tracklets currently live", ["camera"])
AUDIT_SAMPLES = Counter("anonreid_camera_audit_samples", "Anonymized windows written to the audit tap", ["camera"])
AUDIT_SKIPPED = Counter(
    "anonreid_camera_audit_skipped_bursts",
    "Audit bursts skipped because the audit tap was still busy with earlier ones (the camera never waits for it)",
    ["camera"],
)
BAD_INPUT = Counter(
    "anonreid_camera_bad_input", "Rejected input (packets, messages) by reason", ["camera", "reason"]
)


class CameraMetrics:
    """The collectors bound to one camera's label, so the node records at one choke point."""

    def __init__(self, camera: str) -> None:
        self.camera = camera
        self.events = EVENTS.labels(camera=camera)
        self.windows = WINDOWS.labels(camera=camera)
        self.dropped = WINDOWS_DROPPED.labels(camera=camera)
        self.stage = {s: STAGE_LATENCY.labels(camera=camera, stage=s) for s in STAGES}
        self.sighting_stage = {s: SIGHTING_STAGE.labels(camera=camera, stage=s) for s in SIGHTING_STAGES}
        self.event_to_identity = EVENT_TO_IDENTITY.labels(camera=camera)
        self.queue_depth = QUEUE_DEPTH.labels(camera=camera)
        self.sightings = SIGHTINGS_PUBLISHED.labels(camera=camera)
        self.realtime_factor = REALTIME_FACTOR.labels(camera=camera)
        self.active_tracks = ACTIVE_TRACKS.labels(camera=camera)
        self.audit_samples = AUDIT_SAMPLES.labels(camera=camera)
        self.audit_skipped = AUDIT_SKIPPED.labels(camera=camera)
        for reason in BAD_INPUT_REASONS:  # export zeros so dashboards and alerts see the series
            BAD_INPUT.labels(camera=camera, reason=reason)

    def bad_input(self, reason: str) -> None:
        if reason not in BAD_INPUT_REASONS:
            raise ValueError(f"unknown bad-input reason {reason!r}; expected one of {BAD_INPUT_REASONS}")
        BAD_INPUT.labels(camera=self.camera, reason=reason).inc()

    def observe_stage(self, stage: str, seconds: float, windows: int = 1) -> None:
        """Record ``seconds`` spent on ``windows`` windows in ``stage`` (one sample per window)."""
        if windows <= 0:
            return
        hist = self.stage[stage]
        per = seconds / windows
        for _ in range(windows):
            hist.observe(per)

    def observe_sighting(self, stages: dict[str, float], latency_s: float) -> None:
        """Record one acknowledged sighting: its seconds per stage (:data:`SIGHTING_STAGES`) and its
        event-to-identity latency. The one place sighting latency is recorded."""
        for stage, seconds in stages.items():
            self.sighting_stage[stage].observe(seconds)
        self.event_to_identity.observe(latency_s)


_servers: dict[int, int] = {}
_servers_lock = threading.Lock()


def serve_metrics(port: int, addr: str = "127.0.0.1") -> int:
    """Serve this process's registry on ``port`` (0 = any free port); idempotent; returns the port."""
    with _servers_lock:
        if port and port in _servers:
            return _servers[port]
        server, _thread = start_http_server(port, addr=addr)
        bound = int(server.server_address[1])
        _servers[port or bound] = bound
        log.info("camera metrics on http://%s:%d/metrics", addr, bound)
        return bound
