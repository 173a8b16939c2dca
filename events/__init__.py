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

__all__ = [
    "EVENT_DTYPE",
    "EventFormatError",
    "SensorSize",
    "concat_events",
    "empty_events",
    "make_events",
    "polarity_from_01",
    "validate_events",
]
