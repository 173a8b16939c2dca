"""The gallery's FAISS index chooses its layout by size and calibrates IVF probes to a recall target
against exact search, measured as a new tracklet is searched: its own tracklet left out."""

from __future__ import annotations

import numpy as np
import pytest

from anonreid.gallery.index import EmbeddingIndex, auto_nlist, exact_neighbours, recall_at_k
from anonreid.gallery.synthetic import noisy, prototypes

DIM = 32


def tracklets(people: int = 150, per_person: int = 4, per_tracklet: int = 25, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings as cameras produce them: tracklets of near-duplicates (a sighting every few windows)
    around a per-visit look of each person; (vectors, tracklet number of each)."""
    rng = np.random.default_rng(seed)
    protos = prototypes(people, DIM, rng)
    vecs, groups = [], []
    for p in range(people):
        for t in range(per_person):
            look = noisy(protos[p], 0.9, rng)
            vecs.append(noisy(np.repeat(look[None], per_tracklet, 0), 0.15, rng))
            groups += [p * per_person + t] * per_tracklet
    return np.concatenate(vecs), np.array(groups)


def test_auto_is_exact_below_the_threshold_and_an_ivf_above():
    vecs, _ = tracklets()
    index = EmbeddingIndex(DIM, "auto", "cpu", auto_ivf_min=8000, threads=1)
    index.add(np.arange(7000), vecs[:7000])
    assert not index.settle() and index.layout == "exact"
    index.add(np.arange(7000, 9000), vecs[7000:9000])
    assert index.settle() and index.layout == "ivf" and index.nlist == auto_nlist(9000) == 128
    ids, stored = index.export()  # every vector moved into the IVF, none lost
    assert ids.tolist() == list(range(9000)) and np.array_equal(stored, vecs[:9000])
    assert not index.settle()  # not grown fourfold yet
    assert auto_nlist(100_000) == 1024 and auto_nlist(1_000_000) == 1024 and auto_nlist(10_000) == 256


def test_calibration_reaches_the_recall_target_for_new_tracklets():
    """Leaving out only the query's own vector, its tracklet's near-duplicates (in its own list) make
    one probe look enough; new tracklets then find two thirds of their true neighbours. Leaving out
    the tracklet, the calibrated nprobe reaches the target for them."""
    vecs, groups = tracklets()
    new = groups % 4 == 3  # every person's fourth visit is not in the gallery yet
    base, base_groups, queries = vecs[~new], groups[~new], vecs[new][::5]
    ids = np.arange(len(base))
    truth = exact_neighbours(ids, base, queries, 10)
    found_recall = {}
    for grouped in (False, True):
        index = EmbeddingIndex(DIM, "ivf", "cpu", ivf_nlist=64, ivf_recall=0.95, threads=1)
        index.add(ids, base)
        assert index.settle((lambda stored: base_groups[stored]) if grouped else None)
        assert index.recall is not None and index.recall >= 0.95
        _, found = index.search(queries, 10)
        found_recall[grouped] = (index.nprobe, recall_at_k(found, truth))
    (naive_nprobe, naive), (nprobe, held_out) = found_recall[False], found_recall[True]
    assert naive < 0.8 and naive_nprobe < nprobe, found_recall
    assert held_out >= 0.95, found_recall


def test_a_fixed_nprobe_is_kept_and_its_recall_reported():
    vecs, groups = tracklets(people=60)
    index = EmbeddingIndex(DIM, "ivf", "cpu", ivf_nlist=32, ivf_nprobe=2, threads=1)
    index.add(np.arange(len(vecs)), vecs)
    assert index.settle(lambda stored: groups[stored])
    assert index.nprobe == 2 and 0 < index.recall < 0.95
    assert "nprobe=2" in index.describe()


def test_recall_at_k_counts_the_first_k_of_each_side():
    truth = np.array([[1, 2, 3, -1], [4, 5, -1, -1]])
    found = np.array([[3, 9, 1, 2], [-1, 5, 4, 6]])
    assert recall_at_k(found, truth, k=2) == pytest.approx((0 + 2) / 4)  # query 0: {3, 9} holds none of {1, 2}
    assert recall_at_k(found, truth, k=3) == pytest.approx((2 + 2) / 5)  # query 1 has only two true ids
