"""Tracklet-level appearance: one quality-weighted mean embedding per (camera, tracklet).

A sighting's embedding is noisy (a tracklet's first one most of all: few windows, often a partial view);
the mean of a tracklet's sightings, each weighted by its quality, is a steadier description of the
person. An identity is described by several prototypes, one per tracklet it holds, and a tracklet is
compared with an identity through the mean of its ``prototypes`` best cosine similarities to them.

The book is a cache over Redis: rows ingested here are added as they come; a tracklet it does not hold
(after a restart, a forget, a rolled-back batch) is rebuilt from its stored sightings through the
``fetch`` callback (embedding and quality of each sighting id). Pure numpy otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from itertools import filterfalse

import numpy as np

from anonreid.gallery.association import IdentityTrack, Observation
from anonreid.gallery.types import Sighting, StoredSighting

Key = tuple[str, str]  # (camera id, tracklet id)
MIN_WEIGHT = 0.01  # a sighting of quality 0 still counts a little (its embedding is all a tracklet may have)

Fetch = Callable[[Sequence[str]], Sequence[tuple[np.ndarray, float] | None]]


class TrackletBook:
    """Quality-weighted embedding sums per tracklet (see the module doc)."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._sums: dict[Key, np.ndarray] = {}
        self._units: dict[Key, np.ndarray] = {}  # the normalised sums, computed when first asked for

    def add(self, key: Key, embedding: np.ndarray, quality: float, stored: Callable[[], Sequence[str]]) -> None:
        """Add one new sighting of ``key``; ``stored``: the ids of its sightings stored before this one
        (read only when the tracklet must be rebuilt first)."""
        total = self._sums.get(key)
        if total is None:
            total = self._rebuild(key, stored())
        part = max(float(quality), MIN_WEIGHT) * np.asarray(embedding, np.float64)
        self._sums[key] = total + part if total.size else part
        self._units.pop(key, None)

    def prototype(self, key: Key, stored: Callable[[], Sequence[str]]) -> np.ndarray:
        """The tracklet's L2-normalised mean embedding (zeros when nothing is stored)."""
        unit = self._units.get(key)
        if unit is not None:
            return unit
        total = self._sums.get(key)
        if total is None:
            total = self._sums[key] = self._rebuild(key, stored())
        norm = math.sqrt(float(total.dot(total)))  # np.linalg.norm's own formula for a vector, without its overhead
        unit = self._units[key] = total / norm if norm > 0 else total
        return unit

    def prototypes(self, keys: Iterable[Key], stored: Callable[[Key], Sequence[str]]) -> list[np.ndarray]:
        """:meth:`prototype` of each key (``stored``: a key's stored sighting ids), the held ones looked up
        directly (a decision scores a few identities of up to ``recent`` tracklets each)."""
        units = self._units
        return [u if (u := units.get(k)) is not None else self.prototype(k, partial(stored, k)) for k in keys]

    def forget(self, keys: Iterable[Key]) -> None:
        """Drop tracklets (their sightings changed: rebuilt from the store when next needed)."""
        for key in keys:
            self._sums.pop(key, None)
            self._units.pop(key, None)

    def clear(self) -> None:
        self._sums.clear()
        self._units.clear()

    def __contains__(self, key: Key) -> bool:
        return key in self._sums

    def missing(self, keys: Iterable[Key]) -> list[Key]:
        """The ``keys`` not held, in their order."""
        return list(filterfalse(self._sums.__contains__, keys))

    def prefetch(self, wanted: Mapping[Key, Sequence[str]]) -> None:
        """Rebuild every tracklet of ``wanted`` (key -> its stored sighting ids) not held yet, with one
        fetch: a gallery about to score a batch against them (after a restart, most are not held)."""
        missing = {key: ids for key, ids in wanted.items() if key not in self._sums}
        flat = [sid for ids in missing.values() for sid in ids]
        if not flat:
            return
        got = iter(self._fetch(flat))
        for key, ids in missing.items():
            self._sums[key] = _weighted_sum([next(got) for _ in ids])

    def _rebuild(self, key: Key, sighting_ids: Sequence[str]) -> np.ndarray:
        return _weighted_sum(self._fetch(sighting_ids)) if sighting_ids else np.zeros(0)


def _weighted_sum(found: Iterable[tuple[np.ndarray, float] | None]) -> np.ndarray:
    """The quality-weighted sum of the embeddings found (zeros(0) when none)."""
    total: np.ndarray | None = None
    for item in found:
        if item is None:
            continue
        part = max(float(item[1]), MIN_WEIGHT) * np.asarray(item[0], np.float64)
        total = part if total is None else total + part
    return total if total is not None else np.zeros(0)


def identity_similarity(query: np.ndarray, prototypes: Sequence[np.ndarray], best: int) -> float | None:
    """Mean of the ``best`` highest cosine similarities of ``query`` to ``prototypes`` (None when none)."""
    if not query.size:
        return None
    # ndarray.dot: the same BLAS dot product as ``@`` for two vectors, without the matmul ufunc's overhead
    sims = [float(p.dot(query)) for p in prototypes if p.size == query.size]
    sims.sort(reverse=True)
    del sims[best:]
    return sum(sims) / len(sims) if sims else None


def tracklet_rows(track: IdentityTrack | None, key: Key) -> list[StoredSighting]:
    """The stored sightings of tracklet ``key`` in its identity's track, in storage order (FAISS id)."""
    if track is None:
        return []
    return sorted(track.by_tracklet.get(key, []), key=lambda r: r.fid)


def observe(s: Sighting, rows: Sequence[StoredSighting]) -> Observation:
    """The association's view of ``s``: its span, and its tracklet's whole span and first sighting's end."""
    if not rows:
        return Observation(s.camera_id, s.tracklet_id, s.start_us, s.end_us)
    return Observation(s.camera_id, s.tracklet_id, s.start_us, s.end_us, min(r.start_us for r in rows),
                       max(r.end_us for r in rows), rows[0].end_us)


class TrackletScorer:
    """The appearance of one tracklet against identities: its prototype against the identity's
    prototypes (one per other tracklet, the ``recent`` latest of them), mean of the ``best`` highest."""

    def __init__(self, book: TrackletBook, key: Key, stored: Callable[[Key], Sequence[str]], best: int,
                 recent: int = 32) -> None:
        self.book, self.key, self.stored, self.best, self.recent = book, key, stored, best, recent
        self.query = book.prototype(key, lambda: stored(key))

    def __call__(self, track: IdentityTrack) -> float | None:
        keys = list(track.by_tracklet)
        if self.key in track.by_tracklet:
            keys.remove(self.key)
        return identity_similarity(self.query, self.book.prototypes(keys[-self.recent:], self.stored), self.best)
