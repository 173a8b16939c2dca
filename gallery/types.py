"""Domain types of the gallery: plain frozen dataclasses, no protobuf, no grpc.

The servicer converts protobuf messages to and from these; the core, the association and the store
work on them only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, slots=True)
class Box:
    """Summary of a tracklet's boxes over the sighting (sensor pixels; velocities in px/s)."""

    x1: float = 0.0
    y1: float = 0.0
    x2: float = 0.0
    y2: float = 0.0
    num_boxes: int = 0
    mean_area: float = 0.0
    velocity_x: float = 0.0
    velocity_y: float = 0.0

    def as_tuple(self) -> tuple[float, ...]:
        return (self.x1, self.y1, self.x2, self.y2, float(self.num_boxes), self.mean_area,
                self.velocity_x, self.velocity_y)

    @classmethod
    def from_tuple(cls, values: tuple[float, ...] | list[float]) -> Box:
        x1, y1, x2, y2, n, area, vx, vy = values
        return cls(x1, y1, x2, y2, int(n), area, vx, vy)


@dataclass(frozen=True, slots=True)
class StreamClock:
    """How a sighting's stream time reads as a time of day (proto ``StreamClock``): ``kind`` "wall" (a live
    source: ``epoch_us`` + stream time is the wall clock), "recording" (the recording's own clock; a
    calendar time only when ``epoch_us`` is set) or "" (not said); ``epoch_us``: Unix time (us) of stream
    time 0, None when unknown."""

    kind: str = ""
    epoch_us: int | None = None


@dataclass(frozen=True)
class Sighting:
    """What a camera publishes about one tracklet over the half-open span [start_us, end_us)."""

    sighting_id: str
    camera_id: str
    tracklet_id: str
    start_us: int
    end_us: int
    embedding: np.ndarray
    box: Box = field(default_factory=Box)
    quality: float = 0.0
    model_version: str = ""
    published_at_us: int = 0  # wall clock when the camera handed it to its gallery client
    event_at_us: int = 0  # wall clock of the last event it covers (its latency starts there); 0 = not given
    clock: StreamClock = field(default_factory=StreamClock)


@dataclass(frozen=True, slots=True)
class StoredSighting:
    """The in-memory row of one accepted sighting (its embedding lives in FAISS and Redis only)."""

    sighting_id: str
    fid: int  # int64 FAISS id
    camera_id: str
    tracklet_id: str
    start_us: int
    end_us: int
    identity_id: str
    similarity: float
    ingested_at_us: int = 0  # wall clock when the gallery accepted it (retention counts from here)


@dataclass(frozen=True, slots=True)
class Candidate:
    """One identity the association looked at: its best similarity and why it was (not) chosen."""

    identity_id: str
    similarity: float
    accepted: bool
    # "accepted", "below_threshold", "simultaneous", "no_link", "too_fast", "too_slow", or "split" (the
    # identity a tracklet was moved out to, see :class:`Split`)
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Split:
    """A tracklet moved out of an identity into a new one, with all its sightings there.

    Cameras publish out of stream-time order, so a tracklet can join an identity by similarity and a
    later update of another of its tracklets then turn out to overlap it in time; of the two, the one
    that joined the identity later was the wrong merge and leaves."""

    identity_id: str  # the identity the tracklet leaves
    camera_id: str
    tracklet_id: str
    new_identity_id: str  # the identity it goes to: freshly minted, or an existing one (kind "merge", "move")
    sighting_ids: tuple[str, ...]  # its stored sightings that move (a sighting being decided is not one)
    # "split": it overlapped the identity's other tracklet in time; within the correction horizon
    # (:mod:`~anonreid.gallery.association`) "detach": the evidence no longer links it to the others
    # (a new identity), "merge": it was alone and now joins an existing identity, "move": it leaves the
    # identity's other tracklets for an existing identity that fits it better
    kind: str = "split"
    similarity: float = 0.0  # its score with the identity it goes to (0 for a new identity)


@dataclass(frozen=True, slots=True)
class Decision:
    """An explainable association decision: which rule decided and every candidate considered."""

    identity_id: str
    new_identity: bool
    similarity: float
    rule: str  # "tracklet" (same camera + tracklet), "similarity", "new" or "correction"
    candidates: tuple[Candidate, ...] = ()
    splits: tuple[Split, ...] = ()  # tracklets the decision moves to another identity (rules "tracklet", "correction")
    walks: tuple[tuple[str, str, int], ...] = ()  # (src, dst, gap us) of a confident match: the transit model learns them


@dataclass(frozen=True, slots=True)
class Ack:
    """The gallery's answer to a published sighting, returned only after it is stored in Redis."""

    sighting_id: str
    identity_id: str
    duplicate: bool
    similarity: float
    new_identity: bool
    decision: Decision | None = None


@dataclass(frozen=True, slots=True)
class IdentitySummary:
    identity_id: str
    cameras: tuple[str, ...]  # in order of first appearance
    first_seen_us: int
    last_seen_us: int
    num_sightings: int
    first_seen_clock: StreamClock = StreamClock()
    last_seen_clock: StreamClock = StreamClock()


@dataclass(frozen=True, slots=True)
class TrajectoryStep:
    """One visit to a camera: consecutive sightings of the identity on the same camera merged."""

    camera_id: str
    start_us: int
    end_us: int
    sighting_ids: tuple[str, ...]
    clock: StreamClock = StreamClock()


@dataclass(frozen=True, slots=True)
class Correction:
    """A recorded change of identity of a stored tracklet (a :class:`Split` as applied): what moved, from
    which identity to which, when (``at_us``: stream time of the sighting that revealed it; ``recorded_at_us``:
    the gallery's wall clock) and why."""

    kind: str  # "split", "detach", "merge", "move" (see Split.kind)
    camera_id: str
    tracklet_id: str
    from_identity: str
    to_identity: str
    sightings: int
    similarity: float
    at_us: int
    recorded_at_us: int


@dataclass(frozen=True, slots=True)
class Trajectory:
    identity_id: str
    steps: tuple[TrajectoryStep, ...]
    corrections: tuple[Correction, ...] = ()  # changes that brought tracklets in or took them out, oldest first


@dataclass(frozen=True, slots=True)
class Match:
    sighting_id: str
    identity_id: str
    camera_id: str
    start_us: int
    end_us: int
    similarity: float
    clock: StreamClock = StreamClock()


@dataclass(frozen=True, slots=True)
class CameraOccupancy:
    camera_id: str
    identity_ids: tuple[str, ...]
