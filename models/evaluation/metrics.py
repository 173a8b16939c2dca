"""Metrics as pure numpy functions of distance matrices, ids and images.

- :func:`cmc_map`: CMC rank-k and mAP under the Market-1501 protocol: for each query, gallery entries
  with the query's identity *and* camera are excluded; queries left without any true match are
  counted and reported (``num_queries_without_match``), not silently dropped.
- :func:`ssim` / :func:`psnr`: the standard definitions (Wang et al. 2004 with an 11x11 Gaussian window,
  sigma 1.5, K1 = 0.01, K2 = 0.03, population covariances, border cropped), matching
  ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=...)``.
- :func:`chance_cmc_map`: the exact expected rank-k and mAP of a uniformly random ranking over the same
  query/gallery ids after the Market-1501 exclusions, printed beside every attacker number.
- :func:`person_region_scores`: SSIM / PSNR on the person (the ground-truth box, padded), beside two
  floors an attacker reaches without any appearance: a flat grey and a blurred silhouette.

Confidence intervals and verdicts are in :mod:`anonreid.models.evaluation.intervals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

SSIM_TRUNCATE = 3.5  # the Gaussian window reaches 3.5 sigma: 11x11 at sigma 1.5


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
    q_outfits: Sequence | np.ndarray | None = None,
    g_outfits: Sequence | np.ndarray | None = None,
) -> RetrievalResult:
    """CMC and mAP from a (num_query, num_gallery) *distance* matrix (smaller = more similar).

    With cameras given and ``exclude_same_camera``, gallery entries sharing both identity and camera
    with the query are removed (Market-1501). With outfits given (the day a clip was filmed on, each in
    its day's outfit), so are those sharing identity and outfit: the cloth-changing protocol of LTCC and
    PRCC, where only another outfit of the person counts as a match. Ties are broken by gallery order
    (stable sort).
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
    if q_outfits is not None and g_outfits is not None:
        keep &= ~(matches & (np.asarray(g_outfits)[order] == np.asarray(q_outfits)[:, None]))
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
    max_rank: int = 50,
    ranks: Sequence[int] = (1, 5, 10),
    q_outfits: Sequence | np.ndarray | None = None,
    g_outfits: Sequence | np.ndarray | None = None,
) -> dict[str, float]:
    """Exact expected rank-k and mAP of a uniformly random ranking, as :func:`cmc_map` scores it.

    Per query: the gallery left after the exclusions (same identity *and* camera, when cameras are
    given; same identity and outfit, when outfits are) has ``N`` entries, ``m`` of them true matches; queries with ``m = 0`` are left out, as
    :func:`cmc_map` leaves them out. A random order puts a match in the first ``k`` with probability
    ``1 - C(N - m, k) / C(N, k)`` (``k`` capped at ``min(max_rank, len(gallery))`` as the CMC is), and
    its expected average precision is ``(H_N + (m - 1) / (N - 1) * (N - H_N)) / N`` (``H_N`` the N-th
    harmonic number: the match at position n is relevant with probability m / N and is preceded by
    (n - 1)(m - 1) / (N - 1) other matches on average). The values are averaged over queries.
    """
    q, g = np.asarray(q_ids), np.asarray(g_ids)
    same = g[None, :] == q[:, None]
    if q_cams is not None and g_cams is not None:
        excluded = same & (np.asarray(g_cams)[None, :] == np.asarray(q_cams)[:, None])
    else:
        excluded = np.zeros_like(same)
    if q_outfits is not None and g_outfits is not None:
        excluded = excluded | (same & (np.asarray(g_outfits)[None, :] == np.asarray(q_outfits)[:, None]))
    n = (len(g) - excluded.sum(1)).astype(np.float64)
    m = (same & ~excluded).sum(1).astype(np.float64)
    valid = m > 0
    n, m = n[valid], m[valid]
    if not len(n):
        return {**{f"rank{k}": float("nan") for k in ranks}, "mAP": float("nan")}
    out: dict[str, float] = {}
    cap = min(max_rank, len(g))
    for k in ranks:
        miss = np.ones_like(n)  # C(N - m, k) / C(N, k) = prod_j (N - m - j) / (N - j), 0 once N - m < k
        for j in range(min(k, cap)):
            miss *= np.clip((n - m - j) / np.maximum(n - j, 1.0), 0.0, None)
        out[f"rank{k}"] = float(np.mean(1.0 - miss))
    harmonic = np.array([np.sum(1.0 / np.arange(1, int(x) + 1)) for x in n])
    ap = (harmonic + np.where(n > 1, (m - 1) / np.maximum(n - 1, 1.0), 0.0) * (n - harmonic)) / n
    out["mAP"] = float(np.mean(ap))
    return out


