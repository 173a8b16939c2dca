"""Where a sighting's latency goes (nodes/latency.py, gallery/metrics.py), and what cuts it.

A short real run (the live world's cam3 paced by the wall clock, a real gRPC gallery on the embedded
Redis) checks that the per-stage Prometheus histograms of both sides exist and add up: the camera's
stages of every sighting sum to its measured event-to-identity latency, and the gallery's stages
account for the camera's ``gallery`` round trip up to the ack's way back. The tracker test checks
that a tracklet's last segment goes out one window after the person is last seen, not when the
tracker gives the track up ``max_misses`` windows later.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from anonreid.orchestration.config import (
    CameraConfig,
    EventsConfig,
    GalleryConfig,
    TrackerConfig,
    WorldConfig,
)

CAMERA = "cam3"  # person 032 walks through it from 0.5 s
STREAM_S = 4.0


def _camera_values(name: str, stages: tuple[str, ...]) -> dict[str, float]:
    from prometheus_client import REGISTRY

    out = {s: REGISTRY.get_sample_value(name, {"camera": CAMERA, "stage": s}) or 0.0 for s in stages}
    return out


@pytest.mark.usefixtures("one_torch_thread")
@pytest.mark.alone
def test_stage_latencies_exist_and_add_up(redis_service: Any) -> None:
    from prometheus_client import REGISTRY

    from anonreid.gallery.service import GalleryServer
    from anonreid.nodes.actors import CameraService
    from anonreid.nodes.latency import CAMERA_STAGES
    from anonreid.nodes.metrics import SIGHTING_STAGES
    from anonreid.nodes.sources import SourceSpec

    stage_sum, stage_count = "anonreid_camera_sighting_stage_seconds_sum", "anonreid_camera_sighting_stage_seconds_count"
    e2e = {"camera": CAMERA}
    before_sum, before_count = _camera_values(stage_sum, SIGHTING_STAGES), _camera_values(stage_count, SIGHTING_STAGES)
    e2e_before = (REGISTRY.get_sample_value("anonreid_camera_event_to_identity_seconds_sum", e2e) or 0.0,
                  REGISTRY.get_sample_value("anonreid_camera_event_to_identity_seconds_count", e2e) or 0.0)

    server = GalleryServer(GalleryConfig(port=0, metrics_port=0), redis_service.url, password=redis_service.password)
    address = server.start()
    spec = SourceSpec(kind="live", camera_id=CAMERA, realtime=True, render_ahead_s=STREAM_S + 1, start_us=0,
                      end_us=int(STREAM_S * 1e6), world=WorldConfig().model_dump())
    cfg = CameraConfig(embed_every=5, publish_every=30, torch_threads=1, metrics_port=0)
    service = CameraService(spec, address, camera=cfg, events=EventsConfig())
    try:
        stats = service.run()
        assert stats["sightings_pending"] == 0 and stats["windows_dropped"] == 0, stats
        ev = service.evaluation()
        latencies, stages = ev["latencies_s"], ev["latency_stages"]
        n = len(latencies)
        assert n == len(stages) == stats["sightings_acked"] >= 3, stats
        # per sighting: the stages are exactly its latency, the camera's ones in pipeline order
        for lat, st in zip(latencies, stages, strict=True):
            assert list(st) == [*CAMERA_STAGES, "gallery"]
            assert min(st.values()) >= 0 and sum(st.values()) == pytest.approx(lat, abs=1e-6)
            assert 0 < lat < 5.0
        # the camera's histograms: one observation per sighting per stage, summing to the latency histogram
        got_sum = {s: v - before_sum[s] for s, v in _camera_values(stage_sum, SIGHTING_STAGES).items()}
        got_count = {s: v - before_count[s] for s, v in _camera_values(stage_count, SIGHTING_STAGES).items()}
        assert got_count == dict.fromkeys(SIGHTING_STAGES, n)
        e2e_sum = REGISTRY.get_sample_value("anonreid_camera_event_to_identity_seconds_sum", e2e) - e2e_before[0]
        assert REGISTRY.get_sample_value("anonreid_camera_event_to_identity_seconds_count", e2e) - e2e_before[1] == n
        assert sum(got_sum.values()) == pytest.approx(e2e_sum, abs=1e-6 * n)
        assert e2e_sum == pytest.approx(sum(latencies), abs=1e-6 * n)
        # the gallery's histograms (its own process's registry): its stages of the same sightings account for
        # the camera's round trip, all but the ack's way back (the gRPC write, the wire, the client)
        m = server.metrics
        gallery = {s: m.value("anonreid_gallery_sighting_stage_seconds_sum", camera=CAMERA, stage=s)
                   for s in ("transport", "associate", "persist", "ack")}
        for s in gallery:
            assert m.value("anonreid_gallery_sighting_stage_seconds_count", camera=CAMERA, stage=s) == n, s
        assert gallery["persist"] > 0 and gallery["associate"] > 0
        round_trip = got_sum["gallery"]
        assert sum(gallery.values()) <= round_trip + 1e-3 * n
        assert round_trip - sum(gallery.values()) <= max(0.02 * n, 0.2 * round_trip), (gallery, round_trip)
        # the sightings say which clock their spans are on: the live world's is the wall clock
        identities = server.gallery.list_identities()
        assert identities and all(i.last_seen_clock.kind == "wall" for i in identities)
        anchor_us = identities[0].last_seen_clock.epoch_us
        assert anchor_us is not None and abs(anchor_us / 1e6 - service.node.clock_anchor) < 1e-3
    finally:
        service.close()
        server.stop()


def _walker_windows(sensor: Any, present: range, total: int, window_us: int = 33_333) -> list[Any]:
    """Windows of a person-sized blob of events walking right while ``k in present``, sensor noise always."""
    from anonreid.events.types import make_events
    from anonreid.nodes.camera import WindowItem

    rng = np.random.default_rng(3)
    out = []
    for k in range(total):
        t0 = k * window_us
        xs, ys = [rng.integers(0, sensor.width, 150)], [rng.integers(0, sensor.height, 150)]
        if k in present:
            x0 = 60 + 3 * k
            xs.append(rng.integers(x0, x0 + 28, 2500))
            ys.append(rng.integers(80, 160, 2500))
        x, y = np.concatenate(xs), np.concatenate(ys)
        t = np.sort(rng.integers(t0, t0 + window_us, len(x)))
        ev = make_events(t, x, y, rng.choice([-1, 1], len(x)), sensor)
        out.append(WindowItem(k, t0, t0 + window_us, ev, 0.0))
    return out


@pytest.mark.usefixtures("one_torch_thread")
def test_last_segment_goes_out_once_the_person_is_missed() -> None:
    """The final sighting closes at the first window the tracker misses the person (``close_after_misses``
    = 1), so its latency holds one window, not the ``max_misses`` the track survives on its prediction;
    ``close_after_misses`` = 0 keeps the old behaviour (published when the track ends)."""
    from anonreid.events.types import SensorSize
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode

    sensor = SensorSize.parse(WorldConfig().resolution)
    bundle = load_model_bundle()
    windows = _walker_windows(sensor, range(0, 30), 60)

    def emitted(close_after_misses: int) -> list[tuple[int, Any]]:
        cfg = CameraConfig(embed_every=5, publish_every=1000, torch_threads=1, close_after_misses=close_after_misses,
                           tracker=TrackerConfig(max_misses=8))
        node = CameraNode(CAMERA, sensor, cfg, models=bundle, window_t0_us=0)
        return [(k, s) for k, w in enumerate(windows) for s in node.process_batch([w])]

    out = emitted(1)
    assert len({s.tracklet_id for _, s in out}) == 1 and len(out) == 2, [s.sighting_id for _, s in out]
    (k_first, first), (k_last, last) = out
    last_seen = next(k for k, w in enumerate(windows) if w.end_us == last.span.end_us)
    assert last_seen >= 29  # the person's last window (the detector's smoothing may carry it a little further)
    assert k_last == last_seen + 1  # out at the first window without the person
    assert first.span.end_us == last.span.start_us == windows[k_first + 1].start_us  # the next segment
    old = emitted(0)
    assert [s.span.end_us for _, s in old] == [s.span.end_us for _, s in out]
    assert old[-1][0] == last_seen + 1 + 8  # the track ends after max_misses unmatched windows
