"""``anonreid bench association``: cross-camera association quality under several gallery settings.

1. Record: every camera of the demo runs its :class:`~anonreid.nodes.camera.CameraNode` on the live
   world for ``--seconds`` of stream, as fast as it goes (no Ray), publishing into a recorder. Kept:
   the sightings (what the gallery would receive) and the node's ground-truth observations (one per
   ground-truth box or detection and window, with the sighting that covered it).
2. Replay: the recorded sightings go into the gallery's own association (:class:`~anonreid.gallery.
   core.Gallery` on an embedded Redis, the live world's camera graph as its links, as in the demo) in
   the order a real-time run would publish them (by the end of their span), once per similarity
   threshold; IDF1 over the camera network and purity are computed from the final identities, as the
   demo's summary computes them.
3. References on the same recording: ``oracle`` links every sighting to the person most of its boxes
   belong to (perfect association: what detection and tracking leave possible); ``separate`` gives
   every tracklet its own identity (no cross-camera association at all); ``hindsight`` clusters whole
   tracklets offline (average linkage over their box-weighted mean embeddings, no constraints) at the
   cosine cut that scores best, i.e. chosen with the ground truth: what the embeddings allow when every
   tracklet is complete, an optimistic reference for online association, which decides on a
   tracklet's first sighting (``idf1_per_cut`` keeps every cut's IDF1, so one cut fixed for every world can be
   compared too); ``tracklet_oracle`` gives each whole tracklet its majority person (the
   most linking tracklets can reach). Each replay row breaks its loss down (``losses``: IDF1 without
   fragmentation, without false merges, and both per camera pair:
   :mod:`~anonreid.orchestration.bench.association_losses`).

The recording depends on the models and the world, not on the gallery settings, so the sweep shows
which threshold suits the models a site runs, and how far association is from the oracle. Recording is
the expensive step: ``--save-recording FILE`` keeps it (gzipped JSON lines: a header with the model
version and the world settings, then the sightings' protobufs and the ground-truth observations) and
``--recording FILE`` replays it instead of recording, refusing a file made with other models or on
another world. Each replay row also reports the corrections made (by kind) and the transit windows learned.
"""

from __future__ import annotations

import base64
import collections
import gzip
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from anonreid.orchestration.cli_common import ConfigOption, SetOption, resolve_config


