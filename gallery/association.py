"""Online cross-camera association of sightings into global identities.

Rules, applied in this order to each new sighting:

1. Same camera and same tracklet as an earlier sighting -> the tracklet's identity (the tracker already
   says it is the same person). Cameras run at different speeds, so sightings arrive out of stream-time
   order across cameras: another tracklet may have joined the identity by similarity while this one was
   only published up to an earlier time, and this update now overlaps it (``simultaneous``). One of the
   two was a wrong merge: the one that joined the identity later (its first sighting stored later) is
   split off into a new identity with all its sightings (:class:`~anonreid.gallery.types.Split`); when
   that is this tracklet, the new sighting goes with it.
2. Within the correction horizon (``correction_horizon_s`` of stream time after the tracklet's first
   sighting), each update decides the whole tracklet again, as evidence arrives: its quality-weighted mean
   embedding (:mod:`~anonreid.gallery.tracklets`) against its own identity's other tracklets and against
   every other candidate. A different answer moves the tracklet with all its sightings: ``merge`` (it was
   alone: its identity joins the other), ``move`` (to an identity that fits it better) or ``detach`` (it no
   longer fits its identity's other tracklets: a new identity). Each is a :class:`~anonreid.gallery.types.
   Split` of that kind, which the gallery records as a correction. Past the horizon the identity is final.
3. A new tracklet: the identities of the nearest stored sightings (FAISS) are candidates, each scored by
   the tracklet's appearance against the identity (the mean of its ``identity_prototypes`` best cosine
   similarities to the identity's tracklet means), plus or minus the walk from the identity's sighting
   before and to the one after (:mod:`~anonreid.gallery.transit`: a bonus inside the link's learned transit
   window, a penalty for a walk no window covers: a person who left and came back). The best score at or
   above the similarity threshold wins. A candidate is impossible when:
   - ``simultaneous``: the identity already has a sighting overlapping the tracklet in time on another
     camera (nobody is in two places at once) or on another tracklet of the same camera;
   - ``too_fast``: the walk from (or to) the neighbouring sighting is faster than the link allows.
4. No candidate left -> a new identity.

Every decision keeps the candidates it looked at, their similarity and the rule that rejected them, so
an operator can see why two sightings were (not) linked. Nothing here touches FAISS, Redis or grpc.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

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

    def __init__(self, cameras: Iterable[str], links: Mapping[tuple[str, str], Transit], *, listed: bool = True) -> None:
        self.cameras = tuple(cameras)
        self.listed = listed  # links and windows were given, not every pair with the default window
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
        return cls(cams, {(a, b): t for a in cams for b in cams if a != b}, listed=False)

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
        # (camera, tracklet) -> its sightings here, in the order they were added (a load: by FAISS id)
        self.by_tracklet: dict[tuple[str, str], list[StoredSighting]] = {}

    def add(self, s: StoredSighting) -> None:
        key = (s.start_us, s.end_us, s.fid)
        i = bisect.bisect_right(self._keys, key)
        self._keys.insert(i, key)
        self.sightings.insert(i, s)
        self.by_tracklet.setdefault((s.camera_id, s.tracklet_id), []).append(s)
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
        self.by_tracklet = {}
        for s in sorted(ordered, key=lambda r: r.fid):
            self.by_tracklet.setdefault((s.camera_id, s.tracklet_id), []).append(s)
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
        return {key: sorted(rows, key=lambda s: s.fid) for key, rows in self.by_tracklet.items()}

    def neighbours(self, start_us: int) -> tuple[StoredSighting | None, StoredSighting | None]:
        """The sighting that started last before ``start_us`` and the first one starting at/after it."""
        i = bisect.bisect_left(self._keys, (start_us,))
        prev = self.sightings[i - 1] if i > 0 else None
        nxt = self.sightings[i] if i < len(self.sightings) else None
        return prev, nxt

    def around(self, start_us: int, skip: tuple[str, str]) -> tuple[StoredSighting | None, StoredSighting | None]:
        """Like :meth:`neighbours`, leaving out the sightings of the (camera, tracklet) ``skip``."""
        i = bisect.bisect_left(self._keys, (start_us,))
        rows = self.sightings
        j = i - 1
        while j >= 0 and (rows[j].camera_id, rows[j].tracklet_id) == skip:
            j -= 1
        while i < len(rows) and (rows[i].camera_id, rows[i].tracklet_id) == skip:
            i += 1
        return (rows[j] if j >= 0 else None), (rows[i] if i < len(rows) else None)

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
    # the whole tracklet with this sighting (its stored sightings too): span, and the end of its first
    # sighting (the correction horizon counts from there); None = this sighting alone
    tracklet_start_us: int | None = None
    tracklet_end_us: int | None = None
    first_end_us: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.camera_id, self.tracklet_id)

    @property
    def span(self) -> tuple[int, int]:
        start = self.start_us if self.tracklet_start_us is None else min(self.start_us, self.tracklet_start_us)
        end = self.end_us if self.tracklet_end_us is None else max(self.end_us, self.tracklet_end_us)
        return start, end


#: a tracklet's appearance against an identity (its best prototypes, the tracklet's own rows left out);
#: None when the identity has nothing else to compare with
Appearance = Callable[["IdentityTrack"], "float | None"]


class Associator:
    """Decides which identity a new sighting belongs to (pure: the caller applies the decision).

    ``transit`` (:class:`~anonreid.gallery.transit.TransitModel`) prices the walk to and from an identity's
    neighbouring sightings; ``horizon_us``: how long after its first sighting a tracklet's identity may
    still be corrected; ``confident``: the margin above the threshold from which a match teaches the
    transit model its walk; ``correction_threshold``: the score a tracklet needs within the horizon, on
    its mean embedding, to stay with or move to an identity."""

    def __init__(self, graph: CameraGraph, threshold: float, transit: Any, horizon_us: int = 0,
                 confident: float = 0.1, correction_threshold: float | None = None, candidates: int = 8) -> None:
        self.graph = graph
        self.candidates = candidates  # identities scored per decision, by their nearest sighting's similarity
        self.threshold = threshold
        # a tracklet decided again on its mean (more evidence than the first sighting) may use another bar
        self.correction_threshold = threshold if correction_threshold is None else correction_threshold
        self.transit = transit  # a TransitModel over ``graph`` (gallery/transit.py, which builds on this module)
        self.horizon_us = horizon_us
        self.confident = confident

    def violation(self, track: IdentityTrack, obs: Observation) -> tuple[str, str] | None:
        """Why ``obs`` cannot belong to ``track`` (reason, detail), or None when it can."""
        cost = self.fit(track, obs)
        return None if cost[0] is not None else (cost[1], cost[2])

    def mergeable(self, into: IdentityTrack, other: IdentityTrack) -> bool:
        """Whether every tracklet of ``other`` could join ``into`` (a merge pass): never in two places at
        once, and each walk to and from ``into``'s neighbouring sightings possible (:meth:`fit`'s rules,
        tracklet by tracklet)."""
        for (camera_id, tracklet_id), rows in other.by_tracklet.items():
            obs = Observation(camera_id, tracklet_id, min(r.start_us for r in rows), max(r.end_us for r in rows))
            if self.fit(into, obs)[0] is None:
                return False
        return True

    def fit(self, track: IdentityTrack, obs: Observation) -> tuple[float | None, str, str, tuple[tuple[str, str, int], ...]]:
        """What joining ``track`` costs ``obs``'s tracklet in similarity (transit to the identity's
        sighting before it and from the one after it, its own sightings left out): (cost, reason, detail,
        walks), cost None when impossible (in two places at once, or a walk faster than allowed)."""
        start, end = obs.span
        for s in track.overlapping(start, end):
            if s.camera_id != obs.camera_id or s.tracklet_id != obs.tracklet_id:
                return None, "simultaneous", _simultaneous_detail(s, obs), ()
        prev, nxt = track.around(start, obs.key)
        total, reasons, walks = 0.0, [], []
        legs = ([(prev.camera_id, prev.end_us, obs.camera_id, start, prev)] if prev is not None else []) + \
               ([(obs.camera_id, end, nxt.camera_id, nxt.start_us, nxt)] if nxt is not None else [])
        for a_cam, left, b_cam, arrived, other in legs:
            c = self.transit.cost(a_cam, left, b_cam, arrived)
            if c.cost is None:
                return None, c.reason, f"{c.detail} (sighting {other.sighting_id})", ()
            total += c.cost
            reasons.append(c.detail)
            if a_cam != b_cam:  # the transit model keeps those inside the configured window
                walks.append((a_cam, b_cam, arrived - left))
        return total, "accepted", "; ".join(reasons), tuple(walks)

    def decide(
        self,
        obs: Observation,
        neighbours: Iterable[tuple[str, float]],
        tracks: Mapping[str, IdentityTrack],
        tracklet_identity: str | None,
        new_identity: Callable[[], str],
        appearance: Appearance | None = None,
    ) -> Decision:
        """``neighbours``: (identity id, similarity) of the nearest stored sightings, any order;
        ``appearance``: the tracklet's score against an identity (default: the best neighbour similarity)."""
        best: dict[str, float] = {}
        for identity_id, sim in neighbours:
            if identity_id in tracks and sim > best.get(identity_id, -2.0):
                best[identity_id] = sim
        if tracklet_identity is not None and tracklet_identity in tracks:
            track = tracks[tracklet_identity]
            if any(True for _ in track.simultaneous(obs)) or appearance is None or self.horizon_us <= 0:
                return self._same_tracklet(obs, track, best.get(tracklet_identity, 0.0), new_identity)
            first_end = obs.end_us if obs.first_end_us is None else obs.first_end_us
            if obs.end_us - first_end > self.horizon_us:  # past the horizon: the identity is final
                return self._same_tracklet(obs, track, best.get(tracklet_identity, 0.0), new_identity)
            return self._reconsider(obs, track, best, tracks, new_identity, appearance)
        chosen, considered = self._choose(obs, best, tracks, appearance)
        if chosen is None:
            return Decision(new_identity(), True, 0.0, "new", considered)
        return Decision(chosen[0], False, chosen[3], "similarity", considered, walks=chosen[2])

    def _choose(self, obs: Observation, best: Mapping[str, float], tracks: Mapping[str, IdentityTrack],
                appearance: Appearance | None, extra: str | None = None, threshold: float | None = None
                ) -> tuple[tuple[str, float, tuple[tuple[str, str, int], ...], float] | None, tuple[Candidate, ...]]:
        """The identity the tracklet fits best at or above the threshold (appearance minus transit cost),
        with every candidate looked at; ``extra``: an identity to try even if no neighbour named it;
        ``threshold``: the bar (default: the similarity threshold)."""
        bar = self.threshold if threshold is None else threshold
        order = sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[: self.candidates]
        if extra is not None and extra not in best:
            order.append((extra, -1.0))
        considered: list[Candidate] = []
        chosen: tuple[str, float, tuple[tuple[str, str, int], ...], float] | None = None
        below = 0
        for identity_id, sim in order:
            track = tracks[identity_id]
            looks = appearance(track) if appearance is not None else sim
            if looks is None:
                continue
            if looks + 2 * self.transit.bonus < bar:  # not even the best walk before and after lifts it
                below += 1
                if below <= MAX_REJECTED_LISTED:
                    considered.append(Candidate(identity_id, looks, False, "below_threshold",
                                                f"appearance {looks:.3f} < {bar:.3f}"))
                continue
            cost, reason, detail, walks = self.fit(track, obs)
            if cost is None:
                considered.append(Candidate(identity_id, looks, False, reason, detail))
                continue
            score = looks - cost
            why = f"score {score:.3f} = appearance {looks:.3f} {-cost:+.3f} transit" + (f" ({detail})" if detail else "")
            if score < bar:
                below += 1
                if below <= MAX_REJECTED_LISTED:
                    considered.append(Candidate(identity_id, looks, False, "below_threshold",
                                                f"{score:.3f} < {bar:.3f}: {why}"))
                continue
            considered.append(Candidate(identity_id, looks, False, "candidate", why))
            if chosen is None or score > chosen[1]:
                confident = score >= bar + self.confident
                chosen = (identity_id, score, walks if confident else (), looks)
        if chosen is not None:
            considered = [dataclasses.replace(c, accepted=True, reason="accepted") if c.identity_id == chosen[0]
                          and c.reason == "candidate" else c for c in considered]
            considered = [dataclasses.replace(c, reason="weaker") if c.reason == "candidate" else c
                          for c in considered]
        return chosen, tuple(considered)

    def _reconsider(self, obs: Observation, track: IdentityTrack, best: Mapping[str, float],
                    tracks: Mapping[str, IdentityTrack], new_identity: Callable[[], str],
                    appearance: Appearance) -> Decision:
        """Within the horizon: decide the whole tracklet again, against its own identity's other
        tracklets and every other candidate; a different answer moves the tracklet (module doc)."""
        own = sorted(track.by_tracklet.get(obs.key, []), key=lambda r: r.fid)
        moved = tuple(s.sighting_id for s in own)
        alone = track.by_tracklet.keys() <= {obs.key}  # no other tracklet (a size check first)
        others = {k: v for k, v in best.items() if k != track.identity_id}
        chosen, considered = self._choose(obs, others, tracks, appearance,
                                          extra=None if alone else track.identity_id,
                                          threshold=self.correction_threshold)
        here = f"tracklet {obs.tracklet_id} on {obs.camera_id}"
        if chosen is None:
            if alone:
                return Decision(track.identity_id, False, 0.0, "tracklet", considered)
            new_id = new_identity()
            split = Split(track.identity_id, obs.camera_id, obs.tracklet_id, new_id, moved, "detach", 0.0)
            detail = (f"detach: {here} no longer fits the other tracklets of {track.identity_id}: moved to a new "
                      f"identity {new_id} with its {len(moved)} earlier sighting(s)")
            return Decision(new_id, True, 0.0, "correction", (Candidate(new_id, 0.0, True, "detach", detail),
                                                              *considered), (split,))
        identity_id, score, walks, looks = chosen
        if identity_id == track.identity_id:
            return Decision(identity_id, False, looks, "tracklet", considered, walks=walks)
        kind = "merge" if alone else "move"
        split = Split(track.identity_id, obs.camera_id, obs.tracklet_id, identity_id, moved, kind, looks)
        detail = (f"{kind}: {here} fits {identity_id} better ({score:.3f}) than "
                  + (f"standing alone as {track.identity_id}" if alone else f"the other tracklets of {track.identity_id}")
                  + f": moved with its {len(moved)} earlier sighting(s)")
        return Decision(identity_id, False, looks, "correction", (Candidate(identity_id, looks, True, kind, detail),
                                                                   *(c for c in considered if c.identity_id != identity_id)),
                        (split,), walks)

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
