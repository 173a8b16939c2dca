"""Four non-overlapping cameras: pinhole geometry, walking lanes, textured static backgrounds, lighting.

World coordinates are metres: ``X`` to the right of the camera, ``Y`` up (floor at ``Y = 0``), ``Z``
away from the camera. A camera sits at ``(0, mount_height, 0)``, looks along ``+Z`` tilted down by
``tilt`` and projects with a pinhole of horizontal field of view ``hfov``. People walk on a straight
*lane* (a point on the floor and a heading in the ``XZ`` plane): heading 0 is a profile walk across the
image, 90 degrees walks straight away from the camera.

The background is ray-cast once per camera (floor tiles in perspective, a back wall with panels, a
door, windows, posters and a bench) and cached; illumination is a per-pixel gain map (level, linear
gradient, vignetting) applied to both the background and the people, with an optional lamp flicker
``1 + a sin(2 pi f t)``. Each camera has its own sensor parameters (:class:`SensorParams`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

from anonreid.events.world.sensor_realism import draw_sensor_params
from anonreid.events.world.simulator import SensorParams
from anonreid.orchestration.config import SensorRealismConfig


@dataclass(frozen=True)
class Camera:
    """One camera of the world (frozen; heavy derived data is cached on first use)."""

    name: str
    width: int
    height: int
    hfov_deg: float
    mount_height: float
    tilt_deg: float
    lane_x: float
    lane_z: float
    heading_deg: float
    wall_z: float
    light_level: float
    light_gradient: tuple[float, float]
    vignette: float
    flicker_hz: float
    flicker_amp: float
    wall_tone: float
    floor_tone: float
    scene_seed: int
    sensor: SensorParams

    # ---- geometry -------------------------------------------------------------------------------
    @property
    def focal_px(self) -> float:
        return self.width / 2 / math.tan(math.radians(self.hfov_deg) / 2)

    @property
    def heading(self) -> np.ndarray:
        """Unit walking direction on the floor (X, 0, Z)."""
        a = math.radians(self.heading_deg)
        return np.array([math.cos(a), 0.0, math.sin(a)])

    def basis(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Camera right, up and forward axes in world coordinates."""
        t = math.radians(self.tilt_deg)
        return (np.array([1.0, 0.0, 0.0]), np.array([0.0, math.cos(t), math.sin(t)]),
                np.array([0.0, -math.sin(t), math.cos(t)]))

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """World points (..., 3) -> pixel u, v and depth along the optical axis (all (...,))."""
        right, up, fwd = self.basis()
        rel = points - np.array([0.0, self.mount_height, 0.0])
        xc, yc, zc = rel @ right, rel @ up, np.maximum(rel @ fwd, 0.05)
        f = self.focal_px
        return self.width / 2 + f * xc / zc, self.height / 2 - f * yc / zc, zc

    def view_direction(self, point: np.ndarray) -> np.ndarray:
        """Unit vector from the camera to a world point."""
        d = point - np.array([0.0, self.mount_height, 0.0])
        return d / np.linalg.norm(d)

    @cached_property
    def lane_extent(self) -> tuple[float, float]:
        """Signed distances along the lane (from its centre) where a walker enters and leaves the view.

        Found numerically with a 0.35 m wide, 1.8 m tall standing cylinder, plus a 0.6 m margin so a
        walk starts and ends fully out of view; capped at 7 m each side for lanes that recede.
        """
        s = np.linspace(-12, 12, 481)
        centre = np.array([self.lane_x, 0.0, self.lane_z])
        base = centre[None] + s[:, None] * self.heading[None]
        visible = np.zeros(len(s), bool)
        for dx in (-0.35, 0.35):
            for y in (0.0, 1.8):
                p = base + np.array([dx, y, 0.0])
                u, v, z = self.project(p)
                visible |= (u > -2) & (u < self.width + 2) & (v > -2) & (v < self.height + 2) & (z > 0.3)
        if not visible.any():
            raise ValueError(f"camera {self.name}: its lane is never in view")
        idx = np.flatnonzero(visible)
        lo, hi = float(s[idx[0]]) - 0.6, float(s[idx[-1]]) + 0.6
        return max(lo, -7.0), min(hi, 7.0)

    # ---- lighting and background ------------------------------------------------------------------
    @cached_property
    def light_map(self) -> np.ndarray:
        """(H, W) float32 illumination gain: level x gradient x vignetting."""
        v, u = np.mgrid[0 : self.height, 0 : self.width].astype(np.float32)
        un, vn = (u + 0.5) / self.width - 0.5, (v + 0.5) / self.height - 0.5
        gx, gy = self.light_gradient
        gain = self.light_level * (1 + gx * 2 * un + gy * 2 * vn) * (1 - self.vignette * (un**2 + vn**2) * 2)
        return np.clip(gain, 0.05, None).astype(np.float32)

    @cached_property
    def background(self) -> np.ndarray:
        """(H, W) float32 linear radiance of the empty scene (reflectance x illumination)."""
        return (render_background(self) * self.light_map).astype(np.float32)

    def flicker_gain(self, t_s: np.ndarray) -> np.ndarray:
        """Lamp gain at times ``t_s`` (seconds); 1 when the lamp does not flicker."""
        if self.flicker_hz <= 0 or self.flicker_amp <= 0:
            return np.ones_like(t_s, dtype=np.float64)
        return 1.0 + self.flicker_amp * np.sin(2 * np.pi * self.flicker_hz * t_s)

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "sensor"}
        d["light_gradient"] = list(self.light_gradient)
        d["sensor"] = self.sensor.to_json()
        d["lane_extent"] = list(self.lane_extent)
        return d


