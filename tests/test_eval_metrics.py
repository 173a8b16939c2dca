"""Every metric against an independent implementation (brute force or scikit-image)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from anonreid.models.evaluation.metrics import (
    bootstrap_ci,
    chance_cmc_map,
    cmc_map,
    cosine_distance,
    exact_chance_rank1,
    psnr,
    ssim,
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


def test_chance_matches_exact_rank1():
    q = np.repeat(np.arange(10), 1)
    g = np.repeat(np.arange(10), 3)
    chance = chance_cmc_map(q, g, trials=400)
    assert chance["rank1"] == pytest.approx(exact_chance_rank1(q, g), abs=0.02)  # = 0.1
    assert chance["rank1"] < chance["rank5"] < chance["rank10"]


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
