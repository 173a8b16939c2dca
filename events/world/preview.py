"""PNG previews of a world dataset: reference frames, event frames per camera, enrollment photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from anonreid.events.world.dataset import WorldDataset


def event_frame(events: np.ndarray, height: int, width: int, t0: int, t1: int) -> np.ndarray:
    """(H, W, 3) uint8 picture of the events in [t0, t1): ON red, OFF blue, on a grey background."""
    sel = events[(events["t"] >= t0) & (events["t"] < t1)]
    img = np.full((height, width, 3), 40, np.uint8)
    on = sel[sel["p"] > 0]
    off = sel[sel["p"] < 0]
    img[off["y"], off["x"]] = (70, 140, 255)
    img[on["y"], on["x"]] = (255, 80, 60)
    return img


def _grid(rows: list[list[np.ndarray]], pad: int = 2) -> np.ndarray:
    h = max(t.shape[0] for r in rows for t in r)
    w = max(t.shape[1] for r in rows for t in r)
    ch = 3 if any(t.ndim == 3 for r in rows for t in r) else 1
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + pad) + pad, ncol * (w + pad) + pad, ch), 255, np.uint8)
    for i, r in enumerate(rows):
        for j, t in enumerate(r):
            t3 = t if t.ndim == 3 else t[..., None]
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y : y + t.shape[0], x : x + t.shape[1]] = t3 if ch == t3.shape[2] else np.repeat(t3, 3, 2)
    return out if ch == 3 else out[..., 0]


def write_previews(root: str | Path, out_dir: str | Path, columns: int = 5, scale: float = 1.0,
                   max_identities: int = 12) -> list[Path]:
    """Write ``reference_frames.png``, ``event_frames.png`` and ``enrollment.png`` into ``out_dir``.

    One row per camera (a different identity per camera), ``columns`` windows spread over the pass;
    ``scale`` shrinks the tiles (for small committed previews).
    """
    ds = WorldDataset(root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cams = sorted({p.camera for p in ds.passes})
    ids = ds.identities()
    ref_rows, ev_rows = [], []
    for i, cam in enumerate(cams):
        cands = [p for p in ds.passes if p.camera == cam]
        info = next((p for p in cands if p.identity == ids[i % len(ids)]), cands[0])
        data = ds.load_pass(info.pass_id)
        visible = np.flatnonzero(~np.isnan(data.boxes).any(axis=1))
        picks = visible if len(visible) else np.arange(info.num_windows)
        # spread over the middle 80 % of the visible windows (people fully in view)
        sel = picks[np.linspace(0.1 * (len(picks) - 1), 0.9 * (len(picks) - 1), columns).round().astype(int)]
        ref_rows.append([data.frames[k] for k in sel])
        ev_rows.append([event_frame(data.events, ds.sensor.height, ds.sensor.width, int(data.frame_ts[k]),
                                    int(data.frame_ts[k]) + ds.window_us) for k in sel])
    enr = [ds.enrollment(i) for i in ids[:max_identities]]
    paths = []
    for name, arr in (("reference_frames.png", _grid(ref_rows)), ("event_frames.png", _grid(ev_rows)),
                      ("enrollment.png", _grid([enr[: (len(enr) + 1) // 2], enr[(len(enr) + 1) // 2 :]]))):
        img = Image.fromarray(arr)
        if scale != 1.0:
            img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))),
                             Image.Resampling.LANCZOS)
        path = out / name
        img.save(path, optimize=True)
        paths.append(path)
    return paths
