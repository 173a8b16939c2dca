"""Batched association: one FAISS search per arriving batch gives exactly what sighting-by-sighting
association gives, on a recorded stream (real Redis, the gallery's own index layouts)."""

from __future__ import annotations

import collections
import dataclasses

import numpy as np
import pytest
from gallery_streams import CAMS, DIM, S, batches, recorded_stream, same_decisions

from anonreid.gallery.core import Gallery
from anonreid.gallery.index import BatchNeighbours, EmbeddingIndex
from anonreid.gallery.servicer import GalleryServicer, sighting_to_pb
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, prototypes, sighting
from anonreid.orchestration.config import GalleryConfig
from anonreid.proto.v1 import gallery_pb2


def config(**kw: object) -> GalleryConfig:
    base = {"embedding_dim": DIM, "similarity_threshold": 0.6, "min_transit_s": 1.0, "max_transit_s": 60.0,
            "index_type": "flat"}
    return GalleryConfig(**(base | kw))  # type: ignore[arg-type]


def searches(g: Gallery) -> float:
    return g.metrics.value("anonreid_gallery_search_latency_seconds_count")


@pytest.fixture
def client(redis_module):
    c = redis_module.client()
    c.flushdb()
    yield c
    c.close()


def test_batched_association_equals_one_by_one_on_a_recorded_stream(client):
    stream = recorded_stream()
    one = Gallery(config(), GalleryStore(client, "one", dim=DIM))
    many = Gallery(config(), GalleryStore(client, "many", dim=DIM))
    singles = [one.ingest(s) for s in stream]
    cut = list(batches(stream))
    batched = [a for b in cut for a in many.ingest_many(b)[0]]
    same_decisions(batched, singles)
    # one FAISS search per sighting before, one per batch now
    assert searches(one) == len(stream) and searches(many) == len(cut) < len(stream) / 10
    # the same identities in memory and in Redis afterwards
    for sid in {s.sighting_id for s in stream}:
        assert one.sighting(sid).identity_id == many.sighting(sid).identity_id
    assert one.store.identity_ids() == many.store.identity_ids()
    # every acknowledged sighting is in Redis as acknowledged (one transaction per batch, before the acks)
    for a in batched:
        if not a.duplicate:
            assert many.store.get_sighting(a.sighting_id)["row"].identity_id == many.sighting(a.sighting_id).identity_id
    for identity_id, track in many._tracks.items():
        assert set(many.store.identity_sighting_ids(identity_id)) == {r.sighting_id for r in track.sightings}

    # the stream exercises every rule, and sightings matched others of their own batch
    rules = collections.Counter(a.decision.rule if a.decision else "duplicate" for a in singles)
    reasons = collections.Counter(c.reason for a in singles if a.decision for c in a.decision.candidates)
    assert rules["similarity"] > 50 and rules["tracklet"] > 100 and rules["new"] > 20 and rules["duplicate"] == 10
    assert reasons["split"] >= 2 and reasons["simultaneous"] >= 2 and reasons["below_threshold"] > 100, reasons
    batch_of = {id(s): n for n, b in enumerate(cut) for s in b}
    first_in = {}  # identity -> batch of its first sighting
    in_batch = 0
    for s, a in zip(stream, batched, strict=True):
        if a.decision is not None and a.decision.rule == "similarity" and first_in.get(a.identity_id) == batch_of[id(s)]:
            in_batch += 1
        first_in.setdefault(a.identity_id, batch_of[id(s)])
    assert in_batch >= 5, in_batch


