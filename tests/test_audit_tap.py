"""The camera's audit tap on a real Redis: a burst is taken only when there is room for all of it; on a
live stream a busy tap skips the burst and counts it, on a durable one the caller waits; the samples
are written by a background thread at the lowest CPU priority, in order, with their spans."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from anonreid.nodes.camera.audit_tap import AuditTap, AuditWindow
from anonreid.nodes.metrics import CameraMetrics

SHAPE = (5, 24, 32)


class GatedAnonymizer:
    """A full-frame anonymizer that holds each frame until the test opens the gate, recording the CPU
    priority of the thread it runs on."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.priorities: list[int] = []

    def __call__(self, voxel: np.ndarray) -> np.ndarray:
        self.priorities.append(os.getpriority(os.PRIO_PROCESS, 0))
        self.gate.wait(30)
        return -voxel


def _window(i: int) -> AuditWindow:
    return AuditWindow(i * 1000, (i + 1) * 1000, [((1.0, 2.0, 3.0, 4.0), f"t{i}")], voxel=np.full(SHAPE, i, np.float32))


def _tap(client: Any, anonymize: Any, camera: str) -> AuditTap:
    return AuditTap(camera, client, anonymize, "v-test", CameraMetrics(camera), maxlen=100, pending_bursts=1, burst=2)


@pytest.fixture
def client(redis_module: Any) -> Any:
    """A client of the module's embedded Redis, emptied for the test."""
    c = redis_module.client()
    c.flushdb()
    return c


def test_a_busy_tap_skips_live_bursts_and_makes_durable_streams_wait(client: Any) -> None:
    from anonreid.proto.v1 import audit_pb2

    anonymize = GatedAnonymizer()
    tap = _tap(client, anonymize, "camA")
    metrics = tap.metrics
    assert tap.begin_burst(2, wait=False)
    tap.put(_window(0))
    tap.put(_window(1))
    # the tap holds one burst: the next live burst is skipped at once and counted
    t0 = time.monotonic()
    assert not tap.begin_burst(2, wait=False)
    assert time.monotonic() - t0 < 0.5
    assert tap.skipped_bursts == 1 and metrics.audit_skipped._value.get() == 1
    # a durable stream waits for room instead
    taken: list[bool] = []
    waiter = threading.Thread(target=lambda: taken.append(tap.begin_burst(2, wait=True)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not taken
    anonymize.gate.set()
    waiter.join(10)
    assert taken == [True]
    tap.put(_window(2))
    tap.put(_window(3))
    assert tap.drain(10)
    assert tap.samples == 4 and tap.skipped_bursts == 1 and metrics.audit_samples._value.get() == 4
    samples = [audit_pb2.AuditSample.FromString(f[b"sample"]) for _id, f in client.xrange("audit:camA")]
    assert [(s.window.start_us, s.window.end_us) for s in samples] == [(i * 1000, (i + 1) * 1000) for i in range(4)]
    for i, s in enumerate(samples):
        assert (s.bins, s.height, s.width) == SHAPE and s.model_version == "v-test" and s.camera_id == "camA"
        voxel = np.frombuffer(s.anonymized_voxel, np.float16).reshape(SHAPE)
        assert (voxel == -i).all()  # the anonymizer's output, not the voxel handed over
        assert [d.tracklet_id for d in s.detections] == [f"t{i}"]
    tap.close()
    if sys.platform.startswith("linux"):  # on its own thread, at the lowest priority; the test's is untouched
        assert set(anonymize.priorities) == {19} and os.getpriority(os.PRIO_PROCESS, 0) != 19


def test_a_frame_already_anonymized_is_written_as_is(client: Any) -> None:
    from anonreid.proto.v1 import audit_pb2

    def never(voxel: np.ndarray) -> np.ndarray:
        raise AssertionError("E_an ran again on a frame the pipeline had anonymized")

    frames: list[np.ndarray] = []
    tap = AuditTap("camB", client, never, "v", CameraMetrics("camB"), maxlen=100, pending_bursts=1, burst=1,
                   on_frame=frames.append)
    anon = np.full(SHAPE, 0.5, np.float32)
    assert tap.begin_burst(1, wait=True)
    tap.put(AuditWindow(0, 1000, [], anonymized=anon))
    assert tap.drain(10) and tap.samples == 1
    tap.close()
    (_id, fields), = client.xrange("audit:camB")
    s = audit_pb2.AuditSample.FromString(fields[b"sample"])
    assert np.allclose(np.frombuffer(s.anonymized_voxel, np.float16), 0.5) and len(frames) == 1


def test_a_redis_outage_loses_samples_not_the_tap(tmp_path: Any) -> None:
    """Redis away: the sample is lost (logged), the tap keeps running and writes again once Redis is back."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    service = RedisService(RedisConfig(embedded_dir=str(tmp_path / "r"))).start()
    client = service.client()
    tap = AuditTap("camC", client, lambda v: v, "v", CameraMetrics("camC"), maxlen=100, pending_bursts=2, burst=1)
    service.stop()
    assert tap.begin_burst(1, wait=False)
    tap.put(_window(0))
    assert tap.drain(30) and tap.samples == 0
    service = RedisService(RedisConfig(embedded_dir=str(tmp_path / "r"))).start()
    try:
        tap.redis = service.client()
        assert tap.begin_burst(1, wait=False)
        tap.put(_window(1))
        assert tap.drain(30) and tap.samples == 1
        assert [f[b"sample"] != b"" for _id, f in tap.redis.xrange("audit:camC")] == [True]
    finally:
        tap.close()
        service.stop()


@pytest.mark.parametrize("windows", [0, -1])
def test_audit_window_counts_must_be_positive(windows: int) -> None:
    tap = _tap(None, lambda v: v, "camD")
    with pytest.raises(ValueError, match="windows"):
        tap.begin_burst(windows, wait=False)
