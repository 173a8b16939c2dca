"""Raw voxel grids of the live world's windows, rendered by the adversary itself: the positive control of
the direct identity attack, in simulation only.

The audit tap carries anonymized voxels and never raw ones (raw data does not leave a camera). The
direct identity attack's positive control is the same attack on the raw events of the same people
(the towers of stage ``identity_raw``): a score at chance then says the anonymizer hides them only when
the control, on the same windows, identifies them. Where the cameras film the simulated live world,
the adversary holds the world's configuration (it renders its enrollment photos from it too), so it
renders those windows itself: :meth:`~anonreid.events.world.live.LiveWorld.camera_stream` from
``warmup_windows`` before the window (the event simulator's memory of log intensity starts there),
voxelized as the camera voxelizes (:func:`~anonreid.events.voxel.events_to_voxel`, normalized, on the
window's nominal span). These are not the camera's events byte for byte (the simulator's noise is
seeded by where a stream starts): the same people in the same poses, seen by the same sensor.
"""

from __future__ import annotations

import numpy as np

from anonreid.orchestration.config import WorldConfig


class RawWindows:
    """``voxel(camera, start_us, end_us, shape)``: the live world's raw voxel grid of one window."""

    def __init__(self, world: WorldConfig, warmup_windows: int = 3) -> None:
        from anonreid.events.types import SensorSize
        from anonreid.events.world.live import LiveWorld

        if warmup_windows < 0:
            raise ValueError(f"warmup_windows must be >= 0, got {warmup_windows}")
        self.world = LiveWorld(world)
        self.warmup_us = warmup_windows * world.window_us
        sensor = SensorSize.parse(world.resolution)
        self.sensor = (sensor.height, sensor.width)

    def voxel(self, camera: str, start_us: int, end_us: int, shape: tuple[int, int, int]) -> np.ndarray:
        """The raw voxel grid ``shape`` = (bins, height, width) of ``camera``'s window [start_us, end_us)."""
        from anonreid.events.voxel import events_to_voxel

        bins, height, width = shape
        if (height, width) != self.sensor:
            raise ValueError(f"camera {camera}: audit samples of {width}x{height}, but the live world renders "
                             f"{self.sensor[1]}x{self.sensor[0]} (world.resolution); the raw control needs the world "
                             "the cameras film")
        if end_us <= start_us:
            raise ValueError(f"camera {camera}: empty window [{start_us}, {end_us}) us")
        t0 = max(0, int(start_us) - self.warmup_us)
        packet = next(iter(self.world.camera_stream(camera, start_us=t0, realtime=False, packet_us=int(end_us) - t0)))
        window = packet[(packet["t"] >= start_us) & (packet["t"] < end_us)]
        return events_to_voxel(window, bins, height, width, normalize=True, t_range=(int(start_us), int(end_us)))
