"""``anonreid bench gallery``: publish throughput and search latency of the gallery vs FAISS alone.

For each size N (default 10k, 100k, 1M entries):

1. N synthetic sightings (identity prototypes + noise, ten sightings per identity over the four cameras)
   are written to Redis through the gallery's own store (what the gallery would have written), and the
   same vectors go into a bare FAISS index of the same kind in this process;
2. a gallery server starts on that Redis, rebuilding its index and identity table (timed: restart cost);
3. publish: new sightings stream over gRPC (one client) for ``--seconds``; each one is
   validated, associated (a k-NN search over N), written to Redis and acknowledged. FAISS alone does the
   same search + add per vector. The ratio is the gallery's overhead (gRPC, protobuf, Redis, rules).
   Sightings go in streams of 50, as a camera node's publisher batches them;
4. search: query-by-example over gRPC, one at a time, for ``--seconds``; FAISS alone answers the same
   queries. p50 / p99 latency and their ratio.

Prints JSON (and writes it with ``--json FILE``). Record results in docs/BENCHMARKS.md with the machine.
"""

from __future__ import annotations

import json
import logging
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


def run_size(n: int, *, index_type: str, seconds: float, k: int, seed: int, redis_url: str) -> dict[str, Any]:
    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.index import EmbeddingIndex
    from anonreid.gallery.service import GalleryServer, redis_client
    from anonreid.gallery.servicer import sighting_to_pb
    from anonreid.gallery.store import GalleryStore
    from anonreid.orchestration.config import GalleryConfig

    cfg = GalleryConfig(port=0, metrics_port=0, index_type=index_type, index_device="auto",  # type: ignore[arg-type]
                        max_workers=4)
    rng = np.random.default_rng(seed)
    client = redis_client(redis_url)
    client.flushdb()
    direct = EmbeddingIndex.from_config(cfg)  # the same FAISS layout, called directly
    t0 = time.perf_counter()
    protos = _bulk_load(GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim), direct, n, cfg.embedding_dim, rng)
    bulk_s = time.perf_counter() - t0
    log.info("N=%d: %d sightings written to Redis in %.1f s", n, n, bulk_s)

    server = GalleryServer(cfg, redis_url, serve_metrics=False)
    t0 = time.perf_counter()
    address = server.start()
    load_s = time.perf_counter() - t0
    log.info("N=%d: gallery rebuilt from Redis in %.1f s (%s)", n, load_s, server.gallery.index.describe() if server.gallery else "")
    out: dict[str, Any] = {"entries": n, "index": direct.describe(), "bulk_write_s": bulk_s, "gallery_load_s": load_s}
    try:
        with GalleryClient(address, timeout_s=60) as gc:
            # -- publish over gRPC, for `seconds`
            # batches of 50 per stream, as a camera's publisher sends them, until `seconds` have passed
            stream = _new_sightings(protos, rng, 10**13, "p")
            acks = []
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                acks.extend(gc.publish(_take(stream, 50)))
            pub_s = time.perf_counter() - t0
            joined = sum(not a.new_identity for a in acks)
            # -- FAISS alone: the association's k-NN search + add, per vector
            embs = [s.embedding for s in _take(_new_sightings(protos, rng, 0, "q"), len(acks))]
            next_id = n + 10**9
            t0 = time.perf_counter()
            for e in embs:
                direct.search(e, cfg.association_k)
                direct.add([next_id], e)
                next_id += 1
            faiss_pub_s = time.perf_counter() - t0
            out["publish"] = {"count": len(acks), "joined_existing": joined, "per_s": len(acks) / pub_s,
                              "faiss_per_s": len(embs) / faiss_pub_s,
                              "overhead_ratio": (pub_s / len(acks)) / (faiss_pub_s / len(embs))}
            # -- search: query by example over gRPC vs FAISS directly, the same queries
            queries = [sighting_to_pb(s) for s in _take(_new_sightings(protos, rng, 0, "x"), 100_000)]
            grpc_lat: list[float] = []
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
                             "ratio_p99": g["p99_ms"] / f["p99_ms"]}
    finally:
        server.stop(0)
        client.flushdb()
        client.close()
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    log.info("N=%d: %s", n, json.dumps({k: out[k] for k in ("publish", "search")}))
    return out


def _take(it: Iterator[Any], n: int) -> list[Any]:
    return [next(it) for _ in range(n)]


def main(
    json_file: Annotated[Path | None, typer.Option("--json", help="write the results here too")] = None,
    sizes: Annotated[str, typer.Option(help="comma-separated gallery sizes")] = "10000,100000,1000000",
    index: Annotated[str, typer.Option(help="flat | ivf | hnsw")] = "flat",
    seconds: Annotated[float, typer.Option(help="time spent publishing, and querying, per size")] = 10.0,
    k: Annotated[int, typer.Option(help="matches per query")] = 10,
    seed: Annotated[int, typer.Option()] = 0,
    redis_url: Annotated[str, typer.Option(help="existing Redis (its db is FLUSHED); empty = embedded")] = "",
) -> None:
    """Gallery publish throughput (gRPC) and search latency p50/p99 vs FAISS alone, per gallery size."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    counts = [int(float(x)) for x in sizes.split(",") if x.strip()]
    tmp = tempfile.mkdtemp(prefix="anonreid-bench-gallery-")
    service = RedisService(RedisConfig(url=redis_url, embedded_dir=tmp)).start()
    results: dict[str, Any] = {"bench": "gallery", "machine": _machine(), "index": index, "seconds": seconds,
                               "command": f"anonreid bench gallery --sizes {sizes} --index {index} --seconds {seconds}",
                               "sizes": []}
    try:
        for n in counts:
            results["sizes"].append(run_size(n, index_type=index, seconds=seconds, k=k, seed=seed, redis_url=service.url))
    finally:
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(results, indent=2)
    typer.echo(text)
    if json_file is not None:
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(text + "\n")
