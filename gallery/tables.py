"""The gallery's in-memory tables: the rows the association decides on and the queries answer from.

Every stored sighting by sighting id and by FAISS id, each identity's track (time-ordered, for the
association's constraint checks), the identity of each (camera, tracklet), each camera's sightings by end
time (occupancy), the digests of erased sighting ids and identities, and the counters that number new rows
and identities. They mirror what Redis holds (:mod:`~anonreid.gallery.store`) and are rebuilt from it on
start.

No FAISS, no Redis, no lock here: :class:`~anonreid.gallery.core.Gallery` builds on these tables and keeps
the index and the store in step with them under its lock.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np

from anonreid.gallery.association import IdentityTrack
from anonreid.gallery.errors import NotFound
from anonreid.gallery.types import Split, StoredSighting


class IdentityTables:
    """The gallery's rows and identities in memory, and the bookkeeping that keeps them consistent."""

    def __init__(self, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._clear()

    # -- changes --------------------------------------------------------------------------------
    def _clear(self) -> None:
        self._sightings: dict[str, StoredSighting] = {}
        self._by_fid: dict[int, StoredSighting] = {}
        self._tracks: dict[str, IdentityTrack] = {}
        self._tracklets: dict[tuple[str, str], str] = {}
        self._ends: dict[str, list[tuple[int, str]]] = {c: [] for c in self.cameras}  # (end_us, id), sorted
        self._forgotten: set[str] = set()  # forgotten_digest of each erased sighting id
        self._forgotten_identities: set[str] = set()
        self._next_fid = 1
        self._next_identity = 1
        self._latest_us = 0

    def _remember(self, row: StoredSighting) -> None:
        """Add a row to the in-memory tables."""
        self._sightings[row.sighting_id] = row
        self._by_fid[row.fid] = row
        self._open_track(row.identity_id).add(row)
        self._tracklets[(row.camera_id, row.tracklet_id)] = row.identity_id
        bisect.insort(self._ends.setdefault(row.camera_id, []), (row.end_us, row.sighting_id))
        self._latest_us = max(self._latest_us, row.end_us)

    def _remember_all(self, rows: Sequence[StoredSighting]) -> None:
        """Add many rows to empty tables (a load): the same tables as :meth:`_remember` one by one, each
        identity's track and each camera's ends sorted once."""
        groups: dict[str, list[StoredSighting]] = {}
        for r in rows:
            self._sightings[r.sighting_id] = self._by_fid[r.fid] = r
            groups.setdefault(r.identity_id, []).append(r)
            self._tracklets[(r.camera_id, r.tracklet_id)] = r.identity_id
            self._ends.setdefault(r.camera_id, []).append((r.end_us, r.sighting_id))
        for identity_id, members in groups.items():
            self._open_track(identity_id).extend(members)
        for ends in self._ends.values():
            ends.sort()
        self._latest_us = max(self._latest_us, max((r.end_us for r in rows), default=0))

    def _open_track(self, identity_id: str) -> IdentityTrack:
        track = self._tracks.get(identity_id)
        if track is None:
            track = self._tracks[identity_id] = IdentityTrack(identity_id)
        return track

    def _relabel(self, sighting_ids: Sequence[str], identity_id: str) -> None:
        """Move stored rows (whole tracklets) to ``identity_id`` in the in-memory tables: a split, or the
        rollback of one. An identity left without rows disappears; FAISS ids and spans do not change."""
        rows = [self._sightings[sid] for sid in sighting_ids if sid in self._sightings]
        if not rows:
            return
        leaving: dict[str, set[str]] = {}
        for r in rows:
            leaving.setdefault(r.identity_id, set()).add(r.sighting_id)
        for old, gone in leaving.items():
            track = self._tracks[old]
            track.remove(gone)
            if not track.sightings:
                del self._tracks[old]
        track = self._open_track(identity_id)
        for r in rows:
            moved = dataclasses.replace(r, identity_id=identity_id)
            self._sightings[r.sighting_id] = self._by_fid[r.fid] = moved
            track.add(moved)
            self._tracklets[(r.camera_id, r.tracklet_id)] = identity_id

    def _unremember(self, rows: Sequence[StoredSighting]) -> None:
        """Remove rows from the in-memory tables (a rollback, forget, retention); FAISS is the caller's."""
        if not rows:
            return
        by_identity: dict[str, set[str]] = {}
        for r in rows:
            self._sightings.pop(r.sighting_id, None)
            self._by_fid.pop(r.fid, None)
            ends = self._ends.get(r.camera_id, [])
            j = bisect.bisect_left(ends, (r.end_us, r.sighting_id))
            if j < len(ends) and ends[j] == (r.end_us, r.sighting_id):
                ends.pop(j)
            by_identity.setdefault(r.identity_id, set()).add(r.sighting_id)
        for identity_id, gone in by_identity.items():
            track = self._tracks.get(identity_id)
            if track is None:
                continue
            track.remove(gone)
            if not track.sightings:
                del self._tracks[identity_id]
            remaining = {(x.camera_id, x.tracklet_id) for x in track.sightings}
            for r in rows:
                key = (r.camera_id, r.tracklet_id)
                if r.identity_id == identity_id and key not in remaining and self._tracklets.get(key) == identity_id:
                    del self._tracklets[key]

    def _stored_moves(self, splits: Sequence[Split],
                      staged: Mapping[str, object]) -> list[tuple[str, StoredSighting]]:
        """The relabels Redis needs for ``splits``: (identity in Redis, row now) of every sighting already
        stored that now has another identity (rows of the batch itself are written as they are now)."""
        stored_as: dict[str, str] = {}
        for sp in splits:
            for sid in sp.sighting_ids:
                if sid not in staged:
                    stored_as.setdefault(sid, sp.identity_id)
        return [(old, self._sightings[sid]) for sid, old in stored_as.items()
                if self._sightings[sid].identity_id != old]

    # -- lookups --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._sightings)

    def sighting(self, sighting_id: str) -> StoredSighting:
        row = self._sightings.get(sighting_id)
        if row is None:
            raise NotFound(f"no sighting {sighting_id!r} in the gallery", reason="unknown_sighting",
                           sighting_id=sighting_id, field="sighting_id")
        return row

    def _track(self, identity_id: str) -> IdentityTrack:
        track = self._tracks.get(identity_id)
        if track is None:
            raise NotFound(f"no identity {identity_id!r} in the gallery", reason="unknown_identity",
                           field="identity_id")
        return track

    def _tracklet_codes(self, fids: np.ndarray) -> np.ndarray:
        """A number per FAISS id for its (camera, tracklet), -1 when unknown: the index's calibration
        leaves a query's own tracklet out, as a new tracklet is searched against the others."""
        codes: dict[tuple[str, str], int] = {}
        by_fid = self._by_fid
        return np.fromiter((codes.setdefault((r.camera_id, r.tracklet_id), len(codes))
                            if (r := by_fid.get(f)) is not None else -1 for f in fids.tolist()), np.int64, len(fids))