def test_batched_association_equals_one_by_one_with_merge_passes(client):
    """A stricter join bar (0.8) leaves people split that the merge pass (every 10 s of stream time) joins
    again: in a batch, the pass runs after the same sighting as one by one, so the decisions, the merges
    and the identities are the same."""
    stream = recorded_stream()
    strict = {"similarity_threshold": 0.8, "correction_threshold": 0.8}
    one = Gallery(config(**strict), GalleryStore(client, "one", dim=DIM))
    many = Gallery(config(**strict), GalleryStore(client, "many", dim=DIM))
    never = Gallery(config(**strict, merge_every_s=0), GalleryStore(client, "never", dim=DIM))
    singles = [one.ingest(s) for s in stream]
    batched = [a for b in batches(stream) for a in many.ingest_many(b)[0]]
    for s in stream:
        never.ingest(s)
    same_decisions(batched, singles)
    merges = [g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") for g in (one, many, never)]
    assert merges[0] == merges[1] > merges[2] + 10, merges  # the passes' merges on top of the horizon's
    for sid in {s.sighting_id for s in stream}:
        assert one.sighting(sid).identity_id == many.sighting(sid).identity_id
    assert one.store.identity_ids() == many.store.identity_ids()
    assert len(one.store.identity_ids()) < len(never.store.identity_ids())
    # the same corrections in the same order in every trajectory (the wall-clock time of recording aside)
    for identity_id in one.store.identity_ids():
        assert [dataclasses.replace(c, recorded_at_us=0) for c in one.trajectory(identity_id).corrections] == \
            [dataclasses.replace(c, recorded_at_us=0) for c in many.trajectory(identity_id).corrections]
    for identity_id, track in many._tracks.items():
        assert set(many.store.identity_sighting_ids(identity_id)) == {r.sighting_id for r in track.sightings}


def test_batched_association_equals_one_by_one_with_an_ivf_that_probes_few_lists(client):
    """An IVF search finds a vector only in the lists it probes: a vector stored earlier in the batch
    counts for a later sighting only when it lies in one of them, as it would have one by one."""
    cfg = config(index_type="ivf", ivf_nlist=16, ivf_nprobe=2, association_k=8)
    rng = np.random.default_rng(5)
    protos = prototypes(64, DIM, rng)
    prefill = [sighting(f"old{i}", CAMS[i % 4], f"old-t{i}", 0, S, noisy(protos[i % 64], 0.8, rng)) for i in range(700)]
    for prefix in ("one", "many"):  # the same history, trained the same way
        Gallery(cfg, GalleryStore(client, prefix, dim=DIM)).ingest_many(prefill)
    one = Gallery(cfg, GalleryStore(client, "one", dim=DIM))
    many = Gallery(cfg, GalleryStore(client, "many", dim=DIM))
    assert one.index.layout == many.index.layout == "ivf" and one.index.nprobe == 2
    stream = recorded_stream(seed=3, prefix="new")
    singles = [one.ingest(s) for s in stream]
    batched = [a for b in batches(stream, seed=4) for a in many.ingest_many(b)[0]]
    same_decisions(batched, singles)


def pb_decisions(acks: list[gallery_pb2.PublishAck]) -> list[tuple]:
    """What the acks on the wire say, similarities to float32 rounding (see ``same_decisions``)."""
    return [(a.sighting_id, a.identity_id, a.duplicate, a.new_identity, a.rule, round(a.similarity, 4),
             tuple((c.identity_id, c.accepted, c.reason, c.detail, round(c.similarity, 4)) for c in a.candidates))
            for a in acks]


def test_publish_batches_answers_as_publish_does(client):
    """The recorded stream over the servicer: on Publish (one sighting a message, batched as read) and
    on PublishBatches (messages of 1..40 sightings, ingested in chunks of the servicer's max_batch 16):
    the same acks in the same order, every ack message at most one chunk, and the same galleries."""
    requests = [sighting_to_pb(s) for s in recorded_stream(seed=6)]
    one = GalleryServicer(Gallery(config(), GalleryStore(client, "one", dim=DIM)), max_batch=16)
    many = GalleryServicer(Gallery(config(), GalleryStore(client, "many", dim=DIM)), max_batch=16)
    singles = list(one.Publish(iter(requests), None))
    messages = [gallery_pb2.SightingBatch(sightings=b) for b in batches(requests, seed=7, most=40)]
    replies = list(many.PublishBatches(iter(messages), None))
    assert max(len(r.acks) for r in replies) == 16 and len(replies) < len(requests) / 8
    assert pb_decisions([a for r in replies for a in r.acks]) == pb_decisions(singles)
    assert one.gallery.store.identity_ids() == many.gallery.store.identity_ids()
    assert len(one.gallery) == len(many.gallery) == len({r.sighting_id for r in requests})


def test_batch_neighbours_merge_the_batch_into_the_index_answer():
    rng = np.random.default_rng(2)
    index = EmbeddingIndex(DIM, "flat", "cpu")
    stored = prototypes(50, DIM, rng)
    index.add(np.arange(50), stored)
    queries = noisy(stored[[3, 3, 7]], 0.05, rng)  # the second query is near the first
    near = BatchNeighbours(index, queries, 3)
    assert near.get(1)[0][0] == 3
    near.stored(0, 1000)  # the first query's vector is now stored as id 1000
    got = near.get(1)
    assert {i for i, _ in got[:2]} == {3, 1000} and len(got) == 3
    sims = [s for _, s in got]
    assert sims == sorted(sims, reverse=True)
    assert got[[i for i, _ in got].index(1000)][1] == pytest.approx(float(queries[0] @ queries[1]), abs=1e-6)
    assert 1000 not in [i for i, _ in near.get(2)]  # far from query 2: not in its top 3
