"""Export a world dataset to the Event-ReId text layout (``<ID>/camNN/events.txt`` + ``labels/``).

Each pass becomes ``<identity>/camNN/events.txt`` (camera ``camK`` -> ``cam0K``; with several passes
per camera the later ones go to ``cam0K_<pass>``) with its per-window boxes as
``labels/<window>.json`` (``[[x1, y1, x2, y2], window]``, windows where the person is in view), written
by :func:`anonreid.events.io.write_event_reid`. ``train_ids.txt`` and ``test_ids.txt`` list the split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from anonreid.events.world.dataset import WorldDataset


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
