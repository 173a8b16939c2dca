"""The evaluation's intervals against independent calculations: Clopper–Pearson by root finding on a
binomial CDF summed term by term, the clustered AUC variance by explicit loops over pairs and
clusters, and coverage on simulated clustered data where the truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from anonreid.models.evaluation.intervals import (
    BREACH,
    INSUFFICIENT,
    PASS,
    auc_ci,
    auc_variance,
    best_rank1_upper,
    binomial_width_at,
    bootstrap_ci,
    clopper_pearson,
    privacy_state,
    proportion_ci,
)


def binom_cdf(k: int, n: int, p: float) -> float:
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))


def bisect(f, lo: float = 0.0, hi: float = 1.0, iters: int = 80) -> float:
    """The root of a function decreasing on [lo, hi]... or increasing: sign-agnostic bisection."""
    flo = f(lo)
    for _ in range(iters):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == (flo > 0):
            lo, flo = mid, f(mid)
        else:
            hi = mid
    return (lo + hi) / 2


def brute_clopper_pearson(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """The defining equations: P(X >= k | lo) = alpha/2 and P(X <= k | hi) = alpha/2."""
    lo = 0.0 if k == 0 else bisect(lambda p: (1 - binom_cdf(k - 1, n, p)) - alpha / 2)
    hi = 1.0 if k == n else bisect(lambda p: binom_cdf(k, n, p) - alpha / 2)
    return lo, hi


@pytest.mark.parametrize(("k", "n"), [(0, 44), (1, 44), (4, 44), (22, 44), (44, 44), (0, 3), (3, 160), (17, 160), (1, 1)])
def test_clopper_pearson_solves_the_binomial_tail_equations(k: int, n: int) -> None:
    assert clopper_pearson(k, n) == pytest.approx(brute_clopper_pearson(k, n), abs=1e-9)


def test_zero_of_44_is_bounded_by_eight_percent_not_zero() -> None:
    est = proportion_ci(np.zeros(44), groups=np.repeat(np.arange(11), 4))
    assert est.value == 0 and est.ci_low == 0 and est.ci_high == pytest.approx(0.0804, abs=5e-5)
    assert est.method == "clopper-pearson" and est.clusters == 11
    assert best_rank1_upper(44) == pytest.approx(est.ci_high)
    with pytest.raises(ValueError, match="0 or 1"):
        proportion_ci([0.5, 1.0])


def test_identity_correlation_widens_the_rank1_interval_and_keeps_coverage() -> None:
    """11 identities x 4 queries whose hits are strongly correlated within the identity (beta-binomial,
    mean 0.3): plain Clopper–Pearson treats 44 correlated queries as independent and under-covers;
    the design-effect interval keeps (about) its 95%."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(11), 4)
    plain = clustered = 0
    trials = 1500
    for _ in range(trials):
        p = rng.beta(0.6, 1.4, 11)  # mean 0.3, intra-identity correlation 0.5
        hits = (rng.random(44) < p[groups]).astype(float)
        a, b = proportion_ci(hits), proportion_ci(hits, groups)
        plain += a.ci_low <= 0.3 <= a.ci_high
        clustered += b.ci_low <= 0.3 <= b.ci_high
        assert b.ci_low <= a.ci_low + 1e-12 and b.ci_high >= a.ci_high - 1e-12  # never narrower than CP
    assert plain / trials < 0.9 and clustered / trials > 0.93  # measured: 0.875 and 0.954


