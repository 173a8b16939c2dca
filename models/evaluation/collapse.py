"""Collapse checks: is an attack broken rather than defeated?

A trained attack whose output hardly varies (e.g. the earlier voxel-L1 inversion, which predicted
~zeros and reconstructed flat grey) or that does no better than the closed-form linear inverse says
nothing about privacy: a low score from it is a weak attacker, not a private anonymizer. Each trained
attack gets a :class:`CollapseVerdict`:

  * *collapsed output*: the mean per-image spatial standard deviation of its output is under
    :data:`SPREAD_FRACTION` (10 %) of the target's (its reference frames);
  * *below the linear floor*: on every metric both were scored on (person-region SSIM, enrollment
    rank-1), its 95 % interval lies wholly below the linear inverse's (its upper end under the floor's
    lower end), i.e. it is clearly worse than the floor, not just unlucky on a small test set.

``anonreid evaluate`` marks such an attack ``"collapsed": true`` with its reasons in ``results.json``,
and the tests fail when an attack of a trained run collapses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPREAD_FRACTION = 0.10


def output_spread(images: np.ndarray) -> float:
    """Mean over images of the per-image spatial standard deviation (``(..., H, W)`` arrays)."""
    arr = np.asarray(images, np.float64)
    if arr.ndim < 2 or arr.size == 0:
        raise ValueError(f"output_spread needs (..., H, W) images, got shape {arr.shape}")
    return float(arr.reshape(-1, arr.shape[-2] * arr.shape[-1]).std(axis=1).mean())


@dataclass(frozen=True)
class CollapseVerdict:
    attack: str
    collapsed: bool
    reasons: list[str] = field(default_factory=list)
    spread: float | None = None  # the attack output's spread and its target's
    target_spread: float | None = None
    below_linear: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"collapsed": self.collapsed, "reasons": self.reasons, "spread": self.spread,
                "target_spread": self.target_spread, "below_linear": self.below_linear}


def collapse_check(
    attack: str, output: np.ndarray | None = None, target: np.ndarray | None = None,
    scores: Mapping[str, Mapping[str, float]] | None = None,
    linear_scores: Mapping[str, Mapping[str, float]] | None = None, fraction: float = SPREAD_FRACTION,
) -> CollapseVerdict:
    """The verdict on one attack: ``output`` vs ``target`` images for the spread test, and ``scores`` /
    ``linear_scores`` (metric -> an interval dict with ``value``, ``ci_low``, ``ci_high``; higher =
    stronger) for the linear floor."""
    reasons: list[str] = []
    spread = target_spread = None
    if output is not None and target is not None:
        spread, target_spread = output_spread(output), output_spread(target)
        if spread < fraction * target_spread:
            reasons.append(f"output spread {spread:.4f} is under {fraction:.0%} of the target's {target_spread:.4f}")
    below: dict[str, bool] = {}
    for metric in sorted(set(scores or {}) & set(linear_scores or {})):
        mine, floor = (scores or {})[metric], (linear_scores or {})[metric]
        if mine and floor and np.isfinite(mine.get("ci_high", np.nan)) and np.isfinite(floor.get("ci_low", np.nan)):
            below[metric] = bool(mine["ci_high"] < floor["ci_low"])
    if below and all(below.values()):
        parts = [f"{m} {scores[m]['value']:.3f} (upper {scores[m]['ci_high']:.3f}) < the floor's "  # type: ignore[index]
                 f"{linear_scores[m]['value']:.3f} (lower {linear_scores[m]['ci_low']:.3f})" for m in below]  # type: ignore[index]
        reasons.append("clearly below the linear-inverse floor on every metric: " + "; ".join(parts))
    return CollapseVerdict(attack, bool(reasons), reasons, spread, target_spread, below)


def collapsed_attacks(results: Mapping[str, Any]) -> dict[str, list[str]]:
    """The collapsed attacks of an ``anonreid evaluate`` result and why (empty: none collapsed)."""
    return {name: a["collapse"]["reasons"] for name, a in (results.get("attacks") or {}).items()
            if a.get("collapse", {}).get("collapsed")}
