"""Identity corrections within the horizon (merge, detach), the transit model learned from confident
matches, and both surviving a restart: the gallery core on a real embedded Redis, no gRPC."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from test_gallery_core import DIM, S, make_config

from anonreid.gallery.association import CameraGraph, Transit
from anonreid.gallery.core import Gallery
from anonreid.gallery.errors import NotFound
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, prototypes, sighting, unit
from anonreid.gallery.transit import TransitModel
from anonreid.orchestration.config import CameraLink, GalleryConfig


@pytest.fixture
def store(redis_module) -> GalleryStore:
    """The module's embedded Redis, emptied; what a gallery restarted on it finds is what the last one stored."""
    client = redis_module.client()
    client.flushdb()
    return GalleryStore(client, "test:corrections", dim=DIM)


def make_gallery(store: GalleryStore, **kw) -> Gallery:
    return Gallery(make_config(**kw), store)


def looks_like(proto: np.ndarray, other: np.ndarray, cos: float) -> np.ndarray:
    """A unit vector with cosine ``cos`` to ``proto``, the rest towards ``other``."""
    orth = unit(other - float(other @ proto) * proto)
    return unit(cos * proto + np.sqrt(1 - cos * cos) * orth)


def poor_then_good(g: Gallery) -> tuple:
    """Person a on cam1, then on cam2 as tracklet t7: a poor first sighting (quality 0.1, cosine 0.3 to a),
    2 s later a good one. The acks of the three."""
    rng = np.random.default_rng(3)
    a, b = prototypes(2, DIM, rng)
    first = g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, noisy(a, 0.2, rng)))
    poor = g.ingest(sighting("a2", "cam2", "t7", 10 * S, 11 * S, looks_like(a, b, 0.3), quality=0.1))
    good = g.ingest(sighting("a3", "cam2", "t7", 11 * S, 13 * S, noisy(a, 0.2, rng), quality=0.9))
    return first, poor, good


def test_a_tracklet_split_off_by_a_noisy_first_sighting_is_merged_within_the_horizon(store):
    g = make_gallery(store)
    first, poor, good = poor_then_good(g)
    assert poor.new_identity and poor.identity_id != first.identity_id
    split_off = poor.identity_id
    # the good sighting makes the tracklet's mean match a, within the horizon: the tracklet merges into a
    assert good.identity_id == first.identity_id and good.decision.rule == "correction", good.decision
    (merge,) = good.decision.splits
    assert (merge.kind, merge.identity_id, merge.new_identity_id, merge.sighting_ids) == \
        ("merge", split_off, first.identity_id, ("a2",))
    assert g.sighting("a2").identity_id == first.identity_id
    with pytest.raises(NotFound):
        g.identity(split_off)  # the tracklet was all it had
    traj = g.trajectory(first.identity_id)
    assert [(st.camera_id, st.sighting_ids) for st in traj.steps] == [("cam1", ("a1",)), ("cam2", ("a2", "a3"))]
    (c,) = traj.corrections
    assert (c.kind, c.camera_id, c.tracklet_id, c.from_identity, c.to_identity, c.sightings, c.at_us) == \
        ("merge", "cam2", "t7", split_off, first.identity_id, 1, 13 * S)
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="merge") == 1
    assert g.metrics.value("anonreid_gallery_identities") == 1

    # a restart keeps the identities and the recorded correction; the emptied identity is gone from Redis
    again = make_gallery(store)
    assert again.sighting("a2").identity_id == first.identity_id
    assert again.trajectory(first.identity_id).corrections == traj.corrections
    assert [i.identity_id for i in again.list_identities()] == [first.identity_id]
    assert store.identity_ids() == {first.identity_id}
    assert not store.client.exists(store.corrections_key(split_off))
    # forget erases the corrections with the identity
    again.forget(first.identity_id, "test")
    assert not store.client.exists(store.corrections_key(first.identity_id))


def test_past_the_horizon_a_tracklet_keeps_its_identity(store):
    first, poor, good = poor_then_good(make_gallery(store, correction_horizon_s=1.0))  # the good one: 2 s later
    assert good.identity_id == poor.identity_id != first.identity_id and good.decision.rule == "tracklet"
    assert make_gallery(store).trajectory(poor.identity_id).corrections == ()


def test_a_wrong_join_is_detached_when_the_tracklet_turns_out_to_be_someone_else(store):
    rng = np.random.default_rng(4)
    a, b = prototypes(2, DIM, rng)
    g = make_gallery(store)
    first = g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, noisy(a, 0.1, rng)))
    # b's first sighting on cam2 happens to look like a: it joins a
    wrong = g.ingest(sighting("b1", "cam2", "t3", 10 * S, 11 * S, looks_like(a, b, 0.75), quality=0.1))
    assert wrong.identity_id == first.identity_id
    # then b is seen well: the tracklet leaves a for a new identity, with its first sighting
    seen = g.ingest(sighting("b2", "cam2", "t3", 11 * S, 14 * S, noisy(b, 0.1, rng), quality=0.9))
    assert seen.new_identity and seen.identity_id != first.identity_id and seen.decision.rule == "correction"
    (detach,) = seen.decision.splits
    assert (detach.kind, detach.identity_id, detach.new_identity_id, detach.sighting_ids) == \
        ("detach", first.identity_id, seen.identity_id, ("b1",))
    assert g.sighting("b1").identity_id == seen.identity_id
    assert [st.camera_id for st in g.trajectory(first.identity_id).steps] == ["cam1"]
    for identity in (first.identity_id, seen.identity_id):  # both identities record it, and keep it
        (c,) = g.trajectory(identity).corrections
        assert (c.kind, c.from_identity, c.to_identity) == ("detach", first.identity_id, seen.identity_id)
        assert make_gallery(store).trajectory(identity).corrections == (c,)
    restarted = make_gallery(store)  # and the detached tracklet stays detached
    assert restarted.sighting("b1").identity_id == restarted.sighting("b2").identity_id == seen.identity_id
    assert g.metrics.value("anonreid_gallery_identity_corrections_total", kind="detach") == 1


