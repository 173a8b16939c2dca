"""``anonreid bench redaction``: how often the camera's own detector and tracker cover a true face with
the head redaction (events/redaction.py).

The camera node (its real detector, tracker, segment book and batching) runs each live-world camera for
``--seconds`` with the bundle's models and a head redaction of ``(--head, --margin)``. Every window it
voxelises (those whose anonymized output feeds an embedding, an audit sample or the console tile:
everything that leaves the camera) is checked against the world's ground truth: for each person in
view, the events of their face box (``models.data.face_boxes``, the evaluation's face crop) with and
without the redaction. A face the detector missed, or that a poor box left half in view, counts
against the redaction.

It also measures what the redaction's geometry has to absorb: for every true person in those windows,
the camera box (detection or live track) that overlaps it most, and its edges' errors as fractions of
the true box's size, beside the same errors of the boxes the training and evaluation clips cut their
band from (the world's boxes jittered by ``data.redact_jitter``, models.data.jitter_boxes). A clip
jitter that is milder than the camera's real errors makes the evaluation's coverage look better than
the live camera's. ``--save-errors FILE.npy`` keeps the camera's errors, one row per box, for the clips
to draw their boxes from (``data.redact_box_errors``, models.data.resample_box_errors).

Faces of consecutive windows of one crossing are not independent, so the counts carry no interval.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from anonreid.models.config import DataCfg
from anonreid.orchestration import cli_common

#: the quantiles reported of each box-edge error
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
#: a camera box overlapping a true person less than this is no box for it (a missed person)
MIN_IOU = 0.1
#: a face with more than this share of its pixels still firing after the redaction is a heavy leak
HEAVY = 0.25


def heavy_leak(start_us: int, true_box: np.ndarray, camera_box: np.ndarray | None, iou: float,
               firing_without: float, left: float) -> dict[str, Any]:
    """One heavy leak as the JSON lists it: the window, the true person box and the camera box that
    overlapped it most (None: no camera box reached :data:`MIN_IOU`, a missed person), their overlap, the
    camera box's width over height (the column rule's ``camera.redact_columns_min_aspect`` applies from
    its value up) and the camera box's edge errors as fractions of the true box (+ is right or down)."""
    from anonreid.models.data import edge_errors

    out: dict[str, Any] = {"window_start_us": int(start_us), "true_box": [round(float(v), 1) for v in true_box],
                           "camera_box": None, "iou": round(iou, 3), "aspect": None, "edge_errors": None,
                           "face_firing_without": round(firing_without, 3), "face_left": round(left, 3)}
    if camera_box is not None:
        x1, y1, x2, y2 = (float(v) for v in camera_box)
        out.update(camera_box=[round(v, 1) for v in (x1, y1, x2, y2)], aspect=round((x2 - x1) / max(y2 - y1, 1e-6), 3),
                   edge_errors=[round(float(v), 3) for v in edge_errors(camera_box[None], true_box[None])[0]])
    return out


def error_summary(errors: np.ndarray) -> dict[str, list[float]]:
    """The :data:`QUANTILES` of each edge's error (``errors`` as models.data.edge_errors gives them)."""
    e = np.asarray(errors, np.float64).reshape(-1, 4)
    return {edge: [round(float(q), 4) for q in np.quantile(e[:, i], QUANTILES)] if len(e) else []
            for i, edge in enumerate(("left", "top", "right", "bottom"))}


def firing_share(voxels: np.ndarray) -> float:
    """The share of the pixels of a voxel grid ``(bins, H, W)`` with any event."""
    return float((np.abs(voxels).sum(0) > 0).mean())


