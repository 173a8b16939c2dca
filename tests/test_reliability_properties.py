"""Property-based tests (hypothesis) against the gallery's gRPC handlers on a real localhost server.

Whatever bytes or field values a peer sends, the gallery answers with a deliberate status (OK,
INVALID_ARGUMENT naming the field, NOT_FOUND) — never INTERNAL or UNKNOWN —, keeps serving, stores a
sighting exactly when it acknowledged it as new, and loses nothing it had accepted. The number of
cases tried is printed and added to the terminal summary ("hypothesis cases tried").
"""

from __future__ import annotations

import math
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


METHODS = ["Publish", "ListIdentities", "GetTrajectory", "QueryByExample", "Occupancy", "Forget"]


@SETTINGS
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=512))
def test_arbitrary_bytes_get_a_deliberate_status(gallery: Any, cases: dict, method: str, payload: bytes) -> None:
    srv, channel = gallery
    cases["arbitrary_bytes"] = cases.get("arbitrary_bytes", 0) + 1
    before = len(srv.gallery)
    streaming = method == "Publish"
    call = _raw(channel, method, streaming)
    code, _reply, details = _status(
        (lambda: list(call(iter([payload]), timeout=10))) if streaming else (lambda: call(payload, timeout=10)))
    assert code in DELIBERATE, (method, payload, code, details)
    assert len(srv.gallery) >= before  # nothing accepted is lost


finite = st.floats(-10, 10, allow_nan=False, width=32)
any_float = st.floats(width=32)  # NaN, +-inf, subnormals, huge
ids = st.text(max_size=300)


@st.composite
def sightings(draw: Any) -> sighting_pb2.Sighting:
    size = draw(st.sampled_from([DIM, DIM, DIM, 0, DIM - 1, DIM + 1]))
    emb = draw(st.lists(st.one_of(finite, finite, any_float), min_size=size, max_size=size))
    start = draw(st.integers(-(2**40), 2**50))
    return sighting_pb2.Sighting(
        sighting_id=draw(st.one_of(st.uuids().map(str), ids)),
        camera_id=draw(st.one_of(st.sampled_from(CAMERAS), ids)),
        tracklet_id=draw(st.one_of(st.just("t1"), ids)),
        span=sighting_pb2.TimeSpan(start_us=start, end_us=start + draw(st.integers(-(10**6), 10**8))),
        embedding=emb,
        quality=draw(st.one_of(st.floats(0, 1), any_float)),
        model_version=draw(st.text(max_size=20)),
    )


def _valid(s: sighting_pb2.Sighting) -> bool:
    emb = np.asarray(s.embedding, np.float64)
    def ok_id(x: str) -> bool:
        return 0 < len(x) <= 256 and x.isprintable()
    return (ok_id(s.sighting_id) and ok_id(s.camera_id) and ok_id(s.tracklet_id) and s.camera_id in CAMERAS
            and 0 <= s.span.start_us <= s.span.end_us and math.isfinite(s.quality) and 0 <= s.quality <= 1
            and emb.size == DIM and bool(np.isfinite(emb).all()) and float(np.linalg.norm(emb)) > 1e-6)


@SETTINGS
@given(batch=st.lists(sightings(), min_size=1, max_size=4))
def test_published_sightings_are_stored_exactly_when_acknowledged(gallery: Any, cases: dict,
                                                                   batch: list[sighting_pb2.Sighting]) -> None:
    srv, channel = gallery
    cases["publish_fields"] = cases.get("publish_fields", 0) + 1
    stub = gallery_pb2_grpc.GalleryStub(channel)
    known = {s.sighting_id for s in batch if s.sighting_id in srv.gallery._sightings}
    before = len(srv.gallery)
    acks: list[gallery_pb2.PublishAck] = []

    def publish() -> None:
        for ack in stub.Publish(iter(batch), timeout=10):
            acks.append(ack)

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
