"""Per-camera sensor realism (issue 18, sim-to-real): each camera of the world draws its own event sensor.

With ``world.realism.enabled`` every camera draws, from the ranges of
:class:`~anonreid.orchestration.config.SensorRealismConfig` (whose defaults cite their published sources),
its ON/OFF thresholds and their asymmetry, per-pixel mismatch, refractory period, photoreceptor bandwidth,
shot noise, leak and hot pixels. The draw depends only on the world seed and the camera's index, so
the same seed gives the same cameras, and the other properties of a camera (geometry, lighting) are
drawn from their own stream and do not change when realism is switched on.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from anonreid.events.world.simulator import SensorParams
from anonreid.orchestration.config import SensorRealismConfig

#: ranges drawn uniformly (the rest log-uniformly: rates, time constants and ratios span decades)
_UNIFORM = ("threshold", "threshold_sigma")
_STREAM = 0x5E45  # the seed stream of the sensor draws, apart from the cameras' layout jitter


def draw_sensor_params(base: SensorParams, realism: SensorRealismConfig, seed: int, camera_index: int,
                       draw: tuple[int, ...] = ()) -> SensorParams:
    """The sensor of camera ``camera_index`` in a world of seed ``seed``: ``base`` with every parameter
    of ``realism`` drawn from its range (the rendering settings of ``base`` are kept). ``draw`` names
    another draw of the same camera (a dataset pass, with ``realism.per_pass``); empty, the camera's own."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM, camera_index, *draw]))
    drawn: dict[str, float] = {}
    for name in ("threshold", "off_on_ratio", "threshold_sigma", "refractory_us", "cutoff_hz", "shot_noise_hz",
                 "leak_hz", "hot_pixel_fraction", "hot_pixel_hz"):
        lo, hi = getattr(realism, name)
        u = float(rng.random())
        drawn[name] = lo + u * (hi - lo) if name in _UNIFORM else math.exp(math.log(lo) + u * math.log(hi / lo))
    return replace(base, refractory_us=round(drawn.pop("refractory_us")), **drawn)