def brute_obuchowski(scores: np.ndarray, labels: np.ndarray, clusters: np.ndarray) -> tuple[float, float]:
    """Obuchowski (1997) written with an explicit pair matrix and loops over clusters."""
    pos = [(s, c) for s, y, c in zip(scores, labels, clusters, strict=True) if y]
    neg = [(s, c) for s, y, c in zip(scores, labels, clusters, strict=True) if not y]
    psi = np.array([[1.0 if x > z else 0.5 if x == z else 0.0 for z, _ in neg] for x, _ in pos])
    m, n = psi.shape
    auc = psi.mean()
    ids = sorted(set(clusters.tolist()))
    k = len(ids)
    v10 = {i: sum(psi[a].mean() for a, (_, c) in enumerate(pos) if c == i) for i in ids}
    v01 = {i: sum(psi[:, b].mean() for b, (_, c) in enumerate(neg) if c == i) for i in ids}
    mi = {i: sum(1 for _, c in pos if c == i) for i in ids}
    ni = {i: sum(1 for _, c in neg if c == i) for i in ids}
    s10 = k / ((k - 1) * m) * sum((v10[i] - mi[i] * auc) ** 2 for i in ids)
    s01 = k / ((k - 1) * n) * sum((v01[i] - ni[i] * auc) ** 2 for i in ids)
    s11 = k / (k - 1) * sum((v10[i] - mi[i] * auc) * (v01[i] - ni[i] * auc) for i in ids)
    return auc, s10 / m + s01 / n + 2 * s11 / (m * n)


@pytest.mark.parametrize("seed", range(3))
def test_clustered_auc_variance_matches_the_formula_written_out(seed: int) -> None:
    rng = np.random.default_rng(seed)
    clusters = np.repeat(np.arange(7), 12)
    labels = rng.random(len(clusters)) < 0.25
    scores = np.round(rng.normal(size=len(clusters)) + labels, 1)  # rounded: ties count one half
    _, inverse = np.unique(clusters, return_inverse=True)
    auc, var = auc_variance(scores, labels, inverse, 7)
    ref_auc, ref_var = brute_obuchowski(scores, labels, clusters)
    assert auc == pytest.approx(roc_auc_score(labels, scores)) and auc == pytest.approx(ref_auc)
    assert var == pytest.approx(ref_var, rel=1e-10)


def test_clustered_auc_interval_covers_where_the_naive_one_does_not() -> None:
    """Scores of one identity share a random offset, so pairs of one person are far from independent;
    the true AUC is 0.5. Per-pair DeLong under-covers badly; the clustered interval keeps its 95%."""
    rng = np.random.default_rng(1)
    clusters = np.repeat(np.arange(20), 25)
    labels = np.tile(np.r_[np.ones(5, bool), np.zeros(20, bool)], 20)
    naive = clustered = 0
    trials = 300
    for _ in range(trials):
        pos_shift, neg_shift = rng.normal(0, 1.5, 20), rng.normal(0, 1.5, 20)
        scores = rng.normal(size=500) + np.where(labels, pos_shift[clusters], neg_shift[clusters])
        a, b = auc_ci(scores, labels), auc_ci(scores, labels, clusters)
        naive += a.ci_low <= 0.5 <= a.ci_high
        clustered += b.ci_low <= 0.5 <= b.ci_high
    assert naive / trials < 0.7 and clustered / trials > 0.92  # measured: 0.63 and 0.957


def test_auc_interval_is_never_degenerate() -> None:
    labels = np.tile([True, False, False], 10)
    groups = np.repeat(np.arange(10), 3)
    perfect = auc_ci(labels.astype(float), labels, groups)
    assert perfect.value == 1.0 and perfect.ci_high == 1.0
    assert perfect.ci_low == pytest.approx(0.025 ** (1 / 10))  # 10 of 10 identities, Clopper–Pearson
    tied = auc_ci(np.zeros(30), labels, groups)
    assert tied.value == 0.5 and tied.ci_low < 0.25 and tied.ci_high > 0.75
    with pytest.raises(ValueError, match="genuine and impostor"):
        auc_ci(np.zeros(3), np.ones(3, bool))


