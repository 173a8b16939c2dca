"""Metrics as pure numpy functions of distance matrices, ids and images.

- :func:`cmc_map`: CMC rank-k and mAP under the Market-1501 protocol: for each query, gallery entries
  with the query's identity *and* camera are excluded; queries left without any true match are
  counted and reported (``num_queries_without_match``), not silently dropped.
- :func:`ssim` / :func:`psnr`: the standard definitions (Wang et al. 2004 with an 11x11 Gaussian window,
  sigma 1.5, K1 = 0.01, K2 = 0.03, population covariances, border cropped), matching
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)``.
- :func:`bootstrap_ci`: percentile bootstrap over *groups* (identities), so correlated queries of one
  person do not shrink the interval.
- :func:`chance_cmc_map`: what a random ranking scores on the same query/gallery ids, printed beside
  every attacker number.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter


@dataclass(frozen=True)
class RetrievalResult:
    cmc: np.ndarray  # cmc[k-1] = rank-k accuracy over queries with a match
    mAP: float
    ap: np.ndarray  # per valid query
    rank1_hit: np.ndarray  # per valid query, 0/1
    valid_query_index: np.ndarray  # indices (into the query arrays) of queries with a match
    num_queries: int
    num_queries_without_match: int
    ranks: tuple[int, ...] = field(default=(1, 5, 10))

    def rank(self, k: int) -> float:
        if len(self.cmc) == 0:
            return float("nan")
        return float(self.cmc[min(k, len(self.cmc)) - 1])

    def summary(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {f"rank{k}": self.rank(k) for k in self.ranks}
        out["mAP"] = self.mAP
        out["num_queries"] = self.num_queries
        out["num_queries_without_match"] = self.num_queries_without_match
        return out


def cmc_map(
    distmat: np.ndarray,
    q_ids: Sequence | np.ndarray,
    g_ids: Sequence | np.ndarray,
    q_cams: Sequence | np.ndarray | None = None,
    g_cams: Sequence | np.ndarray | None = None,
    max_rank: int = 50,
    exclude_same_camera: bool = True,
) -> RetrievalResult:
    """CMC and mAP from a (num_query, num_gallery) *distance* matrix (smaller = more similar).

    With cameras given and ``exclude_same_camera``, gallery entries sharing both identity and camera
    with the query are removed (Market-1501). Ties are broken by gallery order (stable sort).
    """
    distmat = np.asarray(distmat, dtype=np.float64)
    q_ids, g_ids = np.asarray(q_ids), np.asarray(g_ids)
    nq, ng = distmat.shape
    if len(q_ids) != nq or len(g_ids) != ng:
        raise ValueError(f"distmat is {distmat.shape} but got {len(q_ids)} query and {len(g_ids)} gallery ids")
    if np.isnan(distmat).any():
        raise ValueError("distance matrix contains NaN")
    order = np.argsort(distmat, axis=1, kind="stable")
    matches = g_ids[order] == q_ids[:, None]
    if q_cams is not None and g_cams is not None and exclude_same_camera:
        q_cams, g_cams = np.asarray(q_cams), np.asarray(g_cams)
        keep = ~((g_ids[order] == q_ids[:, None]) & (g_cams[order] == q_cams[:, None]))
    else:
        keep = np.ones_like(matches, dtype=bool)
    max_rank = min(max_rank, ng)
    cmcs, aps, valid = [], [], []
    for i in range(nq):
        m = matches[i][keep[i]]
        if not m.any():
            continue
        valid.append(i)
        first = int(np.argmax(m))
        cmc = np.zeros(max_rank)
        if first < max_rank:
            cmc[first:] = 1.0
        cmcs.append(cmc)
        hits = np.cumsum(m)
        positions = np.flatnonzero(m)
        aps.append(float(np.mean(hits[positions] / (positions + 1.0))))
    valid_idx = np.asarray(valid, dtype=np.int64)
    cmc_arr = np.mean(cmcs, axis=0) if cmcs else np.zeros(0)
    ap = np.asarray(aps)
    return RetrievalResult(
        cmc=cmc_arr,
        mAP=float(ap.mean()) if len(ap) else float("nan"),
        ap=ap,
        rank1_hit=np.asarray([c[0] for c in cmcs]),
        valid_query_index=valid_idx,
        num_queries=nq,
        num_queries_without_match=nq - len(valid_idx),
    )


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """1 - cosine similarity between rows of ``a`` and rows of ``b``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return 1.0 - a @ b.T


def chance_cmc_map(
    q_ids: Sequence | np.ndarray,
    g_ids: Sequence | np.ndarray,
    q_cams: Sequence | np.ndarray | None = None,
    g_cams: Sequence | np.ndarray | None = None,
    trials: int = 200,
    seed: int = 0,
) -> dict[str, float]:
    """Expected rank-1/5/10 and mAP of a uniformly random ranking (Monte Carlo, fixed seed).

    Rank-k is also available exactly (1 - C(N-m, k) / C(N, k) per query); the Monte Carlo estimate is
    used for all four so they come from one procedure, and a test checks it against the exact rank-1.
    """
    rng = np.random.default_rng(seed)
    nq, ng = len(q_ids), len(g_ids)
    totals = {"rank1": 0.0, "rank5": 0.0, "rank10": 0.0, "mAP": 0.0}
    for _ in range(trials):
        res = cmc_map(rng.random((nq, ng)), q_ids, g_ids, q_cams, g_cams)
        for k in (1, 5, 10):
            totals[f"rank{k}"] += res.rank(k)
        totals["mAP"] += res.mAP
    return {k: v / trials for k, v in totals.items()}


def exact_chance_rank1(q_ids: Sequence | np.ndarray, g_ids: Sequence | np.ndarray) -> float:
    """Exact expected rank-1 of a random ranking (no camera exclusion): mean fraction of true matches."""
    q_ids, g_ids = np.asarray(q_ids), np.asarray(g_ids)
    frac = (g_ids[None, :] == q_ids[:, None]).mean(axis=1)
    return float(frac[frac > 0].mean())


def _as_image(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d grey image, got shape {x.shape}")
    return x


def ssim(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of two grey images (see the module docstring for the definition)."""
    x, y = _as_image(img), _as_image(ref)
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {x.shape} vs {y.shape}")
    truncate = 3.5
    radius = int(truncate * sigma + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"images of shape {x.shape} are smaller than the {2 * radius + 1}px SSIM window")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=sigma, truncate=truncate, mode="reflect")

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s[radius:-radius, radius:-radius].mean())


def psnr(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    x, y = _as_image(img), _as_image(ref)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    ci_low: float
    ci_high: float
    n: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.ci_low:.3f}, {self.ci_high:.3f}]"


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    groups: Sequence | np.ndarray | None = None,
    stat: Callable[[np.ndarray], float] = np.mean,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap CI of ``stat(values)``, resampling whole groups (identities) with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0)
    groups_arr = np.arange(len(values)) if groups is None else np.asarray(groups)
    if len(groups_arr) != len(values):
        raise ValueError(f"{len(values)} values but {len(groups_arr)} group labels")
    uniq, inverse = np.unique(groups_arr, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot)
    for b in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        stats[b] = stat(values[np.concatenate([members[g] for g in pick])])
    lo, hi = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return Estimate(float(stat(values)), float(lo), float(hi), len(values))