def face_coverage(cfg: Any, camera: str, seconds: float, redaction: tuple[float, float],
                  run: Path | None = None, clip_jitter: float | None = DataCfg().redact_jitter,
                  seed: int = 0) -> dict[str, Any]:
    """One camera's count of true faces in the windows it voxelises: firing without the redaction, fully
    redacted with it (all of them, and of those that fired), the share of the firing face pixels still
    firing, the mean share of face pixels still firing, and how many keep over a quarter; and the camera
    boxes' edge errors against the true person boxes (models.data.edge_errors), with the true boxes and
    the faces left firing split by whether a camera box covered the person at all. The same windows are
    also redacted as the clips are, around the true boxes jittered by ``clip_jitter`` (drawn from
    ``seed``), so the two coverages compare like for like (None: not done, no ``clip_boxes``)."""
    import torch

    from anonreid.events.detection import box_iou
    from anonreid.models.bundle import load_model_bundle
    from anonreid.models.data import edge_errors, face_boxes, jitter_boxes
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import SourceSpec, open_source

    bundle = dataclasses.replace(load_model_bundle(run), redaction=redaction)
    src = open_source(SourceSpec(kind="live", camera_id=camera, realtime=False, world=cfg.world.model_dump(),
                                 end_us=int(seconds * 1e6), packet_us=cfg.camera.packet_us))
    node = CameraNode(camera, src.sensor, cfg.camera.model_copy(update={"metrics_port": 0}), cfg.events,
                      models=bundle, ground_truth=src.ground_truth, window_t0_us=src.window_t0_us)
    voxelize = node.inference.voxelize
    plain: list[float] = []  # per true face: the share of its pixels with events, without / with redaction
    left: list[float] = []
    left_clip: list[float] = []  # the same, redacted around the clips' jittered true boxes
    errors: list[np.ndarray] = []  # per true person with a camera box: its edge errors
    clip_errors: list[np.ndarray] = []  # per true person: the edge errors of its clip box
    rng = np.random.default_rng(seed)
    boxed: list[bool] = []  # per true face: whether a camera box overlapped its person
    heavy: list[dict[str, Any]] = []  # per face left over a quarter firing: where, and the box it had

    def measured(batch: list[Any], positions: set[int], people: Any = None) -> dict[int, np.ndarray]:
        out = voxelize(batch, positions, people)
        unredacted = voxelize(batch, positions, {})  # no person boxes: nothing to redact
        for pos in out:
            truth = node.ground_truth.reference(batch[pos].start_us)
            if truth is None:
                continue
            gt = np.asarray(truth.boxes, np.float64).reshape(-1, 4)
            cam = np.asarray((people or {}).get(pos, []), np.float64).reshape(-1, 4)
            iou = box_iou(gt, cam) if len(cam) and len(gt) else np.zeros((len(gt), 0))
            best = iou.argmax(1) if iou.shape[1] else np.zeros(len(gt), int)
            has_box = iou.max(1) >= MIN_IOU if iou.shape[1] else np.zeros(len(gt), bool)
            as_clip = unredacted[pos]
            if clip_jitter is not None and len(gt):
                clip = jitter_boxes(torch.from_numpy(gt), clip_jitter, rng, (node.sensor.height, node.sensor.width)).numpy()
                clip_errors.append(edge_errors(clip, gt))
                columns, node.inference.columns_min_aspect = node.inference.columns_min_aspect, None
                try:  # the clips' band: the boxes' own band only (no column rule, as training cuts it)
                    as_clip = voxelize([batch[pos]], {0}, {0: [tuple(b) for b in clip.astype(np.float32)]})[0]
                finally:
                    node.inference.columns_min_aspect = columns
            if has_box.any():
                errors.append(edge_errors(cam[best[has_box]], gt[has_box]))
            for i, (x1, y1, x2, y2) in enumerate(face_boxes(gt).round().astype(int).clip(0)):
                if x2 > x1 and y2 > y1:
                    face = (slice(None), slice(y1, y2), slice(x1, x2))
                    plain.append(firing_share(unredacted[pos][face]))
                    left.append(firing_share(out[pos][face]))
                    left_clip.append(firing_share(as_clip[face]))
                    boxed.append(bool(has_box[i]))
                    if left[-1] > HEAVY:
                        heavy.append(heavy_leak(batch[pos].start_us, gt[i], cam[best[i]] if has_box[i] else None,
                                                float(iou[i].max()) if iou.shape[1] else 0.0, plain[-1], left[-1]))
        return out

    node.inference.voxelize = measured  # type: ignore[method-assign]
    try:
        node.run(src.packets(), backpressure=True)  # no window dropped
    finally:
        node.close()
    p, a, c, k = np.array(plain), np.array(left), np.array(left_clip), np.array(boxed, bool)
    leaking = (p > 0) & (a > 0)
    clip_boxes = {} if clip_jitter is None else {"clip_boxes": {
        "firing_faces_fully_redacted": int(((p > 0) & (c == 0)).sum()), "faces_over_25pct_left": int((c > HEAVY).sum()),
        "face_pixels_left_of_firing": float(c.sum() / p.sum()) if p.sum() else None}}
    return {"camera": camera, "faces": len(a), "firing_without_redaction": int((p > 0).sum()),
            "fully_redacted": int((a == 0).sum()), "firing_faces_fully_redacted": int(((p > 0) & (a == 0)).sum()),
            "faces_over_25pct_left": int((a > HEAVY).sum()), "heavy_leaks": heavy,
            "face_pixels_left_of_firing": float(a.sum() / p.sum()) if p.sum() else None,
            "mean_share_left": float(a.mean()) if len(a) else None,
            "mean_share_firing_without": float(p.mean()) if len(p) else None,
            "leaking_faces_with_a_box": int((leaking & k).sum()), "leaking_faces_without_a_box": int((leaking & ~k).sum()),
            **clip_boxes,
            "_errors": np.concatenate(errors) if errors else np.zeros((0, 4)),
            "_clip_errors": np.concatenate(clip_errors) if clip_errors else np.zeros((0, 4))}


