"""Training data: passes of the synthetic world -> clips of voxel windows, reference frames and boxes.

A *clip* is ``clip_len`` consecutive 33.3 ms windows of one pass in which the person is visible. Each
window is voxelised on the **full sensor frame** with :func:`anonreid.events.voxel.voxelize_windows_torch`
(B bins, mean/std normalisation over non-zero cells: exactly what the camera node computes), then a
sensor-scale tile centred on the person (``data.tile_hw``; the whole frame when null) is cut from the
voxels and from the reference frames. E_an and E_rec are fully convolutional, so training them on
tiles at the camera's scale and normalisation transfers to the full frames they run on; E_reid sees the
person's box cut out of the (anonymized) tile and resized to ``crop_hw`` exactly as the camera node
crops (differentiable, so the ReId loss reaches E_an).

Clips are computed once per (dataset, data config, identity set) and cached as ``.npy`` files under
the run directory (memory-mapped; float16 voxels), so stages and resumed runs share them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonreid.models.config import DataCfg

log = logging.getLogger(__name__)

_ARRAYS = ("voxels", "frames", "boxes", "labels", "cameras", "passes")


@dataclass
class Batch:
    voxels: torch.Tensor  # (N, L, B, h, w) float32, voxel range
    frames: torch.Tensor  # (N, L, 1, h, w) float32 in [0, 1]
    boxes: torch.Tensor  # (N, 4) float32 x1, y1, x2, y2 of the last window, tile pixels
    labels: torch.Tensor  # (N,) int64 class index
    cameras: torch.Tensor  # (N,) int64
    index: np.ndarray | None = None  # each sample's row in its ClipSet; None once the clips are altered (flipped)


def read_rows(array: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``array[idx]`` (in ``idx``'s order), read in sorted order: friendlier to memory maps."""
    order = np.argsort(idx, kind="stable")
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return np.asarray(array[idx[order]])[inv]


def per_clip_array(path: Path, n: int, rows: Callable[[int, int], np.ndarray], batch: int) -> np.ndarray:
    """An array with one row per clip, derived from the clips by a frozen model and cached at ``path``:
    memory-mapped from there when it exists, else ``rows(start, stop)`` in order over ``range(n)`` in
    steps of ``batch``, written to a partial file that replaces ``path`` only when it is complete (a
    run cut mid-way leaves no half array to read)."""
    if path.exists():
        return np.load(path, mmap_mode="r")
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(f"{path.stem}.partial-{os.getpid()}.npy")
    out = None
    try:
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            a = rows(start, stop)
            if out is None:
                out = np.lib.format.open_memmap(part, mode="w+", dtype=a.dtype, shape=(n, *a.shape[1:]))
            out[start:stop] = a
        if out is None:
            raise ValueError(f"{path}: no clips to derive it from")
        out.flush()
        del out
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


@dataclass
class ClipSet:
    """Clips of one identity set; arrays may be memory-mapped ``.npy`` files."""

    voxels: np.ndarray  # (M, L, B, h, w) float16
    frames: np.ndarray  # (M, L, h, w) uint8
    boxes: np.ndarray  # (M, 4) float32, last window, tile coordinates
    labels: np.ndarray  # (M,) int64 index into identities
    cameras: np.ndarray  # (M,) int64 camera index (cam1 -> 0)
    passes: np.ndarray  # (M,) int64 index of the pass in the dataset
    identities: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.identities)

    def batch(self, index: Sequence[int] | np.ndarray, device: torch.device | str = "cpu") -> Batch:
        idx = np.asarray(index, dtype=np.int64)
        vox, frm = read_rows(self.voxels, idx), read_rows(self.frames, idx)
        return Batch(
            voxels=torch.from_numpy(vox.astype(np.float32)).to(device),
            frames=torch.from_numpy(frm).to(device).float().div_(255.0).unsqueeze(2),
            boxes=torch.from_numpy(self.boxes[idx]).to(device),
            labels=torch.from_numpy(self.labels[idx]).to(device),
            cameras=torch.from_numpy(self.cameras[idx]).to(device),
            index=idx,
        )


