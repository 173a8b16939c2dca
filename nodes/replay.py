"""Recorded event files replayed through the live system: ``anonreid demo --source cam1=FILE,...``.

Up to :data:`MAX_REPLAYS` recordings (EVT 2.0 / 3.0 ``.raw``, ``.dat``, AEDAT4, HDF5, ``.npz`` or
Event-ReId text) each drive one camera node in place of the live world, paced by their own clocks (real
time), into the gallery and the console. A file's time unit and sensor size come from the file where
it records them, else from ``--time-unit`` / ``--sensor`` (config ``events.time_unit`` /
``events.sensor``); every file is opened and its first chunk read here first, so a wrong unit, a missing
sensor size or a bad file fails before anything starts, naming the camera and the file.

The cameras are the ones named; the gallery knows exactly those, with no camera graph (the live
world's transit times say nothing about real recordings); the adversary stays off (its attacks need the
world's reference frames and enrollment photos; audit real recordings with ``anonreid adversary run``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from anonreid.events.types import EventFormatError
from anonreid.nodes.sources import FileSource, SourceSpec

__all__ = ["MAX_REPLAYS", "parse_sources", "replay_config", "replay_specs"]

MAX_REPLAYS = 4
_CAMERA = re.compile(r"^[A-Za-z0-9_-]+$")


def parse_sources(text: str) -> dict[str, Path]:
    """``"cam1=a.raw,cam2=b.h5"`` -> ``{"cam1": Path("a.raw"), ...}`` (order kept); ValueError naming the
    bad item: not ``CAMERA=FILE``, a camera named twice, a missing file, more than four."""
    out: dict[str, Path] = {}
    for item in (part.strip() for part in text.split(",")):
        camera, sep, file = item.partition("=")
        camera, file = camera.strip(), file.strip()
        if not sep or not camera or not file:
            raise ValueError(f"--source: {item!r} is not CAMERA=FILE (e.g. cam1=recording.raw)")
        if not _CAMERA.match(camera):
            raise ValueError(f"--source: camera {camera!r}: letters, digits, '_' and '-' only")
        if camera in out:
            raise ValueError(f"--source: camera {camera} is given twice")
        if not Path(file).is_file():
            raise ValueError(f"--source: {camera}={file}: no such file")
        out[camera] = Path(file)
    if len(out) > MAX_REPLAYS:
        raise ValueError(f"--source: {len(out)} recordings; at most {MAX_REPLAYS} cameras replay at once")
    return out


def replay_specs(
    sources: dict[str, Path], packet_us: int, time_unit: str = "", sensor: str = "", speed: float = 1.0,
) -> dict[str, SourceSpec]:
    """A real-time file :class:`SourceSpec` per camera, each file opened here and its first chunk read to
    check it (format, time unit, sensor size, events inside the sensor); ValueError naming the camera and
    the problem."""
    specs = {}
    for camera, path in sources.items():
        spec = SourceSpec(kind="file", camera_id=camera, path=str(path), realtime=True, speed=speed,
                          packet_us=packet_us, sensor=sensor, time_unit=time_unit)
        try:
            next(iter(FileSource(spec).reader), None)
        except (EventFormatError, ValueError) as exc:
            raise ValueError(f"--source {camera}={path}: {exc}") from None
        specs[camera] = spec
    return specs


def replay_config(cfg: Any, cameras: list[str]) -> Any:
    """The demo's configuration for replaying ``cameras``: exactly those cameras, and the adversary off."""
    return cfg.model_copy(update={"demo": cfg.demo.model_copy(update={"cameras": cameras, "adversary": False})})
