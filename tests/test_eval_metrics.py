"""Every metric against an independent implementation (brute force or scikit-image)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from anonreid.models.evaluation.intervals import bootstrap_ci
from anonreid.models.evaluation.metrics import (
    chance_cmc_map,
    cmc_map,
    cosine_distance,
    person_region,
    person_region_scores,
    psnr,
    silhouette_floor,
    ssim,
    ssim_map,
)


def brute_force_cmc_map(dist, q_ids, g_ids, q_cams, g_cams, max_rank):
    """Market-1501 evaluation written the slow, obvious way."""
    cmc_sum = [0.0] * max_rank
    aps = []
    for i in range(len(q_ids)):
        gallery = [
            (dist[i][j], j) for j in range(len(g_ids)) if not (g_ids[j] == q_ids[i] and g_cams[j] == q_cams[i])
        ]
        gallery.sort(key=lambda e: (e[0], e[1]))
        rel = [g_ids[j] == q_ids[i] for _, j in gallery]
        if not any(rel):
            continue
        first = rel.index(True)
        for k in range(max_rank):
            if first <= k:
                cmc_sum[k] += 1
        hits, precisions = 0, []
        for r, is_rel in enumerate(rel):
            if is_rel:
                hits += 1
                precisions.append(hits / (r + 1))
        aps.append(sum(precisions) / len(precisions))
    n = len(aps)
    return [c / n for c in cmc_sum], sum(aps) / n, len(q_ids) - n


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 12), st.integers(3, 40), st.integers(1, 4))
def test_cmc_map_matches_brute_force(seed, nq, ng, ncams):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 5, nq), rng.integers(0, 5, ng)
    cams = rng.integers(0, ncams, nq), rng.integers(0, ncams, ng)
    dist = rng.integers(0, 6, (nq, ng)).astype(float)  # many ties: tie-breaking must agree too
    res = cmc_map(dist, ids[0], ids[1], cams[0], cams[1], max_rank=10)
    n_valid = nq - res.num_queries_without_match
    if n_valid == 0:
        assert np.isnan(res.mAP)
        return
    cmc, mAP, missing = brute_force_cmc_map(dist, *ids, *cams, max_rank=min(10, ng))
    assert res.num_queries_without_match == missing
    np.testing.assert_allclose(res.cmc, cmc)
    assert res.mAP == pytest.approx(mAP)


def test_queries_without_match_are_reported():
    dist = np.array([[0.1, 0.2], [0.3, 0.4]])
    res = cmc_map(dist, q_ids=[1, 2], g_ids=[1, 1], q_cams=[0, 0], g_cams=[1, 1])
    assert res.num_queries == 2 and res.num_queries_without_match == 1
    assert res.summary()["num_queries_without_match"] == 1
    assert res.rank(1) == 1.0


def test_same_camera_same_identity_is_excluded():
    # the only same-id entry is on the query's camera: excluded, so the next-best wrong id ranks first
    dist = np.array([[0.0, 0.5, 0.9]])
    res = cmc_map(dist, [7], [7, 3, 7], [0], [0, 1, 2])
    assert res.rank(1) == 0.0 and res.rank(2) == 1.0


def test_cosine_distance():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cosine_distance(a, a), [[0, 1], [1, 0]], atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_ssim_psnr_agree_with_scikit_image(seed):
    rng = np.random.default_rng(seed)
    ref = rng.random((48, 40))
    img = np.clip(ref + rng.normal(0, 0.1 * (seed + 1), ref.shape), 0, 1)
    expected = structural_similarity(img, ref, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=1.0)
    assert ssim(img, ref) == pytest.approx(expected, abs=1e-9)
    assert psnr(img, ref) == pytest.approx(peak_signal_noise_ratio(ref, img, data_range=1.0), abs=1e-9)
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert psnr(ref, ref) == float("inf")


def test_ssim_rejects_bad_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(np.zeros((20, 20)), np.zeros((20, 21)))
    with pytest.raises(ValueError, match="smaller than"):
        ssim(np.zeros((5, 5)), np.zeros((5, 5)))


def monte_carlo_chance(q, g, qc, gc, trials, seed=0):
    """The oracle: the mean CMC / mAP of ``trials`` uniformly random distance matrices through cmc_map."""
    rng = np.random.default_rng(seed)
    totals = {"rank1": 0.0, "rank5": 0.0, "rank10": 0.0, "mAP": 0.0}
    for _ in range(trials):
        res = cmc_map(rng.random((len(q), len(g))), q, g, qc, gc)
        for k in (1, 5, 10):
            totals[f"rank{k}"] += res.rank(k)
        totals["mAP"] += res.mAP
    return {k: v / trials for k, v in totals.items()}


def enumerated_chance(q, g, qc, gc, qd=None, gd=None):
    """Exact expectation by enumerating every ordering of the gallery (small galleries only)."""
    import itertools

    totals = {"rank1": 0.0, "rank5": 0.0, "rank10": 0.0, "mAP": 0.0}
    perms = list(itertools.permutations(range(len(g))))
    for perm in perms:
        dist = np.empty((len(q), len(g)))
        dist[:] = np.argsort(perm)  # gallery entry j at position perm.index(j)
        res = cmc_map(dist, q, g, qc, gc, q_outfits=qd, g_outfits=gd)
        for k in (1, 5, 10):
            totals[f"rank{k}"] += res.rank(k)
        totals["mAP"] += res.mAP
    return {k: v / len(perms) for k, v in totals.items()}


@pytest.mark.parametrize("seed", range(4))
def test_exact_chance_equals_enumeration_over_every_ordering(seed):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 3, 7)
    gc = rng.integers(0, 2, 7)
    q, qc = np.array([0, 1, 2, 0]), np.array([0, 1, 0, 1])
    exact = chance_cmc_map(q, g, qc, gc)
    oracle = enumerated_chance(q, g, qc, gc)
    if np.isnan(oracle["mAP"]):
        assert np.isnan(exact["mAP"])
        return
    assert exact == pytest.approx(oracle, abs=1e-12)


def test_exact_chance_agrees_with_monte_carlo_on_the_reid_protocol():
    # 11 identities x 4 cameras x 8 clips, one query per identity and camera, Market-1501 exclusions
    ids = np.repeat(np.arange(11), 32)
    cams = np.tile(np.repeat(np.arange(4), 8), 11)
    q = np.arange(4, len(ids), 8)
    exact = chance_cmc_map(ids[q], ids, cams[q], cams)
    oracle = monte_carlo_chance(ids[q], ids, cams[q], cams, trials=2000)
    assert exact["rank1"] == pytest.approx(24 / (352 - 8))  # 24 matches among the 344 entries left
    for k, v in oracle.items():
        assert exact[k] == pytest.approx(v, abs=0.004), k
    # enrollment queries (a camera of their own) against one gallery entry per identity: 1 / 11 exactly
    enroll = chance_cmc_map(np.arange(11), np.arange(11), np.full(11, -1), np.zeros(11))
    assert enroll["rank1"] == pytest.approx(1 / 11) and enroll["rank10"] == pytest.approx(10 / 11)
    assert enroll["mAP"] == pytest.approx(np.mean(1 / np.arange(1, 12)))
    assert np.isnan(chance_cmc_map([5], [1, 2])["rank1"])  # no query with a match: nothing to expect


def test_cloth_changing_protocol_counts_only_another_outfit_as_a_match():
    """With outfits (the day each clip was filmed on), a gallery clip of the query's person in the query's
    outfit leaves the ranking (LTCC / PRCC's cloth-changing setting): a ReId that matches by clothing
    ranks the same outfit first under Market-1501 and fails here; the exact chance follows the exclusions."""
    ids, cams, days = np.array([0, 0, 0, 1, 1, 1]), np.array([0, 1, 2, 0, 1, 2]), np.array([0, 0, 1, 0, 0, 1])
    # clothing embeddings: same outfit close, another outfit of the same person as far as a stranger
    emb = np.array([[1, 0, 0], [0.99, 0.1, 0], [0, 0, 1], [0, 1, 0], [0.1, 0.99, 0], [0, 0, 1]], float)
    q = np.array([0, 3])
    dist = cosine_distance(emb[q], emb)
    market = cmc_map(dist, ids[q], ids, cams[q], cams)
    changing = cmc_map(dist, ids[q], ids, cams[q], cams, q_outfits=days[q], g_outfits=days)
    assert market.rank(1) == 1.0 and changing.rank(1) < 1.0
    assert changing.num_queries - changing.num_queries_without_match == 2  # each query keeps one match
    # queries whose person was filmed in one outfit only have no match left
    only = cmc_map(dist, ids[q], ids, cams[q], cams, q_outfits=days[q], g_outfits=np.zeros(6, int))
    assert only.num_queries_without_match == 2
    # the exact chance equals the enumeration over every ordering of the remaining gallery
    for seed in range(3):
        rng = np.random.default_rng(seed)
        g, gc, gd = rng.integers(0, 3, 7), rng.integers(0, 2, 7), rng.integers(0, 2, 7)
        qi, qc, qd = np.array([0, 1, 2, 0]), np.array([0, 1, 0, 1]), np.array([0, 1, 1, 0])
        exact = chance_cmc_map(qi, g, qc, gc, q_outfits=qd, g_outfits=gd)
        oracle = enumerated_chance(qi, g, qc, gc, qd, gd)
        if np.isnan(oracle["mAP"]):
            assert np.isnan(exact["mAP"])
            continue
        assert exact == pytest.approx(oracle, abs=1e-12)


def test_person_region_scores_and_floors():
    rng = np.random.default_rng(0)
    ref = np.full((96, 64), 0.4) + rng.normal(0, 0.01, (96, 64))
    box = np.array([20.0, 16.0, 44.0, 80.0])
    yy, xx = np.mgrid[0:96, 0:64] + 0.5
    body = ((xx - 32) / 12) ** 2 + ((yy - 48) / 32) ** 2 <= 1  # a textured person (the box's ellipse) on a wall
    ref[body] = 0.8 + 0.15 * rng.random(body.sum())
    mask = person_region(ref.shape, box)
    assert mask[9:87, 17:47].all() and mask.sum() == 78 * 30  # padded by 10% of height / width each side
    floor = silhouette_floor(ref, box)
    assert floor[48, 32] > 0.75 and abs(floor[5, 5] - 0.4) < 0.01  # the person's level inside, wall outside
    pred = np.stack([ref, np.full_like(ref, ref.mean()), floor])
    s = person_region_scores(pred, np.stack([ref] * 3), np.stack([box] * 3))
    assert s["ssim"][0] == pytest.approx(1.0) and s["psnr"][0] == 100.0
    # the region SSIM is the mean of the whole-frame SSIM map over the region
    assert s["ssim"][1] == pytest.approx(ssim_map(pred[1], ref)[mask].mean())
    assert s["silhouette_ssim"][2] == pytest.approx(s["ssim"][2])  # the floor scores what the floor image scores
    assert s["silhouette_psnr"][0] > s["flat_psnr"][0]  # knowing where the person is beats a flat grey
    err = np.mean((pred[1][mask] - ref[mask]) ** 2)
    assert s["psnr"][1] == pytest.approx(10 * np.log10(1 / err))
    nan = person_region_scores(pred[:1], ref[None], np.full((1, 4), np.nan))
    assert np.isnan(nan["ssim"]).all()
    with pytest.raises(ValueError, match="outside"):
        person_region(ref.shape, [200, 200, 210, 220])


def test_bootstrap_groups_and_coverage():
    rng = np.random.default_rng(1)
    vals = rng.normal(0.5, 0.1, 200)
    est = bootstrap_ci(vals, seed=3)
    assert est.ci_low < 0.5 < est.ci_high and est.ci_low < est.value < est.ci_high
    # ten identities with 20 identical values each: resampling identities gives a wider CI than
    # resampling the 200 queries as if independent
    grouped = np.repeat(rng.normal(0.5, 0.1, 10), 20)
    by_id = bootstrap_ci(grouped, groups=np.repeat(np.arange(10), 20))
    naive = bootstrap_ci(grouped)
    assert (by_id.ci_high - by_id.ci_low) > 2 * (naive.ci_high - naive.ci_low)
    with pytest.raises(ValueError, match="group labels"):
        bootstrap_ci([1.0, 2.0], groups=[0])