def crop_boxes(tiles: torch.Tensor, boxes: torch.Tensor, crop_hw: tuple[int, int], flip: torch.Tensor | None = None) -> torch.Tensor:
    """Cut each box (x1, y1, x2, y2 in tile pixels) out of ``tiles`` (N, B, h, w), resized to ``crop_hw``.

    The same crop as the camera node's (:func:`anonreid.events.voxel.crop_resize_voxel`: box clipped to
    the grid, outward-rounded, bilinear resize), differentiable w.r.t. the tiles; ``flip`` (N,) bool
    mirrors chosen crops left-right (ReId augmentation).
    """
    from anonreid.events.voxel import crop_resize_voxel

    crops = torch.stack([crop_resize_voxel(t, box, crop_hw) for t, box in zip(tiles, boxes.tolist(), strict=True)])
    if flip is not None and bool(flip.any()):
        crops = torch.where(flip[:, None, None, None], crops.flip(-1), crops)
    return crops


#: the head (face + hair) as a fraction of the person box height when the world gives none
DEFAULT_HEAD_RATIO = 0.13


def face_boxes(person_boxes: np.ndarray, head_ratio: np.ndarray | float = DEFAULT_HEAD_RATIO) -> np.ndarray:
    """Face (head) boxes: the top ``1.15 * head_ratio`` of each person box, square, centred in x (the
    evaluation's face crops and the min-max stage's face region)."""
    b = np.asarray(person_boxes, np.float32).reshape(-1, 4)
    side = np.maximum((b[:, 3] - b[:, 1]) * 1.15 * np.asarray(head_ratio, np.float32), 2.0)
    cx = (b[:, 0] + b[:, 2]) / 2
    return np.stack([cx - side / 2, b[:, 1], cx + side / 2, b[:, 1] + side], axis=1)


def jitter_boxes(boxes: torch.Tensor, amount: float, rng: np.random.Generator, hw: Sequence[int]) -> torch.Tensor:
    """Boxes (x1, y1, x2, y2) with width and height scaled by a factor in [1 - amount, 1 + amount] and the
    centre moved by up to ``amount`` of the box's size, each drawn per box from ``rng``, kept on the
    ``hw`` grid and at least 2 pixels wide and high: the detector's boxes are looser, tighter and
    off-centre against the ground truth the clips carry. ``amount`` 0 returns ``boxes`` unchanged."""
    if amount <= 0:
        return boxes
    b = boxes.detach().double().cpu()
    size = b[:, 2:] - b[:, :2]  # (width, height)
    centre = (b[:, :2] + b[:, 2:]) / 2 + torch.from_numpy(rng.uniform(-amount, amount, (len(b), 2))) * size
    half = size * torch.from_numpy(rng.uniform(1 - amount, 1 + amount, (len(b), 2))) / 2
    limit = torch.tensor([hw[1], hw[0]], dtype=torch.float64)
    lo = torch.minimum((centre - half).clamp(min=0), limit - 2)
    hi = torch.maximum((centre + half).clamp(max=limit), lo + 2)
    return torch.cat([lo, hi], 1).to(device=boxes.device, dtype=boxes.dtype)


def load_box_errors(path: str | Path) -> np.ndarray:
    """The ``(N, 4)`` box-edge errors of an .npy written by ``anonreid bench redaction --save-errors``
    (left, top, right, bottom, as fractions of the true box's width and height); a clear error naming the
    file when it is missing, empty, of another shape or not finite."""
    path = Path(path)
    try:
        errors = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: data.redact_box_errors cannot be read as an .npy ({exc})") from None
    if errors.ndim != 2 or errors.shape[1] != 4 or len(errors) == 0:
        raise ValueError(f"{path}: data.redact_box_errors must hold (N, 4) box-edge errors, got shape {errors.shape}")
    if not np.issubdtype(errors.dtype, np.floating) or not np.isfinite(errors).all():
        raise ValueError(f"{path}: data.redact_box_errors must be finite floats, got {errors.dtype} with non-finite rows")
    return errors.astype(np.float64)


