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
    """Quality-weighted embedding sums per tracklet (see the module doc).

    The normalised sums (the prototypes) live in the rows of one matrix, computed when first asked for
    and again after the tracklet changes, so a decision scores an identity's prototypes with one gather
    and one matrix-vector product (:meth:`similarities`) instead of a dot product each."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._sums: dict[Key, np.ndarray] = {}
        self._rows: dict[Key, int] = {}  # key -> its row of ``_table`` (its prototype there is current)
        self._table = np.zeros((0, 0))
        self._free: list[int] = []  # rows of forgotten or changed tracklets
        self._used = 0  # rows ever handed out

    def add(self, key: Key, embedding: np.ndarray, quality: float, stored: Callable[[], Sequence[str]]) -> None:
        """Add one new sighting of ``key``; ``stored``: the ids of its sightings stored before this one
        (read only when the tracklet must be rebuilt first)."""
        total = self._sums.get(key)
        if total is None:
            total = self._rebuild(key, stored())
        part = max(float(quality), MIN_WEIGHT) * np.asarray(embedding, np.float64)
        self._sums[key] = total + part if total.size else part
        self._drop_row(key)

    def _row(self, key: Key, stored: Callable[[], Sequence[str]]) -> int | None:
        """The row holding ``key``'s current prototype, computed first if needed (None: nothing stored)."""
        row = self._rows.get(key)
        if row is not None:
            return row
        total = self._sums.get(key)
        if total is None:
            total = self._sums[key] = self._rebuild(key, stored())
        if not total.size:
            return None
        if self._free:
            row = self._free.pop()
        else:
            if self._used == len(self._table):
                grown = np.zeros((max(64, len(self._table) * 3 // 2), total.size))
                if self._used:
                    grown[: self._used] = self._table[: self._used]
                self._table = grown
            row, self._used = self._used, self._used + 1
        norm = math.sqrt(float(total.dot(total)))  # np.linalg.norm's own formula for a vector, without its overhead
        np.divide(total, norm if norm > 0 else 1.0, out=self._table[row])
        self._rows[key] = row
        return row

    def _drop_row(self, key: Key) -> None:
        row = self._rows.pop(key, None)
        if row is not None:
            self._free.append(row)

    def prototype(self, key: Key, stored: Callable[[], Sequence[str]]) -> np.ndarray:
        """The tracklet's L2-normalised mean embedding (an empty array when nothing is stored)."""
        row = self._row(key, stored)
        return np.zeros(0) if row is None else self._table[row].copy()

    def _rows_of(self, keys: Iterable[Key], stored: Callable[[Key], Sequence[str]]) -> list[int]:
        """The current rows of ``keys`` (the held ones looked up directly), leaving out empty tracklets."""
        rows = self._rows
        out = []
        for k in keys:
            row = rows.get(k)
            if row is None:
                row = self._row(k, partial(stored, k))
                if row is None:
                    continue
            out.append(row)
        return out

    def similarities(self, query: np.ndarray, keys: Iterable[Key], stored: Callable[[Key], Sequence[str]]) -> np.ndarray:
        """Cosine similarity of the unit vector ``query`` to each non-empty tracklet of ``keys`` (``stored``:
        a key's stored sighting ids), in their order."""
        rows = self._rows_of(keys, stored)  # before reading the table: computing a row may grow it
        return self._table.take(rows, axis=0).dot(query) if rows else np.zeros(0)

    def prototype_sum(self, keys: Iterable[Key], stored: Callable[[Key], Sequence[str]]) -> np.ndarray:
        """The sum of the prototypes of ``keys`` (an identity's appearance as a whole: the merge pass)."""
        rows = self._rows_of(keys, stored)  # before reading the table: computing a row may grow it
        return np.sum(self._table.take(rows, axis=0), axis=0)

    def forget(self, keys: Iterable[Key]) -> None:
        """Drop tracklets (their sightings changed: rebuilt from the store when next needed)."""
        for key in keys:
            self._sums.pop(key, None)
            self._drop_row(key)

    def clear(self) -> None:
        self._sums.clear()
        self._rows.clear()
        self._free.clear()
        self._table, self._used = np.zeros((0, 0)), 0

    def __len__(self) -> int:
        """Tracklets held."""
        return len(self._sums)

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


def identity_similarity(similarities: np.ndarray, best: int) -> float | None:
    """Mean of the ``best`` highest of a query's ``similarities`` to an identity's prototypes (None when
    there are none)."""
    sims = similarities.tolist()
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
        if not self.query.size:
            return None
        return identity_similarity(self.book.similarities(self.query, keys[-self.recent:], self.stored), self.best)