def main(
    seconds: Annotated[float, typer.Option(help="stream seconds recorded per camera")] = 60.0,
    thresholds: Annotated[str, typer.Option(help="comma-separated similarity thresholds to replay")] = "0.4,0.5,0.6,0.7,0.8",
    json_path: Annotated[Path | None, typer.Option("--json", help="write the result here")] = None,
    save_recording: Annotated[Path | None, typer.Option(
        help="also write the recording (sightings + ground truth) here, to replay it later with --recording")] = None,
    recording_path: Annotated[Path | None, typer.Option(
        "--recording", help="replay this saved recording instead of recording (same models and world, else an "
                            "error); --seconds is then the recording's")] = None,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Record four cameras' sightings once, replay them through the gallery's association per threshold."""
    cfg = resolve_config(config, set_)
    try:
        values = [float(x) for x in thresholds.split(",") if x.strip()]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated numbers, got {thresholds!r}", param_hint="--thresholds") from None
    if not values or any(not -1.0 <= v <= 1.0 for v in values):
        raise typer.BadParameter(f"thresholds are cosine similarities in [-1, 1], got {thresholds!r}",
                                 param_hint="--thresholds")
    t0 = time.perf_counter()
    if recording_path is not None:
        try:
            recording = load_recording(recording_path, cfg)
        except RecordingMismatch as exc:
            raise typer.BadParameter(str(exc), param_hint="--recording") from None
        seconds = recording["seconds"]
    else:
        recording = record(cfg, seconds)
    record_s = time.perf_counter() - t0
    if save_recording is not None:
        save(save_recording, recording, cfg, seconds)
    result = evaluate(cfg, recording, values)
    result.update({"bench": "association", "seconds": seconds, "world_seed": cfg.world.seed,
                   "model_version": recording["model_version"],
                   ("replayed_from" if recording_path is not None else "record_s"):
                       str(recording_path) if recording_path is not None else round(record_s, 1)})
    text = json.dumps(result, indent=2)
    typer.echo(text)
    if json_path is not None:
        json_path.write_text(text + "\n")


RECORDING_FORMAT = "anonreid-association-recording/1"


class RecordingMismatch(ValueError):
    """A saved recording that does not belong to the models or the world configured now."""


def save(path: Path, recording: dict[str, Any], cfg: Any, seconds: float) -> None:
    """Write ``recording`` as gzipped JSON lines: a header (format, model version, world, cameras,
    seconds), then one line per sighting (its protobuf, base64) and one per ground-truth observation."""
    header = {"format": RECORDING_FORMAT, "model_version": recording["model_version"], "world_seed": cfg.world.seed,
              "world": cfg.world.model_dump(mode="json"), "cameras": list(cfg.demo.cameras), "seconds": seconds,
              "sightings": len(recording["sightings"]), "observations": len(recording["observations"])}
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(json.dumps(header) + "\n")
        for s in recording["sightings"]:
            f.write(json.dumps({"s": base64.b64encode(s.SerializeToString()).decode()}) + "\n")
        for g, sid in recording["observations"]:
            f.write(json.dumps({"o": [g, sid]}) + "\n")


def load_recording(path: Path, cfg: Any) -> dict[str, Any]:
    """A recording written by :func:`save`; :class:`RecordingMismatch` when it was made with other models
    (model version) or another world (seed or any world setting) than ``cfg``'s."""
    from anonreid.models.bundle import load_model_bundle
    from anonreid.proto.v1 import sighting_pb2

    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline())
            rows = [json.loads(line) for line in f]
    except (OSError, EOFError, json.JSONDecodeError) as exc:
        raise RecordingMismatch(f"{path}: not a readable association recording ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != RECORDING_FORMAT:
        raise RecordingMismatch(f"{path}: not an association recording (format "
                                f"{header.get('format') if isinstance(header, dict) else None!r}, "
                                f"expected {RECORDING_FORMAT!r})")
    if header["world_seed"] != cfg.world.seed:
        raise RecordingMismatch(f"{path} was recorded on world seed {header['world_seed']}, the configuration "
                                f"has world.seed={cfg.world.seed} (pass --set world.seed={header['world_seed']})")
    world = cfg.world.model_dump(mode="json")  # settings newer than the recording are not compared
    differ = sorted(k for k in header["world"] if world.get(k) != header["world"][k])
    if differ:
        raise RecordingMismatch(f"{path} was recorded on another world: world.{differ[0]} "
                                f"{header['world'].get(differ[0])!r} there, {world.get(differ[0])!r} configured")
    if header["cameras"] != list(cfg.demo.cameras):
        raise RecordingMismatch(f"{path} holds cameras {header['cameras']}, demo.cameras is {list(cfg.demo.cameras)}")
    version = str(load_model_bundle(cfg.camera.model_dir or None).version)
    if header["model_version"] != version:
        raise RecordingMismatch(f"{path} was recorded with models {header['model_version']!r}, the configured "
                                f"camera.model_dir loads {version!r}: record it again")
    sightings = [sighting_pb2.Sighting.FromString(base64.b64decode(r["s"])) for r in rows if "s" in r]
    observations = [tuple(r["o"]) for r in rows if "o" in r]
    if len(sightings) != header["sightings"] or len(observations) != header["observations"]:
        raise RecordingMismatch(f"{path} is truncated: {len(sightings)} sightings and {len(observations)} "
                                f"observations, its header says {header['sightings']} and {header['observations']}")
    return {"sightings": sightings, "observations": observations, "model_version": version,
            "seconds": header["seconds"]}


class _Recorder:
    """Stands in for the gallery client: keeps the published sightings, acknowledges them at once."""

    def __init__(self) -> None:
        self.sightings: list[Any] = []

    def publish(self, batch: list[Any]) -> list[Any]:
        from anonreid.gallery.types import Ack

        self.sightings.extend(batch)
        return [Ack(s.sighting_id, "", False, 0.0, False) for s in batch]


def record(cfg: Any, seconds: float) -> dict[str, Any]:
    """Every demo camera's sightings (protobuf) and ground-truth observations over ``seconds``."""
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import LiveWorldSource, SourceSpec

    sightings: list[Any] = []
    observations: list[tuple[str | None, str | None]] = []
    version = ""
    for camera in cfg.demo.cameras:
        source = LiveWorldSource(SourceSpec(kind="live", camera_id=camera, realtime=False, start_us=0,
                                            end_us=int(seconds * 1e6), world=cfg.world.model_dump(),
                                            packet_us=cfg.camera.packet_us))
        recorder = _Recorder()
        node = CameraNode(camera, source.sensor, cfg.camera, cfg.events, gallery=recorder,
                          ground_truth=source.ground_truth, window_t0_us=source.window_t0_us)
        try:
            for packet in source.packets():
                node.push(packet)
                node.process_pending()
            node.end_of_stream()
            node.process_pending()
            node.finish(timeout=30)
        finally:
            node.close()
        sightings.extend(recorder.sightings)
        observations.extend(node.observations)
        version = node.model_version
    return {"sightings": sightings, "observations": observations, "model_version": version}


def evaluate(cfg: Any, recording: dict[str, Any], thresholds: list[float]) -> dict[str, Any]:
    """Replay per threshold, plus the oracle and no-association bounds (see the module doc)."""
    from anonreid.gallery.core import Gallery
    from anonreid.gallery.servicer import sighting_from_pb
    from anonreid.gallery.store import GalleryStore
    from anonreid.models.evaluation.association_metrics import identity_scores
    from anonreid.orchestration.bench.association_losses import losses, tracklet_persons, tracklet_spans
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.demo import world_gallery_config
    from anonreid.orchestration.redis_service import RedisService

    observations = recording["observations"]
    sightings = sorted(recording["sightings"], key=lambda s: (s.span.end_us, s.camera_id, s.sighting_id))
    gt = [g for g, _ in observations]
    votes: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for g, sid in observations:
        if g is not None and sid is not None:
            votes[sid][g] += 1
    person = {sid: c.most_common(1)[0][0] for sid, c in votes.items()}
    tracklet = {s.sighting_id: f"{s.camera_id}/{s.tracklet_id}" for s in sightings}

    def scores(identity_of: dict[str, str]) -> dict[str, Any]:
        pred = [None if sid is None else identity_of.get(sid) for _, sid in observations]
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in identity_scores(gt, pred).as_dict().items()}

    who = tracklet_persons(observations, tracklet)
    spans = tracklet_spans(sightings, tracklet)
    truth = sum(g is not None for g in gt)
    covered = sum(g is not None and sid is not None for g, sid in observations)
    out: dict[str, Any] = {
        "sightings": len(sightings),
        "tracklets": len(set(tracklet.values())),
        "ground_truth_observations": truth,
        "covered_by_a_sighting": round(covered / max(truth, 1), 4),
        # a sighting no ground-truth box votes for is a false detection's: its own identity
        "oracle": scores({sid: person.get(sid, f"false:{sid}") for sid in tracklet}),
        "separate": scores(tracklet),
        "hindsight": _hindsight(sightings, tracklet, scores),
        "tracklet_oracle": scores({sid: who[key] for sid, key in tracklet.items()}),
        "thresholds": [],
    }
    tmp = tempfile.mkdtemp(prefix="anonreid-bench-association-")
    service = RedisService(RedisConfig(embedded_dir=tmp)).start()
    try:
        client = service.client()
        for threshold in thresholds:
            client.flushdb()
            gcfg = world_gallery_config(cfg).model_copy(update={"similarity_threshold": threshold})
            gallery = Gallery(gcfg, GalleryStore(client, gcfg.redis_prefix, gcfg.embedding_dim))
            for s in sightings:
                gallery.ingest(sighting_from_pb(s))
            final = {sid: gallery.sighting(sid).identity_id for sid in tracklet}
            corrections = {kind: int(gallery.metrics.value("anonreid_gallery_identity_corrections_total", kind=kind))
                           for kind in ("split", "detach", "merge", "move")}
            out["thresholds"].append({"threshold": threshold, "identities": len(set(final.values())),
                                      "scores": scores(final), "corrections": corrections,
                                      "losses": losses(observations, spans, tracklet, final, scores),
                                      "transit_learned": gallery.transit.learned()})
    finally:
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    best = max(out["thresholds"], key=lambda r: r["scores"]["idf1"])
    out["best_threshold"] = best["threshold"]
    out["configured_threshold"] = cfg.gallery.similarity_threshold
    return out


