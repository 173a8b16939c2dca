"""The association loss breakdown of `anonreid bench association`: hand-built recordings."""

from __future__ import annotations

from types import SimpleNamespace

from anonreid.models.evaluation.association_metrics import identity_scores
from anonreid.orchestration.bench.association_losses import losses, tracklet_persons, tracklet_spans


def _sighting(sid: str, camera: str, start_s: float, end_s: float) -> SimpleNamespace:
    return SimpleNamespace(sighting_id=sid, camera_id=camera,
                           span=SimpleNamespace(start_us=round(start_s * 1e6), end_us=round(end_s * 1e6)))


# person a walks cam1 (0-4 s) -> cam2 (10-14 s); person b is on cam2 from 20 s; c on cam3 (1-3 s)
SIGHTINGS = [_sighting("a1", "cam1", 0, 2), _sighting("a2", "cam1", 2, 4), _sighting("a3", "cam2", 10, 14),
             _sighting("b1", "cam2", 20, 24), _sighting("c1", "cam3", 1, 3), _sighting("f1", "cam3", 5, 6)]
TRACKLET = {"a1": "cam1/1", "a2": "cam1/1", "a3": "cam2/1", "b1": "cam2/2", "c1": "cam3/1", "f1": "cam3/9"}
# one observation per box; "a2" covers one of b's boxes too (a minority), f1 only a false detection
OBSERVATIONS: list[tuple[str | None, str | None]] = [
    ("a", "a1"), ("a", "a1"), ("a", "a2"), ("b", "a2"), ("a", "a3"), ("a", "a3"), ("b", "b1"), ("b", "b1"), ("b", "b1"),
    ("c", "c1"), (None, "f1"), ("c", None)]


def _scores(identity_of: dict[str, str]) -> dict[str, float]:
    pred = [None if sid is None else identity_of.get(sid) for _, sid in OBSERVATIONS]
    return {"idf1": round(identity_scores([g for g, _ in OBSERVATIONS], pred).idf1, 4)}


def test_tracklets_get_their_majority_person_and_span() -> None:
    assert tracklet_persons(OBSERVATIONS, TRACKLET) == {"cam1/1": "a", "cam2/1": "a", "cam2/2": "b", "cam3/1": "c",
                                                        "cam3/9": "false:cam3/9"}
    spans = tracklet_spans(SIGHTINGS, TRACKLET)
    assert (spans["cam1/1"].camera_id, spans["cam1/1"].start_us, spans["cam1/1"].end_us) == ("cam1", 0, 4_000_000)


def test_a_false_merge_and_a_fragment_are_told_apart_by_camera_pair() -> None:
    # a's cam2 tracklet got an identity of its own (a fragment at cam1->cam2) and c's cam3 tracklet
    # joined b's identity (a false merge at cam3->cam2)
    identity_of = {"a1": "x", "a2": "x", "a3": "v", "b1": "y", "c1": "y", "f1": "w"}
    spans = tracklet_spans(SIGHTINGS, TRACKLET)
    out = losses(OBSERVATIONS, spans, TRACKLET, identity_of, _scores)
    assert out["false_merges"] == {"cam3->cam2": 1}
    assert out["fragments"] == {"cam1->cam2": 1}
    base, perfect = _scores(identity_of)["idf1"], _scores(PERFECT)["idf1"]
    # each fix alone recovers part of the gap to the right answer
    assert base < out["idf1_no_fragmentation"] < perfect and base < out["idf1_no_false_merges"] < perfect
    # the right answer loses nothing (a's cam1 tracklet also covers one of b's boxes: below 1 still)
    clean = losses(OBSERVATIONS, spans, TRACKLET, PERFECT, _scores)
    assert clean["false_merges"] == {} and clean["fragments"] == {}
    assert clean["idf1_no_fragmentation"] == clean["idf1_no_false_merges"] == perfect < 1


PERFECT = {"a1": "x", "a2": "x", "a3": "x", "b1": "y", "c1": "z", "f1": "w"}
