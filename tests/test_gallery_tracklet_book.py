"""The tracklet book keeps its prototypes in the rows of one matrix (issue #19 item 3: a decision scores an
identity's prototypes with one matrix-vector product). Its scores are the dot products of the normalised
quality-weighted sums whatever happened to the rows (grown, freed, reused, recomputed after an update,
rebuilt from the store midway through a scoring), and a warm gallery whose book holds every tracklet
skips the batch's walk over its candidates' tracklets."""

from __future__ import annotations

import numpy as np
from gallery_streams import DIM, recorded_stream, same_decisions

from anonreid.gallery.core import Gallery
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.tracklets import MIN_WEIGHT, TrackletBook, identity_similarity
from anonreid.orchestration.config import GalleryConfig


def expected_unit(rows: list[tuple[np.ndarray, float]]) -> np.ndarray:
    total = sum(max(q, MIN_WEIGHT) * e.astype(np.float64) for e, q in rows)
    return total / np.linalg.norm(total)


def test_scores_are_the_dot_products_of_the_normalised_sums_through_growth_reuse_and_rebuilds():
    rng = np.random.default_rng(0)
    store: dict[str, tuple[np.ndarray, float]] = {}  # sighting id -> (embedding, quality): "Redis"
    ids: dict[tuple[str, str], list[str]] = {}
    fetched: list[str] = []

    def fetch(sids):
        fetched.extend(sids)
        return [store.get(s) for s in sids]

    def stored(key):
        return ids.get(key, [])

    def put(key, n):
        sid = f"{key[1]}-{n}"
        store[sid] = (rng.standard_normal(DIM).astype(np.float32), float(rng.uniform(0, 1)))
        return sid

    book = TrackletBook(fetch)
    keys = [("cam1", f"t{i}") for i in range(150)]  # past the first allocation (64 rows): the matrix grows
    for i, key in enumerate(keys):
        for n in range(1 + i % 3):
            sid = put(key, n)
            book.add(key, *store[sid], stored=lambda key=key: stored(key))
            ids.setdefault(key, []).append(sid)
    assert len(book) == len(keys)
    query = expected_unit([store[s] for s in ids[keys[0]]])
    want = np.array([expected_unit([store[s] for s in ids[k]]) @ query for k in keys])
    got = book.similarities(query, keys, stored)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(book.prototype(keys[5], lambda: stored(keys[5])), expected_unit([store[s] for s in ids[keys[5]]]),
                               rtol=0, atol=1e-12)

    # an update changes only its tracklet's score; a forgotten tracklet's row goes to the next one computed
    sid = put(keys[7], 9)
    book.add(keys[7], *store[sid], stored=lambda: stored(keys[7]))
    ids[keys[7]].append(sid)
    book.forget(keys[100:150])
    assert len(book) == 100 and not fetched
    # scored again: the forgotten fifty are rebuilt from the store (one fetch each) while the others are read
    # from their rows, in one call; the rows freed are reused and the scores are right for every key
    want[7] = expected_unit([store[s] for s in ids[keys[7]]]) @ query
    book.forget([keys[3]])
    got = book.similarities(query, [keys[3], *keys[:3], *keys[4:]], stored)
    assert sorted(set(fetched)) == sorted({s for k in [keys[3], *keys[100:]] for s in ids[k]})
    np.testing.assert_allclose(got, np.concatenate([want[3:4], want[:3], want[4:]]), rtol=0, atol=1e-12)
    assert book._used == len(keys)  # every row freed was reused

    # the same while the matrix has to grow midway (a fresh book: every key rebuilt inside the call)
    cold = TrackletBook(fetch)
    np.testing.assert_allclose(cold.similarities(query, keys, stored), want, rtol=0, atol=1e-12)
    np.testing.assert_allclose(TrackletBook(fetch).prototype_sum(keys, stored),
                               np.sum([expected_unit([store[s] for s in ids[k]]) for k in keys], axis=0),
                               rtol=0, atol=1e-11)
    # a tracklet with nothing stored has no prototype: left out of the scores
    np.testing.assert_allclose(cold.similarities(query, [("cam9", "none"), keys[0]], stored), want[:1], rtol=0, atol=1e-12)
    assert identity_similarity(np.array([0.2, 0.9, 0.5]), 2) == (0.9 + 0.5) / 2
    assert identity_similarity(np.zeros(0), 2) is None


def test_a_warm_gallery_skips_the_walk_over_its_candidates_tracklets(redis_module, monkeypatch):
    client = redis_module.client()
    client.flushdb()
    cfg = GalleryConfig(embedding_dim=DIM, index_type="flat", similarity_threshold=0.6, min_transit_s=1.0,  # type: ignore[arg-type]
                        max_transit_s=60.0)
    stream = recorded_stream(seed=3, people=30)
    half = len(stream) // 2
    warm = Gallery(cfg, GalleryStore(client, "warm", dim=DIM))
    warm.ingest_many(stream[:half])
    Gallery(cfg, GalleryStore(client, "cold", dim=DIM)).ingest_many(stream[:half])
    cold = Gallery(cfg, GalleryStore(client, "cold", dim=DIM))  # restarted: its book holds nothing
    assert len(warm.tracklets) == len(warm._tracklets) and len(cold.tracklets) == 0

    walks: list[str] = []
    for name, g in (("warm", warm), ("cold", cold)):
        original = g.tracklets.missing
        monkeypatch.setattr(g.tracklets, "missing", lambda keys, name=name, original=original: walks.append(name) or original(keys))
    batch = stream[half:half + 50]
    got, _ = cold.ingest_many(batch)
    want, _ = warm.ingest_many(batch)
    assert "cold" in walks and "warm" not in walks
    same_decisions(got, want)
    client.flushdb()
    client.close()
