"""What a published batch costs the gallery besides its decisions (issue #19 item 3): after a restart the
tracklet book is empty, and a batch reads back from Redis only the tracklets its decisions can score
(real Redis; its own command statistics count the reads)."""

from __future__ import annotations

import numpy as np
from gallery_streams import CAMS, DIM, S, same_decisions

from anonreid.gallery.core import Gallery
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.synthetic import noisy, prototypes, sighting
from anonreid.orchestration.config import GalleryConfig

PEOPLE, PER_TRACKLET, CANDIDATES = 40, 3, 2


def embeddings_read(client) -> int:
    """Sightings whose embedding the gallery read back (one HMGET each: tracklet means rebuilt)."""
    return int(client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0))


def test_a_restarted_gallery_reads_back_only_the_tracklets_its_decisions_score(redis_module):
    client = redis_module.client()
    client.flushdb()
    cfg = GalleryConfig(embedding_dim=DIM, index_type="flat", similarity_threshold=0.6, min_transit_s=1.0,  # type: ignore[arg-type]
                        max_transit_s=60.0, association_k=32, association_candidates=CANDIDATES)
    rng = np.random.default_rng(0)
    protos = prototypes(PEOPLE, DIM, rng)
    history = [sighting(f"h{i}-{u}", CAMS[i % 4], f"t{i}", i * 100 * S + u * S, i * 100 * S + (u + 1) * S,
                        noisy(protos[i], 0.3, rng)) for i in range(PEOPLE) for u in range(PER_TRACKLET)]
    # new tracklets of known people, and updates of stored tracklets (decided again within the horizon)
    batch = [sighting(f"n{i}", CAMS[(i + 1) % 4], f"new{i}", 10**10 + i * S, 10**10 + (i + 1) * S,
                      noisy(protos[i], 0.3, rng)) for i in range(0, PEOPLE, 20)]
    batch += [sighting(f"h{i}-u", CAMS[i % 4], f"t{i}", i * 100 * S + 3 * S, i * 100 * S + 4 * S,
                       noisy(protos[i], 0.3, rng)) for i in range(1, PEOPLE, 20)]
    warm = Gallery(cfg, GalleryStore(client, "warm", dim=DIM))
    Gallery(cfg, GalleryStore(client, "cold", dim=DIM)).ingest_many(history)
    warm.ingest_many(history)
    cold = Gallery(cfg, GalleryStore(client, "cold", dim=DIM))  # restarted: its tracklet book is empty
    assert len(cold) == len(warm) == len(history) and len(cold._tracks) == PEOPLE

    # the neighbours of the batch's sightings span most identities; a decision scores at most the
    # CANDIDATES with the nearest sightings (the tracklet's own identity left out) and its own identity
    near = {warm._by_fid[f].identity_id for e in [s.embedding for s in batch]
            for f in warm.index.search(e / np.linalg.norm(e), 32)[1][0].tolist()}
    assert len(near) > 3 * (CANDIDATES + 2)
    before = embeddings_read(client)
    got, error = cold.ingest_many(batch)
    read = embeddings_read(client) - before
    assert error is None
    most = len(batch) * (CANDIDATES + 2) * PER_TRACKLET  # tracklets of the identities a decision may score
    assert 0 < read <= most < len(near) * PER_TRACKLET, (read, most, len(near))
    # and the decisions are the ones the gallery that never restarted makes
    want, _ = warm.ingest_many(batch)
    same_decisions(got, want)
    assert {r.rule for r in (a.decision for a in got) if r is not None} >= {"similarity", "tracklet"}
    client.flushdb()
    client.close()
