"""Camera topology and transit times, learned online from confident matches.

The configured :class:`~anonreid.gallery.association.CameraGraph` is the prior: its links and their
transit windows (every pair with ``min_transit_s``..``max_transit_s`` when no links are listed). Each time
the association joins a tracklet to an identity with a confident similarity (at least
``transit_confident`` above the threshold) right after a sighting of that identity on another camera,
the gap is recorded for that link (:meth:`TransitModel.observe`, bounded to the last
``transit_max_samples`` per link). Once a link has ``transit_min_samples`` gaps, its window becomes what
was seen: from the smallest to the largest gap, widened by ``transit_margin_s`` on both sides, never
faster than the prior allows. A walk between two cameras that no window covers (no link, or slower
than the window) is not forbidden, since people leave the network and come back, but costs
``reentry_penalty`` of similarity; a walk inside a window earns ``transit_bonus`` (a listed link's, or a
learned one: the default window of every pair, when no links are listed, earns nothing); a walk faster
than the prior's minimum is impossible.

The observed gaps are kept in Redis (:meth:`~anonreid.gallery.store.GalleryStore.commit` writes them with
the sighting that taught them), so a restarted gallery keeps what it learned. Pure: no Redis here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from anonreid.gallery.association import US, CameraGraph, Transit

if TYPE_CHECKING:
    from anonreid.orchestration.config import GalleryConfig

Link = tuple[str, str]


@dataclass(frozen=True, slots=True)
class TransitCost:
    """What a walk costs in similarity (negative: a bonus), or why it is impossible (``cost`` None)."""

    cost: float | None
    reason: str  # "in_window", "fragment", "reentry", "too_fast", "simultaneous"
    detail: str = ""


class TransitModel:
    """Transit windows per camera link: the configured prior, narrowed by what confident matches showed."""

    def __init__(self, graph: CameraGraph, *, min_samples: int, max_samples: int, margin_s: float, bonus: float,
                 reentry_penalty: float, same_camera_gap_s: float, min_gap_s: float) -> None:
        """Plain values, no defaults of their own: the defaults live in the config tree (:meth:`from_config`)."""
        self.graph = graph
        self.min_samples = min_samples
        self.max_samples = max_samples
        self.margin_us = round(margin_s * US)
        self.bonus = bonus
        self.reentry_penalty = reentry_penalty
        self.same_camera_gap_us = round(same_camera_gap_s * US)
        self.min_gap_us = round(min_gap_s * US)
        self.gaps: dict[Link, list[int]] = {}

    @classmethod
    def from_config(cls, graph: CameraGraph, c: GalleryConfig) -> TransitModel:
        """The model of the ``gallery`` config section (keys ``transit_*``, ``reentry_penalty``,
        ``same_camera_gap_s``, ``min_transit_s``)."""
        return cls(graph, min_samples=c.transit_min_samples, max_samples=c.transit_max_samples,
                   margin_s=c.transit_margin_s, bonus=c.transit_bonus, reentry_penalty=c.reentry_penalty,
                   same_camera_gap_s=c.same_camera_gap_s, min_gap_s=c.min_transit_s)

    # -- learning -------------------------------------------------------------------------------
    def observe(self, src: str, dst: str, gap_us: int) -> bool:
        """Record a confident walk ``src`` -> ``dst``; False (ignored) when it is outside the configured
        window (no such link, a person who left and came back) or the cameras are the same."""
        prior = self.graph.links.get((src, dst))
        if src == dst or prior is None or not prior.min_us <= gap_us <= prior.max_us:
            return False
        gaps = self.gaps.setdefault((src, dst), [])
        gaps.append(int(gap_us))
        del gaps[:-self.max_samples]
        return True

    def load(self, saved: Mapping[Link, Iterable[int]]) -> None:
        """Take the gaps a previous run stored (the same filter as :meth:`observe`)."""
        self.gaps = {}
        for (src, dst), gaps in saved.items():
            for gap in gaps:
                self.observe(src, dst, int(gap))

    def window(self, src: str, dst: str) -> Transit | None:
        """The link's transit window now: learned once it has ``min_samples`` gaps, else the prior."""
        prior = self.graph.links.get((src, dst))
        if prior is None:
            return None
        gaps = self.gaps.get((src, dst), [])
        if len(gaps) < self.min_samples:
            return prior
        return Transit(max(prior.min_us, min(gaps) - self.margin_us), max(gaps) + self.margin_us)

    def learned(self) -> dict[str, dict[str, float | int]]:
        """Per link with gaps: how many, and the window in seconds (operators, the bench)."""
        out: dict[str, dict[str, float | int]] = {}
        for (src, dst), gaps in sorted(self.gaps.items()):
            w = self.window(src, dst)
            assert w is not None
            out[f"{src}->{dst}"] = {"samples": len(gaps), "min_s": w.min_us / US, "max_s": w.max_us / US,
                                    "learned": len(gaps) >= self.min_samples}
        return out

    # -- scoring --------------------------------------------------------------------------------
    def cost(self, src: str, left_us: int, dst: str, arrived_us: int) -> TransitCost:
        """The cost of leaving ``src`` at ``left_us`` and being seen on ``dst`` at ``arrived_us``."""
        gap = arrived_us - left_us
        if gap < 0:
            return TransitCost(None, "simultaneous", f"{src} until {left_us / US:.2f} s, {dst} from {arrived_us / US:.2f} s")
        if src == dst:  # another tracklet on the same camera: a tracker fragment, or the person came back
            if gap <= self.same_camera_gap_us:
                return TransitCost(0.0, "fragment", f"{gap / US:.2f} s later on {src}")
            return TransitCost(self.reentry_penalty, "reentry", f"back on {src} after {gap / US:.2f} s")
        prior = self.graph.links.get((src, dst))
        if gap < (prior.min_us if prior is not None else self.min_gap_us):
            least = prior.min_us if prior is not None else self.min_gap_us
            return TransitCost(None, "too_fast", f"{src}->{dst} in {gap / US:.2f} s < {least / US:.2f} s")
        w = self.window(src, dst)
        if w is not None and w.min_us <= gap <= w.max_us:
            # the default window of every pair says nothing about this link until it has learned one
            known = self.graph.listed or len(self.gaps.get((src, dst), ())) >= self.min_samples
            return TransitCost(-self.bonus if known else 0.0, "in_window", f"{src}->{dst} in {gap / US:.2f} s "
                                                         f"(window {w.min_us / US:.1f}-{w.max_us / US:.1f} s)")
        where = "no walk known" if w is None else f"window {w.min_us / US:.1f}-{w.max_us / US:.1f} s"
        return TransitCost(self.reentry_penalty, "reentry", f"{src}->{dst} in {gap / US:.2f} s ({where})")