def _as_image(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-d grey image, got shape {x.shape}")
    return x


def ssim_map(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> np.ndarray:
    """The local SSIM of every pixel (Gaussian windows, reflected at the frame's border)."""
    x, y = _as_image(img), _as_image(ref)
    if x.shape != y.shape:
        raise ValueError(f"image shapes differ: {x.shape} vs {y.shape}")
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def filt(a: np.ndarray) -> np.ndarray:
        return gaussian_filter(a, sigma=sigma, truncate=SSIM_TRUNCATE, mode="reflect")

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def ssim(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0, sigma: float = 1.5) -> float:
    """Mean structural similarity of two grey images (see the module docstring for the definition)."""
    x = _as_image(img)
    radius = int(SSIM_TRUNCATE * sigma + 0.5)
    if min(x.shape) < 2 * radius + 1:
        raise ValueError(f"images of shape {x.shape} are smaller than the {2 * radius + 1}px SSIM window")
    s = ssim_map(x, ref, data_range, sigma)
    return float(s[radius:-radius, radius:-radius].mean())


def psnr(img: np.ndarray, ref: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB (inf for identical images)."""
    x, y = _as_image(img), _as_image(ref)
    mse = float(np.mean((x - y) ** 2))
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


# --------------------------------------------------------------------------------------------- person region

#: the person region: the ground-truth box padded by this fraction of its size on every side (>= 2 px)
REGION_PAD = 0.1


def person_region(shape: tuple[int, int], box: Sequence[float] | np.ndarray, pad: float = REGION_PAD) -> np.ndarray:
    """Boolean mask of the box ``(x1, y1, x2, y2)`` padded by ``pad`` of its width / height (at least
    2 px) on each side, clipped to the frame ``shape`` (h, w)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    px, py = max(2.0, pad * (x2 - x1)), max(2.0, pad * (y2 - y1))
    h, w = shape
    c0, c1 = int(np.clip(np.floor(x1 - px), 0, w)), int(np.clip(np.ceil(x2 + px), 0, w))
    r0, r1 = int(np.clip(np.floor(y1 - py), 0, h)), int(np.clip(np.ceil(y2 + py), 0, h))
    mask = np.zeros(shape, bool)
    mask[r0:r1, c0:c1] = True
    if not mask.any():
        raise ValueError(f"person box {tuple(box)} lies outside the {w}x{h} frame")
    return mask


def silhouette_floor(reference: np.ndarray, box: Sequence[float] | np.ndarray, pad: float = REGION_PAD) -> np.ndarray:
    """What an attacker draws who knows where the person is and nothing of how they look: a heavily
    blurred binary silhouette.

    The silhouette is the ellipse inscribed in the ground-truth box, blurred by a Gaussian of sigma a
    quarter of the box width (no limb, clothing or face edge survives), then scaled between two grey
    levels taken from the reference: its mean inside the ellipse (the person) and its mean in the rest
    of the padded region (the background around them). Outside the blob the image is that background.
    """
    ref = _as_image(reference)
    h, w = ref.shape
    x1, y1, x2, y2 = (float(v) for v in box)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    cx, cy, rx, ry = (x1 + x2) / 2, (y1 + y2) / 2, max((x2 - x1) / 2, 0.5), max((y2 - y1) / 2, 0.5)
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0
    region = person_region(ref.shape, box, pad)
    around = region & ~inside
    person_level = float(ref[inside].mean()) if inside.any() else float(ref[region].mean())
    background = float(ref[around].mean()) if around.any() else float(ref[~inside].mean()) if (~inside).any() else person_level
    blob = gaussian_filter(inside.astype(np.float64), sigma=max(1.0, (x2 - x1) / 4), mode="constant")
    if blob.max() > 0:
        blob /= blob.max()
    return background + (person_level - background) * blob


def person_region_scores(
    pred: np.ndarray, reference: np.ndarray, boxes: np.ndarray, pad: float = REGION_PAD
) -> dict[str, np.ndarray]:
    """Per frame (``(N, H, W)`` in [0, 1], one box each): SSIM and PSNR over the person region (the SSIM
    map is computed on the whole frame, so the windows at the region's edge see the real surroundings,
    then averaged over the region; PSNR from the region's mean squared error, capped at 100 dB) of the
    prediction and of the two floors: ``flat`` (a flat grey at the region's mean reference level) and
    ``silhouette`` (:func:`silhouette_floor`). Keys: ``ssim``, ``psnr``, ``flat_ssim``, ``flat_psnr``,
    ``silhouette_ssim``, ``silhouette_psnr``; frames whose box is not finite give NaN."""
    pred, reference = np.asarray(pred, np.float64), np.asarray(reference, np.float64)
    if pred.shape != reference.shape or pred.ndim != 3:
        raise ValueError(f"person-region scores need (N, H, W) frames of one shape, got {pred.shape} and {reference.shape}")
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(boxes) != len(pred):
        raise ValueError(f"{len(pred)} frames but {len(boxes)} boxes")
    keys = ("ssim", "psnr", "flat_ssim", "flat_psnr", "silhouette_ssim", "silhouette_psnr")
    out = {k: np.full(len(pred), np.nan) for k in keys}
    for i, (p, r, box) in enumerate(zip(pred, reference, boxes, strict=True)):
        if not np.isfinite(box).all():
            continue
        region = person_region(r.shape, box, pad)
        flat = np.full_like(r, r[region].mean())
        for name, img in (("", p), ("flat_", flat), ("silhouette_", silhouette_floor(r, box, pad))):
            out[f"{name}ssim"][i] = float(ssim_map(img, r)[region].mean())
            mse = float(np.mean((img[region] - r[region]) ** 2))
            out[f"{name}psnr"][i] = 100.0 if mse <= 1e-10 else min(100.0, float(10 * np.log10(1.0 / mse)))
    return out
