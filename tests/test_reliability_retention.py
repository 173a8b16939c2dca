"""Data protection over a real gallery (gRPC + embedded Redis + FAISS): after the retention period or a
``forget``, an identity is absent from FAISS, from Redis and from every query, also after a restart."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc
import numpy as np
import pytest
import redis

from anonreid.gallery.client import GalleryClient, GalleryClientError
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.synthetic import noisy, prototypes, sighting
from anonreid.gallery.types import Sighting
from anonreid.orchestration.config import GalleryConfig

S = 1_000_000
DIM = 256


def _config(**kw: Any) -> GalleryConfig:
    return GalleryConfig(**({"port": 0, "metrics_port": 0, "grace_s": 0.5} | kw))


def _person(name: str, proto: np.ndarray, rng: np.random.Generator, t0_s: int) -> list[Sighting]:
    """Three sightings of one person: cam1, then cam2 and cam3 minutes apart (one identity)."""
    return [sighting(f"{name}-{cam}", cam, f"{cam}-{name}", (t0_s + 120 * i) * S, (t0_s + 120 * i + 5) * S,
                     noisy(proto, 0.1, rng)) for i, cam in enumerate(("cam1", "cam2", "cam3"))]


def assert_absent(srv: GalleryServer, client: GalleryClient, identity: str, people: list[Sighting]) -> None:
    """The identity and its sightings are in neither FAISS, Redis nor any query's answer."""
    gallery = srv.gallery
    assert gallery is not None
    ids = {s.sighting_id for s in people}
    # FAISS: searching with the person's own embeddings finds none of their sightings
    for s in people:
        _sims, fids = gallery.index.search(np.asarray(s.embedding, np.float32) / np.linalg.norm(s.embedding), 50)
        found = {gallery._by_fid[int(f)].sighting_id for f in fids[0] if f >= 0 and int(f) in gallery._by_fid}
        assert not found & ids
    # Redis: no sighting hash, no identity set, not in the identity list
    r, store = gallery.store.client, gallery.store
    assert not any(r.exists(store.sighting_key(i)) for i in ids)
    assert not r.exists(store.identity_key(identity))
    assert identity.encode() not in r.smembers(f"{srv.config.redis_prefix}:identities")
    # every query
    assert identity not in {i.identity_id for i in client.list_identities(limit=1000)}
    with pytest.raises(GalleryClientError) as err:
        client.trajectory(identity)
    assert err.value.code == grpc.StatusCode.NOT_FOUND
    for s in people:
        assert not {m.sighting_id for m in client.query(sighting=s, k=100)} & ids
        assert not {m.identity_id for m in client.query(sighting=s, k=100)} & {identity}
        with pytest.raises(GalleryClientError):
            client.query(sighting_id=s.sighting_id)
    assert not any(identity in c.identity_ids for c in client.occupancy(at_us=10**12, window_us=10**12))


def test_forget_erases_everywhere_and_survives_replay_and_restart(redis_url: str) -> None:
    rng = np.random.default_rng(0)
    protos = prototypes(2, DIM, rng)
    alice, bob = _person("alice", protos[0], rng, 0), _person("bob", protos[1], rng, 30)
    srv = GalleryServer(_config(), redis_url)
    address = srv.start()
    try:
        with GalleryClient(address) as client:
            acks = client.publish(alice + bob)
            ida = {a.identity_id for a in acks if a.sighting_id.startswith("alice")}
            idb = {a.identity_id for a in acks if a.sighting_id.startswith("bob")}
            assert len(ida) == len(idb) == 1 and ida != idb
            identity = ida.pop()
            assert client.forget(identity, reason="test") == 3
            assert_absent(srv, client, identity, alice)
            # a camera replaying a forgotten sighting does not bring the person back
            again = client.publish(alice)
            assert all(a.duplicate and not a.identity_id for a in again)
            assert_absent(srv, client, identity, alice)
            assert [i.identity_id for i in client.list_identities()] == [idb.pop()]
            assert client.forget(identity) == 0  # idempotent
        srv.stop(0)
        srv = GalleryServer(_config(), redis_url)
        with GalleryClient(srv.start()) as client:
            assert_absent(srv, client, identity, alice)
            assert len(client.list_identities()) == 1
    finally:
        srv.stop(0)


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.02)


