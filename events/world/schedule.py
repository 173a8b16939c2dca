"""Who walks where and when: walks through one camera, dataset passes and the live camera graph.

A :class:`Walk` is one person crossing one camera on a straight line at constant speed with a gait
phase; everything the renderer needs is a pure function of the walk and time, so any process can
render any instant without state. Dataset passes are one walk each, centred on the camera's lane;
the live world strings walks together along routes through the camera graph (see
:mod:`anonreid.events.world.live`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from anonreid.events.world.cameras import Camera
from anonreid.events.world.people import Person


@dataclass(frozen=True)
class Walk:
    """``person`` walks from ``origin`` (floor point, metres) along ``direction`` from ``t_start_us``.

    The person is in the scene during ``[t_start_us, t_end_us)``; ``still`` poses them standing
    (enrollment photos). ``speed_scale`` perturbs the person's natural speed for this walk.
    """

    person: Person
    camera: str
    t_start_us: int
    t_end_us: int
    origin: tuple[float, float, float]
    direction: tuple[float, float, float]
    speed_scale: float = 1.0
    phase0: float = 0.0
    still: bool = False

    @property
    def speed(self) -> float:
        return 0.0 if self.still else self.person.speed * self.speed_scale

    def position(self, t_us: np.ndarray) -> np.ndarray:
        """Floor position (F, 3) at times ``t_us``."""
        dt = (np.asarray(t_us, dtype=np.float64) - self.t_start_us) * 1e-6
        return np.asarray(self.origin)[None] + np.asarray(self.direction)[None] * (self.speed * dt)[:, None]

    def active(self, t0_us: float, t1_us: float) -> bool:
        return self.t_start_us < t1_us and self.t_end_us > t0_us


def vec3(v: np.ndarray) -> tuple[float, float, float]:
    """A 3-vector as a hashable tuple of floats (walks are dictionary keys)."""
    return float(v[0]), float(v[1]), float(v[2])


def pass_walk(person: Person, camera: Camera, duration_us: int, rng: np.random.Generator) -> Walk:
    """One dataset pass: the person crosses ``camera``'s lane, at its centre halfway through the pass.

    Per pass the direction is random (either way along the lane), the lane is shifted by up to
    +-0.3 m sideways, speed varies by a few percent and the gait starts at a random phase.
    """
    sign = 1.0 if rng.random() < 0.5 else -1.0
    d = camera.heading * sign
    side = np.array([-d[2], 0.0, d[0]])
    centre = np.array([camera.lane_x, 0.0, camera.lane_z]) + side * rng.uniform(-0.3, 0.3)
    scale = float(np.clip(rng.normal(1.0, 0.04), 0.9, 1.1))
    speed = person.speed * scale
    origin = centre - d * speed * duration_us * 1e-6 / 2
    return Walk(person, camera.name, 0, duration_us, vec3(origin), vec3(d), scale, float(rng.uniform(0, 2 * np.pi)))