def _hash01(*ints: np.ndarray | int) -> np.ndarray:
    """Deterministic per-cell pseudo-random numbers in [0, 1) from integer grid coordinates."""
    h: np.ndarray = np.asarray(np.uint64(1469598103934665603))
    with np.errstate(over="ignore"):
        for a in ints:
            h = (h ^ np.asarray(a, dtype=np.int64).astype(np.uint64)) * np.uint64(1099511628211)
            h = h ^ (h >> np.uint64(29))
    return np.asarray((h >> np.uint64(11)).astype(np.float64) / float(1 << 53), dtype=np.float32)


def render_background(cam: Camera) -> np.ndarray:
    """Reflectance of the static scene as seen by ``cam``: (H, W) float32 in [0, 1] (ray cast)."""
    rng = np.random.default_rng(cam.scene_seed)
    right, up, fwd = cam.basis()
    v, u = np.mgrid[0 : cam.height, 0 : cam.width].astype(np.float64)
    x = (u + 0.5 - cam.width / 2) / cam.focal_px
    y = -(v + 0.5 - cam.height / 2) / cam.focal_px
    d = right[None, None] * x[..., None] + up[None, None] * y[..., None] + fwd[None, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        s_floor = np.where(d[..., 1] < -1e-6, -cam.mount_height / d[..., 1], np.inf)
        s_wall = np.where(d[..., 2] > 1e-6, cam.wall_z / d[..., 2], np.inf)
    on_floor = s_floor < s_wall
    s = np.where(on_floor, s_floor, s_wall)
    px = d[..., 0] * s
    py = cam.mount_height + d[..., 1] * s
    pz = d[..., 2] * s

    # floor: tiles with grout and per-tile tone, darker towards the back
    tile = 0.45 + 0.2 * rng.random()
    ix, iz = np.floor(px / tile), np.floor(pz / tile)
    fx, fz = px / tile - ix, pz / tile - iz
    grout = (np.minimum(fx, 1 - fx) < 0.03) | (np.minimum(fz, 1 - fz) < 0.03)
    floor = cam.floor_tone * (0.85 + 0.3 * _hash01(ix, iz, cam.scene_seed))
    if rng.random() < 0.5:  # checkerboard floors in some places
        floor = floor * np.where((ix + iz) % 2 == 0, 1.0, 0.7)
    floor = np.where(grout, floor * 0.55, floor)

    # wall: panels, skirting board, a door, windows, posters, a bench
    wall = cam.wall_tone * (0.92 + 0.16 * _hash01(np.floor(px / 0.9), 7, cam.scene_seed))
    wall = np.where(np.abs(((px / 0.9) % 1.0) - 0.5) > 0.48, wall * 0.7, wall)
    wall = np.where(py < 0.12, 0.12 + 0.1 * rng.random(), wall)
    half_w = cam.wall_z * cam.width / 2 / cam.focal_px
    for _ in range(int(rng.integers(3, 6))):
        kind = rng.choice(["door", "window", "poster", "bench", "cabinet"])
        cx = rng.uniform(-half_w, half_w)
        if kind == "door":
            box, tone = (cx - 0.5, 0.0, cx + 0.5, 2.1), rng.uniform(0.08, 0.35)
        elif kind == "window":
            box, tone = (cx - 0.8, 1.0, cx + 0.8, 2.3), rng.uniform(0.85, 1.0)
        elif kind == "poster":
            box, tone = (cx - 0.35, 1.1, cx + 0.35, 1.9), rng.uniform(0.1, 0.9)
        elif kind == "bench":
            box, tone = (cx - 0.9, 0.35, cx + 0.9, 0.5), rng.uniform(0.05, 0.4)
        else:
            box, tone = (cx - 0.4, 0.0, cx + 0.4, 1.2), rng.uniform(0.2, 0.6)
        inside = (px > box[0]) & (px < box[2]) & (py > box[1]) & (py < box[3])
        pattern = tone * np.ones_like(px)
        if kind == "poster":
            pattern = np.where(np.sin(px * rng.uniform(15, 40) + py * rng.uniform(-20, 20)) > 0, tone,
                               np.clip(1 - tone, 0.05, 0.95))
        elif kind == "window":
            pattern = np.where((np.abs(px - cx) < 0.03) | (np.abs(py - 1.65) < 0.03), 0.2, tone)
        wall = np.where(inside, pattern, wall)
    wall = wall * (0.9 + 0.1 * np.clip(py / 2.5, 0, 1))
    refl = np.where(on_floor, floor, wall)
    refl = refl * (1 + 0.04 * (_hash01(np.floor(u), np.floor(v), cam.scene_seed + 1) - 0.5))
    return np.clip(refl, 0.02, 1.0).astype(np.float32)


# Base layouts of the four cameras: profile corridor, diagonal hall, receding lobby, high overhead view.
_LAYOUTS: tuple[dict[str, Any], ...] = (
    dict(hfov_deg=62, mount_height=1.5, tilt_deg=4, lane_x=0.0, lane_z=3.6, heading_deg=0, wall_z=6.5,
         light_level=1.0, light_gradient=(0.25, 0.0), vignette=0.15, wall_tone=0.55, floor_tone=0.35),
    dict(hfov_deg=58, mount_height=2.4, tilt_deg=14, lane_x=0.0, lane_z=4.6, heading_deg=35, wall_z=8.0,
         light_level=0.7, light_gradient=(-0.2, 0.1), vignette=0.25, wall_tone=0.4, floor_tone=0.5),
    dict(hfov_deg=55, mount_height=2.6, tilt_deg=16, lane_x=0.3, lane_z=6.0, heading_deg=62, wall_z=12.0,
         light_level=0.45, light_gradient=(0.0, 0.3), vignette=0.3, wall_tone=0.65, floor_tone=0.25),
    dict(hfov_deg=65, mount_height=3.4, tilt_deg=28, lane_x=0.0, lane_z=4.2, heading_deg=-15, wall_z=7.5,
         light_level=1.25, light_gradient=(0.4, -0.1), vignette=0.2, wall_tone=0.3, floor_tone=0.6),
)
_THRESHOLDS = (0.22, 0.25, 0.28, 0.24)
CAMERA_NAMES = ("cam1", "cam2", "cam3", "cam4")


def drawn_sensor(base: SensorParams, realism: SensorRealismConfig, seed: int, camera_index: int,
                 draw: tuple[int, ...] = ()) -> SensorParams:
    """Camera ``camera_index``'s sensor drawn with realism on
    (:func:`~anonreid.events.world.sensor_realism.draw_sensor_params`); the dim third camera gets twice
    the shot noise."""
    s = draw_sensor_params(base, realism, seed, camera_index, draw)
    return replace(s, shot_noise_hz=s.shot_noise_hz * (2.0 if camera_index == 2 else 1.0))


def fixed_sensor(base: SensorParams, camera_index: int) -> SensorParams:
    """Camera ``camera_index``'s sensor in the fixed world (realism off): ``base`` with the camera's own
    threshold (0.22 / 0.25 / 0.28 / 0.24 scaled by ``base.threshold / 0.25``); the dim third camera gets
    twice the shot noise."""
    return replace(base, threshold=base.threshold * _THRESHOLDS[camera_index] / 0.25,
                   shot_noise_hz=base.shot_noise_hz * (2.0 if camera_index == 2 else 1.0))


def default_cameras(width: int, height: int, seed: int, sensor: SensorParams,
                    lamp_flicker: bool = False, realism: SensorRealismConfig | None = None) -> list[Camera]:
    """The world's four cameras at ``width x height``; ``sensor`` gives the defaults that each camera
    perturbs (threshold per camera: 0.22 / 0.25 / 0.28 / 0.24 scaled by ``sensor.threshold / 0.25``;
    the dim third camera gets twice the shot noise). With ``realism`` enabled each camera draws its
    sensor instead (:func:`~anonreid.events.world.sensor_realism.draw_sensor_params`; the dim third
    camera still gets twice the shot noise). With ``lamp_flicker`` the second camera's lamp
    flickers at 9 Hz with 20 % amplitude (a failing fluorescent tube)."""
    cams = []
    for i, layout in enumerate(_LAYOUTS):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0xCA3, i]))
        jit = dict(layout)
        jit["light_level"] = float(layout["light_level"] * rng.uniform(0.9, 1.1))
        jit["wall_tone"] = float(np.clip(layout["wall_tone"] + rng.uniform(-0.08, 0.08), 0.1, 0.9))
        jit["floor_tone"] = float(np.clip(layout["floor_tone"] + rng.uniform(-0.08, 0.08), 0.1, 0.9))
        if realism is not None and realism.enabled:
            cam_sensor = drawn_sensor(sensor, realism, seed, i)
        else:
            cam_sensor = fixed_sensor(sensor, i)
        cams.append(Camera(
            name=CAMERA_NAMES[i], width=width, height=height,
            flicker_hz=9.0 if (lamp_flicker and i == 1) else 0.0,
            flicker_amp=0.2 if (lamp_flicker and i == 1) else 0.0,
            scene_seed=int(rng.integers(0, 2**31 - 1)), sensor=cam_sensor, **jit,
        ))
    return cams