def main(
    seconds: Annotated[float, typer.Option(min=0.5, help="seconds of each live-world camera")] = 120.0,
    head: Annotated[float, typer.Option(min=0.01, max=1.0, help="head band: top fraction of the person box")] = 0.2,
    margin: Annotated[float, typer.Option(min=0.0, max=0.5, help="head band: widened by this fraction")] = 0.1,
    clip_jitter: Annotated[float, typer.Option(min=0.0, max=0.49, help="the clips' box jitter to compare the "
                                               "camera's box errors with (data.redact_jitter)")] = DataCfg().redact_jitter,
    cameras: Annotated[str, typer.Option(help="comma-separated cameras (default: the demo's)")] = "",
    run: Annotated[Path | None, typer.Option(help="training run whose models the camera runs (default: shipped)")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the JSON result to this file")] = None,
    save_errors: Annotated[Path | None, typer.Option(help="write the camera boxes' edge errors to this .npy, for the "
                                                          "clips' data.redact_box_errors")] = None,
    config: cli_common.ConfigOption = None,
    set_: cli_common.SetOption = None,
) -> None:
    """True faces the camera's head redaction removes, per live-world camera (JSON)."""
    cfg = cli_common.resolve_config(config, set_)
    t0 = time.perf_counter()
    names = [c.strip() for c in cameras.split(",") if c.strip()] or list(cfg.demo.cameras)
    per = [face_coverage(cfg, c, seconds, (head, margin), run, clip_jitter, seed) for seed, c in enumerate(names)]
    camera_err = np.concatenate([p.pop("_errors") for p in per])
    clip_err = np.concatenate([p.pop("_clip_errors") for p in per])
    faces = sum(p["faces"] for p in per)
    done = sum(p["fully_redacted"] for p in per)
    result = {"benchmark": "redaction", "head": head, "margin": margin,
              "columns_min_aspect": cfg.camera.redact_columns_min_aspect, "seconds_per_camera": seconds,
              "faces": faces, "firing_without_redaction": sum(p["firing_without_redaction"] for p in per),
              "fully_redacted": done, "fully_redacted_pct": round(100 * done / faces, 2) if faces else None,
              "firing_faces_fully_redacted": sum(p["firing_faces_fully_redacted"] for p in per),
              "faces_over_25pct_left": sum(p["faces_over_25pct_left"] for p in per),
              "leaking_faces_with_a_box": sum(p["leaking_faces_with_a_box"] for p in per),
              "leaking_faces_without_a_box": sum(p["leaking_faces_without_a_box"] for p in per),
              "heavy_leaks_without_a_box": sum(h["camera_box"] is None for p in per for h in p["heavy_leaks"]),
              "clip_boxes": {"clip_jitter": clip_jitter, **{
                  k: sum(p["clip_boxes"][k] for p in per) for k in ("firing_faces_fully_redacted", "faces_over_25pct_left")}},
              "box_errors": {"quantiles": list(QUANTILES), "camera": error_summary(camera_err),
                             "camera_boxes": len(camera_err), "clips": error_summary(clip_err)},
              "cameras": per,
              "wall_s": round(time.perf_counter() - t0, 1)}
    if save_errors is not None:
        np.save(save_errors, camera_err.astype(np.float32))
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
