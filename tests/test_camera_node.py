"""The camera node end to end: live world -> pipeline -> real gRPC gallery + real Redis audit tap.

The same scenario runs on the plain :class:`CameraService` and on its Ray actor. Streams are short
(a few seconds of the live world, rendered as fast as possible) to keep this file under a minute.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import PREVIOUS_WEIGHTS

from anonreid.orchestration.config import CameraConfig, EventsConfig, TrackerConfig, WorldConfig

STREAM_S = 4.0
CAMERA = "cam3"  # person 032 walks through it from 0.5 s


def _live_spec(camera: str = CAMERA, start_us: int = 0, seconds: float = 0.0) -> Any:
    """The live world's ``camera`` from ``start_us``, as fast as it renders, ``seconds`` long (0: endless)."""
    from anonreid.nodes.sources import SourceSpec

    return SourceSpec(kind="live", camera_id=camera, realtime=False, start_us=start_us, world=WorldConfig().model_dump(),
                      end_us=start_us + int(seconds * 1e6) if seconds else 0)


def _camera_config(**kw: Any) -> CameraConfig:
    # frequent audit samples and sightings so a short stream exercises every path
    base = {"audit_every_s": 1.0, "publish_every": 30, "metrics_port": 0, "torch_threads": 1}
    return CameraConfig(**{**base, **kw})


def _check_run(stats: dict[str, Any], redis_client: Any, address: str) -> None:
    from anonreid.gallery.client import GalleryClient
    from anonreid.proto.v1 import audit_pb2

    assert stats["error"] is None
    assert stats["windows"] >= int(STREAM_S * 29)
    assert stats["windows_dropped"] == 0
    assert stats["sightings_acked"] > 0 and stats["sightings_pending"] == 0
    assert stats["realtime_factor"] > 0
    entries = redis_client.xrange(f"audit:{CAMERA}")
    assert len(entries) == stats["audit_samples"] >= int(STREAM_S) - 1
    sample = audit_pb2.AuditSample.FromString(entries[0][1][b"sample"])
    assert (sample.bins, sample.height, sample.width) == (5, 240, 320)
    voxel = np.frombuffer(sample.anonymized_voxel, np.float16).reshape(5, 240, 320)
    assert np.isfinite(voxel).all()
    assert len(sample.reference_frame) == 240 * 320  # simulation: the world's reference frame
    client = GalleryClient(address)
    try:
        identities = client.list_identities()
        assert len(getattr(identities, "identities", identities)) > 0
    finally:
        client.close()


@pytest.mark.slow
def test_camera_service_live_world(redis_service: Any, gallery_address: str) -> None:
    from anonreid.nodes.actors import CameraService

    service = CameraService(
        _live_spec(seconds=STREAM_S), gallery_address, redis_service.url, redis_service.password, _camera_config(),
        EventsConfig(), metrics_port=0,
    )
    stats = service.run()
    stats = service.stats()
    _check_run(stats, redis_service.client(), gallery_address)
    det = stats["detection"]
    assert det["gt_boxes"] > 0 and det["recall"] > 0.3 and det["precision"] > 0.3, det
    ev = service.evaluation()
    assert ev["observations"] and ev["assignments"]
    # the metrics endpoint serves the contract's names
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{service.port}/metrics", timeout=5).read().decode()
    for name in (
        "anonreid_camera_events_total", "anonreid_camera_windows_total", "anonreid_camera_windows_dropped_total",
        "anonreid_camera_stage_latency_seconds_bucket", "anonreid_camera_queue_depth",
        "anonreid_camera_sightings_published_total", "anonreid_camera_realtime_factor",
        "anonreid_camera_active_tracks", "anonreid_camera_bad_input_total", "anonreid_camera_audit_samples_total",
        "anonreid_camera_audit_skipped_bursts_total",
    ):
        assert f'{name}{{camera="{CAMERA}"' in text, name
    for stage in ("window", "voxelize", "anonymize", "detect", "track", "embed", "publish", "audit"):
        assert f'stage="{stage}"' in text
    service.close()