#: the cosine distances (1 - similarity) at which the hindsight reference cuts its tree
HINDSIGHT_CUTS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8)


def _hindsight(sightings: list[Any], tracklet: dict[str, str], scores: Any) -> dict[str, Any]:
    """Offline average-linkage clustering of tracklets at the best of a few cosine cuts (module doc), with
    the IDF1 at every cut (``idf1_per_cut``: what one cut fixed for every world gives)."""
    import numpy as np
    from scipy.cluster.hierarchy import fcluster, linkage

    keys = sorted(set(tracklet.values()))
    if len(keys) < 2:
        return {"cut": None, "clusters": len(keys), "scores": scores(tracklet)}
    row = {k: i for i, k in enumerate(keys)}
    sums = np.zeros((len(keys), len(sightings[0].embedding)), np.float64)
    for s in sightings:
        sums[row[tracklet[s.sighting_id]]] += max(s.box.num_boxes, 1) * np.asarray(s.embedding, np.float64)
    sums /= np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    tree = linkage(sums, method="average", metric="cosine")
    best: dict[str, Any] | None = None
    per_cut: dict[str, float] = {}
    for cut in HINDSIGHT_CUTS:
        labels = fcluster(tree, cut, criterion="distance")
        cluster = {sid: f"c{labels[row[t]]}" for sid, t in tracklet.items()}
        candidate = {"cut": cut, "clusters": len(set(labels)), "scores": scores(cluster)}
        per_cut[str(cut)] = candidate["scores"]["idf1"]
        if best is None or candidate["scores"]["idf1"] > best["scores"]["idf1"]:
            best = candidate
    assert best is not None
    return {**best, "idf1_per_cut": per_cut}
