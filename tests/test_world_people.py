"""Identities differ in appearance and gait, and stay consistent across cameras."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from anonreid.events.world.build import build_world
from anonreid.events.world.people import Person, generate_people
from anonreid.events.world.render import PersonInstance, body_points, rasterize, render_enrollment
from anonreid.events.world.schedule import pass_walk
from anonreid.orchestration.config import WorldConfig

CFG = WorldConfig(identities=8, train_identities=5, resolution="160x120", pass_seconds=1.0)


def test_generator_is_seeded_split_fixed_and_extends() -> None:
    a, b = generate_people(33, 22, 7), generate_people(33, 22, 7)
    assert a == b
    assert [p.split for p in a].count("train") == 22 and a[-1].identity == "033"
    assert generate_people(40, 22, 7)[:33] == a  # identity i does not depend on the world size
    assert generate_people(33, 22, 8)[0] != a[0]
    masked = sum(p.face.mask for p in generate_people(400, 300, 0))
    assert 70 < masked < 130  # about a quarter wear a face mask


def test_another_day_changes_the_outfit_and_keeps_the_person() -> None:
    people = generate_people(40, 30, 0)
    for p in people:
        assert Person.from_json(json.loads(json.dumps(p.to_json()))) == p  # world.json round trip
        assert p.on_another_day(0) is p
        day1, day2 = p.on_another_day(1), p.on_another_day(2)
        assert day1 == p.on_another_day(1) and day1 != day2  # seeded per person and day
        for other in (day1, day2):
            for name in ("identity", "height", "shoulder_width", "hip_width", "leg_ratio", "cadence", "step_length",
                         "hair_tone", "hair_length", "speed"):
                assert getattr(other, name) == getattr(p, name), name
            assert replace(other.face, mask=p.face.mask) == p.face and not other.face.mask
    # the outfit is redrawn: garments differ from the filmed day's for nearly everyone
    changed = [p.upper != p.on_another_day(1).upper and p.lower != p.on_another_day(1).lower for p in people]
    assert sum(changed) == len(people)
    masked = next(p for p in people if p.face.mask)
    filmed, other_day = render_enrollment(masked), render_enrollment(masked.on_another_day(1))
    assert np.abs(filmed.astype(int) - other_day).mean() > 5  # the photo of another day is another photo
    with pytest.raises(ValueError, match="day"):
        masked.on_another_day(-1)


def test_two_identities_differ_in_appearance_and_gait() -> None:
    p, q = generate_people(2, 1, 0)
    photo_p, photo_q = render_enrollment(p), render_enrollment(q)
    assert photo_p.shape == (256, 128) and photo_p.dtype == np.uint8
    assert np.abs(photo_p.astype(int) - photo_q.astype(int)).mean() > 8
    # gait: same walk, same times -> different ankle trajectories and cadence
    world = build_world(CFG)
    cam = world.cameras[0]
    ts = np.linspace(0, 1e6, 50)
    walk_p = pass_walk(p, cam, 1_000_000, np.random.default_rng(0))
    walk_q = pass_walk(q, cam, 1_000_000, np.random.default_rng(0))
    ank_p = body_points(p, walk_p, ts)["l_ankle"] - walk_p.position(ts)
    ank_q = body_points(q, walk_q, ts)["l_ankle"] - walk_q.position(ts)
    assert np.abs(ank_p - ank_q).max() > 0.1
    assert (p.cadence, p.step_length, p.arm_swing) != (q.cadence, q.step_length, q.arm_swing)


def _clothing_signature(world, person, cam) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean rendered reflectance of the upper and lower half of the person (lighting removed)."""
    walk = pass_walk(person, cam, 1_000_000, np.random.default_rng(1))
    inst = PersonInstance.build(person, walk, cam)
    ts = np.linspace(300_000, 700_000, 5)
    geom = inst.geometry(ts)
    bg = torch.full((len(ts), cam.height, cam.width), -1.0)
    refl = rasterize([inst], [geom], bg, 0, 0).numpy()
    sig = []
    for k, (_, y1, _, y2) in enumerate(geom.boxes()):
        ym = (y1 + y2) / 2
        up = refl[k, max(int(y1), 0) : int(ym)].ravel()
        lo = refl[k, int(ym) : max(int(y2), 0)].ravel()
        sig.append([up[up >= 0].mean() if (up >= 0).any() else np.nan,
                    lo[lo >= 0].mean() if (lo >= 0).any() else np.nan])
    return np.nanmean(np.array(sig), axis=0)


def test_same_identity_is_consistent_across_cameras() -> None:
    world = build_world(CFG)
    sigs = np.array([[_clothing_signature(world, p, c) for c in world.cameras] for p in world.people])  # (I,C,2)
    intra = np.mean([np.linalg.norm(sigs[i, a] - sigs[i, b]) for i in range(len(sigs))
                     for a in range(4) for b in range(a + 1, 4)])
    inter = np.mean([np.linalg.norm(sigs[i, a] - sigs[j, a]) for a in range(4)
                     for i in range(len(sigs)) for j in range(i + 1, len(sigs))])
    assert intra < 0.5 * inter, (intra, inter)
    # and a nearest-neighbour match from cam1 to the other cameras mostly finds the same person
    hits = 0
    for i in range(len(sigs)):
        for c in range(1, 4):
            d = np.linalg.norm(sigs[:, c] - sigs[i, 0], axis=1)
            hits += int(np.argmin(d) == i)
    assert hits / (3 * len(sigs)) > 0.6