def _edge_scale(boxes: np.ndarray) -> np.ndarray:
    """``(N, 4)`` (width, height, width, height) of boxes ``(N, 4)``: what each edge's error is a fraction of."""
    return np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)


def edge_errors(boxes: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``(N, 4)`` errors of ``boxes`` against ``truth`` (both ``(N, 4)`` x1, y1, x2, y2): left and right
    edges as fractions of the true width, top and bottom of the true height; positive is right / down.
    :func:`resample_box_errors` applies them."""
    b, g = np.asarray(boxes, np.float64).reshape(-1, 4), np.asarray(truth, np.float64).reshape(-1, 4)
    return (b - g) / np.maximum(_edge_scale(g), 1e-9)


def resample_box_errors(boxes: np.ndarray, errors: np.ndarray, rng: np.random.Generator,
                        hw: Sequence[int]) -> np.ndarray:
    """Boxes ``(N, 4)`` each moved by one row of measured edge ``errors`` (:func:`edge_errors`, read by
    :func:`load_box_errors`), drawn from ``rng``: a detector's own boxes, its tail included (boxes that span
    a neighbour, or start below the head), where :func:`jitter_boxes` draws a bounded uniform error. Kept
    on the ``hw`` grid and at least 2 pixels wide and high; a NaN box stays NaN."""
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    moved = b + errors[rng.integers(0, len(errors), len(b))] * _edge_scale(b)
    limit = np.array([hw[1], hw[0]], np.float64)
    lo = np.minimum(moved[:, :2].clip(min=0), limit - 2)
    hi = np.maximum(np.minimum(moved[:, 2:], limit), lo + 2)
    return np.concatenate([lo, hi], axis=1).astype(np.asarray(boxes).dtype)


def dataset_fingerprint(data_dir: str | Path) -> str:
    """sha256 over world.json and the size of world.h5: identifies the dataset a model was trained on."""
    data_dir = Path(data_dir)
    h = hashlib.sha256()
    for name in ("world.json", "world.h5"):
        path = data_dir / name
        if not path.exists():
            raise FileNotFoundError(f"{path}: not a world dataset directory (run `anonreid world simulate`)")
        h.update(path.read_bytes() if name.endswith(".json") else str(path.stat().st_size).encode())
    return h.hexdigest()[:16]


def _tile_origin(center: float, size: int, extent: int) -> int:
    if size >= extent:
        return 0
    return int(np.clip(round(center - size / 2), 0, extent - size))


def _select_clips(boxes: np.ndarray, cfg: DataCfg) -> list[int]:
    n = len(boxes)
    ok = np.isfinite(boxes).all(1)
    ok &= (boxes[:, 3] - boxes[:, 1] >= cfg.min_box_hw[0]) & (boxes[:, 2] - boxes[:, 0] >= cfg.min_box_hw[1])
    starts = [k for k in range(0, n - cfg.clip_len + 1, cfg.clip_stride) if ok[k : k + cfg.clip_len].all()]
    if len(starts) > cfg.max_clips_per_pass:
        keep = np.unique(np.linspace(0, len(starts) - 1, cfg.max_clips_per_pass).round().astype(int))
        starts = [starts[i] for i in keep]
    return starts


def build_clips(
    world: Any,
    identities: Sequence[str],
    cfg: DataCfg,
    cache_dir: str | Path | None = None,
    fingerprint: str = "",
    max_clips_per_pass: int | None = None,
    progress: bool = True,
    event_transform: Any = None,
) -> ClipSet:
    """Clips of every pass of ``identities`` in a :class:`anonreid.events.world.WorldDataset`.

    Labels index ``sorted(identities)``. With ``cache_dir`` the arrays are written there once (keyed by
    ``fingerprint`` (see :func:`dataset_fingerprint`), the data config and the identity set) and
    memory-mapped afterwards. ``event_transform`` (events -> events, e.g. the encryption baselines of
    :mod:`anonreid.events.encryption`) is applied to each pass before voxelisation; its ``repr`` is part
    of the cache key.
    """
    from anonreid.events.voxel import voxelize_windows_torch

    identities = sorted(identities)
    if max_clips_per_pass is not None:
        cfg = cfg.model_copy(update={"max_clips_per_pass": max_clips_per_pass})
    box_errors = load_box_errors(cfg.redact_box_errors) if cfg.redact_head > 0 and cfg.redact_box_errors else None
    key_src = json.dumps(
        {"data": cfg.model_dump(mode="json", exclude=cfg.cache_exclude()), "ids": identities, "world": fingerprint,
         **({"box_errors": hashlib.sha256(box_errors.tobytes()).hexdigest()} if box_errors is not None else {}),
         **({"transform": repr(event_transform)} if event_transform is not None else {})}, sort_keys=True
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    cache = Path(cache_dir) / key if cache_dir is not None else None
    if cache is not None and (cache / "done").exists():
        arrays = {n: np.load(cache / f"{n}.npy", mmap_mode="r") for n in _ARRAYS}
        return ClipSet(**arrays, identities=json.loads((cache / "identities.json").read_text()))

    id_index = {ident: i for i, ident in enumerate(identities)}
    sensor = world.sensor
    th, tw = cfg.tile_hw if cfg.tile_hw is not None else (sensor.height, sensor.width)
    passes = [(i, p) for i, p in enumerate(world.passes) if p.identity in id_index]
    if not passes:
        raise ValueError(f"dataset {fingerprint}: no passes for identities {identities[:5]}...")
    chunks: dict[str, list[np.ndarray]] = {n: [] for n in _ARRAYS}
    iterator = _progress(passes, "clips", progress)
    for pass_idx, info in iterator:
        data = world.load_pass(info.pass_id)
        boxes = np.asarray(data.boxes, dtype=np.float32)
        starts = _select_clips(boxes, cfg)
        if not starts:
            continue
        win = np.array([k + j for k in starts for j in range(cfg.clip_len)])
        uniq = np.unique(win)  # windows shared by overlapping clips are voxelised once
        events = data.events if event_transform is None else event_transform(data.events)
        if cfg.redact_head > 0:
            events = _redact_heads(events, data.frame_ts, boxes, cfg, pass_idx, sensor, box_errors)
        vox = voxelize_windows_torch(
            events, np.asarray(data.frame_ts)[uniq], cfg.window_us, cfg.num_bins, sensor.height, sensor.width
        ).numpy()[np.searchsorted(uniq, win)]
        vox = vox.reshape(len(starts), cfg.clip_len, cfg.num_bins, sensor.height, sensor.width)
        for c, k in enumerate(starts):
            last = boxes[k + cfg.clip_len - 1]
            y0 = _tile_origin((last[1] + last[3]) / 2, th, sensor.height)
            x0 = _tile_origin((last[0] + last[2]) / 2, tw, sensor.width)
            v = np.zeros((cfg.clip_len, cfg.num_bins, th, tw), np.float16)
            f = np.zeros((cfg.clip_len, th, tw), np.uint8)
            part_v = vox[c, :, :, y0 : y0 + th, x0 : x0 + tw]
            part_f = np.asarray(data.frames[k : k + cfg.clip_len, y0 : y0 + th, x0 : x0 + tw])
            v[..., : part_v.shape[-2], : part_v.shape[-1]] = part_v
            f[..., : part_f.shape[-2], : part_f.shape[-1]] = part_f
            chunks["voxels"].append(v[None])
            chunks["frames"].append(f[None])
            chunks["boxes"].append((last - np.array([x0, y0, x0, y0], np.float32))[None])
        count = len(starts)
        chunks["labels"].append(np.full(count, id_index[info.identity], np.int64))
        chunks["cameras"].append(np.full(count, _camera_index(info.camera), np.int64))
        chunks["passes"].append(np.full(count, pass_idx, np.int64))
    if not chunks["labels"]:
        raise ValueError(f"dataset {fingerprint}: no clip with the person visible for {len(identities)} identities")
    arrays = {n: np.concatenate(chunks[n]) for n in _ARRAYS}
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        for n, a in arrays.items():
            np.save(cache / f"{n}.npy", a)
        (cache / "identities.json").write_text(json.dumps(identities))
        (cache / "done").write_text(key_src)
        arrays = {n: np.load(cache / f"{n}.npy", mmap_mode="r") for n in _ARRAYS}
    log.info("built %d clips of %d identities (tile %dx%d)", len(arrays["labels"]), len(identities), th, tw)
    return ClipSet(**arrays, identities=identities)


def _redact_heads(events: np.ndarray, frame_ts: Any, boxes: np.ndarray, cfg: DataCfg, pass_idx: int,
                  sensor: Any, box_errors: np.ndarray | None = None) -> np.ndarray:
    """A pass's events without its head bands (:func:`anonreid.events.redaction.redact_pass`), cut from
    the world's boxes moved like a detector's: by rows of a camera's measured ``box_errors`` when given,
    else jittered (seeded by the pass, so a cache rebuild is identical)."""
    from anonreid.events.redaction import redact_pass

    rng = np.random.default_rng([2024, pass_idx])
    hw = (sensor.height, sensor.width)
    detected = (resample_box_errors(boxes, box_errors, rng, hw) if box_errors is not None
                else jitter_boxes(torch.from_numpy(boxes), cfg.redact_jitter, rng, hw).numpy())
    return redact_pass(events, np.asarray(frame_ts), cfg.window_us, detected, cfg.redact_head, cfg.redact_margin)


def _camera_index(camera: str) -> int:
    digits = "".join(ch for ch in str(camera) if ch.isdigit())
    return int(digits) - 1 if digits else 0


def _progress(items: list, what: str, enabled: bool) -> Any:
    if not enabled:
        return items
    from rich.progress import track

    return track(items, description=f"building {what}", transient=True)


def split_identities(world: Any, cfg: DataCfg) -> tuple[list[str], list[str]]:
    """(training identities, validation identities): the world's train split, and either its test split
    or ``val_identities`` held out of the train split (for runs that must not see test identities)."""
    train = sorted(world.identities("train"))
    if cfg.val_identities:
        return train[: -cfg.val_identities], train[-cfg.val_identities :]
    return train, sorted(world.identities("test"))


def random_clips(cfg: DataCfg, identities: int = 8, per_identity: int = 4, cameras: int = 4, seed: int = 0) -> ClipSet:
    """A clip set of the config's shapes filled with random voxels/frames (benchmarks and smoke tests:
    the shapes and the code path are real, the content is not)."""
    rng = np.random.default_rng(seed)
    th, tw = cfg.tile_hw if cfg.tile_hw is not None else (240, 320)
    m = identities * per_identity
    bh, bw = min(th, max(cfg.crop_hw[0], th * 3 // 4)), min(tw, max(cfg.crop_hw[1], tw // 3))
    y0, x0 = (th - bh) / 2, (tw - bw) / 2
    return ClipSet(
        voxels=rng.standard_normal((m, cfg.clip_len, cfg.num_bins, th, tw)).astype(np.float16),
        frames=rng.integers(0, 256, (m, cfg.clip_len, th, tw), dtype=np.uint8),
        boxes=np.tile(np.array([[x0, y0, x0 + bw, y0 + bh]], np.float32), (m, 1)),
        labels=np.repeat(np.arange(identities), per_identity),
        cameras=np.tile(np.arange(per_identity) % cameras, identities),
        passes=np.arange(m),
        identities=[f"{i + 1:03d}" for i in range(identities)],
    )


def pk_index(rng: np.random.Generator, labels: np.ndarray, p: int, k: int) -> np.ndarray:
    """P identities x K clips (with replacement when an identity has fewer than K)."""
    ids = np.unique(labels)
    chosen = rng.choice(ids, size=min(p, len(ids)), replace=False)
    out = [rng.choice(np.flatnonzero(labels == i), size=k, replace=int((labels == i).sum()) < k) for i in chosen]
    return np.concatenate(out)


def uniform_index(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    return rng.choice(n, size=size, replace=n < size)
