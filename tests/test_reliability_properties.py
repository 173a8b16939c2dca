"""Property-based tests (hypothesis) against the gallery's gRPC handlers on a real localhost server.

Whatever bytes or field values a peer sends, the gallery answers with a deliberate status (OK,
INVALID_ARGUMENT naming the field, NOT_FOUND) — never INTERNAL or UNKNOWN —, keeps serving, stores a
sighting exactly when it acknowledged it as new, and loses nothing it had accepted. The number of
cases tried is printed and added to the terminal summary ("hypothesis cases tried").
"""

from __future__ import annotations

import math
import time
from typing import Any

import grpc
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from anonreid.gallery.service import GalleryServer
from anonreid.orchestration.config import GalleryConfig
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc, sighting_pb2

DIM = 16
CAMERAS = ["cam1", "cam2"]
DELIBERATE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def gallery(redis_module: Any) -> Any:
    client = redis_module.client()
    client.flushdb()
    srv = GalleryServer(GalleryConfig(port=0, metrics_port=0, embedding_dim=DIM, camera_ids=CAMERAS, grace_s=0.2),
                        redis_module.url, serve_metrics=False)
    address = srv.start()
    channel = grpc.insecure_channel(address)
    yield srv, channel
    channel.close()
    srv.stop(0)


@pytest.fixture(scope="module")
def cases(request: pytest.FixtureRequest) -> Any:
    """Counts hypothesis cases per test; printed and reported in the terminal summary."""
    counts: dict[str, int] = {}
    yield counts
    summary = request.config.__dict__.setdefault("anonreid_hypothesis_cases", {})
    summary.update(counts)
    for name, n in counts.items():
        print(f"hypothesis: {n} cases tried in {name}")


def _raw(channel: grpc.Channel, method: str, streaming: bool) -> Any:
    ident = lambda b: b  # noqa: E731 - send and receive raw bytes
    if streaming:
        return channel.stream_stream(f"/anonreid.v1.Gallery/{method}", request_serializer=ident,
                                     response_deserializer=ident)
    return channel.unary_unary(f"/anonreid.v1.Gallery/{method}", request_serializer=ident,
                               response_deserializer=ident)


def _status(fn: Any) -> tuple[grpc.StatusCode, Any, str]:
    try:
        return grpc.StatusCode.OK, fn(), ""
    except grpc.RpcError as err:
        return err.code(), None, err.details() or ""


METHODS = ["Publish", "PublishBatches", "ListIdentities", "GetTrajectory", "QueryByExample", "Occupancy", "Forget"]


@SETTINGS
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=512))
def test_arbitrary_bytes_get_a_deliberate_status(gallery: Any, cases: dict, method: str, payload: bytes) -> None:
    srv, channel = gallery
    cases["arbitrary_bytes"] = cases.get("arbitrary_bytes", 0) + 1
    before = len(srv.gallery)
    streaming = method.startswith("Publish")
    call = _raw(channel, method, streaming)
    code, _reply, details = _status(
        (lambda: list(call(iter([payload]), timeout=10))) if streaming else (lambda: call(payload, timeout=10)))
    assert code in DELIBERATE, (method, payload, code, details)
    assert len(srv.gallery) >= before  # nothing accepted is lost


finite = st.floats(-10, 10, allow_nan=False, width=32)
any_float = st.floats(width=32)  # NaN, +-inf, subnormals, huge
ids = st.text(max_size=300)


NOW_US = time.time_ns() // 1000
SKEW_US = round(GalleryConfig().max_clock_skew_s * 1e6)
SENSOR = (GalleryConfig().max_sensor_width, GalleryConfig().max_sensor_height)
coordinate = st.one_of(st.floats(0, 1280, width=32), st.floats(0, 800, width=32), any_float)
timestamp = st.one_of(st.just(0), st.integers(0, NOW_US), st.integers(NOW_US, NOW_US + 2 * SKEW_US),
                      st.integers(-(2**63), 2**63 - 1))


@st.composite
def boxes(draw: Any) -> sighting_pb2.BoxSummary:
    if draw(st.booleans()):
        return sighting_pb2.BoxSummary()  # no box summary: all zeros
    x1, x2, y1, y2 = (draw(coordinate) for _ in range(4))
    return sighting_pb2.BoxSummary(x1=x1, y1=y1, x2=x2, y2=y2, num_boxes=draw(st.integers(0, 2**32 - 1)),
                                   mean_area=draw(st.one_of(st.floats(0, 1e4, width=32), any_float)),
                                   velocity_x=draw(st.one_of(finite, any_float)), velocity_y=draw(finite))


@st.composite
def sightings(draw: Any) -> sighting_pb2.Sighting:
    size = draw(st.sampled_from([DIM, DIM, DIM, 0, DIM - 1, DIM + 1]))
    emb = draw(st.lists(st.one_of(finite, finite, any_float), min_size=size, max_size=size))
    start = draw(st.one_of(st.integers(-(2**40), 2**50), st.integers(NOW_US - 10**8, NOW_US + SKEW_US)))
    return sighting_pb2.Sighting(
        sighting_id=draw(st.one_of(st.uuids().map(str), ids)),
        camera_id=draw(st.one_of(st.sampled_from(CAMERAS), ids)),
        tracklet_id=draw(st.one_of(st.just("t1"), ids)),
        span=sighting_pb2.TimeSpan(start_us=start, end_us=start + draw(st.integers(-(10**6), 10**8))),
        box=draw(boxes()),
        embedding=emb,
        quality=draw(st.one_of(st.floats(0, 1), any_float)),
        model_version=draw(st.one_of(st.text(max_size=20), st.text(min_size=250, max_size=300))),
        published_at_us=draw(timestamp),
    )


