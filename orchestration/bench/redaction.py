"""``anonreid bench redaction``: how often the camera's own detector and tracker cover a true face with
the head redaction (events/redaction.py).

The camera node (its real detector, tracker, segment book and batching) runs each live-world camera for
``--seconds`` with the bundle's models and a head redaction of ``(--head, --margin)``. Every window it
voxelises (those whose anonymized output feeds an embedding, an audit sample or the console tile:
everything that leaves the camera) is checked against the world's ground truth: for each person in
view, the events of their face box (``models.data.face_boxes``, the evaluation's face crop) with and
without the redaction. A face the detector missed, or that a poor box left half in view, counts
against the redaction.

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

from anonreid.orchestration import cli_common


def face_coverage(cfg: Any, camera: str, seconds: float, redaction: tuple[float, float],
                  run: Path | None = None) -> dict[str, Any]:
    """One camera's count of true faces in the windows it voxelises: firing without the redaction, fully
    redacted with it (all of them, and of those that fired), the share of the firing face pixels still
    firing, the mean share of face pixels still firing, and how many keep over a quarter."""
    from anonreid.models.bundle import load_model_bundle
    from anonreid.models.data import face_boxes
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

    def measured(batch: list[Any], positions: set[int], people: Any = None) -> dict[int, np.ndarray]:
        out = voxelize(batch, positions, people)
        unredacted = voxelize(batch, positions, {})  # no person boxes: nothing to redact
        for pos in out:
            truth = node.ground_truth.reference(batch[pos].start_us)
            for x1, y1, x2, y2 in face_boxes(truth.boxes).round().astype(int).clip(0) if truth else []:
                if x2 > x1 and y2 > y1:
                    plain.append(float((np.abs(unredacted[pos][:, y1:y2, x1:x2]).sum(0) > 0).mean()))
                    left.append(float((np.abs(out[pos][:, y1:y2, x1:x2]).sum(0) > 0).mean()))
        return out

    node.inference.voxelize = measured  # type: ignore[method-assign]
    try:
        node.run(src.packets(), backpressure=True)  # no window dropped
    finally:
        node.close()
    p, a = np.array(plain), np.array(left)
    return {"camera": camera, "faces": len(a), "firing_without_redaction": int((p > 0).sum()),
            "fully_redacted": int((a == 0).sum()), "firing_faces_fully_redacted": int(((p > 0) & (a == 0)).sum()),
            "faces_over_25pct_left": int((a > 0.25).sum()),
            "face_pixels_left_of_firing": float(a.sum() / p.sum()) if p.sum() else None,
            "mean_share_left": float(a.mean()) if len(a) else None,
            "mean_share_firing_without": float(p.mean()) if len(p) else None}


def main(
    seconds: Annotated[float, typer.Option(min=0.5, help="seconds of each live-world camera")] = 120.0,
    head: Annotated[float, typer.Option(min=0.01, max=1.0, help="head band: top fraction of the person box")] = 0.2,
    margin: Annotated[float, typer.Option(min=0.0, max=0.5, help="head band: widened by this fraction")] = 0.1,
    cameras: Annotated[str, typer.Option(help="comma-separated cameras (default: the demo's)")] = "",
    run: Annotated[Path | None, typer.Option(help="training run whose models the camera runs (default: shipped)")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="also write the JSON result to this file")] = None,
    config: cli_common.ConfigOption = None,
    set_: cli_common.SetOption = None,
) -> None:
    """True faces the camera's head redaction removes, per live-world camera (JSON)."""
    cfg = cli_common.resolve_config(config, set_)
    t0 = time.perf_counter()
    names = [c.strip() for c in cameras.split(",") if c.strip()] or list(cfg.demo.cameras)
    per = [face_coverage(cfg, c, seconds, (head, margin), run) for c in names]
    faces = sum(p["faces"] for p in per)
    done = sum(p["fully_redacted"] for p in per)
    result = {"benchmark": "redaction", "head": head, "margin": margin, "seconds_per_camera": seconds,
              "faces": faces, "firing_without_redaction": sum(p["firing_without_redaction"] for p in per),
              "fully_redacted": done, "fully_redacted_pct": round(100 * done / faces, 2) if faces else None,
              "firing_faces_fully_redacted": sum(p["firing_faces_fully_redacted"] for p in per),
              "faces_over_25pct_left": sum(p["faces_over_25pct_left"] for p in per), "cameras": per,
              "wall_s": round(time.perf_counter() - t0, 1)}
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")