def test_the_transit_model_learns_a_link_window_from_confident_matches(store):
    rng = np.random.default_rng(5)
    people = prototypes(4, DIM, rng)
    links = [CameraLink(src="cam1", dst="cam2", min_transit_s=2, max_transit_s=60, bidirectional=False)]
    g = make_gallery(store, camera_links=links, transit_min_samples=3, transit_margin_s=1.0)
    assert g.transit.window("cam1", "cam2") == Transit(2 * S, 60 * S)  # the configured prior
    assert g.transit.cost("cam1", 0, "cam2", 40 * S).reason == "in_window"
    for i, p in enumerate(people):  # each walks cam1 -> cam2 in 8 s, recognised with confidence
        t = i * 30 * S
        g.ingest(sighting(f"p{i}a", "cam1", f"a{i}", t, t + 3 * S, noisy(p, 0.1, rng)))
        ack = g.ingest(sighting(f"p{i}b", "cam2", f"b{i}", t + 11 * S, t + 14 * S, noisy(p, 0.1, rng)))
        assert not ack.new_identity and ack.decision.walks == (("cam1", "cam2", 8 * S),)
    assert g.transit.window("cam1", "cam2") == Transit(7 * S, 9 * S)  # learned: 8 s, 1 s margin
    assert g.transit.cost("cam1", 0, "cam2", 8 * S).reason == "in_window"
    assert g.transit.cost("cam1", 0, "cam2", 40 * S).reason == "reentry"  # now outside what people walk
    assert g.transit.learned()["cam1->cam2"] == {"samples": 4, "min_s": 7.0, "max_s": 9.0, "learned": True}
    # the learned gaps are in Redis: a restarted gallery keeps the window
    assert make_gallery(store, camera_links=links, transit_min_samples=3).transit.window("cam1", "cam2") == \
        Transit(7 * S, 9 * S)


def test_transit_model_prices_walks():
    graph = CameraGraph(["c1", "c2", "c3"], {("c1", "c2"): Transit(2 * S, 20 * S)})
    model = TransitModel.from_config(graph, GalleryConfig(transit_min_samples=2, transit_bonus=0.1, reentry_penalty=0.2,
                                                          same_camera_gap_s=3.0))
    assert model.cost("c1", 0, "c2", 1 * S).cost is None  # faster than the link allows
    assert model.cost("c1", 0, "c2", 5 * S).cost == -0.1
    assert model.cost("c1", 0, "c2", 30 * S).cost == 0.2  # slower: a return, priced
    assert model.cost("c1", 0, "c3", 30 * S).cost == 0.2  # no link known: priced, not forbidden
    assert model.cost("c1", 0, "c1", 2 * S).cost == 0.0  # a tracker fragment
    assert model.cost("c1", 0, "c1", 10 * S).cost == 0.2  # back on the same camera later
    assert model.cost("c1", 5 * S, "c2", 4 * S).reason == "simultaneous"
    assert not model.observe("c1", "c3", 5 * S) and not model.observe("c1", "c2", 30 * S)  # outside the prior


def test_the_transit_model_takes_its_settings_from_the_config_tree_only():
    """Its defaults live in one place, the gallery config section: the leaf has none of its own to drift."""
    params = inspect.signature(TransitModel).parameters
    assert [n for n, p in params.items() if p.default is not inspect.Parameter.empty] == []
    c = GalleryConfig()
    m = TransitModel.from_config(CameraGraph(["c1"], {}), c)
    assert (m.min_samples, m.max_samples, m.margin_us, m.bonus, m.reentry_penalty, m.same_camera_gap_us, m.min_gap_us) \
        == (c.transit_min_samples, c.transit_max_samples, round(c.transit_margin_s * S), c.transit_bonus,
            c.reentry_penalty, round(c.same_camera_gap_s * S), round(c.min_transit_s * S))


@pytest.mark.parametrize(("bar", "merged"), [(0.6, True), (0.7, False)])
def test_within_the_horizon_a_tracklet_mean_is_held_to_the_correction_threshold(store, bar, merged):
    rng = np.random.default_rng(6)
    a, b = prototypes(2, DIM, rng)
    g = make_gallery(store, similarity_threshold=0.7, correction_threshold=bar)
    first = g.ingest(sighting("a1", "cam1", "t1", 0, 3 * S, a))
    half = looks_like(a, b, 0.65)  # below the similarity threshold: a first sighting like it starts an identity
    assert g.ingest(sighting("a2", "cam2", "t7", 10 * S, 11 * S, half)).new_identity
    # the tracklet's mean (two sightings) scores 0.65 again: enough within the horizon at a 0.6 bar
    update = g.ingest(sighting("a3", "cam2", "t7", 11 * S, 13 * S, half))
    assert (update.identity_id == first.identity_id) == merged, update.decision