@pytest.mark.slow
def test_camera_actor_live_world(redis_service: Any, gallery_address: str, ray_local: dict) -> None:
    """The same scenario through the Ray actor (started, polled and stopped like the demo does)."""
    import ray

    from anonreid.nodes.actors import camera_actor_class

    cls = camera_actor_class(num_cpus=0.5)
    handle = cls.remote(
        _live_spec(), gallery_address, redis_service.url, redis_service.password, _camera_config(), EventsConfig(), 0
    )
    ray.get(handle.ping.remote())
    ray.get(handle.start.remote(None))
    # stream time runs faster than wall time here (not paced): stop once STREAM_S of it is processed
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        s = ray.get(handle.stats.remote())
        if s["stream_s"] >= STREAM_S:
            break
        time.sleep(0.2)
    stats = ray.get(handle.stop.remote())
    _check_run(stats, redis_service.client(), gallery_address)
    ray.get(handle.close.remote())
    ray.kill(handle)


def test_region_anonymization_equals_full_frame() -> None:
    """E_an on box + halo (what the node runs) gives the crop of E_an on the full frame."""
    import torch

    from anonreid.events.voxel import events_to_voxel
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode

    bundle = load_model_bundle()
    sensor = _world_sensor()
    node = CameraNode(CAMERA, sensor, CameraConfig(), models=bundle)
    rng = np.random.default_rng(0)
    from anonreid.events.types import make_events

    n = 20_000
    t = np.sort(rng.integers(0, 33_333, n))
    ev = make_events(t, rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), rng.choice([-1, 1], n))
    voxel = events_to_voxel(ev, 5, sensor.height, sensor.width, normalize=True, t_range=(0, 33_333))
    with torch.inference_mode():
        full = bundle.anonymizer(torch.from_numpy(voxel)[None])[0]
        for box in [(100.0, 60.0, 141.0, 163.0), (0.0, 0.0, 30.0, 90.0), (290.0, 150.0, 320.0, 240.0)]:
            x1, y1, x2, y2 = node.inference.region([box])
            region = bundle.anonymizer(torch.from_numpy(np.ascontiguousarray(voxel[:, y1:y2, x1:x2]))[None])[0]
            bx1, by1, bx2, by2 = (int(v) for v in box)
            got = region[:, by1 - y1 : by2 - y1, bx1 - x1 : bx2 - x1]
            torch.testing.assert_close(got, full[:, by1:by2, bx1:bx2], atol=1e-5, rtol=1e-5)


def _world_sensor() -> Any:
    from anonreid.events.types import SensorSize

    return SensorSize.parse(WorldConfig().resolution)