def test_bootstrap_widens_a_constant_sample_by_the_exact_bound() -> None:
    ones = bootstrap_ci(np.ones(40), np.repeat(np.arange(10), 4), bounds=(0.0, 1.0))
    assert ones.value == 1.0 and ones.ci_high == 1.0 and ones.ci_low == pytest.approx(0.025 ** (1 / 10))
    assert ones.method == "exact bound on identities"
    one_person = bootstrap_ci([0.5, 0.6, 0.55], ["a", "a", "a"], bounds=(-1.0, 1.0))  # one identity: no spread
    assert one_person.ci_low < -0.8 and one_person.ci_high > 0.9
    two_people = bootstrap_ci([0.3, 0.35, 0.6, 0.62], ["a", "a", "b", "b"], bounds=(0.0, 1.0))
    assert two_people.method == "exact bound on identities" and two_people.ci_low < 0.1 and two_people.ci_high > 0.9
    flagged = bootstrap_ci(np.ones(5))
    assert flagged.ci_low == flagged.ci_high == 1.0 and flagged.method.startswith("degenerate")


def test_bootstrap_bca_covers_a_skewed_mean() -> None:
    rng = np.random.default_rng(2)
    hits = 0
    for seed in range(200):
        x = rng.exponential(1.0, 40)
        est = bootstrap_ci(x, seed=seed, n_boot=1000)
        assert est.method == "cluster bootstrap, bca"
        hits += est.ci_low <= 1.0 <= est.ci_high
    assert hits / 200 > 0.88


@pytest.mark.parametrize(
    ("low", "high", "can_pass", "state"),
    [
        (0.20, 0.35, True, BREACH),  # lower bound above the threshold: breach at any sample size
        (0.00, 0.12, True, PASS),  # upper bound under it
        (0.00, 0.12, False, INSUFFICIENT),  # ... but the sample cannot show privacy (e.g. one person)
        (0.02, 0.40, True, INSUFFICIENT),  # straddles, wider than the margin: more samples decide
        (0.12, 0.16, True, BREACH),  # straddles within the margin: at the threshold, privacy not shown
        (float("nan"), float("nan"), True, INSUFFICIENT),
    ],
)
def test_privacy_state_uses_the_interval_not_the_point(low: float, high: float, can_pass: bool, state: str) -> None:
    assert privacy_state(low, high, threshold=0.14, resolution=0.05, can_pass=can_pass) == state


def test_a_stronger_attacker_never_reads_better_on_the_same_queries() -> None:
    """More hits in the same 400 queries never move a rank-1 check back from breach to insufficient
    evidence: whether the sample decides is its interval's width at the limit, not at the score. Judged by
    its own width, 19 hits read breach ([2.9, 7.3] is narrower than 5 points) and 28 hits insufficient
    evidence ([4.7, 10.0] is wider), the stronger attacker the better verdict."""
    limit, n = 0.058, 400
    at_limit = binomial_width_at(limit, n)
    lo, hi = clopper_pearson(limit * n, n)
    assert at_limit == pytest.approx(hi - lo) and 0.04 < at_limit < 0.05
    order = {PASS: 0, INSUFFICIENT: 1, BREACH: 2}
    states = [privacy_state(*clopper_pearson(k, n), limit, 0.05, width_at_threshold=at_limit) for k in range(80)]
    assert [order[s] for s in states] == sorted(order[s] for s in states)
    assert states[13] == PASS and states[19] == states[28] == BREACH
    by_own_width = [privacy_state(*clopper_pearson(k, n), limit, 0.05) for k in (19, 28)]
    assert by_own_width == [BREACH, INSUFFICIENT]  # what the interval's own width gave
    # a sample too small to resolve the limit leaves a straddling score undecided at any hit count
    small = binomial_width_at(limit, 60)
    assert small > 0.05
    assert {privacy_state(*clopper_pearson(k, 60), limit, 0.05, width_at_threshold=small) for k in (2, 4, 6)} == {INSUFFICIENT}
    assert np.isnan(binomial_width_at(limit, 0))