def _valid(s: sighting_pb2.Sighting) -> bool:
    emb = np.asarray(s.embedding, np.float64)
    def ok_id(x: str) -> bool:
        return 0 < len(x) <= 256 and x.isprintable()
    b, (width, height) = s.box, SENSOR
    latest = time.time_ns() // 1000 + SKEW_US
    box_ok = (all(math.isfinite(v) for v in (b.x1, b.y1, b.x2, b.y2, b.mean_area, b.velocity_x, b.velocity_y))
              and 0 <= b.x1 <= b.x2 <= width and 0 <= b.y1 <= b.y2 <= height and 0 <= b.mean_area <= width * height)
    return (ok_id(s.sighting_id) and ok_id(s.camera_id) and ok_id(s.tracklet_id) and s.camera_id in CAMERAS
            and (s.model_version == "" or ok_id(s.model_version))
            and 0 <= s.span.start_us <= s.span.end_us and math.isfinite(s.quality) and 0 <= s.quality <= 1
            and s.span.end_us <= latest and 0 <= s.published_at_us <= latest and box_ok
            and emb.size == DIM and bool(np.isfinite(emb).all()) and float(np.linalg.norm(emb)) > 1e-6)


@SETTINGS
@given(batch=st.lists(sightings(), min_size=1, max_size=4), per_message=st.integers(0, 4))
def test_published_sightings_are_stored_exactly_when_acknowledged(gallery: Any, cases: dict,
                                                                   batch: list[sighting_pb2.Sighting],
                                                                   per_message: int) -> None:
    """On Publish (``per_message`` 0), and on PublishBatches with that many sightings a message."""
    srv, channel = gallery
    cases["publish_fields"] = cases.get("publish_fields", 0) + 1
    stub = gallery_pb2_grpc.GalleryStub(channel)
    known = {s.sighting_id for s in batch if s.sighting_id in srv.gallery._sightings}
    before = len(srv.gallery)
    acks: list[gallery_pb2.PublishAck] = []

    def publish() -> None:
        if per_message == 0:
            acks.extend(stub.Publish(iter(batch), timeout=10))
            return
        messages = [gallery_pb2.SightingBatch(sightings=batch[i : i + per_message])
                    for i in range(0, len(batch), per_message)]
        for reply in stub.PublishBatches(iter(messages), timeout=10):
            acks.extend(reply.acks)

    code, _, details = _status(publish)
    assert code in DELIBERATE, (code, details)
    # acks come in order for a prefix of the batch; the first invalid sighting ends the stream
    prefix = batch[:len(acks)]
    assert [a.sighting_id for a in acks] == [s.sighting_id for s in prefix]
    assert all(_valid(s) for s in prefix)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert len(acks) < len(batch) and not _valid(batch[len(acks)])
        assert details  # the status names the problem
    else:
        assert code == grpc.StatusCode.OK and len(acks) == len(batch)
    new = {a.sighting_id for a in acks if not a.duplicate} - known
    assert len(srv.gallery) == before + len(new)
    for a in acks:
        if not a.duplicate:
            assert srv.gallery.store.client.exists(srv.gallery.store.sighting_key(a.sighting_id))


@SETTINGS
@given(k=st.integers(-5, 5000), sighting_id=ids, limit=st.integers(-5, 20000), camera=st.one_of(st.just(""), ids),
       at=st.integers(-(2**62), 2**62), window=st.integers(-(2**40), 2**62), identity=ids)
def test_queries_answer_deliberately(gallery: Any, cases: dict, k: int, sighting_id: str, limit: int, camera: str,
                                     at: int, window: int, identity: str) -> None:
    srv, channel = gallery
    cases["queries"] = cases.get("queries", 0) + 1
    stub = gallery_pb2_grpc.GalleryStub(channel)
    calls = [
        lambda: stub.QueryByExample(gallery_pb2.QueryByExampleRequest(sighting_id=sighting_id, k=k), timeout=10),
        lambda: stub.ListIdentities(gallery_pb2.ListIdentitiesRequest(limit=limit, camera_id=camera), timeout=10),
        lambda: stub.Occupancy(gallery_pb2.OccupancyRequest(at_us=at, window_us=window), timeout=10),
        lambda: stub.GetTrajectory(gallery_pb2.GetTrajectoryRequest(identity_id=identity), timeout=10),
    ]
    for call in calls:
        code, reply, details = _status(call)
        assert code in DELIBERATE, (code, details)
    code, reply, _ = _status(calls[0])
    if code == grpc.StatusCode.OK:
        assert len(reply.matches) <= max(k, 0) or (k == 0 and len(reply.matches) <= srv.config.query_k)
