"""Build the world (people, cameras, sensor parameters) from a :class:`WorldConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from anonreid.events.types import SensorSize
from anonreid.events.world.cameras import Camera, default_cameras
from anonreid.events.world.people import Person, generate_people
from anonreid.events.world.simulator import SensorParams
from anonreid.orchestration.config import WorldConfig


@dataclass(frozen=True)
class World:
    """Everything static about a world: its people, its four cameras and the sensor size."""

    config: WorldConfig
    people: list[Person]
    cameras: list[Camera]
    sensor: SensorSize

    def camera(self, name: str) -> Camera:
        for cam in self.cameras:
            if cam.name == name:
                return cam
        raise KeyError(f"unknown camera {name!r}; the world has {[c.name for c in self.cameras]}")

    def person(self, index: int) -> Person:
        """The person with ``index`` (identity number - 1; worlds from ``first_identity`` > 1 do not start at 0)."""
        pos = index - self.people[0].index
        if not 0 <= pos < len(self.people) or self.people[pos].index != index:
            raise KeyError(f"no person with index {index}; the world holds identities "
                           f"{self.people[0].identity}..{self.people[-1].identity}")
        return self.people[pos]


def sensor_params(cfg: WorldConfig) -> SensorParams:
    return SensorParams(
        threshold=cfg.threshold, threshold_sigma=cfg.threshold_sigma, refractory_us=cfg.refractory_us,
        shot_noise_hz=cfg.shot_noise_hz, leak_hz=cfg.leak_hz, hot_pixel_fraction=cfg.hot_pixel_fraction,
        hot_pixel_hz=cfg.hot_pixel_hz, max_log_step=cfg.max_log_step, min_fps=cfg.min_fps, max_fps=cfg.max_fps,
    )


def build_world(cfg: WorldConfig) -> World:
    sensor = SensorSize.parse(cfg.resolution)
    people = generate_people(cfg.identities, cfg.train_identities, cfg.seed, cfg.first_identity)
    cams = default_cameras(sensor.width, sensor.height, cfg.seed, sensor_params(cfg), cfg.lamp_flicker, cfg.realism)
    return World(cfg, people, cams, sensor)
