"""The gallery over gRPC: the servicer in-process, then the server on a real localhost port with a real
embedded Redis (four cameras publishing, restart, republish, bad input, health, reflection, reconnect)."""

from __future__ import annotations

import itertools
import socket
import threading
import time
import urllib.request
from concurrent import futures
from dataclasses import replace

import grpc
import numpy as np
import pytest

from anonreid.gallery.client import GalleryClient, GalleryClientError, PublishRejected
from anonreid.gallery.core import Gallery
from anonreid.gallery.errors import NotFound
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.servicer import GalleryServicer, sighting_from_pb, sighting_to_pb
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, prototypes, sighting, unit
from anonreid.gallery.types import Box, Sighting
from anonreid.orchestration.config import CameraLink, GalleryConfig
from anonreid.proto.v1 import gallery_pb2, sighting_pb2

S = 1_000_000
DIM = 256
CAMERAS = ["cam1", "cam2", "cam3", "cam4"]
CORRIDOR = [CameraLink(src=a, dst=b, min_transit_s=5, max_transit_s=60) for a, b in itertools.pairwise(CAMERAS)]


def config(port: int = 0, **kw) -> GalleryConfig:
    return GalleryConfig(**({"port": port, "metrics_port": 0, "camera_links": CORRIDOR, "grace_s": 1.0} | kw))


@pytest.fixture
def redis_url(redis_module):
    client = redis_module.client()
    client.flushdb()
    client.close()
    return redis_module.url