def test_retention_expires_sightings_from_redis_faiss_and_queries(redis_url: str) -> None:
    """On the gallery's clock seam (``expire(now_us)``): what was ingested more than the retention period
    before ``now_us`` goes from FAISS, Redis and every query; what is newer stays whole."""
    rng = np.random.default_rng(1)
    protos = prototypes(2, DIM, rng)
    old, new = _person("old", protos[0], rng, 0), _person("new", protos[1], rng, 30)
    retention_s = 3600.0  # nothing expires on the wall clock while the test runs; the sweeper keeps running
    srv = GalleryServer(_config(retention_s=retention_s, retention_sweep_s=0.05), redis_url)
    address = srv.start()
    try:
        gallery = srv.gallery
        assert gallery is not None
        with GalleryClient(address) as client:
            before_us = time.time_ns() // 1000
            old_identity = client.publish(old)[0].identity_id
            store = gallery.store
            ttl = store.client.pttl(store.sighting_key(old[0].sighting_id))
            assert retention_s * 1000 - 60_000 < ttl <= retention_s * 1000  # Redis expires it with no gallery running
            between_us = time.time_ns() // 1000  # after "old" was ingested, before "new" is
            new_identity = client.publish(new)[0].identity_id
            retention_us = round(retention_s * 1e6)
            assert gallery.expire(now_us=before_us + retention_us) == 0  # nothing is that old yet
            assert gallery.expire(now_us=between_us + retention_us) == 3
            assert_absent(srv, client, old_identity, old)
            # the newer person is still there, whole
            assert [i.identity_id for i in client.list_identities()] == [new_identity]
            assert len(gallery.index) == 3
            assert {s for st in client.trajectory(new_identity).steps for s in st.sighting_ids} == \
                {s.sighting_id for s in new}
            assert gallery.expire(now_us=between_us + retention_us) == 0  # done once
    finally:
        srv.stop(0)


def test_retention_sweeper_and_redis_ttl_on_the_wall_clock(redis_url: str) -> None:
    """The real clock: the gallery's sweeper thread erases an expired person; with the gallery stopped,
    Redis's own TTL removes the rest, and a restarted gallery finds nothing."""
    rng = np.random.default_rng(3)
    protos = prototypes(2, DIM, rng)
    first, second = _person("first", protos[0], rng, 0), _person("second", protos[1], rng, 30)
    retention = 1.0
    srv = GalleryServer(_config(retention_s=retention, retention_sweep_s=0.05), redis_url)
    address = srv.start()
    try:
        with GalleryClient(address) as client:
            identity = client.publish(first)[0].identity_id
            _wait_until(lambda: client.list_identities() == [], "the sweeper erases the expired identity")
            assert_absent(srv, client, identity, first)
            second_identity = client.publish(second)[0].identity_id
        srv.stop(0)  # before "second" expires: from here on only Redis's TTL can remove it
        r, key = redis.Redis.from_url(redis_url), f"{srv.config.redis_prefix}:s:*"
        try:
            assert len(r.keys(key)) == len(second)
            _wait_until(lambda: r.keys(key) == [], "Redis expires the stopped gallery's sightings")
        finally:
            r.close()
        srv = GalleryServer(_config(retention_s=retention), redis_url)
        with GalleryClient(srv.start()) as client:
            assert client.list_identities() == [] and len(srv.gallery.index) == 0  # type: ignore[union-attr]
            assert_absent(srv, client, second_identity, second)
    finally:
        srv.stop(0)


def test_retention_off_keeps_everything(redis_url: str) -> None:
    rng = np.random.default_rng(2)
    srv = GalleryServer(_config(), redis_url)
    with GalleryClient(srv.start()) as client:
        client.publish(_person("kept", prototypes(1, DIM, rng)[0], rng, 0))
        store = srv.gallery.store  # type: ignore[union-attr]
        assert store.client.pttl(store.sighting_key("kept-cam1")) == -1  # no expiry
        assert srv.gallery.expire(now_us=2**62) == 0  # type: ignore[union-attr]
    srv.stop(0)
