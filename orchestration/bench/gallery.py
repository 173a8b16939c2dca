"""``anonreid bench gallery``: publish throughput, search latency, index recall and restart time.

For each size N (default 10k, 100k, 1M entries):

1. N synthetic sightings (identity prototypes + noise, ten sightings per identity over the four cameras)
   are written to Redis through the gallery's own store (what the gallery would have written), and the
   same vectors go into a bare FAISS index of the same layout in this process ("FAISS alone");
2. a gallery server starts on that Redis with an empty snapshot directory and rebuilds its index and
   identity table from every record (timed: ``rebuild_s``; the ``auto`` index trains its IVF here from
   ``gallery.auto_ivf_min`` entries on), then writes its first index snapshot (timed: ``snapshot_write_s``);
3. publish: a camera process (another process, as in a deployment) streams new sightings over gRPC for
   ``--seconds``, in streams of 50 as a camera's publisher sends them; each is validated, associated
   (one FAISS search per arriving batch), written to Redis (one transaction per batch) and acknowledged.
   Twice, the same length each: first one sighting a message (``Publish``: ``publish_per_message``),
   then the stream's 50 in one message (``PublishBatches``, what cameras use: ``publish``), on the
   gallery the first phase grew. FAISS alone does the same batched search + add in this process;
4. search: query-by-example over gRPC, one at a time, for ``--seconds``; FAISS alone answers the same
   queries; p50 / p99 latency;
5. recall@10 of the gallery's index against exact search over its stored vectors, for new sightings;
6. restart: the server is stopped as a crash leaves it (no final snapshot) and started again on the same
   Redis and snapshot directory: snapshot + replay of the change log since it (the sightings published in
   step 3) (timed: ``restart_s``); then once more after a clean stop (``restart_clean_s``).

Once per run (``--real-seconds`` > 0): recall on real embeddings. The demo's four cameras run the shipped
models on the live world (bench association's recorder, a sighting every 2 windows, an embedding every
window); a fifth of the tracklets are held out as queries, the rest form the gallery, indexed as an IVF
whose nprobe is calibrated on those stored vectors as the gallery calibrates it; recall@10 of the
held-out queries against exact search.

Prints JSON (and writes it with ``--json FILE``), with the machine and its load average before and after
each size (the machine may be shared). Record results in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

log = logging.getLogger(__name__)
CAMERAS = ("cam1", "cam2", "cam3", "cam4")
PER_IDENTITY = 10
STREAM = 50  # sightings per publish stream, as a camera's publisher batches them
RECALL_QUERIES = 500
S = 1_000_000


def _machine() -> dict[str, Any]:
    import faiss

    cpu = ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "faiss": faiss.__version__, "faiss_gpus": int(getattr(faiss, "get_num_gpus", lambda: 0)()),
            "load_avg_1m": os.getloadavg()[0]}


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _percentiles(seconds: list[float]) -> dict[str, float]:
    a = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(a, 50)), "p99_ms": float(np.percentile(a, 99)), "n": len(seconds)}


def _bulk_load(store: Any, direct: Any, n: int, dim: int, rng: np.random.Generator, batch: int = 2000) -> np.ndarray:
    """Write ``n`` sightings to Redis (through the gallery store) and to the bare index; returns prototypes."""
    from anonreid.gallery.core import identity_name
    from anonreid.gallery.synthetic import noisy, prototypes, sighting
    from anonreid.gallery.types import StoredSighting

    n_ids = max(1, n // PER_IDENTITY)
    protos = prototypes(n_ids, dim, rng)
    for lo in range(0, n, batch):
        idx = np.arange(lo, min(n, lo + batch))
        who = idx // PER_IDENTITY
        embs = noisy(protos[who], 0.5, rng)
        rows = []
        for j, i in enumerate(idx.tolist()):
            person, step = int(who[j]), i % PER_IDENTITY
            cam = CAMERAS[step % len(CAMERAS)]
            t = person * 10 * S + step * 60 * S
            s = sighting(f"b{i}", cam, f"{cam}-b{person}-{step}", t, t + 3 * S, embs[j])
            row = StoredSighting(s.sighting_id, i + 1, cam, s.tracklet_id, s.start_us, s.end_us,
                                 identity_name(person + 1), 0.8)
            rows.append((row, s, embs[j]))
        store.commit(rows, next_fid=int(idx[-1]) + 2, next_identity=n_ids + 1)
        direct.add(idx + 1, embs)
    return protos


def _new_sightings(protos: np.ndarray, rng: np.random.Generator, start_us: int, prefix: str) -> Iterator[Any]:
    """An endless stream of fresh sightings of known people (so association has real candidates)."""
    from anonreid.gallery.synthetic import noisy, sighting

    i = 0
    while True:
        person = int(rng.integers(len(protos)))
        cam = CAMERAS[i % len(CAMERAS)]
        t = start_us + i * S
        yield sighting(f"{prefix}{i}", cam, f"{cam}-{prefix}{i}", t, t + S, noisy(protos[person], 0.5, rng))
        i += 1


def _take(it: Iterator[Any], n: int) -> list[Any]:
    return [next(it) for _ in range(n)]


def _camera(address: str, protos: np.ndarray, seed: int, seconds: float, out: Any, batch: int) -> None:
    """A camera process: publish prepared sightings over gRPC in streams of ``STREAM`` for ``seconds``,
    ``batch`` sightings a message (1: one a message, on ``Publish``); sends (sightings acknowledged, of
    them joining a known identity, seconds) to ``out``."""
    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.servicer import sighting_to_pb

    # each phase's own sighting ids and stream times (the second phase's 100,000 s after the first's)
    stream = _new_sightings(protos, np.random.default_rng(seed), 10**13 + batch * 10**11, f"p{batch}-")
    ready = [sighting_to_pb(s) for s in _take(stream, 20_000)]
    with GalleryClient(address, timeout_s=120, publish_batch=batch) as gc:
        acks, joined, i = 0, 0, 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            if i + STREAM > len(ready):
                ready.extend(sighting_to_pb(s) for s in _take(stream, 20_000))
            got = gc.publish(ready[i : i + STREAM])
            i += STREAM
            acks += len(got)
            joined += sum(not a.new_identity for a in got)
        out.send((acks, joined, time.perf_counter() - t0))
    out.close()


def _publish(address: str, protos: np.ndarray, seed: int, seconds: float, batch: int) -> tuple[int, int, float]:
    ctx = mp.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_camera, args=(address, protos[:20_000], seed, seconds, send, batch), daemon=True)
    proc.start()
    try:
        if not receive.poll(seconds + 300):
            raise RuntimeError("the camera process sent no result")
        result: tuple[int, int, float] = receive.recv()
        return result
    finally:
        proc.join(30)
        if proc.is_alive():
            proc.kill()


def _recall(index: Any, queries: np.ndarray) -> float:
    """Recall@10 of ``index`` for ``queries`` against exact search over its own stored vectors."""
    from anonreid.gallery.index import RECALL_K, exact_neighbours, recall_at_k

    ids, vecs = index.export()
    _, found = index.search(queries, RECALL_K)
    return recall_at_k(found, exact_neighbours(ids, vecs, queries, RECALL_K))


def _start(cfg: Any, redis_url: str) -> tuple[Any, str, float]:
    from anonreid.gallery.service import GalleryServer

    server = GalleryServer(cfg, redis_url, serve_metrics=False)
    t0 = time.perf_counter()
    address = server.start()
    return server, address, time.perf_counter() - t0


def run_size(n: int, *, index_type: str, nprobe: int, seconds: float, k: int, seed: int, redis_url: str,
             restart: bool, work: Path) -> dict[str, Any]:
    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.index import BatchNeighbours, EmbeddingIndex
    from anonreid.gallery.service import redis_client
    from anonreid.gallery.servicer import sighting_to_pb
    from anonreid.gallery.store import GalleryStore
    from anonreid.orchestration.config import GalleryConfig

    snap_dir = work / f"snapshot-{n}"
    # merge passes off: the synthetic stream advances stream time 1 s a sighting, so a pass every 10 s of
    # stream time would run every 10 sightings, thousands of times more often than on a real stream (one
    # pass per 10 s of wall time); docs/BENCHMARKS.md measures the pass's own cost
    cfg = GalleryConfig(port=0, metrics_port=0, index_type=index_type, index_device="auto",  # type: ignore[arg-type]
                        ivf_nprobe=nprobe, max_workers=4, snapshot_dir=str(snap_dir), snapshot_interval_s=3600,
                        merge_every_s=0)
    rng = np.random.default_rng(seed)
    client = redis_client(redis_url)
    client.flushdb()
    out: dict[str, Any] = {"entries": n, "load_avg_before": _load()}
    direct = EmbeddingIndex.from_config(cfg)  # the same FAISS layout, called directly
    t0 = time.perf_counter()
    protos = _bulk_load(GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim), direct, n, cfg.embedding_dim, rng)
    direct.settle()
    out["bulk_write_s"] = time.perf_counter() - t0
    log.info("N=%d: %d sightings written to Redis in %.1f s", n, n, out["bulk_write_s"])

    server, address, out["rebuild_s"] = _start(cfg, redis_url)
    gallery = server.gallery
    assert gallery is not None
    out["index"] = gallery.index.describe()
    log.info("N=%d: gallery rebuilt from Redis in %.1f s (%s)", n, out["rebuild_s"], out["index"])
    try:
        while gallery.snapshot_due():  # the server's thread writes the first snapshot after a rebuild
            time.sleep(0.2)
        t0 = time.perf_counter()
        gallery.write_snapshot()
        out["snapshot_write_s"] = time.perf_counter() - t0
        out["snapshot_mb"] = sum(f.stat().st_size for f in snap_dir.iterdir()) / 1e6
        # -- publish over gRPC from a camera process, for `seconds`: one sighting a message (Publish), then
        # a stream's sightings in one message (PublishBatches, what cameras use), on the gallery grown by the first
        phases: dict[str, dict[str, Any]] = {}
        for name, per_message in (("publish_per_message", 1), ("publish", STREAM)):
            cpu0 = time.process_time()
            acks, joined, pub_s = _publish(address, protos, seed + 1 + per_message, seconds, per_message)
            gallery_cpu_s = time.process_time() - cpu0  # this process: the gallery server (the camera is another)
            phases[name] = {"count": acks, "joined_existing": joined, "per_s": acks / pub_s,
                            "sightings_per_message": per_message,
                            "gallery_cpu_ms_per_sighting": 1e3 * gallery_cpu_s / acks, "load_avg": _load()}
            log.info("N=%d: %s %.0f /s, gallery CPU %.3f ms a sighting", n, name, acks / pub_s,
                     phases[name]["gallery_cpu_ms_per_sighting"])
        acks = sum(p["count"] for p in phases.values())
        # -- FAISS alone: the association's batched k-NN search + add, per stream of STREAM
        embs = np.stack([s.embedding for s in _take(_new_sightings(protos, rng, 0, "q"), max(acks, STREAM))])
        next_id = n + 10**9
        t0 = time.perf_counter()
        for lo in range(0, len(embs), STREAM):
            batch = embs[lo : lo + STREAM]
            BatchNeighbours(direct, batch, cfg.association_k)
            direct.add(np.arange(next_id, next_id + len(batch)), batch)
            next_id += len(batch)
        faiss_pub_s = time.perf_counter() - t0
        faiss_per_s = len(embs) / faiss_pub_s
        out.update(phases)
        out["publish"].update(faiss_per_s=faiss_per_s, overhead_ratio=faiss_per_s / out["publish"]["per_s"],
                              speedup_over_per_message=out["publish"]["per_s"] / out["publish_per_message"]["per_s"])
        # -- search: query by example over gRPC vs FAISS directly, the same queries
        queries = [sighting_to_pb(s) for s in _take(_new_sightings(protos, rng, 0, "x"), 20_000)]
        grpc_lat: list[float] = []
        with GalleryClient(address, timeout_s=60) as gc:
            deadline = time.perf_counter() + seconds
            for q in queries:
                t0 = time.perf_counter()
                gc.query(sighting=q, k=k)
                grpc_lat.append(time.perf_counter() - t0)
                if time.perf_counter() > deadline:
                    break
        faiss_lat: list[float] = []
        for q in queries[: len(grpc_lat)]:
            e = np.asarray(q.embedding, np.float32)
            t0 = time.perf_counter()
            direct.search(e, k)
            faiss_lat.append(time.perf_counter() - t0)
        g, f = _percentiles(grpc_lat), _percentiles(faiss_lat)
        out["search"] = {"k": k, "gallery": g, "faiss": f, "ratio_p50": g["p50_ms"] / f["p50_ms"],
                         "ratio_p99": g["p99_ms"] / f["p99_ms"], "load_avg": _load()}
        # -- recall@10 of the gallery's index for new sightings, against exact search
        recall_q = np.stack([np.asarray(q.embedding, np.float32) for q in queries[-RECALL_QUERIES:]])
        out["recall_at_10"] = _recall(gallery.index, recall_q / np.linalg.norm(recall_q, axis=1, keepdims=True))
        out["index_after"] = gallery.index.describe()
        entries = len(gallery)
    finally:
        server.stop(0, final_snapshot=False)  # as a crash leaves it: the publish phase is the change-log tail
    del gallery, server
    if restart:
        out["restart"] = _restart(cfg, redis_url, entries, tail=acks)
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["load_avg_after"] = _load()
    client.flushdb()
    client.close()
    shutil.rmtree(snap_dir, ignore_errors=True)
    log.info("N=%d: %s", n, json.dumps({key: out.get(key) for key in ("publish", "search", "recall_at_10", "restart")}))
    return out


def _restart(cfg: Any, redis_url: str, entries: int, tail: int) -> dict[str, Any]:
    """Start the gallery again from its snapshot + the change log (after a crash, then a clean stop)."""
    out: dict[str, Any] = {"tail_sightings": tail}
    for name in ("after_crash", "after_clean_stop"):
        server, _, seconds = _start(cfg, redis_url)
        gallery = server.gallery
        assert gallery is not None
        out[name] = {"s": seconds, "loaded_from": gallery.loaded_from, "entries": len(gallery),
                     "load_avg": _load()}
        if len(gallery) != entries:
            raise RuntimeError(f"restart found {len(gallery)} entries, {entries} were stored")
        del gallery
        server.stop(0)  # clean: writes the final snapshot
        del server
    return out


def real_recall(seconds: float, seed: int) -> dict[str, Any]:
    """Recall@10 of a calibrated IVF on real embeddings of the world (module doc)."""
    from anonreid.gallery.index import RECALL_K, EmbeddingIndex, exact_neighbours, recall_at_k
    from anonreid.orchestration.bench.association import record
    from anonreid.orchestration.cli_common import resolve_config

    cfg = resolve_config(None, ["camera.embed_every=1", "camera.publish_every=2", "camera.min_embeddings=1"])
    t0 = time.perf_counter()
    sightings = record(cfg, seconds)["sightings"]
    record_s = time.perf_counter() - t0
    tracklets = sorted({(s.camera_id, s.tracklet_id) for s in sightings})
    out: dict[str, Any] = {"world_seed": cfg.world.seed, "stream_s_per_camera": seconds, "record_s": round(record_s, 1),
                           "sightings": len(sightings), "tracklets": len(tracklets)}
    if len(tracklets) < 2:
        return out | {"skipped": "fewer than two tracklets: nothing to hold out"}
    vecs = np.stack([np.asarray(s.embedding, np.float32) for s in sightings])
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    order = np.random.default_rng(seed).permutation(len(tracklets))
    held = {tracklets[i] for i in order[: max(1, len(tracklets) // 5)]}
    is_query = np.array([(s.camera_id, s.tracklet_id) in held for s in sightings])
    base, queries = vecs[~is_query], vecs[is_query]
    code = {t: n for n, t in enumerate(tracklets)}
    base_tracklet = np.array([code[(s.camera_id, s.tracklet_id)] for s, q in zip(sightings, is_query, strict=True)
                              if not q], np.int64)
    nlist = 1 << int(np.log2(max(len(base) // 39, 1)))
    index = EmbeddingIndex(vecs.shape[1], "ivf", "cpu", ivf_nlist=nlist, threads=1)
    ids = np.arange(len(base), dtype=np.int64)
    index.add(ids, base)
    trained = index.settle(lambda stored: base_tracklet[stored])  # calibrated as the gallery does: tracklets left out
    _, found = index.search(queries, RECALL_K)
    return out | {"model_version": sightings[0].model_version, "held_out_tracklets": len(held),
                  "gallery": len(base), "queries": len(queries), "index": index.describe(), "ivf_trained": trained,
                  "calibrated_recall_at_10": index.recall,
                  "held_out_recall_at_10": recall_at_k(found, exact_neighbours(ids, base, queries, RECALL_K))}


def main(
    json_file: Annotated[Path | None, typer.Option("--json", help="write the results here too")] = None,
    sizes: Annotated[str, typer.Option(help="comma-separated gallery sizes")] = "10000,100000,1000000",
    index: Annotated[str, typer.Option(help="auto | flat | ivf | hnsw")] = "auto",
    nprobe: Annotated[int, typer.Option(help="IVF lists probed (gallery.ivf_nprobe); 0 = calibrated to "
                                        "gallery.ivf_recall on the stored vectors")] = 0,
    seconds: Annotated[float, typer.Option(help="time spent publishing, and querying, per size")] = 10.0,
    k: Annotated[int, typer.Option(help="matches per query")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    restart: Annotated[bool, typer.Option(help="time restarts from the index snapshot")] = True,
    real_seconds: Annotated[float, typer.Option(
        help="stream seconds per camera recorded for recall on real embeddings (0 = skip)")] = 60.0,
    redis_url: Annotated[str, typer.Option(help="existing Redis (its db is FLUSHED); empty = embedded")] = "",
) -> None:
    """Gallery publish throughput (gRPC), search latency, index recall and restart time, per gallery size."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    if index not in ("auto", "flat", "ivf", "hnsw"):
        raise typer.BadParameter(f"expected auto, flat, ivf or hnsw, got {index!r}", param_hint="--index")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    counts = [int(float(x)) for x in sizes.split(",") if x.strip()]
    tmp = Path(tempfile.mkdtemp(prefix="anonreid-bench-gallery-"))
    results: dict[str, Any] = {
        "bench": "gallery", "machine": _machine(), "index": index, "seconds": seconds,
        "command": f"anonreid bench gallery --sizes {sizes} --index {index} --nprobe {nprobe} --seconds {seconds} "
                   f"--real-seconds {real_seconds}" + ("" if restart else " --no-restart"),
        "sizes": []}
    if real_seconds > 0:  # first: it fails fast, before the long sizes
        results["real_embeddings"] = real_recall(real_seconds, seed)
    service = RedisService(RedisConfig(url=redis_url, embedded_dir=str(tmp / "redis"))).start()
    try:
        for n in counts:
            results["sizes"].append(run_size(n, index_type=index, nprobe=nprobe, seconds=seconds, k=k, seed=seed,
                                             redis_url=service.url, restart=restart, work=tmp))
    finally:
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(results, indent=2)
    typer.echo(text)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(text + "\n")
