"""In-process timing of `Gallery.ingest_many` at 10k entries (docs/BENCHMARKS.md, "Prototypes in one matrix").

`python docs/gallery_ingest_timing.py [updates_share] [entries]`: the bench gallery's bulk load on an embedded
Redis, the gallery loaded from it, 500 warm-up and 3,000 timed sightings of the bench's stream in batches of 50
(a share of them updates of one of the 20 latest tracklets); prints the time a sighting and a digest of every
ack (identity and similarity), which must not change when only the speed does.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
import time

import numpy as np

from anonreid.gallery.core import Gallery
from anonreid.gallery.index import EmbeddingIndex
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, sighting
from anonreid.orchestration.bench.gallery import STREAM, _bulk_load, _new_sightings, _take
from anonreid.orchestration.config import GalleryConfig, RedisConfig
from anonreid.orchestration.redis_service import RedisService


def stream_with_updates(base: list, share: float, seed: int = 2) -> list:
    """``base`` with a ``share`` of its sightings replaced by updates of one of the 20 latest tracklets."""
    rng = np.random.default_rng(seed)
    out, recent = [], []
    for i, s in enumerate(base):
        if recent and rng.random() < share:
            j = int(rng.integers(len(recent)))
            prev = recent[j]
            s2 = sighting(f"u{i}", prev.camera_id, prev.tracklet_id, prev.end_us, prev.end_us + 500_000,
                          noisy(prev.embedding, 0.3, rng))
            recent[j] = s2
            out.append(s2)
        else:
            out.append(s)
            recent = [*recent, s][-20:]
    return out


def main() -> None:
    share = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
    entries = int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    tmp = tempfile.mkdtemp()
    service = RedisService(RedisConfig(embedded_dir=tmp)).start()
    try:
        cfg = GalleryConfig(port=0, metrics_port=0, index_type="auto", ivf_nprobe=0, merge_every_s=0, snapshot_dir="")
        client = service.client()
        client.flushdb()
        store = GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim)
        protos = _bulk_load(store, EmbeddingIndex.from_config(cfg), entries, cfg.embedding_dim, np.random.default_rng(0))
        gallery = Gallery(cfg, GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim))
        gallery.load()
        stream = stream_with_updates(_take(_new_sightings(protos, np.random.default_rng(1), 10**13, "p"), 6000), share)
        warm, timed = stream[:500], stream[500:3500]
        for lo in range(0, len(warm), STREAM):
            gallery.ingest_many(warm[lo:lo + STREAM])
        digest = hashlib.sha1()
        t0, c0 = time.perf_counter(), time.process_time()
        for lo in range(0, len(timed), STREAM):
            acks, error = gallery.ingest_many(timed[lo:lo + STREAM])
            assert error is None, error
            for a in acks:
                digest.update(f"{a.sighting_id}:{a.identity_id}:{a.similarity:.6f};".encode())
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        print(f"share {share} N {entries}: {1e3 * wall / len(timed):.4f} ms wall, {1e3 * cpu / len(timed):.4f} ms cpu "
              f"a sighting; decisions {digest.hexdigest()[:12]}")
    finally:
        service.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
