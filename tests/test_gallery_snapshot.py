"""Restart from an index snapshot plus the Redis change log since it equals a full rebuild from Redis
(same ids, vectors, identities and association state), and a snapshot never keeps a forgotten person
(real Redis, real files, the gallery's own gRPC server)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from gallery_streams import DIM, batches, recorded_stream, same_decisions

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.core import Gallery
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.store import GalleryStore
from anonreid.orchestration.config import GalleryConfig

P = "snap:gallery"
FLAT = {"index_type": "flat"}
IVF = {"index_type": "auto", "auto_ivf_min": 300, "ivf_nlist": 8, "ivf_nprobe": 8}  # every list probed: exact


def config(snapshot_dir: Path | str = "", **kw: Any) -> GalleryConfig:
    base = {"embedding_dim": DIM, "similarity_threshold": 0.6, "min_transit_s": 1.0, "max_transit_s": 60.0,
            "redis_prefix": P, "snapshot_dir": str(snapshot_dir), "retention_s": 3600.0}
    return GalleryConfig(**(base | kw))  # type: ignore[arg-type]


@pytest.fixture
def redis_dbs(redis_module):
    """Two databases of one embedded Redis (the second receives a copy for the full rebuild)."""
    clients = [redis_module.client(db=0), redis_module.client(db=1)]
    for c in clients:
        c.flushdb()
    yield clients
    for c in clients:
        c.flushdb()
        c.close()


def state(g: Gallery) -> dict[str, Any]:
    """Everything the association and the queries read, and the index's ids and vectors."""
    ids, vecs = g.index.export()
    return {
        "rows": sorted(g._by_fid.values(), key=lambda r: r.fid),
        "by_id": dict(sorted(g._sightings.items())),
        "tracks": {i: [r.sighting_id for r in t.sightings] for i, t in sorted(g._tracks.items())},
        "cameras": {i: t.cameras for i, t in g._tracks.items()},
        "tracklets": dict(sorted(g._tracklets.items())),
        "ends": g._ends,
        "counters": (g._next_fid, g._next_identity, g._latest_us),
        "forgotten": (g._forgotten, g._forgotten_identities),
        "ids": ids.tolist(), "vectors": vecs.tobytes(),
    }


def copy_to(src: Any, dst: Any) -> None:
    for key in src.scan_iter(match=P + ":*"):
        assert src.copy(key, key, destination_db=1)


def snapshot_contents(directory: Path) -> tuple[set[str], set[int]]:
    """The sighting ids in the rows file and the FAISS ids in the index file on disk."""
    manifest = json.loads((directory / "snapshot.json").read_text())
    with np.load(directory / manifest["files"]["rows"]["name"]) as arrays:
        sids = set(bytes(arrays["sighting_id"]).decode().split("\n")) if manifest["rows"] else set()
    index = faiss.read_index(str(directory / manifest["files"]["index"]["name"]))
    if isinstance(index, faiss.IndexIDMap):
        fids = set(faiss.vector_to_array(index.id_map).tolist())
    else:
        ivf = faiss.extract_index_ivf(index)
        fids = {int(i) for n in range(ivf.nlist) for i in faiss.rev_swig_ptr(ivf.invlists.get_ids(n),
                                                                               ivf.invlists.list_size(n))}
    return sids, fids


