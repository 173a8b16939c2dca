"""``anonreid bench camera``: one camera node's throughput per stage, and its detection / tracking quality.

The live world's packets for ``--seconds`` of one camera are rendered first (so the renderer's cost is
not counted), then fed to a :class:`~anonreid.nodes.camera.CameraNode` as fast as it takes them
(no gallery: sightings are built but not sent; no Redis, so no audit tap). Reported: windows/s,
real-time factor (stream seconds per pipeline second), mean milliseconds per window of every stage,
detection precision / recall at IoU 0.5 against the world's ground-truth boxes, single-camera
tracking IDF1 (tracklets vs ground-truth identities), and the device the models ran on
(``--set camera.device=cpu|cuda``). ``--architectures`` times random-initialised networks of other
sizes (the paper's ResNet-50 ReId, say) without training them first.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config


def main(
    seconds: Annotated[float, typer.Option(help="stream seconds to process")] = 20.0,
    camera: Annotated[str, typer.Option(help="camera of the live world")] = "cam1",
    start_s: Annotated[float, typer.Option(help="stream time to start at (people arrive over time)")] = 5.0,
    threads: Annotated[int, typer.Option(help="torch intra-op threads (the demo uses 1 per camera)")] = 1,
    architectures: Annotated[str, typer.Option(
        help="ANONYMIZER,REID: time random-initialised networks of these architectures instead of the "
             "configured weights (e.g. anonymizer_paper,reid_resnet50 for the paper's sizes)")] = "",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the result here")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Windows/s of one camera node per stage, plus detection and tracking quality vs ground truth."""

    cfg = resolve_config(config, set_)
    result = bench_camera(cfg, seconds, camera, start_s, threads, architectures)
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text)


def bench_camera(
    cfg: Any, seconds: float, camera: str, start_s: float, threads: int, architectures: str = ""
) -> dict[str, Any]:
    import torch

    from anonreid.models.bundle import random_model_bundle
    from anonreid.models.evaluation.association_metrics import identity_scores
    from anonreid.models.registry import list_models
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.metrics import STAGE_LATENCY, STAGES
    from anonreid.nodes.sources import LiveWorldSource, SourceSpec

    models = None
    if architectures:
        names = [a.strip() for a in architectures.split(",")]
        choices = (list_models("anonymizer"), list_models("reid"))
        if len(names) != 2 or names[0] not in choices[0] or names[1] not in choices[1]:
            raise typer.BadParameter(
                f"expected ANONYMIZER,REID with ANONYMIZER one of {', '.join(choices[0])} and REID one of "
                f"{', '.join(choices[1])}; got {architectures!r}", param_hint="--architectures")
        models = random_model_bundle(*names)
    start_us = int(start_s * 1e6)
    source = LiveWorldSource(
        SourceSpec(kind="live", camera_id=camera, realtime=False, start_us=start_us,
                   end_us=start_us + int(seconds * 1e6), world=cfg.world.model_dump(), packet_us=cfg.camera.packet_us)
    )
    t0 = time.perf_counter()
    packets = list(source.packets())
    render_s = time.perf_counter() - t0
    camera_cfg = cfg.camera.model_copy(update={"torch_threads": threads})
    node = CameraNode(
        camera, source.sensor, camera_cfg, cfg.events, ground_truth=source.ground_truth,
        window_t0_us=source.window_t0_us, models=models,
    )
    before = _stage_sums(STAGE_LATENCY, camera)
    t0 = time.perf_counter()
    for p in packets:
        node.push(p)
        node.process_pending()
    node.end_of_stream()
    node.process_pending()
    node.finish(timeout=0)
    wall = time.perf_counter() - t0
    after = _stage_sums(STAGE_LATENCY, camera)
    stats = node.stats()
    windows = max(stats["windows"], 1)
    obs = list(node.observations)
    tracking = identity_scores([g for g, _ in obs], [None if s is None else s.rsplit("-", 1)[0] for _, s in obs])
    return {
        "camera": camera,
        "stream_s": stats["stream_s"],
        "events": stats["events"],
        "windows": stats["windows"],
        "windows_per_s": stats["windows"] / wall,
        "realtime_factor": stats["stream_s"] / wall,
        "stage_ms_per_window": {s: 1e3 * (after.get(s, 0.0) - before.get(s, 0.0)) / windows for s in STAGES},
        "render_s": render_s,
        "detection": stats["detection"],
        "tracking": tracking.as_dict(),
        "torch_threads": threads,
        "device": str(node.device),
        "cuda": torch.cuda.get_device_name(0) if node.device.type == "cuda" else None,
        "resolution": f"{source.sensor.width}x{source.sensor.height}",
        "torch": torch.__version__,
        "model_version": stats["model_version"],
    }


def _stage_sums(histogram: Any, camera: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for metric in histogram.collect():
        for sample in metric.samples:
            if sample.name.endswith("_sum") and sample.labels.get("camera") == camera:
                out[sample.labels["stage"]] = sample.value
    return out
