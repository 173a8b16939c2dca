"""The gallery's merge pass (gallery.merge_every_s): identities that look alike as a whole and could be
one person become one, as recorded corrections that survive a restart; never two people seen at once
or a walk faster than allowed, and nothing when it is off."""

from __future__ import annotations

import numpy as np
import pytest
from test_gallery_core import DIM, S, _state, make_config
from test_gallery_corrections import looks_like

from anonreid.gallery.core import Gallery, identity_name
from anonreid.gallery.errors import NotFound, Unavailable
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import prototypes, sighting


@pytest.fixture
def store(redis_module) -> GalleryStore:
    client = redis_module.client()
    client.flushdb()
    return GalleryStore(client, "test:merge", dim=DIM)


def make_gallery(store: GalleryStore, **kw) -> Gallery:
    """A strict bar for a new tracklet to join (0.95), so a look-alike at cosine 0.8 starts an identity of
    its own; the merge pass's bar (0.6) joins the two as a whole, and the correction bar within the horizon
    is the same 0.6 (as configured by default), so a tracklet update does not detach what the pass joined."""
    settings = {"similarity_threshold": 0.95, "correction_threshold": 0.6, "merge_threshold": 0.6}
    return Gallery(make_config(**(settings | kw)), store)


def people() -> tuple[np.ndarray, np.ndarray]:
    a, b = prototypes(2, DIM, np.random.default_rng(5))
    return a, b


def test_a_merge_pass_joins_two_identities_of_one_person_and_records_it(store):
    a, b = people()
    g = make_gallery(store)
    first = g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") == 0
    # 9 s later on cam2, at cosine 0.8: under the join bar, a new identity; it moves stream time past 10 s,
    # so the merge pass runs and finds the two alike (0.8 >= 0.6) and the walk possible (9 s, 2-60 s allowed)
    later = g.ingest(sighting("a2", "cam2", "t2", 12 * S, 14 * S, looks_like(a, b, 0.8)))
    assert later.new_identity and later.identity_id == identity_name(2)
    assert g.sighting("a2").identity_id == first.identity_id == identity_name(1)
    with pytest.raises(NotFound):
        g.identity(identity_name(2))
    traj = g.trajectory(first.identity_id)
    assert [(st.camera_id, st.sighting_ids) for st in traj.steps] == [("cam1", ("a1",)), ("cam2", ("a2",))]
    (c,) = traj.corrections
    assert (c.kind, c.camera_id, c.tracklet_id, c.from_identity, c.to_identity, c.sightings, c.at_us) == \
        ("merge", "cam2", "t2", identity_name(2), identity_name(1), 1, 14 * S)
    assert c.similarity == pytest.approx(0.8, abs=1e-3)
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") == 1
    assert g.metrics.value("anonreid_gallery_identities") == 1
    assert g.metrics.value("anonreid_gallery_merge_pass_seconds_count") == 1  # the one boundary crossed

    # a restart keeps the merge and its record; the emptied identity is gone from Redis
    again = make_gallery(store)
    assert _state(again) == _state(g)
    assert again.trajectory(first.identity_id).corrections == traj.corrections
    assert store.identity_ids() == {first.identity_id}
    assert not store.client.exists(store.corrections_key(identity_name(2)))
    # the next sighting of the person goes to the merged identity, and the identity counter went on
    assert again.ingest(sighting("a3", "cam2", "t2", 14 * S, 15 * S, looks_like(a, b, 0.8))).identity_id == \
        first.identity_id
    assert again.ingest(sighting("b1", "cam3", "t3", 15 * S, 16 * S, b)).identity_id == identity_name(3)


def test_the_pass_runs_where_stream_time_crosses_a_multiple_of_its_period(store):
    a, b = people()
    g = make_gallery(store, merge_every_s=20.0)
    g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    g.ingest(sighting("a2", "cam2", "t2", 12 * S, 14 * S, looks_like(a, b, 0.8)))
    assert g.metrics.value("anonreid_gallery_identities") == 2  # 14 s: no multiple of 20 s crossed yet
    assert g.metrics.value("anonreid_gallery_merge_pass_seconds_count") == 0
    g.ingest(sighting("b1", "cam3", "t3", 19 * S, 21 * S, b))
    assert g.sighting("a2").identity_id == g.sighting("a1").identity_id != g.sighting("b1").identity_id
    assert g.metrics.value("anonreid_gallery_merge_pass_seconds_count") == 1


@pytest.mark.parametrize("second", [
    ("cam2", 2 * S, 4 * S),      # on cam2 while still on cam1 (2-3 s): two places at once
    ("cam2", 3.5 * S, 5 * S),    # on cam2 0.5 s after leaving cam1: faster than the 2 s minimum transit
], ids=["simultaneous", "too-fast"])
def test_a_merge_pass_never_joins_what_cannot_be_one_person(store, second):
    a, b = people()
    g = make_gallery(store)
    g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    cam, start, end = second
    g.ingest(sighting("a2", cam, "t2", int(start), int(end), a))  # the same look: only the rules keep them apart
    g.ingest(sighting("b1", "cam3", "t3", 11 * S, 12 * S, b))  # past 10 s: a pass runs
    assert len({g.sighting(sid).identity_id for sid in ("a1", "a2", "b1")}) == 3
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") == 0


@pytest.mark.parametrize("kw", [{"merge_every_s": 0.0}, {"merge_threshold": 0.85}], ids=["off", "under-its-bar"])
def test_no_merge_when_the_pass_is_off_or_the_two_differ_too_much(store, kw):
    a, b = people()
    g = make_gallery(store, **kw)
    g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    g.ingest(sighting("a2", "cam2", "t2", 12 * S, 14 * S, looks_like(a, b, 0.8)))
    assert g.sighting("a1").identity_id != g.sighting("a2").identity_id


def test_the_pass_only_looks_back_its_window(store):
    a, b = people()
    g = make_gallery(store, merge_window_s=5.0)
    g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    g.ingest(sighting("a2", "cam2", "t2", 12 * S, 14 * S, looks_like(a, b, 0.8)))  # a1 ended 11 s before: out
    assert g.sighting("a1").identity_id != g.sighting("a2").identity_id


def test_a_merge_is_rolled_back_when_redis_fails(store):
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    a, b = people()
    g = make_gallery(store)
    g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    before = (_state(g), dict(g._tracklets), g.stats())
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    g.store = GalleryStore(down, "test:merge", DIM)
    late = sighting("a2", "cam2", "t2", 12 * S, 14 * S, looks_like(a, b, 0.8))
    with pytest.raises(Unavailable):
        g.ingest(late)
    assert (_state(g), dict(g._tracklets), g.stats()) == before
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") == 0
    g.store = store  # Redis back: the retry decides and merges as the first try would have
    g.ingest(late)
    assert g.sighting("a2").identity_id == g.sighting("a1").identity_id
    assert _state(make_gallery(store)) == _state(g)
