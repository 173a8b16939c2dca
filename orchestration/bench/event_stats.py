"""``anonreid bench event-stats [FILE|DIR ...] [--world]``: the event statistics of recordings side by side.

For each source, over its 33.3 ms windows and the people in them (:mod:`anonreid.events.stats`): events
per window per person, events per active pixel, the ON share and the fraction of active pixels in the
person's box, and events per whole window. Where the people are comes from what the source knows:

* ``--world``: the live synthetic world (configuration ``world``), every camera for ``--seconds``, with
  its ground-truth boxes;
* a DIR: an Event-ReId root in either layout (:mod:`anonreid.events.event_reid_dataset`): the labelled
  boxes of ``events.txt``, or for chunk files the extent of each chunk's events (the authors removed
  the events outside the person), over the test split, at most ``--max-passes`` passes;
* a FILE (``.raw``, ``.dat``, AEDAT4, HDF5, ``.npz``, text): the first ``--seconds``, with the boxes of
  the camera node's activity detector (:mod:`anonreid.events.detection`, configured by ``camera.detector``).

Files that do not record their time unit or sensor size take ``--time-unit`` / ``--sensor`` (config
``events.time_unit`` / ``events.sensor``). Prints a table and JSON (``--json FILE`` writes it).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from anonreid.orchestration import cli_common
from anonreid.orchestration.config import DetectorConfig

ROWS = ("events_per_person_window", "events_per_active_pixel", "on_share", "active_pixel_fraction",
        "events_per_window", "person_windows", "windows")


def world_windows(cfg: Any, seconds: float) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(events, ground-truth boxes) of every window of every live-world camera, ``seconds`` each."""
    from anonreid.events.types import concat_events
    from anonreid.events.windowing import iter_windows
    from anonreid.nodes.sources import SourceSpec, open_source

    window = cfg.world.window_us
    for camera in cfg.demo.cameras:
        source = open_source(SourceSpec(kind="live", camera_id=camera, realtime=False, world=cfg.world.model_dump(),
                                        end_us=int(seconds * 1e6), packet_us=cfg.camera.packet_us))
        events = concat_events(list(source.packets()))
        assert source.ground_truth is not None
        truth = {gt.start_us: gt.boxes for gt in source.ground_truth(0, int(seconds * 1e6), False)}
        for w in iter_windows(events, window, t0_us=0):
            yield w.events, truth.get(w.start_us, np.zeros((0, 4)))


def dataset_windows(root: Path, time_unit: str, sensor: str, max_passes: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(events, box) of every labelled window of an Event-ReId root's test passes."""
    from anonreid.events.event_reid_dataset import open_event_reid_dataset
    from anonreid.events.types import SensorSize

    ds = open_event_reid_dataset(root, "test", time_unit or None, SensorSize.parse(sensor) if sensor else None)
    for info in ds.passes[:max_passes]:
        data = ds.load_pass(info.pass_id)
        edges = np.asarray(np.searchsorted(data.events["t"], np.r_[data.frame_ts, data.frame_ts[-1] + ds.window_us]))
        for k, box in enumerate(data.boxes):
            if np.isfinite(box).all():
                yield data.events[edges[k] : edges[k + 1]], box[None]


def file_windows(path: Path, time_unit: str, sensor: str, seconds: float, window_us: int,
                 detector_config: DetectorConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(events, detected boxes: the camera's detector, config ``camera.detector``) of the first ``seconds``
    of a recording."""
    from anonreid.events.detection import ActivityDetector
    from anonreid.events.io import open_events
    from anonreid.events.types import SensorSize
    from anonreid.events.windowing import FixedDurationWindower

    reader = open_events(path, SensorSize.parse(sensor) if sensor else None, time_unit=time_unit or None)
    if reader.sensor is None:
        raise ValueError(f"{path}: the file does not record its sensor size; give it (--sensor WxH)")
    detector = ActivityDetector.from_config(reader.sensor, detector_config)
    windower = FixedDurationWindower(window_us)
    for chunk in reader:
        windows = windower.push(chunk)
        for w in windows:
            boxes = np.array([d.box for d in detector.update(w.events)], np.float64).reshape(-1, 4)
            yield w.events, boxes
        if windower.t0_us is not None and windows and windows[-1].end_us - windower.t0_us >= seconds * 1e6:
            return


def main(
    sources: Annotated[list[Path] | None, typer.Argument(help="recordings (FILE) or Event-ReId roots (DIR)")] = None,
    world: Annotated[bool, typer.Option("--world", help="also the live synthetic world (configuration `world`)")] = False,
    seconds: Annotated[float, typer.Option(min=0.1, help="seconds of each recording / world camera")] = 10.0,
    max_passes: Annotated[int, typer.Option(min=1, help="passes of an Event-ReId root")] = 40,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the JSON result to this file")] = None,
    time_unit: cli_common.TimeUnitOption = "",
    sensor: cli_common.SensorOption = "",
    config: cli_common.ConfigOption = None,
    set_: cli_common.SetOption = None,
) -> None:
    """Event statistics of recordings and of the synthetic world, side by side (JSON + a table)."""
    from anonreid.events.stats import EventStats
    from anonreid.events.types import EventFormatError

    cfg = cli_common.resolve_config(config, set_)
    time_unit, sensor = cli_common.event_file_options(cfg, time_unit, sensor)
    if not sources and not world:
        typer.echo("error: give recordings or Event-ReId roots, or --world", err=True)
        raise typer.Exit(2)
    result: dict[str, Any] = {}
    try:
        for path in sources or []:
            if not path.exists():
                raise ValueError(f"{path}: no such file or directory")
            windows = (dataset_windows(path, time_unit, sensor, max_passes) if path.is_dir()
                       else file_windows(path, time_unit, sensor, seconds, cfg.events.window_us,
                                       cfg.camera.detector))
            people = "Event-ReId boxes" if path.is_dir() else "activity detector"
            result[str(path)] = {**EventStats().extend(windows).summary(), "people": people}
        if world:
            stats = EventStats().extend(world_windows(cfg, seconds))
            result["world"] = {**stats.summary(), "people": "ground truth", "seconds_per_camera": seconds}
    except (EventFormatError, ValueError, FileNotFoundError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _print_table(result)
    text = json.dumps({"benchmark": "event-stats", "sources": result}, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")


def _print_table(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="event statistics (person boxes, 33.3 ms windows)")
    table.add_column("statistic")
    for name in result:
        table.add_column(Path(name).name or name, justify="right")
    for row in ROWS:
        cells = []
        for values in result.values():
            v = values[row]
            cells.append("-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v))
        table.add_row(row, *cells)
    Console(stderr=True).print(table)
