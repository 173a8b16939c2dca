"""Where an association loses IDF1 on a recording: fragmentation against false merges, per camera pair.

``anonreid bench association`` (:mod:`~anonreid.orchestration.bench.association`) scores each replay
with IDF1; this says why it is not the oracle's. Each tracklet (camera, tracklet id) gets its true
person by the majority of the ground-truth observations its sightings cover (none: a false detection's
tracklet, its own person) and its identity by the majority of its sightings' identities. Then:

- ``tracklet_oracle``: every tracklet given its true person, i.e. perfect linking of whole tracklets,
  the most an association of tracklets can reach (the tracker's identity switches inside a tracklet
  and its duplicate tracklets of one person keep it below the per-sighting oracle);
- ``idf1_no_fragmentation``: the replay's identities with each relabelled to its majority person
  (identities of one person merged): what removing fragmentation alone would give;
- ``idf1_no_false_merges``: each identity split by its tracklets' persons: what removing false
  merges alone would give;
- ``false_merges``: per camera pair ``src->dst``, consecutive tracklets (by start time) of one identity
  that belong to different people; ``fragments``: consecutive tracklets of one person that ended up in
  different identities. A junction on one camera (``cam2->cam2``) is a tracker fragment or a return.

Pure: no gallery, no Redis.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Scores = Callable[[dict[str, str]], dict[str, Any]]  # sighting id -> identity => IDF1 and the rest


@dataclass(frozen=True, slots=True)
class TrackletSpan:
    """One tracklet of a recording: its key (``camera/tracklet``), camera and time span."""

    key: str
    camera_id: str
    start_us: int
    end_us: int


def tracklet_spans(sightings: Iterable[Any], tracklet: Mapping[str, str]) -> dict[str, TrackletSpan]:
    """Each tracklet's span over its sightings (``tracklet``: sighting id -> tracklet key); the sightings
    have ``sighting_id``, ``camera_id`` and ``span.start_us`` / ``span.end_us`` (the protobuf)."""
    out: dict[str, TrackletSpan] = {}
    for s in sightings:
        key = tracklet[s.sighting_id]
        t = out.get(key)
        start, end = s.span.start_us, s.span.end_us
        out[key] = TrackletSpan(key, s.camera_id, start if t is None else min(t.start_us, start),
                                end if t is None else max(t.end_us, end))
    return out


def tracklet_persons(observations: Sequence[tuple[str | None, str | None]], tracklet: Mapping[str, str]) -> dict[str, str]:
    """Each tracklet's true person: the majority of the ground-truth observations its sightings cover; a
    tracklet that covers none (a false detection's) is its own ``false:<key>``."""
    votes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for g, sid in observations:
        if g is not None and sid is not None and sid in tracklet:
            votes[tracklet[sid]][g] += 1
    return {key: (votes[key].most_common(1)[0][0] if votes[key] else f"false:{key}") for key in set(tracklet.values())}


def losses(observations: Sequence[tuple[str | None, str | None]], spans: Mapping[str, TrackletSpan],
           tracklet: Mapping[str, str], identity_of: Mapping[str, str], scores: Scores) -> dict[str, Any]:
    """The loss breakdown of one replay (module doc); ``identity_of``: sighting id -> its final identity."""
    person = tracklet_persons(observations, tracklet)
    counts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for sid, key in tracklet.items():
        counts[key][identity_of[sid]] += 1
    identity = {key: c.most_common(1)[0][0] for key, c in counts.items()}
    weight: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for _, seen in observations:  # each identity's people, by the observations its sightings cover
        if seen is not None and seen in tracklet:
            weight[identity_of[seen]][person[tracklet[seen]]] += 1
    majority = {i: (c.most_common(1)[0][0] if c else i) for i, c in weight.items()}
    return {
        "idf1_no_fragmentation": scores({sid: majority.get(i, i) for sid, i in identity_of.items()})["idf1"],
        "idf1_no_false_merges": scores({sid: f"{i}|{person[tracklet[sid]]}" for sid, i in identity_of.items()})["idf1"],
        "false_merges": _junctions(spans, identity, person),
        "fragments": _junctions(spans, person, identity),
    }


def _junctions(spans: Mapping[str, TrackletSpan], group: Mapping[str, str], label: Mapping[str, str]) -> dict[str, int]:
    """Per camera pair, consecutive tracklets (by start) of one ``group`` whose ``label`` differs."""
    members: dict[str, list[TrackletSpan]] = collections.defaultdict(list)
    for key, g in group.items():
        members[g].append(spans[key])
    out: collections.Counter[str] = collections.Counter()
    for rows in members.values():
        rows.sort(key=lambda t: (t.start_us, t.end_us, t.key))
        for a, b in itertools.pairwise(rows):
            if label[a.key] != label[b.key]:
                out[f"{a.camera_id}->{b.camera_id}"] += 1
    return dict(sorted(out.items()))
