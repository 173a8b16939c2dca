"""Event arrays, file formats, windowing, voxel grids, the synthetic world and its event simulator."""

from anonreid.events.types import (
    EVENT_DTYPE,
    EventFormatError,
    SensorSize,
    concat_events,
    empty_events,
    make_events,
    polarity_from_01,
    validate_events,
)
from anonreid.events.voxel import (
    crop_resize_voxel,
    events_to_voxel,
    events_to_voxel_torch,
    normalize_voxel,
    voxelize_windows_torch,
)
from anonreid.events.windowing import FixedCountWindower, FixedDurationWindower, Window, iter_windows

__all__ = [
    "EVENT_DTYPE",
    "EventFormatError",
    "FixedCountWindower",
    "FixedDurationWindower",
    "SensorSize",
    "Window",
    "concat_events",
    "crop_resize_voxel",
    "empty_events",
    "events_to_voxel",
    "events_to_voxel_torch",
    "iter_windows",
    "make_events",
    "normalize_voxel",
    "polarity_from_01",
    "validate_events",
    "voxelize_windows_torch",
]
