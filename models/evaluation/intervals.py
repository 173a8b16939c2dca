"""Confidence intervals that stay honest with few, clustered samples, and the three-state privacy verdict.

Every score of the evaluation and of the adversary node is an :class:`Estimate`: a point value with a
95% interval, the number of samples and of independent clusters (identities), and the method that
made the interval. No method here returns a degenerate interval ``[x, x]``.

* **Proportions** (rank-1 = hits / queries): :func:`proportion_ci`, the exact binomial interval of
  Clopper and Pearson (1934) from beta quantiles. Queries of one identity (one per camera) can be
  correlated; when ``groups`` are given the interval uses Korn and Graubard's (1998) effective sample
  size ``n / deff``, the design effect ``deff`` estimated from the identity totals and never below 1,
  so the interval is exactly Clopper–Pearson when the identities show no correlation and wider when
  they do (0 hits of 44 queries: [0, 0.080] either way).
* **ROC AUC** (face verification): :func:`auc_ci`. The variance is the clustered DeLong estimate of
  Obuchowski (1997), whose structural components are summed per identity, so correlated pairs of one
  person are not counted as independent; the interval is built on the logit scale (it stays inside
  (0, 1) and is not symmetric where the AUC is near 0 or 1) with a t quantile on ``clusters - 1``
  degrees of freedom. Where that variance is zero or undefined (AUC exactly 0 or 1, every score tied,
  fewer than two identities) the interval is the Clopper–Pearson interval of ``AUC * K`` successes in
  ``K`` trials, ``K`` the number of identities: the bound of an AUC seen on ``K`` independent people.
  Why not the identity bootstrap used before: with 11-40 identities percentile intervals under-cover,
  and at AUC = 1 every resample is 1, so it printed [1, 1].
* **Means of bounded scores** (mAP, SSIM, PSNR): :func:`bootstrap_ci`, a bootstrap that resamples
  whole identities (clusters) with BCa correction (Efron 1987; bias from the bootstrap distribution,
  acceleration from the leave-one-identity-out jackknife), falling back to the percentile interval
  where BCa is undefined. When the bootstrap cannot vary (every value equal, or one identity) the
  interval is the exact bound of ``bounds``: the Clopper–Pearson interval of the mean scaled to [0, 1]
  with the number of identities as trials (a [0, 1] variable's mean varies at most like a Bernoulli's);
  the same bound replaces a bootstrap over fewer than five identities, which has too few distinct
  resamples to be an interval at all.
* **Verdicts**: :func:`privacy_state` judges an interval against a threshold: ``pass`` only when the
  upper bound is at or below it, ``breach`` when the lower bound is above it, and ``insufficient
  evidence`` while the sample cannot decide (see the function for the exact rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import stats

#: the three states of a privacy check (beside "not checked" where no score exists)
PASS, INSUFFICIENT, BREACH = "pass", "insufficient evidence", "breach"
STATES = (PASS, INSUFFICIENT, BREACH)


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its confidence interval, sample size, clusters and interval method."""

    value: float
    ci_low: float
    ci_high: float
    n: int
    method: str = ""
    clusters: int = 0  # independent units (identities) behind the interval; 0 = not clustered
    n_eff: float = 0.0  # a proportion's effective sample size (n / design effect); 0 = not a proportion

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Estimate:
        """The inverse of :meth:`as_dict` for a results.json entry (``null``, JSON's NaN, reads as NaN)."""
        def num(x: Any) -> float:
            return float("nan") if x is None else float(x)

        return cls(num(d.get("value")), num(d.get("ci_low")), num(d.get("ci_high")), int(d.get("n") or 0),
                   str(d.get("method") or ""), int(d.get("clusters") or 0), float(d.get("n_eff") or 0.0))

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def _nan(n: int = 0, method: str = "") -> Estimate:
    return Estimate(float("nan"), float("nan"), float("nan"), n, method)


# ---------------------------------------------------------------------------------------------- proportions


