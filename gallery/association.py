"""Online cross-camera association of sightings into global identities.

Rules, applied in this order to each new sighting:

1. Same camera and same tracklet as an earlier sighting -> the tracklet's identity (the tracker already
   says it is the same person).
2. Otherwise the nearest stored sightings (FAISS) are grouped by identity, each identity scored by its
   best cosine similarity, and the identities at or above the similarity threshold are tried best
   first. A candidate is rejected when joining it would break a physical constraint:
   - ``simultaneous``: the identity already has a sighting overlapping this one in time on another
     camera (nobody is in two places at once) or on another tracklet of the same camera;
   - ``no_link``: the identity's previous (or next) sighting is on a camera with no walk to this one;
   - ``too_fast`` / ``too_slow``: the gap to that sighting is outside the link's transit window.
3. No candidate left -> a new identity.

Every decision keeps the candidates it looked at, their similarity and the rule that rejected them, so
an operator can see why two sightings were (not) linked. Nothing here touches FAISS, Redis or grpc.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from anonreid.gallery.types import Candidate, Decision, IdentitySummary, StoredSighting

US = 1_000_000
MAX_REJECTED_LISTED = 8  # below-threshold candidates kept in a decision (the rest are not informative)


@dataclass(frozen=True, slots=True)
class Transit:
    """Allowed walking time between two cameras, microseconds."""

    min_us: int
    max_us: int


class CameraGraph:
    """Known cameras and the allowed transitions between them, with transit windows."""

    def __init__(self, cameras: Iterable[str], links: Mapping[tuple[str, str], Transit]) -> None:
        self.cameras = tuple(cameras)
        known = set(self.cameras)
        for src, dst in links:
            for name in (src, dst):
                if name not in known:
                    raise ValueError(f"camera link {src}->{dst} names unknown camera {name!r} "
                                     f"(known: {', '.join(self.cameras)})")
        self.links = dict(links)

    @classmethod
    def fully_connected(cls, cameras: Iterable[str], min_s: float, max_s: float) -> CameraGraph:
        cams = tuple(cameras)
        t = Transit(round(min_s * US), round(max_s * US))
        return cls(cams, {(a, b): t for a in cams for b in cams if a != b})

    @classmethod
    def from_config(cls, config: object) -> CameraGraph:
        """From GalleryConfig: its ``camera_links``, or every pair with the default transit window."""
        cameras = list(getattr(config, "camera_ids"))  # noqa: B009 - duck-typed config
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"gallery.camera_ids has duplicates: {cameras}")
        links = getattr(config, "camera_links")  # noqa: B009
        if not links:
            return cls.fully_connected(cameras, config.min_transit_s, config.max_transit_s)  # type: ignore[attr-defined]
        out: dict[tuple[str, str], Transit] = {}
        for n, link in enumerate(links):
            if link.max_transit_s < link.min_transit_s:
                raise ValueError(f"gallery.camera_links[{n}]: max_transit_s {link.max_transit_s} "
                                 f"< min_transit_s {link.min_transit_s}")
            t = Transit(round(link.min_transit_s * US), round(link.max_transit_s * US))
            out[(link.src, link.dst)] = t
            if link.bidirectional:
                out.setdefault((link.dst, link.src), t)
        return cls(cameras, out)

    def check_transit(self, src: str, left_us: int, dst: str, arrived_us: int) -> tuple[str, str] | None:
        """None when someone leaving ``src`` at ``left_us`` can reach ``dst`` at ``arrived_us``,
        else (reason, human-readable detail)."""
        if src == dst:
            return None
        transit = self.links.get((src, dst))
        if transit is None:
            return "no_link", f"no walk from {src} to {dst}"
        gap = arrived_us - left_us
        if gap < transit.min_us:
            return "too_fast", f"{src}->{dst} in {gap / US:.2f} s < {transit.min_us / US:.2f} s"
        if gap > transit.max_us:
            return "too_slow", f"{src}->{dst} in {gap / US:.2f} s > {transit.max_us / US:.2f} s"
        return None


class IdentityTrack:
    """The sightings of one identity, kept sorted by start time for the constraint checks."""

    def __init__(self, identity_id: str) -> None:
        self.identity_id = identity_id
        self.sightings: list[StoredSighting] = []
        self._starts: list[int] = []
        self._longest_us = 0
        self.cameras: list[str] = []  # in order of first appearance (by time)

    def add(self, s: StoredSighting) -> None:
        i = bisect.bisect_right(self._starts, s.start_us)
        self._starts.insert(i, s.start_us)
        self.sightings.insert(i, s)
        self._longest_us = max(self._longest_us, s.end_us - s.start_us, 1)
        if s.camera_id not in self.cameras:
            first = {c: min(x.start_us for x in self.sightings if x.camera_id == c) for c in {*self.cameras, s.camera_id}}
            self.cameras = sorted(first, key=lambda c: (first[c], c))

    def remove(self, sighting_ids: set[str]) -> None:
        """Drop sightings (rollback of an unstored batch, retention); O(n) per call."""
        keep = [s for s in self.sightings if s.sighting_id not in sighting_ids]
        self.sightings = keep
        self._starts = [s.start_us for s in keep]
        self._longest_us = max((max(s.end_us - s.start_us, 1) for s in keep), default=0)
        first: dict[str, int] = {}
        for s in keep:  # sorted by start: the first time a camera appears is its first sighting
            first.setdefault(s.camera_id, s.start_us)
        self.cameras = sorted(first, key=lambda c: (first[c], c))

    def __len__(self) -> int:
        return len(self.sightings)

    def overlapping(self, start_us: int, end_us: int) -> Iterator[StoredSighting]:
        """Sightings whose half-open span intersects [start_us, end_us); a zero-length span counts as
        the single microsecond [start_us, start_us + 1)."""
        end_us = max(end_us, start_us + 1)
        lo = bisect.bisect_left(self._starts, start_us - self._longest_us)
        hi = bisect.bisect_left(self._starts, end_us)
        for s in self.sightings[lo:hi]:
            if max(s.end_us, s.start_us + 1) > start_us:
                yield s

    def neighbours(self, start_us: int) -> tuple[StoredSighting | None, StoredSighting | None]:
        """The sighting that started last before ``start_us`` and the first one starting at/after it."""
        i = bisect.bisect_left(self._starts, start_us)
        prev = self.sightings[i - 1] if i > 0 else None
        nxt = self.sightings[i] if i < len(self.sightings) else None
        return prev, nxt

    def summary(self) -> IdentitySummary:
        return IdentitySummary(
            identity_id=self.identity_id,
            cameras=tuple(self.cameras),
            first_seen_us=self.sightings[0].start_us if self.sightings else 0,
            last_seen_us=max((s.end_us for s in self.sightings), default=0),
            num_sightings=len(self.sightings),
        )


@dataclass(frozen=True, slots=True)
class Observation:
    """The parts of a new sighting the association needs."""

    camera_id: str
    tracklet_id: str
    start_us: int
    end_us: int


class Associator:
    """Decides which identity a new sighting belongs to (pure: the caller applies the decision)."""

    def __init__(self, graph: CameraGraph, threshold: float) -> None:
        self.graph = graph
        self.threshold = threshold

    def violation(self, track: IdentityTrack, obs: Observation) -> tuple[str, str] | None:
        """Why ``obs`` cannot belong to ``track`` (reason, detail), or None when it can."""
        for s in track.overlapping(obs.start_us, obs.end_us):
            if s.camera_id == obs.camera_id and s.tracklet_id == obs.tracklet_id:
                continue  # an update of the same tracklet
            where = "another tracklet on " + s.camera_id if s.camera_id == obs.camera_id else s.camera_id
            return "simultaneous", f"already on {where} at the same time (sighting {s.sighting_id})"
        prev, nxt = track.neighbours(obs.start_us)
        if prev is not None and prev.camera_id != obs.camera_id:
            why = self.graph.check_transit(prev.camera_id, prev.end_us, obs.camera_id, obs.start_us)
            if why is not None:
                return why[0], why[1] + f" (after sighting {prev.sighting_id})"
        if nxt is not None and nxt.camera_id != obs.camera_id:
            why = self.graph.check_transit(obs.camera_id, obs.end_us, nxt.camera_id, nxt.start_us)
            if why is not None:
                return why[0], why[1] + f" (before sighting {nxt.sighting_id})"
        return None

    def decide(
        self,
        obs: Observation,
        neighbours: Iterable[tuple[str, float]],
        tracks: Mapping[str, IdentityTrack],
        tracklet_identity: str | None,
        new_identity: Callable[[], str],
    ) -> Decision:
        """``neighbours``: (identity id, similarity) of the nearest stored sightings, any order."""
        best: dict[str, float] = {}
        for identity_id, sim in neighbours:
            if identity_id in tracks and sim > best.get(identity_id, -2.0):
                best[identity_id] = sim
        if tracklet_identity is not None and tracklet_identity in tracks:
            sim = best.get(tracklet_identity, 0.0)
            cand = Candidate(tracklet_identity, sim, True, "accepted", f"same tracklet {obs.tracklet_id} on {obs.camera_id}")
            return Decision(tracklet_identity, False, sim, "tracklet", (cand,))
        considered: list[Candidate] = []
        below = 0
        for identity_id, sim in sorted(best.items(), key=lambda kv: (-kv[1], kv[0])):
            if sim < self.threshold:
                below += 1
                if below <= MAX_REJECTED_LISTED:
                    considered.append(Candidate(identity_id, sim, False, "below_threshold",
                                                f"{sim:.3f} < {self.threshold:.3f}"))
                continue
            why = self.violation(tracks[identity_id], obs)
            if why is None:
                considered.append(Candidate(identity_id, sim, True, "accepted"))
                return Decision(identity_id, False, sim, "similarity", tuple(considered))
            considered.append(Candidate(identity_id, sim, False, why[0], why[1]))
        return Decision(new_identity(), True, 0.0, "new", tuple(considered))