@pytest.mark.parametrize("layout", [FLAT, IVF], ids=["flat", "auto-ivf"])
def test_snapshot_plus_change_log_equals_a_full_rebuild(redis_dbs, tmp_path, layout):
    db0, db1 = redis_dbs
    snap_dir = tmp_path / "snap"
    stream = recorded_stream()
    g = Gallery(config(snap_dir, **layout), GalleryStore(db0, P, dim=DIM, retention_s=3600.0))
    assert g.snapshot_due()  # none yet
    probe = Gallery(config(**layout), GalleryStore(db1, "probe", dim=DIM))  # where the first split comes
    cut = next(n for n, s in enumerate(stream) if (a := probe.ingest(s)).decision and a.decision.splits)
    db1.flushdb()
    for b in batches(stream[:cut]):
        g.ingest_many(b)
    assert g.write_snapshot() and not g.snapshot_due()
    snapshot_rows = set(g._sightings)
    # the tail: new sightings, tracklet updates, identity splits moving rows the snapshot holds
    tail_acks = [a for b in batches(stream[cut:], seed=7) for a in g.ingest_many(b)[0]]
    moved = {sid for a in tail_acks if a.decision for sp in a.decision.splits for sid in sp.sighting_ids}
    assert moved & snapshot_rows, "the tail must relabel rows of the snapshot"
    # retention erases the oldest rows after the snapshot
    oldest = sorted(g._sightings.values(), key=lambda r: r.ingested_at_us)[5].ingested_at_us
    assert g.expire(now_us=oldest + 3600 * 1_000_000) >= 6
    # a forget after the snapshot whose rewrite never happened (the gallery died between the Redis forget
    # and the snapshot rewrite): the snapshot on disk still holds the person
    victim = next(i for i, t in g._tracks.items() if {r.sighting_id for r in t.sightings} & snapshot_rows)
    rows = g._tracks[victim].sightings
    g.store.forget(victim, [r.sighting_id for r in rows], "test", fids=[r.fid for r in rows])
    assert {r.sighting_id for r in rows} & snapshot_contents(snap_dir)[0]
    if layout is IVF:
        assert g.index.layout == "ivf"
    del g  # no final snapshot: as a crash leaves it

    copy_to(db0, db1)
    restored = Gallery(config(snap_dir, **layout), GalleryStore(db0, P, dim=DIM, retention_s=3600.0))
    rebuilt = Gallery(config(**layout), GalleryStore(db1, P, dim=DIM, retention_s=3600.0))
    assert restored.loaded_from.startswith("snapshot") and rebuilt.loaded_from == "Redis"
    written, erased = map(int, re.search(r"\((\d+) sighting\(s\) written, (\d+) erased\)", restored.loaded_from).groups())
    assert written > 0 and erased > 0, restored.loaded_from
    assert victim not in restored._tracks and victim not in rebuilt._tracks
    assert state(restored) == state(rebuilt)
    # the restored gallery rewrote the snapshot at once: the forgotten person is on disk no more
    sids, fids = snapshot_contents(snap_dir)
    assert not {r.sighting_id for r in rows} & sids and not {r.fid for r in rows} & fids
    assert sids == set(restored._sightings) and fids == set(restored._by_fid)
    # and both associate what comes next identically
    more = recorded_stream(seed=11, people=30, prefix="late")
    a = [x for b in batches(more) for x in restored.ingest_many(b)[0]]
    b = [x for bb in batches(more) for x in rebuilt.ingest_many(bb)[0]]
    same_decisions(a, b)
    assert state(restored) == state(rebuilt) | {"rows": state(restored)["rows"], "by_id": state(restored)["by_id"]}


