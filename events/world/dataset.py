"""Offline world datasets: ``simulate_dataset`` writes ``world.json`` + ``world.h5``; ``WorldDataset`` reads.

Layout (see .build/CONTRACTS.md): ``world.json`` holds the resolved config, the seed, every identity
with its split and attributes, the cameras and the list of passes; ``world.h5`` holds per pass
``passes/<pass_id>/`` with ``events/{ts,xs,ys,ps}``, ``frames`` (N, H, W) uint8 reference frames (frame
``k`` shows the scene at the end of window ``k``), ``frame_ts`` (N,) window starts in us and ``boxes``
(N, 4) float32 x1, y1, x2, y2 (the person's extent over the window; NaN when not in view), with attrs
identity, camera, split, width, height; and ``enrollment/<identity>`` (256, 128) uint8 photos (the
same day's outfit; photos of other days are rendered from world.json on demand).

Every identity passes through every camera ``passes_per_camera`` times; each pass is simulated from
its own seed (world seed, identity, camera, pass), so passes are independent and the file is
byte-identical for the same configuration (HDF5 object timestamps are switched off). With
``realism.enabled`` and ``realism.per_pass`` every pass also draws its own sensor (recorded with the
pass in ``world.json``), so that models trained on the world see as many sensors as passes; with
``realism.fixed_share`` that share of the passes keeps its camera's fixed sensor instead. With
``outfit_days`` > 1 every pass also draws the day it is filmed on (recorded with the pass), and the
person wears that day's outfit: a world for ReId that must not rely on clothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from anonreid.events.types import EventFormatError, SensorSize, concat_events, make_events
from anonreid.events.world.build import World, build_world, sensor_params
from anonreid.events.world.cameras import drawn_sensor, fixed_sensor
from anonreid.events.world.people import Person
from anonreid.events.world.render import render_enrollment
from anonreid.events.world.scene import CameraSimulation
from anonreid.events.world.schedule import pass_walk
from anonreid.events.world.simulator import SensorParams
from anonreid.orchestration.config import WorldConfig

log = logging.getLogger(__name__)
FORMAT = "anonreid-world"
VERSION = 1


@dataclass(frozen=True)
class PassInfo:
    pass_id: str
    identity: str
    camera: str
    split: str
    num_windows: int


@dataclass
class PassData:
    events: np.ndarray
    frames: np.ndarray
    frame_ts: np.ndarray
    boxes: np.ndarray
    sensor: SensorSize
    identity: str
    camera: str


@dataclass
class SimulatedPass:
    """One simulated pass held in memory (what a worker returns)."""

    info: PassInfo
    events: np.ndarray
    frames: np.ndarray
    frame_ts: np.ndarray
    boxes: np.ndarray
    stats: dict[str, float]
    sensor: dict[str, Any] | None = None  # the pass's own sensor draw (``realism.per_pass``)
    day: int = 0  # the day it was filmed on (``outfit_days``)


def pass_plan(world: World) -> list[tuple[str, int, int, int]]:
    """(pass_id, person index, camera index, repetition) for every pass, in file order."""
    plan = []
    for p in world.people:
        for ci, cam in enumerate(world.cameras):
            for k in range(world.config.passes_per_camera):
                plan.append((f"{p.identity}_{cam.name}_{k}", p.index, ci, k))
    return plan


def pass_sensor(world: World, person_index: int, camera_index: int, rep: int) -> SensorParams:
    """The sensor of one pass of a ``realism.per_pass`` world: a draw of its own, or, for a share
    ``realism.fixed_share`` of the passes (chosen from the pass's seed), the camera's fixed sensor."""
    cfg = world.config
    keep = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xF1ED, person_index, camera_index, rep]))
    if cfg.realism.fixed_share > 0 and keep.random() < cfg.realism.fixed_share:
        return fixed_sensor(sensor_params(cfg), camera_index)
    return drawn_sensor(world.cameras[camera_index].sensor, cfg.realism, cfg.seed, camera_index, (person_index, rep))


def pass_day(world: World, person_index: int, camera_index: int, rep: int) -> int:
    """The day one pass is filmed on: 0 in a world of ``outfit_days`` 1, else a draw from the pass's own
    seed in ``[0, outfit_days)``, so the other passes and their days do not depend on it."""
    cfg = world.config
    if cfg.outfit_days == 1:
        return 0
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0xDA75, person_index, camera_index, rep]))
    return int(rng.integers(0, cfg.outfit_days))


def simulate_pass(world: World, pass_id: str, person_index: int, camera_index: int, rep: int) -> SimulatedPass:
    """Simulate one pass: the person crosses the camera once in ``pass_seconds``, wearing the outfit of
    the pass's day (:func:`pass_day`)."""
    cfg = world.config
    day = pass_day(world, person_index, camera_index, rep)
    person, cam = world.person(person_index).on_another_day(day), world.cameras[camera_index]
    per_pass = cfg.realism.enabled and cfg.realism.per_pass
    if per_pass:
        cam = replace(cam, sensor=pass_sensor(world, person_index, camera_index, rep))
    ss = np.random.SeedSequence([cfg.seed, 0x5A55, person_index, camera_index, rep])
    walk_seed, sim_seed = ss.spawn(2)
    window = cfg.window_us
    n_win = max(1, round(cfg.pass_seconds * 1e6 / window))
    duration = n_win * window
    walk = pass_walk(person, cam, duration, np.random.default_rng(walk_seed))
    sim = CameraSimulation(cam, lambda a, b: [walk], seed=sim_seed, slot_us=window)
    chunks, frames = [], np.zeros((n_win, cam.height, cam.width), np.uint8)
    boxes = np.zeros((n_win, 4), np.float32)
    for k in range(n_win):
        chunks.append(sim.advance_to((k + 1) * window))
        frames[k] = sim.reference_frame()
        boxes[k] = sim.boxes([walk], k * window, (k + 1) * window)[0]
    info = PassInfo(pass_id, person.identity, cam.name, person.split, n_win)
    st = sim.stats
    stats = {"frames": st.frames, "capped_slots": st.capped_slots, "max_log_step": st.max_log_step,
             "events": st.events}
    return SimulatedPass(info, concat_events(chunks), frames, np.arange(n_win, dtype=np.int64) * window, boxes,
                         stats, cam.sensor.to_json() if per_pass else None, day)


def recorded_config(config: WorldConfig) -> dict[str, Any]:
    """The world's settings as ``world.json`` records them: how it ran (``workers``) is not what it is, and
    settings added later are left out at their neutral value (realism off, ``realism.per_pass`` off,
    ``first_identity`` 1, ``outfit_days`` 1), so a world simulated before they existed keeps its ``world.json`` byte for
    byte, and with it its data fingerprint."""
    exclude: dict[str, Any] = {"workers": True}
    if not config.realism.enabled:
        exclude["realism"] = True
    elif not config.realism.per_pass:
        exclude["realism"] = {"per_pass": True, "fixed_share": True}
    elif config.realism.fixed_share == 0:
        exclude["realism"] = {"fixed_share": True}
    if config.first_identity == 1:
        exclude["first_identity"] = True
    if config.outfit_days == 1:
        exclude["outfit_days"] = True
    return config.model_dump(mode="json", exclude=exclude)


def _worker(args: tuple[dict[str, Any], str, int, int, int]) -> SimulatedPass:
    import torch

    torch.set_num_threads(1)
    cfg_dict, pass_id, pi, ci, rep = args
    return simulate_pass(build_world(WorldConfig(**cfg_dict)), pass_id, pi, ci, rep)


def _no_times(name: str) -> dict[str, Any]:
    return {"track_times": False} if name else {}


def _write_pass(h5: h5py.File, sp: SimulatedPass, sensor: SensorSize) -> None:
    g = h5.create_group(f"passes/{sp.info.pass_id}")
    ev = g.create_group("events")
    kw: dict[str, Any] = {"track_times": False, "compression": "gzip", "compression_opts": 1, "shuffle": True}
    n = len(sp.events)
    chunk = (min(max(n, 1), 262_144),)
    ev.create_dataset("ts", data=sp.events["t"], chunks=chunk, **kw)
    ev.create_dataset("xs", data=sp.events["x"], chunks=chunk, **kw)
    ev.create_dataset("ys", data=sp.events["y"], chunks=chunk, **kw)
    ev.create_dataset("ps", data=sp.events["p"], chunks=chunk, **kw)
    g.create_dataset("frames", data=sp.frames, chunks=(1, *sp.frames.shape[1:]), **kw)
    g.create_dataset("frame_ts", data=sp.frame_ts, track_times=False)
    g.create_dataset("boxes", data=sp.boxes, track_times=False)
    for key, val in (("identity", sp.info.identity), ("camera", sp.info.camera), ("split", sp.info.split),
                     ("width", sensor.width), ("height", sensor.height)):
        g.attrs[key] = val


def _iter_passes(world: World, workers: int) -> Iterator[SimulatedPass]:
    plan = pass_plan(world)
    if workers <= 1:
        for pass_id, pi, ci, rep in plan:
            yield simulate_pass(world, pass_id, pi, ci, rep)
        return
    cfg = world.config.model_dump()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(_worker, [(cfg, *p) for p in plan])


def simulate_dataset(out_dir: str | Path, config: WorldConfig, progress: bool = True) -> Path:
    """Simulate the whole world offline into ``out_dir`` (created) and return it."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    world = build_world(config)
    plan = pass_plan(world)
    h5_path, tmp = out / "world.h5", out / "world.h5.partial"
    passes: list[dict[str, Any]] = []
    stats: list[dict[str, float]] = []
    bar = None
    if progress:
        from rich.progress import Progress

        bar = Progress(transient=False)
        bar.start()
        task = bar.add_task("simulating passes", total=len(plan))
    try:
        with h5py.File(tmp, "w", track_order=False) as h5:
            h5.attrs["format"] = FORMAT
            h5.attrs["version"] = VERSION
            h5.attrs["width"] = world.sensor.width
            h5.attrs["height"] = world.sensor.height
            h5.attrs["window_us"] = config.window_us
            for sp in _iter_passes(world, config.workers):
                _write_pass(h5, sp, world.sensor)
                passes.append({"pass_id": sp.info.pass_id, "identity": sp.info.identity, "camera": sp.info.camera,
                               "split": sp.info.split, "num_windows": sp.info.num_windows,
                               "num_events": len(sp.events), **({"sensor": sp.sensor} if sp.sensor else {}),
                               **({"day": sp.day} if config.outfit_days > 1 else {})})
                stats.append(sp.stats)
                if bar is not None:
                    bar.advance(task)
            enr = h5.create_group("enrollment")
            for p in world.people:
                enr.create_dataset(p.identity, data=render_enrollment(p), track_times=False)
    finally:
        if bar is not None:
            bar.stop()
    tmp.replace(h5_path)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "seed": config.seed,
        "config": recorded_config(config),
        "sensor": {"width": world.sensor.width, "height": world.sensor.height},
        "window_us": config.window_us,
        "identities": [p.to_json() for p in world.people],
        "cameras": [c.to_json() for c in world.cameras],
        "passes": passes,
        "simulation": {
            "render_frames": int(sum(s["frames"] for s in stats)),
            "capped_slots": int(sum(s["capped_slots"] for s in stats)),
            "max_log_step": float(max((s["max_log_step"] for s in stats), default=0.0)),
        },
    }
    (out / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    log.info("wrote %d passes (%d events) to %s", len(passes), sum(p["num_events"] for p in passes), out)
    return out


class WorldDataset:
    """Reader of a dataset written by :func:`simulate_dataset`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.json_path, self.h5_path = self.root / "world.json", self.root / "world.h5"
        for path in (self.json_path, self.h5_path):
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (not a world dataset written by `anonreid simulate`)")
        try:
            self.meta = json.loads(self.json_path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{self.json_path}: not valid JSON ({exc})") from None
        for key in ("format", "sensor", "identities", "passes", "window_us"):
            if key not in self.meta:
                raise ValueError(f"{self.json_path}: missing field {key!r}")
        if self.meta["format"] != FORMAT:
            raise ValueError(f"{self.json_path}: field 'format' is {self.meta['format']!r}, expected {FORMAT!r}")
        self.sensor = SensorSize(int(self.meta["sensor"]["width"]), int(self.meta["sensor"]["height"]))
        self.window_us = int(self.meta["window_us"])
        self.passes = [PassInfo(p["pass_id"], p["identity"], p["camera"], p["split"], int(p["num_windows"]))
                       for p in self.meta["passes"]]
        self._by_id = {p.pass_id: p for p in self.passes}
        self._split = {p["identity"]: p["split"] for p in self.meta["identities"]}

    @property
    def outfit_days(self) -> int:
        """The days the world's passes were filmed on (``world.outfit_days``; 1 for worlds before it)."""
        return int(self.meta.get("config", {}).get("outfit_days", 1))

    def pass_days(self) -> np.ndarray:
        """The day each pass (in :attr:`passes` order) was filmed on, each in its day's outfit."""
        return np.asarray([int(p.get("day", 0)) for p in self.meta["passes"]], np.int64)

    def clip_days(self, passes: np.ndarray) -> np.ndarray:
        """The day of each clip, from its pass's index (``ClipSet.passes``)."""
        return self.pass_days()[np.asarray(passes)]

    def identities(self, split: str | None = None) -> list[str]:
        if split not in (None, "train", "test"):
            raise ValueError(f"split must be 'train', 'test' or None, got {split!r}")
        return sorted(i for i, s in self._split.items() if split is None or s == split)

    def load_pass(self, pass_id: str) -> PassData:
        info = self._by_id.get(pass_id)
        if info is None:
            raise KeyError(f"{self.json_path}: no pass {pass_id!r}")
        where = f"{self.h5_path}:passes/{pass_id}"
        with h5py.File(self.h5_path, "r") as h5:
            if f"passes/{pass_id}" not in h5:
                raise EventFormatError(str(self.h5_path), f"group passes/{pass_id} missing")
            g = h5[f"passes/{pass_id}"]
            try:
                cols = [g[f"events/{c}"][()] for c in ("ts", "xs", "ys", "ps")]
                frames, frame_ts, boxes = g["frames"][()], g["frame_ts"][()], g["boxes"][()]
            except KeyError as exc:
                raise EventFormatError(where, f"missing dataset ({exc})") from None
        events = make_events(cols[0], cols[1], cols[2], cols[3], sensor=self.sensor, source=f"{where}/events")
        n = info.num_windows
        for name, arr, shape in (("frames", frames, (n, self.sensor.height, self.sensor.width)),
                                 ("frame_ts", frame_ts, (n,)), ("boxes", boxes, (n, 4))):
            if arr.shape != shape:
                raise EventFormatError(where, f"{name} has shape {arr.shape}, expected {shape}")
        return PassData(events, frames, frame_ts.astype(np.int64), boxes.astype(np.float32), self.sensor,
                        info.identity, info.camera)

    def enrollment(self, identity: str, day: int = 0) -> np.ndarray:
        """The enrollment photo of ``identity`` (256, 128) uint8: on the day the cameras film (``day`` 0,
        the same outfit; stored in world.h5), or on another day ``day`` >= 1 (another outfit, the same
        body and face: :meth:`~anonreid.events.world.people.Person.on_another_day`; rendered from the
        identity's attributes in world.json)."""
        if day:
            attrs = next((p for p in self.meta["identities"] if p["identity"] == identity), None)
            if attrs is None:
                raise KeyError(f"{self.json_path}: no identity {identity!r}")
            try:
                person = Person.from_json(attrs)
            except TypeError as exc:  # a world.json written before an attribute existed
                raise ValueError(f"{self.json_path}: identity {identity!r} lacks attributes to render another day "
                                 f"({exc}); simulate the world again") from None
            return render_enrollment(person.on_another_day(day))
        with h5py.File(self.h5_path, "r") as h5:
            key = f"enrollment/{identity}"
            if key not in h5:
                raise KeyError(f"{self.h5_path}: no enrollment photo for identity {identity!r}")
            return np.asarray(h5[key][()])
