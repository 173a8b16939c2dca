"""Online cross-camera association of sightings into global identities.

Rules, applied in this order to each new sighting:

1. Same camera and same tracklet as an earlier sighting -> the tracklet's identity (the tracker already
   says it is the same person). Cameras run at different speeds, so sightings arrive out of stream-time
   order across cameras: another tracklet may have joined the identity by similarity while this one was
   only published up to an earlier time, and this update now overlaps it (``simultaneous``). One of the
   two was a wrong merge: the one that joined the identity later (its first sighting stored later) is
   split off into a new identity with all its sightings (:class:`~anonreid.gallery.types.Split`); when
   that is this tracklet, the new sighting goes with it.
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
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

from anonreid.gallery.types import Candidate, Decision, IdentitySummary, Split, StoredSighting

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
    """The sightings of one identity, kept sorted by (start, end, FAISS id) for the constraint checks: a
    canonical order, so a gallery rebuilt from Redis (rows in any order) decides as it did before."""

    def __init__(self, identity_id: str) -> None:
        self.identity_id = identity_id
        self.sightings: list[StoredSighting] = []
        self._keys: list[tuple[int, int, int]] = []  # (start_us, end_us, fid) of each sighting, sorted
        self._longest_us = 0
        self._first: dict[str, int] = {}  # camera -> start of its earliest sighting
        self.cameras: list[str] = []  # in order of first appearance (by time)

    def add(self, s: StoredSighting) -> None:
        key = (s.start_us, s.end_us, s.fid)
        i = bisect.bisect_right(self._keys, key)
        self._keys.insert(i, key)
        self.sightings.insert(i, s)
        self._longest_us = max(self._longest_us, s.end_us - s.start_us, 1)
        # sightings arrive out of time order: an earlier one can move a known camera forward too
        if s.start_us < self._first.get(s.camera_id, s.start_us + 1):
            self._first[s.camera_id] = s.start_us
            self.cameras = sorted(self._first, key=lambda c: (self._first[c], c))

    def remove(self, sighting_ids: set[str]) -> None:
        """Drop sightings (rollback of an unstored batch, retention); O(n) per call."""
        self._reindex([s for s in self.sightings if s.sighting_id not in sighting_ids])

    def extend(self, rows: Iterable[StoredSighting]) -> None:
        """Add many sightings at once (a gallery loading): one sort instead of an insert each."""
        self._reindex(sorted([*self.sightings, *rows], key=lambda s: (s.start_us, s.end_us, s.fid)))

    def _reindex(self, ordered: list[StoredSighting]) -> None:
        """Hold exactly ``ordered`` (sorted by key) and recompute what derives from it."""
        self.sightings = ordered
        self._keys = [(s.start_us, s.end_us, s.fid) for s in ordered]
        self._longest_us = max((max(s.end_us - s.start_us, 1) for s in ordered), default=0)
        self._first = {}
        for s in ordered:  # sorted by start: the first time a camera appears is its first sighting
            self._first.setdefault(s.camera_id, s.start_us)
        self.cameras = sorted(self._first, key=lambda c: (self._first[c], c))

    def __len__(self) -> int:
        return len(self.sightings)

    def overlapping(self, start_us: int, end_us: int) -> Iterator[StoredSighting]:
        """Sightings whose half-open span intersects [start_us, end_us); a zero-length span counts as
        the single microsecond [start_us, start_us + 1)."""
        end_us = max(end_us, start_us + 1)
        lo = bisect.bisect_left(self._keys, (start_us - self._longest_us,))
        hi = bisect.bisect_left(self._keys, (end_us,))
        for s in self.sightings[lo:hi]:
            if max(s.end_us, s.start_us + 1) > start_us:
                yield s

    def simultaneous(self, obs: Observation) -> Iterator[StoredSighting]:
        """Sightings overlapping ``obs`` in time on another tracklet (another camera, or another tracklet
        of the same camera): with ``obs``, the identity would be in two places at once."""
        for s in self.overlapping(obs.start_us, obs.end_us):
            if s.camera_id != obs.camera_id or s.tracklet_id != obs.tracklet_id:
                yield s

    def tracklets(self) -> dict[tuple[str, str], list[StoredSighting]]:
        """The identity's sightings by (camera, tracklet), each list in storage order (by FAISS id, which
        grows with every sighting stored): its first row is when the tracklet joined the identity."""
        out: dict[tuple[str, str], list[StoredSighting]] = {}
        for s in self.sightings:
            out.setdefault((s.camera_id, s.tracklet_id), []).append(s)
        for rows in out.values():
            rows.sort(key=lambda s: s.fid)
        return out

    def neighbours(self, start_us: int) -> tuple[StoredSighting | None, StoredSighting | None]:
        """The sighting that started last before ``start_us`` and the first one starting at/after it."""
        i = bisect.bisect_left(self._keys, (start_us,))
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
        for s in track.simultaneous(obs):  # updates of the same tracklet overlap it: they do not count
            return "simultaneous", _simultaneous_detail(s, obs)
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
            return self._same_tracklet(obs, tracks[tracklet_identity], best.get(tracklet_identity, 0.0),
                                       new_identity)
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

    def _same_tracklet(self, obs: Observation, track: IdentityTrack, sim: float,
                       new_identity: Callable[[], str]) -> Decision:
        """Rule 1, splitting the identity when the update reveals a wrong merge (see the module doc)."""
        here = f"tracklet {obs.tracklet_id} on {obs.camera_id}"
        accepted = Candidate(track.identity_id, sim, True, "accepted", f"same {here}")
        clashes = list(track.simultaneous(obs))
        if not clashes:
            return Decision(track.identity_id, False, sim, "tracklet", (accepted,))
        members = track.tracklets()
        own = (obs.camera_id, obs.tracklet_id)

        def joined(key: tuple[str, str]) -> float:
            rows = members.get(key)
            return rows[0].fid if rows else math.inf  # not stored yet: joins now, after everyone

        first = min(clashes, key=lambda s: (joined((s.camera_id, s.tracklet_id)), s.start_us, s.sighting_id))
        if joined((first.camera_id, first.tracklet_id)) < joined(own):
            # this tracklet joined after one it overlaps: it was the wrong merge and leaves, with the sighting
            new_id = new_identity()
            moved = tuple(s.sighting_id for s in members.get(own, []))
            split = Split(track.identity_id, obs.camera_id, obs.tracklet_id, new_id, moved)
            detail = (f"split: {here} overlaps in time tracklet {first.tracklet_id} on {first.camera_id} "
                      f"(sighting {first.sighting_id}), which joined {track.identity_id} first: moved out of "
                      f"{track.identity_id} with its {len(moved)} earlier sighting(s)")
            left = Candidate(track.identity_id, sim, False, "simultaneous", _simultaneous_detail(first, obs))
            return Decision(new_id, True, 0.0, "tracklet", (Candidate(new_id, 0.0, True, "split", detail), left),
                            (split,))
        # every tracklet this update overlaps joined after this one: they were the wrong merges and leave
        later = sorted({(s.camera_id, s.tracklet_id) for s in clashes}, key=lambda k: (joined(k), k))
        splits = tuple(Split(track.identity_id, cam, trk, new_identity(),
                             tuple(s.sighting_id for s in members[(cam, trk)])) for cam, trk in later)
        moved_out = tuple(
            Candidate(sp.new_identity_id, 0.0, False, "split",
                      f"split: tracklet {sp.tracklet_id} on {sp.camera_id} overlaps {here} in time and joined "
                      f"{track.identity_id} later: moved out with its {len(sp.sighting_ids)} sighting(s) "
                      f"to {sp.new_identity_id}")
            for sp in splits)
        return Decision(track.identity_id, False, sim, "tracklet", (accepted, *moved_out), splits)


def _simultaneous_detail(s: StoredSighting, obs: Observation) -> str:
    where = "another tracklet on " + s.camera_id if s.camera_id == obs.camera_id else s.camera_id
    return f"already on {where} at the same time (sighting {s.sighting_id})"