@pytest.mark.parametrize("durable", [True, False])
def test_final_stats_count_every_audit_sample_the_tap_has_taken(redis_service: Any, durable: bool,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    """At the end of a stream the audit tap may still be anonymizing (it runs at nice 19; on a loaded host
    the last samples of a run came after its final stats). A durable stream waits for the tap, so its stats
    count every sample written; a live one waits ``timeout``, reports what is still to write
    (``audit_pending``) and logs it, and ``close`` writes it."""
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.camera.audit_tap import AuditWindow

    client = redis_service.client()
    node = CameraNode(CAMERA, _world_sensor(), CameraConfig(audit_burst=2), models=load_model_bundle(), redis=client)
    assert node.audit is not None
    gate = threading.Event()
    node.audit._anonymize = lambda voxel: (gate.wait(30), -voxel)[1]  # held until the gate opens
    node.audit_waits = durable
    shape = (node.inference.num_bins, 24, 32)
    assert node.audit.begin_burst(2, wait=False)
    for i in range(2):
        node.audit.put(AuditWindow(i * 33_333, (i + 1) * 33_333, [], voxel=np.full(shape, i, np.float32)))
    opener = threading.Timer(1.0, gate.set)
    opener.start()
    try:
        node.finish(timeout=0.1)
        stats = node.stats()
        if durable:
            assert (stats["audit_samples"], stats["audit_pending"]) == (2, 0)
            assert client.xlen(f"audit:{CAMERA}") == 2
        else:
            assert (stats["audit_samples"], stats["audit_pending"]) == (0, 2)
            assert "the audit tap still has 2 sample(s) to write" in caplog.text
    finally:
        gate.set()
        opener.join()
        node.close()
    stats = node.stats()
    assert (stats["audit_samples"], stats["audit_pending"]) == (2, 0) and client.xlen(f"audit:{CAMERA}") == 2


def test_queue_drops_oldest_and_counts() -> None:
    """An overloaded node drops the oldest windows, counts them, and memory stays bounded."""
    from anonreid.events.types import make_events
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode

    sensor = _world_sensor()
    node = CameraNode(CAMERA, sensor, CameraConfig(queue_windows=5), models=load_model_bundle())
    rng = np.random.default_rng(1)
    for k in range(40):  # 40 windows pushed, none processed
        t = np.sort(rng.integers(k * 33_333, (k + 1) * 33_333, 100))
        node.push(make_events(t, rng.integers(0, 320, 100), rng.integers(0, 240, 100), rng.choice([-1, 1], 100)))
    assert len(node.queue) == 5
    assert node.queue.dropped == 40 - 1 - 5  # the last window is still open in the windower
    assert node.process_pending() == 5
    assert node.throughput.last_window_end_us > 38 * 33_333 - 1000  # the newest windows were kept
    assert node.stats()["windows_dropped"] == 34
    # a bad packet is rejected whole and counted; the node keeps running
    before = node.stats()["events"]
    bad = make_events([10], [5], [5], [1])  # time goes backwards
    node.push(bad)
    assert node.stats()["events"] == before


def test_a_gap_completes_its_empty_windows_at_once_without_dropping_any() -> None:
    """A recording that pauses for 5 s: its 150 empty windows complete together when the next event
    arrives. They do not count against the queue's bound on windows with events (none is dropped, the
    queued windows with events stay); past EMPTY_FACTOR x the bound empty windows are dropped oldest first,
    and windows with events still drop the oldest window with events."""
    from anonreid.events.types import make_events
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.camera.windows import EMPTY_FACTOR

    bound = 20
    node = CameraNode(CAMERA, _world_sensor(), CameraConfig(queue_windows=bound), models=load_model_bundle())
    rng = np.random.default_rng(2)

    def window_events(k: int) -> np.ndarray:  # inside window k of the grid from t = 0
        t = np.sort(rng.integers(k * 33_333 + 1_000, (k + 1) * 33_333 - 1_000, 50))
        t[0] = 0 if k == 0 else t[0]
        return make_events(t, rng.integers(0, 320, 50), rng.integers(0, 240, 50), rng.choice([-1, 1], 50))

    def indices(with_events: bool) -> list[int]:
        return [item.index for item in node.queue._items if bool(len(item.events)) == with_events]

    for k in range(4):
        node.push(window_events(k))
    assert node.push(window_events(4 + 150)) == 0  # window 3 (events) and 4-153 (the gap) complete now
    assert node.queue.dropped == 0 and indices(True) == [0, 1, 2, 3] and indices(False) == list(range(4, 154))
    second = 154 + 100  # a second gap of 99 windows: 249 empty ones, past the bound on them
    node.push(window_events(second))
    cap = EMPTY_FACTOR * bound
    assert node.queue.dropped == 249 - cap and indices(False) == [*range(4, 154), *range(155, second)][-cap:]
    assert indices(True) == [0, 1, 2, 3, 154]  # only empty windows were dropped
    for k in range(second + 1, second + bound + 1):  # past the bound on windows with events
        node.push(window_events(k))
    assert indices(True) == list(range(second, second + bound))  # the oldest with events went: 0-3 and 154
    assert node.queue.dropped == 249 - cap + 5
    assert node.process_pending() == bound + cap


def test_redis_stream_ingest_resumes_after_restart(redis_service: Any, gallery_address: str, tmp_path: Path) -> None:
    """gateway push -> events:<camera> -> camera node; a node stopped mid-stream resumes from its pending entries."""
    from anonreid.events.io import read_events, write_hdf5
    from anonreid.events.types import concat_events
    from anonreid.events.world import LiveWorld
    from anonreid.nodes.actors import CameraService
    from anonreid.nodes.sources import SourceSpec, push_file

    world = LiveWorld(WorldConfig())
    sensor = _world_sensor()
    packets = []
    for p in world.camera_stream(CAMERA, start_us=0, realtime=False, packet_us=10_000):
        if len(p) and p["t"][0] >= 3_000_000:
            break
        packets.append(p)
    events = concat_events(packets)
    path = tmp_path / "cam1.h5"
    write_hdf5(path, events, sensor)
    assert len(read_events(path)) == len(events)
    client = redis_service.client()
    counts = push_file(client, path, CAMERA, packet_us=10_000, end_of_stream=False)
    assert counts["events"] == len(events)
    # a malformed entry before the end of the stream is counted, acknowledged and skipped
    client.xadd(f"events:{CAMERA}", {"events": b"\x00" * 7, "sensor": str(sensor)})
    client.xadd(f"events:{CAMERA}", {"eos": b"1"})
    from prometheus_client import REGISTRY

    labels = {"camera": CAMERA, "reason": "decode_error"}
    bad_before = REGISTRY.get_sample_value("anonreid_camera_bad_input_total", labels) or 0.0

    spec = SourceSpec(kind="redis", camera_id=CAMERA, redis_url=redis_service.url, block_ms=50)
    first = CameraService(spec, gallery_address, redis_service.url, None, _camera_config(), EventsConfig())
    # stop the first node after it has taken some packets: stream processing stops, nothing is acked past it
    orig = first.source.packets

    def some_packets() -> Iterator[np.ndarray]:
        for i, p in enumerate(orig()):
            if i == 120:
                return
            yield p

    first.source.packets = some_packets
    s1 = first.run()
    first.close()
    pending = client.xpending(f"events:{CAMERA}", "camera")["pending"]
    assert 0 < pending < counts["packets"]

    second = CameraService(spec, gallery_address, redis_service.url, None, _camera_config(), EventsConfig())
    s2 = second.run()  # ends at the eos entry
    second.close()
    assert client.xpending(f"events:{CAMERA}", "camera")["pending"] == 0
    # every event was processed at least once; re-delivered pending entries are the only overlap
    assert s1["events"] + s2["events"] >= len(events)
    assert s2["events"] <= len(events)
    assert s2["sightings_acked"] > 0
    assert REGISTRY.get_sample_value("anonreid_camera_bad_input_total", labels) == bad_before + 1


@pytest.fixture
def audit_redis(tmp_path: Path) -> Iterator[Any]:
    """A second embedded Redis for a camera's audit tap alone (stopped also when the test fails)."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    service = RedisService(RedisConfig(embedded_dir=str(tmp_path / "audit-redis"))).start()
    yield service
    service.stop()


def test_nothing_raw_leaves_the_node(redis_service: Any, gallery_address: str, audit_redis: Any) -> None:
    """Capture every Redis command (MONITOR) and every gRPC message the node sends; none carries raw data.

    The camera's audit tap gets a Redis of its own here, so MONITOR sees the camera's commands only
    (the gallery writes its store to ``redis_service``). The camera runs the set shipped until the 39th
    session, which redacts nothing, so each audit voxel can be recomputed from the raw window alone (the
    shipped set's head band: tests/test_redaction.py).
    """
    import torch

    from anonreid.events.voxel import events_to_voxel
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.actors import CameraService
    from anonreid.proto.v1 import audit_pb2

    commands: list[str] = []
    ready = threading.Event()

    def monitor() -> None:
        try:
            with audit_redis.client(socket_timeout=3600).monitor() as m:  # idle while models load
                ready.set()
                for cmd in m.listen():
                    commands.append(cmd["command"])
        except Exception:  # the server stops at the end of the test
            return

    threading.Thread(target=monitor, daemon=True).start()
    assert ready.wait(5)
    service = CameraService(_live_spec(seconds=3.0), gallery_address, audit_redis.url, None,
                            _camera_config(model_dir=str(PREVIOUS_WEIGHTS)), EventsConfig())
    sent: list[bytes] = []
    inner = service.node.publisher.client  # type: ignore[union-attr]

    class Recording:
        """Records each sighting exactly as serialised onto the wire, then publishes it for real."""

        def publish(self, sightings: list[Any]) -> list[Any]:
            sent.extend(s.SerializeToString() for s in sightings)
            return inner.publish(sightings)

        def close(self) -> None:
            inner.close()

    service.node.publisher.client = Recording()  # type: ignore[union-attr]
    stats = service.run()
    service.close()
    audit_client = audit_redis.client()
    audit_client.ping()  # the last command through MONITOR
    deadline = time.monotonic() + 5
    while not any(c.startswith("PING") for c in commands[-3:]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stats["sightings_acked"] > 0 and sent
    writes = [c for c in commands if not c.upper().startswith(("HELLO", "PING", "MONITOR", "CLIENT", "INFO"))]
    # the audit tap, and the console's tile (a PNG of anonymized activity + track boxes) in a transaction
    allowed = (
        f"XADD audit:{CAMERA} MAXLEN ~ ", f"SET console:tile:{CAMERA} ", f"SET console:tracks:{CAMERA} ",
        f"SADD console:cameras {CAMERA}", "MULTI", "EXEC",
    )
    assert writes and all(c.startswith(allowed) for c in writes), [c[:60] for c in writes if not c.startswith(allowed)]
    entries = audit_client.xrange(f"audit:{CAMERA}")
    assert len(entries) == sum(c.startswith("XADD") for c in writes) == stats["audit_samples"] >= 2
    assert audit_client.get(f"console:tile:{CAMERA}").startswith(b"\x89PNG")

    # the audit voxels are the anonymizer's output, not the raw voxel
    packets = list(_packets(3.1))
    from anonreid.events.types import concat_events

    events = concat_events(packets)
    bundle = load_model_bundle(PREVIOUS_WEIGHTS)
    raw_bytes = events.tobytes()
    for _eid, fields in entries:
        sample = audit_pb2.AuditSample.FromString(fields[b"sample"])
        t0, t1 = sample.window.start_us, sample.window.end_us
        win = events[(events["t"] >= t0) & (events["t"] < t1)]
        raw = events_to_voxel(win, 5, 240, 320, normalize=True, t_range=(t0, t1))
        with torch.inference_mode():
            expected = bundle.anonymizer(torch.from_numpy(raw)[None])[0].numpy()
        got = np.frombuffer(sample.anonymized_voxel, np.float16).reshape(raw.shape).astype(np.float32)
        np.testing.assert_allclose(got, expected, atol=2e-3, rtol=2e-3)
        assert not np.allclose(got, raw, atol=1e-2)
        payload = fields[b"sample"]
        assert raw.astype(np.float16).tobytes()[:4096] not in payload
        assert win.tobytes()[:130] not in payload
    for msg in sent:  # sightings: ids, spans, a box summary, a 256-d embedding; no event bytes
        assert len(msg) < 2000
        assert raw_bytes[:130] not in msg


def _packets(seconds: float) -> Iterator[np.ndarray]:
    """The first ``seconds`` of the live world's ``CAMERA``, as fast as it renders."""
    from anonreid.nodes.sources import open_source

    return open_source(_live_spec(seconds=seconds)).packets()


def _sighting_fields(s: Any) -> tuple[Any, ...]:
    """Everything of a sighting that must be a function of the stream (all but the embedding and wall time)."""
    b = s.box
    return (s.sighting_id, s.tracklet_id, s.span.start_us, s.span.end_us, b.num_boxes, (b.x1, b.y1, b.x2, b.y2),
            b.mean_area, b.velocity_x, b.velocity_y, s.quality, s.model_version)


def test_sightings_do_not_depend_on_batching() -> None:
    """The same stream cut into different processing batches publishes the same sightings.

    Batches follow timing (``queue.get_batch`` takes what is queued, up to ``max_batch``), so a replay
    after a crash batches differently; sighting ids are idempotency keys only if ids, spans and contents
    are a pure function of the windows. The stream is processed one window at a time (the reference),
    in batches of 8, in batches of 5 after an odd first one, and in random batch sizes. Half a second
    without any event in the middle (a gap in the recording, longer than the 8 windows this tracker
    bridges) ends the person's tracklet (its final sighting falls inside a batch) and a new tracklet
    starts after it.
    """
    import dataclasses

    from anonreid.events.types import empty_events
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode

    sensor = _world_sensor()
    bundle = load_model_bundle()
    # updates every 15 windows and an embedding every 5: a few seconds give several segments per tracklet
    cfg = _camera_config(publish_every=15, embed_every=5, queue_windows=100_000,
                         tracker=TrackerConfig(max_gap_windows=8))
    windower = CameraNode(CAMERA, sensor, cfg, models=bundle, window_t0_us=0)
    for p in _packets(STREAM_S):
        windower.push(p)
    windower.end_of_stream()
    windows = windower.queue.get_batch(len(windower.queue), 0)
    assert len(windows) >= int(STREAM_S * 29)
    gap = range(61, 76)  # ~2.0 .. 2.5 s: longer than the gap the tracker bridges
    windows = [dataclasses.replace(w, events=empty_events()) if k in gap else w for k, w in enumerate(windows)]

    def run(sizes: list[int]) -> list[Any]:
        node = CameraNode(CAMERA, sensor, cfg, models=bundle, window_t0_us=0)
        out: list[Any] = []
        start = 0
        for n in sizes:
            if start < len(windows):
                out += node.process_batch(windows[start : start + n])
                start += n
        assert start >= len(windows)
        return out + node.finish(timeout=0)

    def fixed(first: int, size: int) -> list[int]:
        return [first] + [size] * (len(windows) // size + 1)

    reference = run([1] * len(windows))
    ids = [s.sighting_id for s in reference]
    assert len(ids) == len(set(ids)) >= 6, ids
    tracklets = list(dict.fromkeys(s.tracklet_id for s in reference))
    assert len(tracklets) == 2, ids  # the gap ended the first tracklet: its last sighting came from a batch
    first_ends = max(s.span.end_us for s in reference if s.tracklet_id == tracklets[0])
    assert first_ends < windows[gap.stop].start_us <= min(s.span.start_us for s in reference if s.tracklet_id == tracklets[1])
    assert sum(s.tracklet_id == tracklets[0] for s in reference) >= 3, ids  # first sighting + updates + final
    rng = np.random.default_rng(7)
    splits = {"batches of 8": fixed(8, 8), "3, then batches of 5": fixed(3, 5),
              "random sizes": [int(n) for n in rng.integers(1, 13, len(windows))]}
    for name, sizes in splits.items():
        got = run(sizes)
        assert [_sighting_fields(s) for s in got] == [_sighting_fields(s) for s in reference], name
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(np.asarray(a.embedding), np.asarray(b.embedding), atol=1e-5, err_msg=name)


def test_console_tile_shows_anonymized_activity_where_the_person_is(redis_service: Any) -> None:
    """The console tile between audit frames: E_an's empty-frame output with the regions anonymized for
    the embeddings since the last tile pasted in, drawn as the departure from the empty-frame output.
    With a person in view it is black but for a patch of activity (not a uniform wash, not blank)."""
    import io

    from PIL import Image

    from anonreid.gallery.console.tiles import read_tile
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode

    client = redis_service.client()
    client.flushdb()
    sensor = _world_sensor()
    # no audit frames (the tile is built from the embedding regions alone), a tile every 0.5 s
    cfg = _camera_config(audit_every_s=1000.0, tile_every_s=0.5, embed_every=5)
    node = CameraNode(CAMERA, sensor, cfg, models=load_model_bundle(), redis=client, window_t0_us=0)
    for p in _packets(2.5):
        node.push(p)
    node.end_of_stream()
    # the first audit burst comes at once: let the tap hand its full frame to the tile writer before the
    # rest is processed (at nice 19 on a busy machine it could land just before the last tile, which would
    # then show the full frame instead of the embedding regions)
    assert node.audit is not None
    node.process_batch(node.queue.get_batch(cfg.max_batch, 0.0))
    assert node.audit.drain(30)
    node.process_pending(timeout=0)  # batches of up to max_batch windows; most hold no embedding job
    png = read_tile(client, CAMERA)
    assert png is not None
    tile = np.asarray(Image.open(io.BytesIO(png)).convert("L"), np.float32)
    active = tile > 0
    assert 0.002 < active.mean() < 0.25, active.mean()  # a person-sized patch of a 320x240 view
    _ys, xs = np.nonzero(active)
    assert xs.max() - xs.min() < 0.6 * tile.shape[1]  # one place, not spread over the frame


def test_audit_offset_shifts_the_schedule_after_the_first_sample(redis_service: Any) -> None:
    """The demo spreads its cameras' audit bursts over the interval (``audit_offset_s``): the first
    burst comes at once, every later one ``audit_offset_s`` later than without the offset."""
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import open_source
    from anonreid.proto.v1 import audit_pb2

    starts: dict[float, list[int]] = {}
    client = redis_service.client()
    for offset in (0.0, 0.5):
        client.delete(f"audit:{CAMERA}")
        src = open_source(_live_spec(seconds=2.2))
        node = CameraNode(CAMERA, src.sensor, _camera_config(audit_offset_s=offset, audit_burst=1), redis=client,
                          ground_truth=src.ground_truth, window_t0_us=src.window_t0_us)
        node.run(src.packets(), backpressure=True)
        node.close()
        starts[offset] = [audit_pb2.AuditSample.FromString(f[b"sample"]).window.start_us
                          for _id, f in client.xrange(f"audit:{CAMERA}")]
    w = 33_333  # a sample starts at the first window starting at least audit_every_s after the last one
    assert [s // w for s in starts[0.0]] == [0, 31, 62]  # every 1 s of stream
    assert [s // w for s in starts[0.5]] == [0, 46]  # at once, then 1.5 s later (the next is past the end)


@pytest.mark.slow
@pytest.mark.alone
def test_a_live_camera_never_waits_for_its_audit_tap(redis_service: Any) -> None:
    """Audit asked for at every window (full-frame E_an far beyond one core): on a live, paced stream the
    tap takes what it can on its own low-priority thread and skips the rest, and the camera keeps real
    time without dropping a window. (With the audit in the pipeline, as before, this stream ran at 0.22 of
    real time and dropped windows.)"""
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import SourceSpec, open_source
    from anonreid.proto.v1 import audit_pb2

    seconds = 3.0
    spec = SourceSpec(kind="live", camera_id=CAMERA, realtime=True, world=WorldConfig().model_dump(),
                      end_us=int(seconds * 1e6), render_ahead_s=seconds + 1)  # rendered before the clock starts
    src = open_source(spec)
    client = redis_service.client()
    node = CameraNode(CAMERA, src.sensor, _camera_config(audit_every_s=0.001), redis=client,
                      ground_truth=src.ground_truth, window_t0_us=src.window_t0_us)
    stats = node.run(src.packets())
    node.close()
    src.close()
    assert stats["windows_dropped"] == 0 and stats["stream_rate"] > 0.9, stats
    assert stats["audit_skipped_bursts"] > 0 and stats["audit_samples"] >= 3, stats
    starts = [audit_pb2.AuditSample.FromString(f[b"sample"]).window.start_us for _id, f in client.xrange(f"audit:{CAMERA}")]
    assert len(starts) == stats["audit_samples"]
    w = 33_333
    for i in range(0, len(starts), 3):  # whole bursts of consecutive windows (the stream's end may cut the last)
        burst = [s // w - starts[i] // w for s in starts[i : i + 3]]
        assert burst == [0, 1, 2] or (i + 3 > len(starts) and starts[-1] // w == stats["windows"] - 1), starts


@pytest.mark.slow
def test_camera_run_command(redis_service: Any, gallery_address: str, tmp_path: Path) -> None:
    """`anonreid camera run` (one node in the foreground, as a deployment runs it): the live world for
    --duration against a real gallery and Redis; its final stats as JSON; a bad --source exits 2 naming it."""
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    out = tmp_path / "stats.json"
    res = CliRunner().invoke(app, [
        "camera", "run", "--camera", CAMERA, "--fast", "--duration", "5", "--gallery", gallery_address,
        "--redis-url", str(redis_service.url), "--metrics-port", "0", "--json", str(out),
        "--set", "camera.publish_every=30", "--set", "camera.audit_every_s=1", "--set", "camera.torch_threads=1",
    ])
    assert res.exit_code == 0, res.output
    stats = json.loads(out.read_text())
    assert stats["error"] is None and not stats["running"] and stats["windows"] > 30, stats
    assert stats["sightings_acked"] > 0 and stats["sightings_pending"] == 0, stats
    assert stats["audit_samples"] > 0 and stats["metrics_port"] > 0, stats
    assert redis_service.client().xlen(f"audit:{CAMERA}") == stats["audit_samples"]

    missing = tmp_path / "no-such-recording.h5"
    bad = CliRunner().invoke(app, ["camera", "run", "--camera", CAMERA, "--source", str(missing)])
    assert bad.exit_code == 2 and str(missing) in bad.output, bad.output


def test_the_pipeline_takes_its_shapes_from_the_model_bundle(redis_service: Any) -> None:
    """Voxel bins, crop size and embedding size come from the bundle's networks, not from constants or the
    events config: a 3-bin anonymizer with a 64-d, 64x32 ReId network runs under the default events config
    (5 bins), publishing 64-d sightings and 3-bin audit samples. (The single-module node voxelized with
    events.num_bins and summed embeddings into a fixed 256-d vector, so every batch failed.)"""
    from anonreid.models.bundle import ModelBundle
    from anonreid.models.registry import create_model
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import open_source
    from anonreid.proto.v1 import audit_pb2

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    bundle = ModelBundle(create_model("anonymizer_paper", in_bins=3).eval(),
                         create_model("reid_resnet18", in_bins=3, embed_dim=64, crop_hw=(64, 32)).eval(),
                         "test-3bins", (64, 32), num_bins=3, embed_dim=64)
    client = redis_service.client()
    src = open_source(_live_spec(seconds=2.0))
    node = CameraNode(CAMERA, src.sensor, _camera_config(embed_every=5, audit_burst=1), EventsConfig(), models=bundle,
                      redis=client, ground_truth=src.ground_truth, window_t0_us=src.window_t0_us)
    sightings = []
    try:
        for packet in src.packets():
            node.push(packet, block=True)
            while batch := node.queue.get_batch(8, 0.0):
                sightings += node.process_batch(batch)
        sightings += node.finish()
    finally:
        node.close()
    assert sightings and {len(s.embedding) for s in sightings} == {64}
    assert all(abs(np.linalg.norm(s.embedding) - 1) < 1e-4 for s in sightings)
    samples = [audit_pb2.AuditSample.FromString(f[b"sample"]) for _id, f in client.xrange(f"audit:{CAMERA}")]
    assert samples and {(s.bins, s.height, s.width) for s in samples} == {(3, 240, 320)}