def clopper_pearson(k: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """The exact two-sided ``1 - alpha`` binomial interval for ``k`` successes in ``n`` trials (beta
    quantiles; ``k`` and ``n`` may be fractional, as with an effective sample size)."""
    if n <= 0:
        return float("nan"), float("nan")
    if not 0 <= k <= n:
        raise ValueError(f"{k} successes out of {n} trials")
    lo = 0.0 if k <= 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    hi = 1.0 if k >= n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return lo, hi


def _clusters(groups: Sequence | np.ndarray | None, n: int) -> tuple[np.ndarray, int]:
    """(cluster index per sample, number of clusters); every sample its own cluster when ``groups`` is None."""
    if groups is None:
        return np.arange(n), n
    g = np.asarray(groups).ravel()
    if len(g) != n:
        raise ValueError(f"{n} values but {len(g)} group labels")
    _, inverse = np.unique(g, return_inverse=True)
    return inverse.ravel(), int(inverse.max()) + 1 if n else 0


def design_effect(hits: np.ndarray, inverse: np.ndarray, clusters: int) -> float:
    """Kish's design effect of a proportion under cluster sampling: the variance of the ratio estimator
    over the cluster totals divided by the binomial variance (1 where either is zero, never below 1)."""
    n, p = len(hits), float(hits.mean())
    if clusters < 2 or p in (0.0, 1.0):
        return 1.0
    totals = np.bincount(inverse, weights=hits, minlength=clusters)
    sizes = np.bincount(inverse, minlength=clusters)
    v_cluster = clusters / (clusters - 1) * float(np.sum((totals - p * sizes) ** 2)) / n**2
    return max(1.0, v_cluster / (p * (1 - p) / n))


def proportion_ci(hits: Sequence | np.ndarray, groups: Sequence | np.ndarray | None = None,
                  alpha: float = 0.05) -> Estimate:
    """Clopper–Pearson interval of the hit rate of 0/1 ``hits``, with Korn–Graubard's effective sample
    size when ``groups`` (identities) are given (see the module docstring)."""
    h = np.asarray(hits, np.float64).ravel()
    if len(h) == 0:
        return _nan(0, "clopper-pearson")
    if not np.isin(h, (0.0, 1.0)).all():
        raise ValueError("hits must be 0 or 1")
    inverse, clusters = _clusters(groups, len(h))
    deff = design_effect(h, inverse, clusters) if groups is not None else 1.0
    n_eff = len(h) / deff
    lo, hi = clopper_pearson(float(h.mean()) * n_eff, n_eff, alpha)
    method = "clopper-pearson" if deff == 1.0 else f"clopper-pearson, design effect {deff:.2f} (korn-graubard)"
    return Estimate(float(h.mean()), lo, hi, len(h), method, clusters if groups is not None else 0, n_eff)


def upper_bound_at_chance(chance: float, n_eff: float, alpha: float = 0.05) -> float:
    """The Clopper–Pearson upper bound an attacker scoring exactly ``chance`` would get from a sample of
    effective size ``n_eff``: the most private result the evaluation can report. Over the privacy limit,
    the evaluation cannot show privacy at this size, whatever the anonymizer does."""
    return clopper_pearson(chance * n_eff, n_eff, alpha)[1] if n_eff > 0 else float("nan")


def pass_probability_at_chance(chance: float, n_eff: float, limit: float, alpha: float = 0.05) -> float:
    """The probability that an attacker whose true rank-1 is exactly ``chance`` passes the check "upper
    bound <= ``limit``" on a sample of effective size ``n_eff`` (rounded to whole queries): the check's
    power to show privacy that holds. :func:`upper_bound_at_chance` takes the expected hit count; this
    takes the binomial spread around it. With 100 queries, chance 1 % and the limit chance + 5 points,
    only 0 or 1 hit passes (2 hits give an upper bound of 7.0 %), so a perfectly private anonymizer
    fails such a check one time in four (0.736 passes). Several checks at that power all pass with at
    most the lowest of their probabilities."""
    n = round(n_eff)
    if n <= 0 or not 0 <= chance <= 1:
        return float("nan")
    passing = 0  # the upper bound grows with the hits: the hit counts that pass are 0 .. passing - 1
    while passing <= n and clopper_pearson(passing, n, alpha)[1] <= limit:
        passing += 1
    return float(stats.binom.cdf(passing - 1, n, chance)) if passing else 0.0


# ------------------------------------------------------------------------------------------------------ AUC


def _placements(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: for each positive the fraction of negatives scored below it, for each
    negative the fraction of positives scored above it (ties count one half)."""
    neg_s, pos_s = np.sort(neg), np.sort(pos)
    below = np.searchsorted(neg_s, pos, "left")
    v10 = (below + 0.5 * (np.searchsorted(neg_s, pos, "right") - below)) / len(neg)
    above = len(pos) - np.searchsorted(pos_s, neg, "right")
    v01 = (above + 0.5 * (len(pos) - np.searchsorted(pos_s, neg, "left") - above)) / len(pos)
    return v10, v01


def auc_variance(scores: np.ndarray, labels: np.ndarray, inverse: np.ndarray, clusters: int) -> tuple[float, float]:
    """(AUC, its clustered DeLong variance; Obuchowski 1997) of flat ``scores`` / bool ``labels`` with a
    cluster index per score."""
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    v10, v01 = _placements(pos, neg)
    auc = float(v10.mean())
    if clusters < 2:
        return auc, float("nan")
    a = np.bincount(inverse[labels], weights=v10, minlength=clusters) - auc * np.bincount(inverse[labels], minlength=clusters)
    b = np.bincount(inverse[~labels], weights=v01, minlength=clusters) - auc * np.bincount(inverse[~labels], minlength=clusters)
    f = clusters / (clusters - 1)
    s10, s01, s11 = f * float(a @ a) / m, f * float(b @ b) / n, f * float(a @ b)
    return auc, s10 / m + s01 / n + 2 * s11 / (m * n)


def auc_ci(scores: np.ndarray, labels: np.ndarray, groups: Sequence | np.ndarray | None = None,
           alpha: float = 0.05) -> Estimate:
    """ROC AUC (Mann–Whitney, ties one half) of ``scores`` for bool ``labels`` (genuine pairs), with the
    clustered-DeLong logit interval and its Clopper–Pearson guard (module docstring); ``groups`` gives
    each score's cluster (the probe's identity)."""
    s = np.asarray(scores, np.float64).ravel()
    y = np.asarray(labels, bool).ravel()
    if y.all() or not y.any():
        raise ValueError(f"AUC needs genuine and impostor pairs, got {int(y.sum())} and {int((~y).sum())}")
    inverse, clusters = _clusters(groups, len(s))
    auc, var = auc_variance(s, y, inverse, clusters)
    if 0.0 < auc < 1.0 and np.isfinite(var) and var > 0:
        se = np.sqrt(var) / (auc * (1 - auc))
        t = float(stats.t.ppf(1 - alpha / 2, clusters - 1))
        logit = np.log(auc / (1 - auc))
        lo, hi = (float(1 / (1 + np.exp(-(logit + d)))) for d in (-t * se, t * se))
        return Estimate(auc, lo, hi, len(s), "clustered delong, logit", clusters)
    lo, hi = clopper_pearson(auc * clusters, clusters, alpha)
    return Estimate(auc, lo, hi, len(s), "clopper-pearson on identities (no variance)", clusters)


# ------------------------------------------------------------------------------------------------ bootstrap


#: below this many identities a bootstrap has too few distinct resamples (3 for two identities) to be an
#: interval: the exact bound of the values' range is used instead
MIN_BOOTSTRAP_CLUSTERS = 5


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    groups: Sequence | np.ndarray | None = None,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> Estimate:
    """BCa bootstrap interval of the mean of ``values``, resampling whole ``groups`` (identities) with
    replacement; the exact bound of ``bounds`` (the values' possible range) when it cannot vary or rests on
    fewer than :data:`MIN_BOOTSTRAP_CLUSTERS` identities (without ``bounds`` such an interval is returned as
    it is, its ``method`` saying so)."""
    v = np.asarray(values, np.float64).ravel()
    if len(v) == 0:
        return _nan(0, "cluster bootstrap")
    inverse, k = _clusters(groups, len(v))
    sums = np.bincount(inverse, weights=v, minlength=k)
    sizes = np.bincount(inverse, minlength=k).astype(np.float64)
    theta = float(v.mean())
    clustered = k if groups is not None else 0
    boot = np.empty(0)
    if k >= 2:
        w = np.random.default_rng(seed).multinomial(k, np.full(k, 1.0 / k), size=n_boot).astype(np.float64)
        boot = (w @ sums) / (w @ sizes)
    if k >= 2 and np.ptp(boot) > 1e-12 * max(1.0, abs(theta)):
        lo, hi, method = _bca(boot, theta, sums, sizes, alpha)
        if hi - lo > 1e-12 * max(1.0, abs(theta)) and (k >= MIN_BOOTSTRAP_CLUSTERS or bounds is None):
            return Estimate(theta, lo, hi, len(v), method, clustered)
    if bounds is None:  # callers pass the range of every score they report; this is flagged, not hidden
        return Estimate(theta, theta, theta, len(v), "degenerate: no bounds to widen by", clustered)
    a, b = bounds
    lo, hi = clopper_pearson(float(np.clip((theta - a) / (b - a), 0, 1)) * k, k, alpha)
    return Estimate(theta, a + lo * (b - a), a + hi * (b - a), len(v), "exact bound on identities", clustered)


def _bca(boot: np.ndarray, theta: float, sums: np.ndarray, sizes: np.ndarray, alpha: float) -> tuple[float, float, str]:
    """BCa limits of the bootstrap distribution ``boot`` of the ratio mean ``sums.sum() / sizes.sum()``
    (jackknife over clusters for the acceleration); percentile limits where the bias term is infinite."""
    jack = (sums.sum() - sums) / np.maximum(sizes.sum() - sizes, 1e-300)
    d = jack.mean() - jack
    denom = 6 * float(np.sum(d**2)) ** 1.5
    accel = float(np.sum(d**3)) / denom if denom > 0 else 0.0
    below = float(np.mean(boot < theta) + 0.5 * np.mean(boot == theta))
    levels = np.array([alpha / 2, 1 - alpha / 2])
    method = "cluster bootstrap, bca"
    if 0.0 < below < 1.0:
        z0 = float(stats.norm.ppf(below))
        z = stats.norm.ppf(levels)
        levels = stats.norm.cdf(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    else:
        method = "cluster bootstrap, percentile"
    lo, hi = np.quantile(boot, levels)
    return float(min(lo, theta)), float(max(hi, theta)), method


# ------------------------------------------------------------------------------------------------- verdicts


def privacy_state(ci_low: float, ci_high: float, threshold: float, resolution: float, can_pass: bool = True,
                  width_at_threshold: float | None = None) -> str:
    """The verdict of a score whose 95% interval is ``[ci_low, ci_high]`` against ``threshold`` (the most
    an attacker may score), in this order:

    1. ``breach`` when ``ci_low > threshold``: the attacker beats the threshold beyond doubt, whatever the
       sample size;
    2. ``insufficient evidence`` when ``can_pass`` is false: the sample cannot show privacy at all (the
       caller's rule: e.g. too few identities, or even 0 hits in ``n`` queries would not bring the
       Clopper–Pearson upper bound under the threshold);
    3. ``pass`` when ``ci_high <= threshold``: the upper bound, not the point estimate, is under it;
    4. ``insufficient evidence`` when the interval straddles the threshold and the sample is too small to
       bound a score at the threshold within ``resolution`` (the rule's margin, e.g. 5 points of rank-1):
       more samples would decide;
    5. ``breach`` otherwise: the sample could bound the score and its upper bound still reaches over the
       threshold, i.e. the score sits at the threshold and privacy is not shown.

    Steps 4-5 judge the sample, not the score: ``width_at_threshold`` is the width this sample's interval
    would have at the threshold (:func:`binomial_width_at` for a proportion). Without it the interval's own
    width stands in, which suits metrics whose interval width hardly depends on the value (SSIM, AUC). For a
    proportion it does not: a Clopper–Pearson interval is wider at 7 % than at 5 %, so judging by its own
    width made 19 hits in 400 queries read ``breach`` and a stronger attacker's 28 read ``insufficient
    evidence``.
    """
    values = (ci_low, ci_high, threshold)
    if any(v is None or not np.isfinite(v) for v in values):
        return INSUFFICIENT
    if ci_low > threshold:
        return BREACH
    if not can_pass:
        return INSUFFICIENT
    if ci_high <= threshold:
        return PASS
    width = ci_high - ci_low if width_at_threshold is None or not np.isfinite(width_at_threshold) else width_at_threshold
    return INSUFFICIENT if width > resolution else BREACH


def binomial_width_at(p: float, n: float, alpha: float = 0.05) -> float:
    """The width of the Clopper–Pearson interval of a proportion ``p`` on ``n`` (effective) trials: what a
    sample of that size can resolve at ``p`` (NaN for no trials)."""
    if not n > 0 or not np.isfinite(p):
        return float("nan")
    lo, hi = clopper_pearson(min(max(p, 0.0), 1.0) * n, n, alpha)
    return hi - lo


def best_rank1_upper(n: int, alpha: float = 0.05) -> float:
    """The lowest Clopper–Pearson upper bound ``n`` queries can give (0 hits): a rank-1 threshold below it
    cannot be shown with ``n`` queries."""
    return clopper_pearson(0, n, alpha)[1] if n > 0 else 1.0
