"""IDF1 and purity: hand-checked cases and a brute-force cross-check of the optimal matching."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from anonreid.models.evaluation.association_metrics import contingency, identity_scores


def test_perfect_assignment_scores_one() -> None:
    s = identity_scores(["a", "a", "b", "c"], [7, 7, 3, 9])
    assert s.idf1 == s.idp == s.idr == s.purity == s.inverse_purity == 1.0
    assert (s.num_gt_identities, s.num_pred_identities) == (3, 3)


def test_merged_and_split_identities() -> None:
    # two people merged into one predicted identity: purity 0.5, IDF1 = 2*2 / (2*2 + 2 + 2) = 0.5
    merged = identity_scores(["a", "a", "b", "b"], ["x", "x", "x", "x"])
    assert merged.idtp == 2 and merged.idf1 == pytest.approx(0.5)
    assert merged.purity == pytest.approx(0.5) and merged.inverse_purity == 1.0
    # one person split over two predicted identities: purity 1, inverse purity 0.5
    split = identity_scores(["a", "a", "a", "a"], ["x", "x", "y", "y"])
    assert split.idf1 == pytest.approx(0.5) and split.purity == 1.0 and split.inverse_purity == 0.5


def test_false_positives_and_misses_count() -> None:
    s = identity_scores(["a", "a", None, "b"], ["x", None, "z", "y"], weight=[2, 1, 3, 1])
    # IDTP = 2 (a-x) + 1 (b-y) = 3; pred total 6 -> IDFP 3; gt total 4 -> IDFN 1
    assert (s.idtp, s.idfp, s.idfn) == (3, 3, 1)
    assert s.idf1 == pytest.approx(6 / 10)


def test_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = 40
        gt = [g if g >= 0 else None for g in rng.integers(-1, 4, n)]
        pred = [p if p >= 0 else None for p in rng.integers(-1, 5, n)]
        w = rng.uniform(0.5, 3, n)
        c, *_ = contingency(gt, pred, w)
        best = 0.0
        k = min(c.shape)
        for rows in itertools.permutations(range(c.shape[0]), k):
            for cols in itertools.permutations(range(c.shape[1]), k):
                best = max(best, float(c[list(rows), list(cols)].sum()))
        assert identity_scores(gt, pred, w).idtp == pytest.approx(best)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="same length"):
        identity_scores(["a"], [])
    with pytest.raises(ValueError, match="weight"):
        identity_scores(["a"], ["x"], weight=[-1])
    empty = identity_scores([], [])
    assert empty.idf1 == 0.0 and empty.num_gt_identities == 0