@pytest.fixture
def server(redis_url):
    srv = GalleryServer(config(), redis_url)
    srv.start()
    yield srv
    srv.stop(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scenario(seed: int = 0) -> tuple[dict[int, list[list[Sighting]]], dict[str, int]]:
    """Six people walking the cam1-cam2-cam3-cam4 corridor, 15 s per step (5 s in view, 10 s walking).

    Two of them look alike (prototype cosine 0.9, above the threshold) and walk the corridor in opposite
    directions at the same time: only 'nobody is in two places at once' and the camera links keep them
    apart. Returns {slot: per-camera lists of sightings} and the truth {sighting id: person}."""
    rng = np.random.default_rng(seed)
    protos = prototypes(6, DIM, rng)
    a = protos[4]
    b_dir = unit(protos[5] - (protos[5] @ a) * a)
    protos[5] = unit(0.9 * a + np.sqrt(1 - 0.81) * b_dir)
    routes = {0: (0, CAMERAS), 1: (1, CAMERAS[::-1]), 2: (2, CAMERAS), 3: (3, CAMERAS[::-1]),
              4: (0, CAMERAS), 5: (0, CAMERAS[::-1])}
    slots: dict[int, list[list[Sighting]]] = {}
    truth: dict[str, int] = {}
    for person, (first, route) in routes.items():
        for step, cam in enumerate(route):
            slot = first + step
            t = slot * 15 * S
            sid = f"p{person}-{cam}"
            per_cam = slots.setdefault(slot, [[] for _ in CAMERAS])
            per_cam[CAMERAS.index(cam)].append(
                sighting(sid, cam, f"{cam}-trk{person}", t, t + 5 * S, noisy(protos[person], 0.3, rng)))
            truth[sid] = person
    return slots, truth


def publish_from_four_cameras(address: str, slots: dict[int, list[list[Sighting]]]) -> list[gallery_pb2.PublishAck]:
    """One client per camera, in its own thread; the cameras move through the time slots together."""
    barrier = threading.Barrier(len(CAMERAS))
    acks: list[gallery_pb2.PublishAck] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def camera(index: int) -> None:
        try:
            with GalleryClient(address) as client:
                for slot in sorted(slots):
                    got = client.publish(slots[slot][index])
                    with lock:
                        acks.extend(got)
                    barrier.wait(timeout=30)
        except BaseException as exc:  # surfaced in the test thread
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=camera, args=(i,)) for i in range(len(CAMERAS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    return acks


def snapshot(client: GalleryClient) -> tuple[list, dict]:
    identities = client.list_identities()
    return ([(i.identity_id, tuple(i.cameras), i.first_seen_us, i.last_seen_us, i.num_sightings) for i in identities],
            {i.identity_id: client.trajectory(i.identity_id).SerializeToString() for i in identities})


# -- servicer in-process ---------------------------------------------------------------------------
def test_servicer_converts_protobuf_both_ways(redis_module):
    client = redis_module.client()
    client.flushdb()
    gallery = Gallery(config(), GalleryStore(client, "svc", DIM))
    servicer = GalleryServicer(gallery)
    slots, _ = scenario(1)
    requests = [sighting_to_pb(s) for slot in sorted(slots) for cam in slots[slot] for s in cam]
    assert sighting_from_pb(requests[0]).embedding.tolist() == pytest.approx(list(requests[0].embedding))
    acks = list(servicer.Publish(iter(requests), None))
    assert [a.sighting_id for a in acks] == [r.sighting_id for r in requests]
    assert sum(a.new_identity for a in acks) == 6
    joined = next(a for a in acks if a.rule == "similarity")
    assert joined.candidates[0].accepted and joined.candidates[0].identity_id == joined.identity_id
    # the look-alike, first seen on cam4 while person 4 is on cam1: similar enough, refused as simultaneous
    look_alike = {a.sighting_id: a for a in acks}["p5-cam4"]
    assert look_alike.new_identity and look_alike.rule == "new"
    best = look_alike.candidates[0]
    assert best.reason == "simultaneous" and best.similarity > 0.6 and "p4-cam1" in best.detail
    assert {c.reason for c in look_alike.candidates[1:]} == {"below_threshold"}
    ident = acks[0].identity_id
    listed = servicer.ListIdentities(gallery_pb2.ListIdentitiesRequest(), None).identities
    assert {i.identity_id for i in listed} == {a.identity_id for a in acks}
    traj = servicer.GetTrajectory(gallery_pb2.GetTrajectoryRequest(identity_id=ident), None)
    assert [st.camera_id for st in traj.steps] == CAMERAS
    req = gallery_pb2.QueryByExampleRequest(sighting_id=requests[0].sighting_id, k=3, exclude_same_camera=True)
    matches = servicer.QueryByExample(req, None).matches
    assert matches[0].identity_id == ident and matches[0].camera_id != requests[0].camera_id
    by_embedding = gallery_pb2.QueryByExampleRequest(sighting=requests[0], k=1)
    assert servicer.QueryByExample(by_embedding, None).matches[0].sighting_id == requests[0].sighting_id
    occ = servicer.Occupancy(gallery_pb2.OccupancyRequest(at_us=2 * S, window_us=S), None)
    assert {c.camera_id: c.count for c in occ.cameras} == {"cam1": 2, "cam2": 0, "cam3": 0, "cam4": 1}
    gone = servicer.Forget(gallery_pb2.ForgetRequest(identity_id=ident, reason="test"), None)
    assert gone.sightings_erased == 4
    client.close()


# -- server over a real localhost port --------------------------------------------------------------
def test_four_cameras_restart_and_republish(redis_url):
    slots, truth = scenario(0)
    srv = GalleryServer(config(), redis_url)
    address = srv.start()
    acks = publish_from_four_cameras(address, slots)
    assert len(acks) == len(truth) == 24 and not any(a.duplicate for a in acks)
    people = {}
    for ack in acks:
        people.setdefault(ack.identity_id, set()).add(truth[ack.sighting_id])
    assert len(people) == 6 and all(len(p) == 1 for p in people.values()), people  # pure and complete
    with GalleryClient(address) as client:
        before = snapshot(client)
        assert all(len(cams) == 4 for _, cams, *_ in before[0])
        occupancy = client.occupancy(at_us=2 * S, window_us=S)
    redis_keys = srv.gallery.store.client.dbsize()
    srv.stop()

    again = GalleryServer(config(), redis_url)  # restart on the same Redis
    address = again.start()
    try:
        with GalleryClient(address) as client:
            assert snapshot(client) == before
            assert client.occupancy(at_us=2 * S, window_us=S) == occupancy
            # republishing every sighting changes nothing and is acknowledged as duplicates
            replay = client.publish([s for slot in sorted(slots) for cam in slots[slot] for s in cam])
            assert all(a.duplicate for a in replay)
            assert {a.sighting_id: a.identity_id for a in replay} == {a.sighting_id: a.identity_id for a in acks}
            assert snapshot(client) == before
            assert again.gallery.store.client.dbsize() == redis_keys
            m = again.metrics
            assert m.value("anonreid_gallery_duplicates_total") == 24
            assert m.value("anonreid_gallery_entries") == 24 and m.value("anonreid_gallery_identities") == 6
    finally:
        again.stop()


def test_bad_input_gets_the_right_status_and_nothing_is_lost(server):
    rng = np.random.default_rng(3)
    address = server.address
    now_us = time.time_ns() // 1000
    good = [sighting(f"g{i}", "cam1", f"t{i}", i * 100 * S, i * 100 * S + S, prototypes(1, DIM, rng)[0])
            for i in range(3)]
    # at the bounds: published now, the box on the sensor's edge, a model version of the longest length
    good[2] = replace(good[2], published_at_us=now_us, box=Box(0, 0, 1280, 800, 3, 1280 * 800, -5, 5),
                      model_version="v" * 256)
    with GalleryClient(address, retry_timeout_s=1.0) as client:
        client.publish(good[:1])

        def bad_one(sid: str, **change: object) -> Sighting:
            return replace(sighting(sid, "cam2", "t", 0, S, prototypes(1, DIM, rng)[0]), **change)

        bad = [
            sighting("bad-size", "cam2", "t", 0, S, np.ones(DIM - 1, np.float32)),
            sighting("bad-nan", "cam2", "t", 0, S, np.full(DIM, np.nan, np.float32)),
            sighting("bad-cam", "cam9", "t", 0, S, prototypes(1, DIM, rng)[0]),
            sighting("bad-span", "cam2", "t", 5 * S, S, prototypes(1, DIM, rng)[0]),
            sighting("", "cam2", "t", 0, S, prototypes(1, DIM, rng)[0]),
            # a camera skewing the time views, the boxes or the stored strings (issue 17, item 8)
            bad_one("bad-end", end_us=2**63 - 1),
            bad_one("bad-start", start_us=now_us + 3600 * S, end_us=now_us + 3601 * S),
            bad_one("bad-published", published_at_us=-(2**63)),
            bad_one("bad-published-future", published_at_us=now_us + 3600 * S),
            bad_one("bad-box-nan", box=Box(float("nan"), 0, 10, 10)),
            bad_one("bad-box-inf", box=Box(0, 0, 10, 10, 1, 100.0, float("inf"), 0)),
            bad_one("bad-box-outside", box=Box(10, 20, 1e9, 120)),
            bad_one("bad-box-negative", box=Box(-3, 20, 40, 120)),
            bad_one("bad-box-area", box=Box(10, 20, 40, 120, 1, 1e12)),
            bad_one("bad-model", model_version="v" * 3_900_000),
            bad_one("bad-model-escape", model_version="v1\x1b[2J"),
        ]
        # bad sightings in the middle of a stream: each is refused by name, the good ones still go in
        with pytest.raises(PublishRejected) as err:
            client.publish([good[1], *bad, good[2]])
        assert {r.sighting_id: r.reason for r in err.value.rejected} == {
            "bad-size": "embedding_size", "bad-nan": "embedding_not_finite", "bad-cam": "unknown_camera",
            "bad-span": "end_before_start", "": "empty_id", "bad-end": "future_time", "bad-start": "future_time",
            "bad-published": "negative_time", "bad-published-future": "future_time",
            "bad-box-nan": "box_not_finite", "bad-box-inf": "box_not_finite", "bad-box-outside": "box_outside",
            "bad-box-negative": "box_outside", "bad-box-area": "box_outside", "bad-model": "bad_text",
            "bad-model-escape": "bad_text"}
        named = {r.sighting_id: r.details for r in err.value.rejected}
        for sid, field in {"bad-end": "span.end_us", "bad-start": "span.end_us", "bad-published": "published_at_us",
                           "bad-published-future": "published_at_us", "bad-box-nan": "box.x1",
                           "bad-box-inf": "box.velocity_x", "bad-box-outside": "box x1..x2",
                           "bad-box-negative": "box x1..x2", "bad-box-area": "box.mean_area",
                           "bad-model": "model_version", "bad-model-escape": "model_version"}.items():
            assert field in named[sid], (sid, named[sid])
        assert "gallery.max_clock_skew_s" in named["bad-end"] and "gallery.max_sensor_width" in named["bad-box-outside"]
        assert [a.sighting_id for a in err.value.acks] == ["g1", "g2"]
        assert "cam9" in next(r.details for r in err.value.rejected if r.sighting_id == "bad-cam")
        assert set(server.gallery._sightings) == {"g0", "g1", "g2"}  # nothing of a refused sighting is stored
        codes = {}
        for name, call in {
            "unknown identity": lambda: client.trajectory("id-424242"),
            "unknown sighting": lambda: client.query(sighting_id="nope"),
            "empty query": lambda: client.query(k=3),
            "k too large": lambda: client.query(sighting_id="g0", k=10**6),
            "forget unknown": lambda: client.forget("id-424242"),
        }.items():
            with pytest.raises(GalleryClientError) as e:
                call()
            codes[name] = e.value.code
        assert codes == {"unknown identity": grpc.StatusCode.NOT_FOUND,
                         "unknown sighting": grpc.StatusCode.NOT_FOUND,
                         "empty query": grpc.StatusCode.INVALID_ARGUMENT,
                         "k too large": grpc.StatusCode.INVALID_ARGUMENT,
                         "forget unknown": grpc.StatusCode.NOT_FOUND}
        # malformed protobuf bytes: INVALID_ARGUMENT naming the problem (grpc alone would say INTERNAL)
        raw = client.channel.unary_unary("/anonreid.v1.Gallery/GetTrajectory")
        with pytest.raises(grpc.RpcError) as e:
            raw(b"\xff\xff\xff\xff", timeout=5)
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "malformed" in e.value.details()
        # oversized message: refused by the transport limit
        huge = sighting_pb2.Sighting(sighting_id="huge", camera_id="cam1", tracklet_id="t",
                                     embedding=[0.1] * (server.config.max_message_bytes // 4 + 10))
        with pytest.raises(GalleryClientError) as e:
            client.publish([huge])
        assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        # an unexpected failure inside the gallery: INTERNAL with a generic message, details stay inside
        real = server.gallery.occupancy
        server.gallery.occupancy = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("secret detail"))
        try:
            with pytest.raises(GalleryClientError) as e:
                client.occupancy()
        finally:
            server.gallery.occupancy = real
        assert e.value.code == grpc.StatusCode.INTERNAL and "secret" not in e.value.details
        # the server kept running and everything accepted is still there
        assert client.health() == "SERVING"
        assert [i.num_sightings for i in client.list_identities()] == [1, 1, 1]
        assert client.query(sighting_id="g0", k=1)[0].sighting_id in {"g1", "g2"}
    m = server.metrics
    assert m.value("anonreid_gallery_rejected_total", reason="embedding_size") == 1
    assert m.value("anonreid_gallery_rejected_total", reason="malformed") == 1
    assert m.value("anonreid_grpc_requests_total", method="/anonreid.v1.Gallery/GetTrajectory",
                   code="NOT_FOUND") == 1
    assert m.value("anonreid_grpc_requests_total", method="/anonreid.v1.Gallery/Occupancy", code="INTERNAL") == 1


def test_health_reflection_and_metrics_endpoint(server):
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

    with GalleryClient(server.address) as client:
        assert client.health() == "SERVING"
        assert client.health("anonreid.v1.Gallery") == "SERVING"
        services = set(ProtoReflectionDescriptorDatabase(client.channel).get_services())
        assert {"anonreid.v1.Gallery", "grpc.health.v1.Health"} <= services
        client.list_identities()
    body = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=5).read().decode()
    assert 'anonreid_grpc_requests_total{code="OK",method="/anonreid.v1.Gallery/ListIdentities"} 1.0' in body
    for name in ("anonreid_gallery_entries", "anonreid_gallery_identities",
                 "anonreid_gallery_search_latency_seconds_bucket", "anonreid_grpc_request_latency_seconds_bucket"):
        assert name in body


def test_client_reconnects_and_replays_across_a_gallery_restart(redis_url):
    """The gallery stops mid-stream and comes back on the same port: every sighting lands exactly once."""
    port = free_port()
    first = GalleryServer(config(port), redis_url)
    first.start()
    rng = np.random.default_rng(4)
    protos = prototypes(40, DIM, rng)
    items = [sighting(f"r{i}", "cam1", f"t{i}", i * 100 * S, i * 100 * S + S, noisy(protos[i], 0.2, rng))
             for i in range(40)]
    restarted = threading.Event()

    def source():
        for i, s in enumerate(items):
            if i == 15:
                # the gallery goes away with sightings in flight, once it has stored some (a gallery that
                # stores nothing fails the publish with this source's error)
                deadline = time.monotonic() + 10
                while not len(first.gallery or []):
                    assert time.monotonic() < deadline, "the gallery stored none of the first 15 sightings"
                    time.sleep(0.01)
                first.stop(0)
                threading.Thread(target=restart, daemon=True).start()
            yield s

    second: list[GalleryServer] = []

    def restart():
        # down until the client has retried against it: its first reconnect attempt failed too
        deadline = time.monotonic() + 10
        while client.reconnects < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        srv = GalleryServer(config(port), redis_url)
        srv.start()
        second.append(srv)
        restarted.set()

    with GalleryClient(f"127.0.0.1:{port}", retry_timeout_s=20) as client:
        acks = client.publish(source())
        assert restarted.wait(10) and client.reconnects >= 1
        assert {a.sighting_id for a in acks} == {s.sighting_id for s in items}
        assert len(client.list_identities(limit=1000)) == 40
    srv = second[0]
    try:
        assert len(srv.gallery) == 40
        keys = srv.gallery.store.client.keys(f"{srv.config.redis_prefix}:s:*")
        assert len(keys) == 40  # stored exactly once each
    finally:
        srv.stop(0)


def test_redis_down_is_unavailable_and_the_node_survives(tmp_path):
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    redis = RedisService(RedisConfig(embedded_dir=str(tmp_path / "r"))).start()
    srv = GalleryServer(config(), redis.url)
    address = srv.start()
    rng = np.random.default_rng(5)
    try:
        with GalleryClient(address, retry_timeout_s=0.5) as client:
            client.publish([sighting("d1", "cam1", "t", 0, S, prototypes(1, DIM, rng)[0])])
            redis.stop()
            with pytest.raises(GalleryClientError) as err:
                client.publish([sighting("d2", "cam2", "t", 20 * S, 21 * S, prototypes(1, DIM, rng)[0])])
            assert err.value.code == grpc.StatusCode.UNAVAILABLE and "Redis" in err.value.details
            assert client.health() == "SERVING"
            assert [i.num_sightings for i in client.list_identities()] == [1]  # nothing half-written
    finally:
        srv.stop(0)


def test_a_failing_source_is_raised_after_what_it_gave_is_stored(server):
    rng = np.random.default_rng(6)

    def source():
        yield sighting("e1", "cam1", "t", 0, S, prototypes(1, DIM, rng)[0])
        raise RuntimeError("camera pipeline broke")

    with GalleryClient(server.address) as client, pytest.raises(RuntimeError, match="pipeline broke"):
        client.publish(source())
    assert server.gallery.sighting("e1").camera_id == "cam1"


def test_the_wire_client_takes_messages_only_and_keeps_what_came_before_a_wrong_item(server):
    """The camera's client (proto/gallery_client.py, no gallery import) publishes wire messages; a domain
    Sighting given to it is refused naming its type, after the messages before it are stored. The
    gallery's client (gallery/client.py) takes the domain type."""
    from anonreid.proto.gallery_client import GalleryClient as WireClient

    rng = np.random.default_rng(7)
    first, second = (sighting(f"w{i}", "cam1", "t", i * S, (i + 1) * S, prototypes(1, DIM, rng)[0]) for i in range(2))
    with WireClient(server.address) as wire, pytest.raises(TypeError, match=r"sighting_pb2\.Sighting messages, not Sighting"):
        wire.publish([sighting_to_pb(first), second])
    assert server.gallery.sighting("w0").camera_id == "cam1"
    with pytest.raises(NotFound):
        server.gallery.sighting("w1")
    with GalleryClient(server.address) as client:
        [ack] = client.publish([second])
    assert ack.sighting_id == "w1" and not ack.duplicate


def test_a_gallery_without_publish_batches_is_published_to_on_publish(redis_module):
    """A camera newer than its gallery: an older gallery has no PublishBatches (UNIMPLEMENTED), so the
    client publishes on Publish, one sighting a message, from then on; nothing is lost or stored twice."""
    store = redis_module.client()
    store.flushdb()
    gallery = Gallery(config(), GalleryStore(store, "old", DIM))
    publish_only = grpc.method_handlers_generic_handler("anonreid.v1.Gallery", {
        "Publish": grpc.stream_stream_rpc_method_handler(
            GalleryServicer(gallery).Publish, request_deserializer=sighting_pb2.Sighting.FromString,
            response_serializer=gallery_pb2.PublishAck.SerializeToString)})
    old = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    old.add_generic_rpc_handlers((publish_only,))
    port = old.add_insecure_port("127.0.0.1:0")
    old.start()
    rng = np.random.default_rng(8)
    sent = [sighting(f"o{i}", CAMERAS[i % 4], f"t{i}", i * 100 * S, i * 100 * S + S, prototypes(1, DIM, rng)[0])
            for i in range(10)]
    try:
        with GalleryClient(f"127.0.0.1:{port}", retry_timeout_s=5.0) as client:
            assert client.publish_batch > 1
            acks = client.publish(sent[:6])
            assert client.publish_batch == 1
            acks += client.publish(sent[6:])
        assert [a.sighting_id for a in acks] == [s.sighting_id for s in sent] and not any(a.duplicate for a in acks)
        assert len(gallery) == 10
    finally:
        old.stop(0)
        store.close()


class _OperatorsCannotForget(grpc.ServerInterceptor):
    """A minimal access rule plugged in the way the security layer plugs in: it raises the domain error."""

    def intercept_service(self, continuation, handler_call_details):
        from anonreid.gallery.errors import PermissionDenied

        handler = continuation(handler_call_details)
        if handler_call_details.method.endswith("/Forget"):
            def deny(request, context):
                raise PermissionDenied("role operator may not call Forget", reason="role")

            return handler._replace(unary_unary=deny)
        return handler


def test_extra_interceptors_and_permission_denied(redis_url):
    srv = GalleryServer(config(), redis_url, interceptors=[_OperatorsCannotForget()])
    address = srv.start()
    try:
        with GalleryClient(address) as client:
            with pytest.raises(GalleryClientError) as err:
                client.forget("id-000001")
            assert err.value.code == grpc.StatusCode.PERMISSION_DENIED and err.value.reason == "role"
            assert client.list_identities() == []
    finally:
        srv.stop(0)
