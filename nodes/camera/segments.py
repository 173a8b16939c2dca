"""The segment book: which tracked windows are embedded, and where a tracklet's sighting segments close.

Pure bookkeeping over the tracker's tracks (numpy only: no torch, no Redis, no clock of its own).
Per window, :meth:`SegmentBook.observe` adds each matched track's box to its open segment and
schedules an embedding every ``embed_every`` windows (an :class:`EmbedJob`; the embeddings of a whole
batch are computed together); :meth:`SegmentBook.close_due` then closes the segments due at that
window. A segment closes at the window where it falls due, never at a batch boundary, so sighting ids
``<camera>-<tracklet>-<seq>`` are idempotency keys: the same stream gives the same sightings however
its windows are batched. A closed :class:`Segment` holds all of its sighting but the embedding, which
is the track's running mean once the batch's first ``jobs_before`` jobs are added
(:meth:`SegmentBook.embeddings_at`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from anonreid.nodes.tracking import Box, Track

#: the key of the camera's state in ``Track.extra``
_EXTRA_KEY = "camera"


def sighting_id(camera_id: str, track: Track, seq: int) -> str:
    return f"{camera_id}-{track.track_id}-{seq}"


class EmbedJob(NamedTuple):
    """An embedding to compute: the track's box in the window at ``pos`` of the batch."""

    pos: int
    track: Track
    box: Box  # the box of *that* window (later windows move the track)


@dataclass
class TrackState:
    """The camera's state of one tracklet (kept in ``Track.extra``)."""

    emb_sum: np.ndarray
    emb_count: int = 0  # embeddings scheduled (those of the batch in flight are added to emb_sum after it)
    seg_emb_count: int = 0
    seq: int = 0
    seg_start_us: int = -1
    seg_windows: int = 0
    seg_boxes: int = 0
    seg_area: float = 0.0
    seg_score: float = 0.0
    last_embed_index: int = -(10**9)
    published: int = 0
    last_event_wall: float = 0.0


@dataclass
class Segment:
    """A sighting segment closed at one window: all of its sighting but the embedding."""

    track: Track
    seq: int
    start_us: int
    end_us: int
    box: Box
    num_boxes: int
    mean_area: float
    velocity: tuple[float, float]
    quality: float
    event_wall: float  # its last event (nodes/latency.py)
    close_wall: float  # the window it closed at (ended, or arrived)
    queued_wall: float  # that window entered the queue
    jobs_before: int  # the batch's embedding jobs scheduled before it closed


@dataclass(frozen=True)
class SegmentPolicy:
    """When tracks are embedded and their segments close (the camera config's plain values)."""

    embed_every: int  # embed a tracked person every N windows
    min_embeddings: int  # embeddings a tracklet needs before its first sighting
    publish_every: int  # seen windows between the sightings of a live tracklet
    close_after_misses: int  # close a segment once its track is missed this many windows (0: never)


