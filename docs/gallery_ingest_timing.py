"""In-process timing of `Gallery.ingest_many` at 10k entries (docs/BENCHMARKS.md, "Prototypes in one matrix").

`python docs/gallery_ingest_timing.py [updates_share] [entries]`: the bench gallery's bulk load on an embedded
Redis, the gallery loaded from it, 500 warm-up and 3,000 timed sightings of the bench's stream in batches of 50
(a share of them updates of one of the 20 latest tracklets); prints the time a sighting and a digest of every
ack (identity and similarity), which must not change when only the speed does.
"""
import sys, time, tempfile, shutil, hashlib
import numpy as np
from anonreid.orchestration.bench.gallery import _bulk_load, _new_sightings, _take, STREAM
from anonreid.gallery.core import Gallery
from anonreid.gallery.index import EmbeddingIndex
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, sighting
from anonreid.orchestration.config import GalleryConfig, RedisConfig
from anonreid.orchestration.redis_service import RedisService
share = float(sys.argv[1]) if len(sys.argv) > 1 else 0.0
N = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
tmp = tempfile.mkdtemp(); service = RedisService(RedisConfig(embedded_dir=tmp)).start()
try:
    cfg = GalleryConfig(port=0, metrics_port=0, index_type="auto", ivf_nprobe=0, merge_every_s=0, snapshot_dir="")
    client = service.client(); client.flushdb()
    rng = np.random.default_rng(0)
    protos = _bulk_load(GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim), EmbeddingIndex.from_config(cfg), N, cfg.embedding_dim, rng)
    g = Gallery(cfg, GalleryStore(client, cfg.redis_prefix, cfg.embedding_dim)); g.load()
    base = _take(_new_sightings(protos, np.random.default_rng(1), 10**13, "p"), 6000)
    # a share of the stream updates a recent tracklet (same camera/tracklet id, later span)
    r2 = np.random.default_rng(2); stream = []; recent = []
    for i, s in enumerate(base):
        if recent and r2.random() < share:
            j = int(r2.integers(len(recent))); prev = recent[j]
            s2 = sighting(f"u{i}", prev.camera_id, prev.tracklet_id, prev.end_us, prev.end_us + 500_000, noisy(prev.embedding, 0.3, r2))
            recent[j] = s2; stream.append(s2)
        else:
            stream.append(s); recent.append(s); recent = recent[-20:]
    warm, timed = stream[:500], stream[500:3500]
    for lo in range(0, len(warm), STREAM): g.ingest_many(warm[lo:lo + STREAM])
    h = hashlib.sha1()
    t0 = time.perf_counter(); c0 = time.process_time()
    for lo in range(0, len(timed), STREAM):
        acks, err = g.ingest_many(timed[lo:lo + STREAM])
        assert err is None
        for a in acks: h.update(f"{a.sighting_id}:{a.identity_id}:{a.similarity:.6f};".encode())
    wall = time.perf_counter() - t0; cpu = time.process_time() - c0
    print(f"share {share} N {N}: {1e3*wall/len(timed):.4f} ms wall, {1e3*cpu/len(timed):.4f} ms cpu a sighting; decisions {h.hexdigest()[:12]}")
finally:
    service.stop(); shutil.rmtree(tmp, ignore_errors=True)
