"""Identity measures for multi-camera tracking: IDF1 (Ristani et al., ECCV-W 2016) and purity.

Pure functions of labelled observations, no services involved. An observation is one detected box
in one window (or a sighting weighted by its number of boxes) with its ground-truth identity (``None``
for a false detection) and the identity the system assigned (``None`` when the system missed a
ground-truth box). IDF1 over the camera network matches ground-truth identities to predicted global
identities one-to-one so that the matched observation weight (IDTP) is maximal; every other
prediction is an ID false positive and every other ground-truth observation an ID false negative:

    IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN),  IDP = IDTP / (IDTP + IDFP),  IDR = IDTP / (IDTP + IDFN)

Purity: of each predicted identity's weight, the share of its majority ground-truth identity (1 means
no predicted identity mixes people); inverse purity is the same the other way round (1 means nobody
is split over several predicted identities).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment


@dataclass(frozen=True)
class IdentityScores:
    idf1: float
    idp: float
    idr: float
    idtp: float
    idfp: float
    idfn: float
    purity: float
    inverse_purity: float
    num_gt_identities: int
    num_pred_identities: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def contingency(
    gt: Sequence[Hashable | None], pred: Sequence[Hashable | None], weight: Sequence[float] | None = None
) -> tuple[np.ndarray, list[Hashable], list[Hashable], float, float]:
    """Weight matrix ``C[g, p]`` over observations labelled on both sides, the row / column labels,
    and the total ground-truth and predicted weights (including one-sided observations)."""
    if len(gt) != len(pred):
        raise ValueError(f"gt and pred must have the same length, got {len(gt)} and {len(pred)}")
    w = np.ones(len(gt)) if weight is None else np.asarray(weight, np.float64)
    if w.shape != (len(gt),) or (w < 0).any() or not np.isfinite(w).all():
        raise ValueError("weight must be one finite, non-negative value per observation")
    gt_labels = sorted({g for g in gt if g is not None}, key=str)
    pred_labels = sorted({p for p in pred if p is not None}, key=str)
    gi = {g: i for i, g in enumerate(gt_labels)}
    pi = {p: i for i, p in enumerate(pred_labels)}
    c = np.zeros((len(gt_labels), len(pred_labels)))
    total_gt = total_pred = 0.0
    for g, p, wt in zip(gt, pred, w, strict=True):
        if g is not None:
            total_gt += wt
        if p is not None:
            total_pred += wt
        if g is not None and p is not None:
            c[gi[g], pi[p]] += wt
    return c, gt_labels, pred_labels, total_gt, total_pred


def identity_scores(
    gt: Sequence[Hashable | None], pred: Sequence[Hashable | None], weight: Sequence[float] | None = None
) -> IdentityScores:
    """IDF1 / IDP / IDR and purity of ``pred`` against ``gt`` (see the module docstring)."""
    c, gt_labels, pred_labels, total_gt, total_pred = contingency(gt, pred, weight)
    if c.size:
        rows, cols = linear_sum_assignment(-c)
        idtp = float(c[rows, cols].sum())
    else:
        idtp = 0.0
    idfp = total_pred - idtp
    idfn = total_gt - idtp
    both = float(c.sum())
    return IdentityScores(
        idf1=_ratio(2 * idtp, 2 * idtp + idfp + idfn),
        idp=_ratio(idtp, idtp + idfp),
        idr=_ratio(idtp, idtp + idfn),
        idtp=idtp,
        idfp=idfp,
        idfn=idfn,
        purity=_ratio(float(c.max(axis=0).sum()) if c.size else 0.0, both),
        inverse_purity=_ratio(float(c.max(axis=1).sum()) if c.size else 0.0, both),
        num_gt_identities=len(gt_labels),
        num_pred_identities=len(pred_labels),
    )


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0