@dataclass
class SegmentBook:
    """Per-track segments of one camera (``embed_dim``: the ReId network's embedding size)."""

    camera_id: str
    embed_dim: int
    policy: SegmentPolicy

    def state(self, track: Track) -> TrackState:
        st = track.extra.get(_EXTRA_KEY)
        if st is None:
            st = track.extra[_EXTRA_KEY] = TrackState(np.zeros(self.embed_dim, np.float64))
        return st

    def observe(self, pos: int, index: int, start_us: int, active: list[Track], event_wall: float) -> list[EmbedJob]:
        """Add window ``index`` (at ``pos`` in its batch) to the open segments of its matched tracks;
        returns the embeddings it schedules."""
        jobs = []
        for tr in active:
            st = self.state(tr)
            if not tr.matched:
                continue
            if st.seg_start_us < 0:
                st.seg_start_us = tr.start_us if st.seq == 0 else start_us
            st.seg_windows += 1
            st.seg_boxes += 1
            st.seg_area += _area(tr.box)
            st.seg_score += tr.score
            st.last_event_wall = event_wall
            if index - st.last_embed_index >= self.policy.embed_every:
                st.last_embed_index = index
                st.emb_count += 1  # its embedding is computed with the whole batch's
                st.seg_emb_count += 1
                jobs.append(EmbedJob(pos, tr, tr.box))
        return jobs

    def close_due(
        self, active: list[Track], ended: list[Track], jobs_before: int, close_wall: float, queued_wall: float
    ) -> list[Segment]:
        """Close the segments due at this window: a live tracklet's first sighting (once it has
        ``min_embeddings`` embeddings scheduled) or its update (every ``publish_every`` seen windows);
        the open segment of a tracklet missed for ``close_after_misses`` windows in a row, as soon as that
        is known (what the track does after starts its next segment); and the final sighting of every
        tracklet that ended here with an open segment. A tracklet with fewer than ``min_embeddings``
        embeddings makes no sighting, missed or ended. O(tracks) per window."""
        p = self.policy

        def enough(st: TrackState) -> bool:
            return st.published > 0 or st.emb_count >= p.min_embeddings

        out = []
        for tr in active:
            st = self.state(tr)
            first_due = st.published == 0 and enough(st)
            update_due = st.published > 0 and st.seg_windows >= p.publish_every and st.seg_emb_count > 0
            # (windows held inside a blob are not missed: the person is there, seen as part of it)
            missed_due = 0 < p.close_after_misses <= tr.misses - tr.held and enough(st) and st.seg_windows > 0
            if first_due or update_due or missed_due:
                out.append(self._close(tr, st, jobs_before, close_wall, queued_wall))
        for tr in ended:
            st = self.state(tr)
            if enough(st) and st.seg_windows > 0:
                out.append(self._close(tr, st, jobs_before, close_wall, queued_wall))
        return out

    def _close(self, tr: Track, st: TrackState, jobs_before: int, close_wall: float, queued_wall: float) -> Segment:
        """Snapshot the track's segment as of this window and start its next one."""
        seg = Segment(
            track=tr, seq=st.seq, start_us=st.seg_start_us, end_us=tr.last_us, box=tr.box,
            num_boxes=st.seg_boxes, mean_area=st.seg_area / max(st.seg_boxes, 1), velocity=tr.mean_velocity_px_s(),
            quality=float(np.clip(st.seg_score / max(st.seg_boxes, 1) * min(1.0, st.emb_count / 4), 0, 1)),
            event_wall=st.last_event_wall, close_wall=close_wall, queued_wall=queued_wall, jobs_before=jobs_before,
        )
        st.seq += 1
        st.published += 1
        st.seg_start_us = -1
        st.seg_windows = st.seg_boxes = st.seg_emb_count = 0
        st.seg_area = st.seg_score = 0.0
        return seg

    @staticmethod
    def ready(closed: list[Segment], jobs: list[EmbedJob]) -> list[Segment]:
        """The segments that need none of the batch's embeddings (no job of their track before them)."""
        return [seg for seg in closed if not any(job.track is seg.track for job in jobs[: seg.jobs_before])]

    def embedding(self, track: Track) -> np.ndarray:
        """The track's mean embedding so far (L2-normalised)."""
        emb_sum = self.state(track).emb_sum
        return emb_sum / max(np.linalg.norm(emb_sum), 1e-12)

    def embeddings_at(self, closed: list[Segment], jobs: list[EmbedJob], emb: np.ndarray) -> list[np.ndarray]:
        """Add the batch's embeddings ``emb`` (one per job) to their tracks in window order, and return each
        closed segment's embedding once the jobs up to its own window are in."""
        out = []
        done = 0
        for seg in [*closed, None]:  # in window order, so jobs_before never decreases
            upto = len(jobs) if seg is None else seg.jobs_before
            for job, e in zip(jobs[done:upto], emb[done:upto], strict=True):
                self.state(job.track).emb_sum += e
            done = upto
            if seg is not None:
                out.append(self.embedding(seg.track))
        return out

    def current_id(self, track: Track) -> str:
        """The id of the sighting the track's open segment will have."""
        return sighting_id(self.camera_id, track, self.state(track).seq)

    def last_id(self, track: Track) -> str:
        """The id of the track's latest closed sighting."""
        return sighting_id(self.camera_id, track, self.state(track).seq - 1)


def _area(box: Box) -> float:
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])