def test_forget_rewrites_the_snapshot_without_the_person(redis_dbs, tmp_path):
    db0, _ = redis_dbs
    snap_dir = tmp_path / "snap"
    g = Gallery(config(snap_dir), GalleryStore(db0, P, dim=DIM))
    for b in batches(recorded_stream()):
        g.ingest_many(b)
    g.write_snapshot()
    before = json.loads((snap_dir / "snapshot.json").read_text())
    victim, track = max(g._tracks.items(), key=lambda kv: len(kv[1].sightings))
    rows = list(track.sightings)
    assert {r.sighting_id for r in rows} <= snapshot_contents(snap_dir)[0]
    embeddings = [g.store.get_embedding(r.sighting_id) for r in rows]
    runs = [e.astype("<f4").tobytes()[i : i + 16] for e in embeddings for i in range(0, DIM * 4, 16)]
    on_disk = b"".join(f.read_bytes() for f in snap_dir.iterdir())
    assert all(run in on_disk for run in runs)
    assert g.forget(victim, "request") == len(rows)
    after = json.loads((snap_dir / "snapshot.json").read_text())
    assert after["nonce"] != before["nonce"]
    sids, fids = snapshot_contents(snap_dir)
    assert not {r.sighting_id for r in rows} & sids and not {r.fid for r in rows} & fids
    on_disk = b"".join(f.read_bytes() for f in snap_dir.iterdir())
    assert not [run for run in runs if run in on_disk] and not [r for r in rows if r.sighting_id.encode() in on_disk]
    # only the new snapshot's files are left; the change log holds nothing before its marker
    assert sorted(p.name for p in snap_dir.iterdir()) == sorted(
        ["snapshot.json", after["files"]["index"]["name"], after["files"]["rows"]["name"]])
    assert [e[0].decode() for e in db0.xrange(f"{P}:changes")] == [after["position"]]
    restarted = Gallery(config(snap_dir), GalleryStore(db0, P, dim=DIM))
    assert restarted.loaded_from.startswith("snapshot") and victim not in restarted._tracks
    assert state(restarted) == state(g)


def test_an_unusable_snapshot_falls_back_to_a_full_rebuild(redis_dbs, tmp_path, caplog):
    db0, _ = redis_dbs
    snap_dir = tmp_path / "snap"
    g = Gallery(config(snap_dir), GalleryStore(db0, P, dim=DIM))
    for b in batches(recorded_stream()[:200]):
        g.ingest_many(b)
    g.write_snapshot()
    want = state(g)
    manifest = json.loads((snap_dir / "snapshot.json").read_text())
    index_file = snap_dir / manifest["files"]["index"]["name"]
    data = bytearray(index_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    index_file.write_bytes(bytes(data))
    again = Gallery(config(snap_dir), GalleryStore(db0, P, dim=DIM))
    assert again.loaded_from == "Redis" and state(again) == want
    assert "CRC-32 does not match" in caplog.text
    again.write_snapshot()
    # the change log no longer reaches back to the snapshot (a gallery without snapshots ran meanwhile)
    Gallery(config(), GalleryStore(db0, P, dim=DIM))
    third = Gallery(config(snap_dir), GalleryStore(db0, P, dim=DIM))
    assert third.loaded_from == "Redis" and state(third) == want
    assert "no longer holds its marker" in caplog.text
    # another gallery's snapshot (another Redis prefix) is refused by name
    other = Gallery(config(snap_dir, redis_prefix="other"), GalleryStore(db0, "other", dim=DIM))
    assert other.loaded_from == "Redis" and len(other) == 0
    assert "prefix is 'snap:gallery', this gallery has 'other'" in caplog.text


def test_the_server_snapshots_when_due_and_at_clean_stop(redis_module, tmp_path):
    client = redis_module.client()
    client.flushdb()
    snap_dir = tmp_path / "snap"
    cfg = config(snap_dir, port=0, metrics_port=0, snapshot_interval_s=1.0)
    stream = recorded_stream()
    server = GalleryServer(cfg, str(redis_module.url), serve_metrics=False)
    try:
        address = server.start()
        with GalleryClient(address, timeout_s=30) as gc:
            assert len(gc.publish(stream[:100])) == 100
            for _ in range(50):  # the snapshot thread writes one within a second or two
                if (snap_dir / "snapshot.json").exists() and not server.gallery.snapshot_due():
                    break
                server.wait(0.1)
            assert json.loads((snap_dir / "snapshot.json").read_text())["rows"] == len(server.gallery)
            gc.publish(stream[100:200])
    finally:
        server.stop()
    assert json.loads((snap_dir / "snapshot.json").read_text())["rows"] == len({s.sighting_id for s in stream[:200]})
    again = GalleryServer(cfg, str(redis_module.url), serve_metrics=False)
    try:
        again.start()
        assert again.gallery.loaded_from.endswith("(0 sighting(s) written, 0 erased)"), again.gallery.loaded_from
    finally:
        again.stop()
        client.flushdb()
        client.close()
