"""Realism of the world's event simulator: noise, thresholds, timing, and where events land."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from anonreid.events.types import SensorSize, validate_events
from anonreid.events.world.build import build_world
from anonreid.events.world.scene import CameraSimulation
from anonreid.events.world.schedule import pass_walk
from anonreid.events.world.simulator import EventSimulator, SensorParams
from anonreid.orchestration.config import WorldConfig

CFG = WorldConfig(identities=4, train_identities=2, resolution="128x96", pass_seconds=1.0)


def _pass_events(cam_index: int = 0, person: int = 0, **sensor: float) -> tuple[np.ndarray, np.ndarray]:
    world = build_world(CFG)
    cam = world.cameras[cam_index]
    cam = replace(cam, sensor=replace(cam.sensor, **sensor)) if sensor else cam
    walk = pass_walk(world.people[person], cam, 1_000_000, np.random.default_rng(3))
    sim = CameraSimulation(cam, lambda a, b: [walk], seed=5)
    chunks, boxes = [], []
    for k in range(30):
        chunks.append(sim.advance_to((k + 1) * 33_333))
        boxes.append(sim.boxes([walk], k * 33_333, (k + 1) * 33_333)[0])
    return np.concatenate(chunks), np.array(boxes)


def test_single_pixel_ramp_timestamps_and_refractory() -> None:
    sensor = SensorSize(1, 1)
    params = SensorParams(threshold=0.25, threshold_sigma=0.0, refractory_us=0, shot_noise_hz=0, leak_hz=0,
                          hot_pixel_fraction=0)
    zero = np.zeros((1, 1), np.float32)
    sim = EventSimulator(sensor, params, zero, np.ones((1, 1), np.float32), seed=0)
    ev = sim.advance(np.array([10_000.0]), [(slice(0, 1), slice(0, 1), np.full((1, 1, 1), 1.0, np.float32))])
    assert ev["p"].tolist() == [1, 1, 1, 1]
    assert ev["t"].tolist() == [2500, 5000, 7500, 10000]  # interpolated between the two frames
    ev = sim.advance(np.array([20_000.0]), [(slice(0, 1), slice(0, 1), np.full((1, 1, 1), 0.5, np.float32))])
    assert ev["p"].tolist() == [-1, -1] and ev["t"].tolist() == [15000, 20000]
    # a 3 ms refractory period keeps every second crossing of a 2.5 ms-spaced ramp
    sim = EventSimulator(sensor, replace(params, refractory_us=3000), zero, np.ones((1, 1), np.float32), seed=0)
    ev = sim.advance(np.array([10_000.0]), [(slice(0, 1), slice(0, 1), np.full((1, 1, 1), 1.0, np.float32))])
    assert ev["t"].tolist() == [2500, 7500]


def test_static_scene_gives_only_noise_at_the_configured_rate() -> None:
    world = build_world(CFG)
    cam = world.cameras[1]
    sim = CameraSimulation(cam, lambda a, b: [], seed=1)
    ev = sim.advance_to(4_000_000)
    validate_events(ev, sim.sensor)
    expected = sim.sim.expected_noise_rate() * 4.0
    assert abs(len(ev) - expected) < 5 * np.sqrt(expected) + 0.03 * expected, (len(ev), expected)
    # noise is spread over the sensor (no person-shaped concentration)
    counts = np.bincount(ev["y"].astype(int) * cam.width + ev["x"], minlength=cam.width * cam.height)
    assert (counts > 0).mean() > 0.3
    quiet = replace(cam, sensor=replace(cam.sensor, shot_noise_hz=0, leak_hz=0, hot_pixel_fraction=0))
    assert len(CameraSimulation(quiet, lambda a, b: [], seed=1).advance_to(1_000_000)) == 0


def test_events_concentrate_on_the_walking_person_with_balanced_polarity() -> None:
    ev, boxes = _pass_events()
    inside = np.zeros(len(ev), bool)
    area_in = 0.0
    win = ev["t"] // 33_333
    for k, b in enumerate(boxes):
        if np.isnan(b).any():
            continue
        sel = win == k
        inside[sel] |= (ev["x"][sel] >= b[0]) & (ev["x"][sel] < b[2]) & (ev["y"][sel] >= b[1]) & (ev["y"][sel] < b[3])
        area_in += (b[2] - b[0]) * (b[3] - b[1])
    visible = ~np.isnan(boxes).any(axis=1)
    assert visible.sum() >= 10
    area_total = 128 * 96 * len(boxes)
    dens_in = inside.sum() / area_in
    dens_out = (~inside).sum() / (area_total - area_in)
    assert dens_in > 20 * dens_out, (dens_in, dens_out)
    on = (ev["p"][inside] > 0).mean()
    assert 0.35 < on < 0.65, on


def test_higher_threshold_gives_fewer_events() -> None:
    quiet = {"shot_noise_hz": 0.0, "leak_hz": 0.0, "hot_pixel_fraction": 0.0}
    low, _ = _pass_events(threshold=0.2, **quiet)
    high, _ = _pass_events(threshold=0.4, **quiet)
    assert len(high) < 0.7 * len(low), (len(low), len(high))
    assert len(high) > 0


def test_frame_rate_adapts_to_motion() -> None:
    world = build_world(CFG)
    cam = world.cameras[0]
    walk = pass_walk(world.people[0], cam, 1_000_000, np.random.default_rng(0))
    moving = CameraSimulation(cam, lambda a, b: [walk], seed=0)
    moving.advance_to(1_000_000)
    empty = CameraSimulation(cam, lambda a, b: [], seed=0)
    empty.advance_to(1_000_000)
    assert empty.stats.frames == empty.stats.slots  # nothing moves: one frame per slot
    assert moving.stats.frames >= 5 * moving.stats.slots  # the 150 fps cap: 5 frames per 33 ms slot


@pytest.mark.parametrize("bad", [{"threshold": 0.0}, {"min_fps": 300.0, "max_fps": 100.0}])
def test_sensor_params_reject_bad_values(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SensorParams(**bad)
