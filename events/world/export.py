"""Export a world dataset in the two layouts the Event-ReId authors publish.

:func:`export_event_reid`, the full dataset: each pass becomes ``<identity>/camNN/events.txt`` (camera
``camK`` -> ``cam0K``; with several passes per camera the later ones go to ``cam0K_<pass>``) with its
per-window boxes as ``labels/<window>.json`` (``[[x1, y1, x2, y2], window]``, windows where the person
is in view), written by :func:`anonreid.events.io.write_event_reid`. ``train_ids.txt`` and
``test_ids.txt`` list the split.

:func:`export_event_reid_chunks`, the chunk-and-list layout of the authors' sample data: one 33.3 ms
chunk file per window ``train/<ID>_c<C>_<KKK>.txt`` and ``test/...`` (timestamps in ticks of 100 us on
a sensor clock that does not start at 0, no header; events outside the person's box removed, as the
authors did), written by :func:`anonreid.events.io.write_event_reid_chunks`, and the list files
``train_list.txt`` (every window of the training identities), ``gallery_list.txt`` (every Nth window of
the test identities) and ``query_list.txt`` (one of those per identity and camera, drawn by seed and
left out of the gallery). The chunk numbers of a list have gaps, as in the authors' lists.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anonreid.events.world.dataset import PassData, WorldDataset


def export_event_reid(root: str | Path, dest: str | Path) -> Path:
    """Write the dataset at ``root`` into ``dest`` in the Event-ReId layout and return ``dest``."""
    from anonreid.events.io import write_event_reid

    ds = WorldDataset(root)
    out = Path(dest)
    out.mkdir(parents=True, exist_ok=True)
    for info in ds.passes:
        data = ds.load_pass(info.pass_id)
        index = int(info.camera.removeprefix("cam"))
        rep = int(info.pass_id.rsplit("_", 1)[-1])
        camera: str | int = index if rep == 0 else f"cam{index:02d}_{rep}"
        visible = np.flatnonzero(~np.isnan(data.boxes).any(axis=1))
        boxes = [(tuple(float(v) for v in data.boxes[k]), int(k)) for k in visible]
        write_event_reid(out, info.identity, camera, data.events, data.sensor, boxes)
    for split in ("train", "test"):
        (out / f"{split}_ids.txt").write_text("".join(f"{i}\n" for i in ds.identities(split)))
    return out


#: the authors' chunk files count ticks of 100 us on the sensor's clock (their sample starts near 3.2e8)
CHUNK_TIME_UNIT = "100us"
CHUNK_CLOCK_OFFSET_US = 32_457_259_000


def export_event_reid_chunks(
    root: str | Path, dest: str | Path, every: int = 5, seed: int = 0, time_unit: str = CHUNK_TIME_UNIT,
    t_offset_us: int = CHUNK_CLOCK_OFFSET_US,
) -> Path:
    """Write the dataset at ``root`` into ``dest`` in the chunk-and-list layout (module docstring): test
    chunks every ``every`` windows, the query drawn with ``seed``. Returns ``dest``."""
    from anonreid.events.io import write_event_reid_chunks

    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    ds = WorldDataset(root)
    out = Path(dest)
    window = ds.window_us
    test_ids = set(ds.identities("test"))
    lists: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    next_index: dict[tuple[str, int], int] = {}  # later passes of a camera continue its chunk numbers
    for info in ds.passes:
        data = ds.load_pass(info.pass_id)
        camera = int(info.camera.removeprefix("cam"))
        split = "test" if info.identity in test_ids else "train"
        events, visible = _inside_boxes(data, window)
        base = next_index.get((info.identity, camera), 0)
        shifted = events.copy()
        shifted["t"] += base * window
        picks = [base + k for k in visible if split == "train" or k % every == 0]
        rels = write_event_reid_chunks(out, info.identity, camera, shifted, window, time_unit, folder=split,
                                       windows=picks, t_offset_us=t_offset_us)
        lists[split] += [(rel, info.identity) for rel in rels]
        next_index[(info.identity, camera)] = base + len(data.boxes) + every
    rng = np.random.default_rng(seed)
    by_group: dict[tuple[str, str], list[str]] = {}
    for rel, ident in lists["test"]:
        by_group.setdefault((ident, rel.rsplit("_", 2)[1]), []).append(rel)
    query = {group[int(rng.integers(len(group)))] for group in by_group.values()}
    files = {"train_list.txt": lists["train"], "query_list.txt": [e for e in lists["test"] if e[0] in query],
             "gallery_list.txt": [e for e in lists["test"] if e[0] not in query]}
    for name, entries in files.items():
        (out / name).write_text("".join(f"{rel} {ident}\n" for rel, ident in entries))
    return out


def _inside_boxes(data: PassData, window_us: int) -> tuple[np.ndarray, list[int]]:
    """The pass's events that lie inside the person's box of their window, and the windows with a box."""
    t = data.events["t"]
    k = np.minimum(t // window_us, len(data.boxes) - 1)
    box = data.boxes[k]
    x, y = data.events["x"], data.events["y"]
    with np.errstate(invalid="ignore"):
        inside = (x >= box[:, 0]) & (x < box[:, 2]) & (y >= box[:, 1]) & (y < box[:, 3])
    visible = np.flatnonzero(np.isfinite(data.boxes).all(axis=1)).tolist()
    return data.events[inside], visible
