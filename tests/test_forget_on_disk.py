"""``anonreid forget`` reaches the disk (issue 17, item 2), against a real ``anonreid gallery serve``.

Before, the append-only file under ``redis.embedded_dir`` kept every forgotten embedding and sighting
id, even after a clean shutdown, an RDB snapshot taken before the forget kept them until the next
save, and both files were 0644. Here three people are published, a snapshot is saved and the operator
forgets one with the CLI; then every file under the data directory is read byte by byte, as soon as
forget has answered, after the gallery stopped and after a restart: no 16-byte run of a forgotten
embedding (as stored, float32) and none of its sighting ids is left, the files are 0600 and the
directory 0700, and the others survive the restart.
"""

from __future__ import annotations

import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import redis
from gallery_process import ANONREID, GalleryProcess
from process_tools import kill_redis_servers

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.synthetic import prototypes, walk

PREFIX = "anonreid:gallery"
RUN = 16  # bytes: four float32 values


def _runs(blob: bytes) -> set[bytes]:
    """Every RUN-byte substring of ``blob``."""
    return {blob[i : i + RUN] for i in range(len(blob) - RUN + 1)}


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if stat.S_ISREG(p.lstat().st_mode))


def _found(root: Path, runs: set[bytes], ids: list[str]) -> dict[str, list[str]]:
    """File -> what of the forgotten person it holds (embedding runs, sighting ids)."""
    out = {}
    for path in _files(root):
        data = path.read_bytes()
        hits = [f"{len(runs & _runs(data))} embedding runs"] if runs & _runs(data) else []
        hits += [sid for sid in ids if sid.encode() in data]
        if hits:
            out[path.name] = hits
    return out


def _bgsave(client: redis.Redis) -> None:
    """A snapshot as Redis's save schedule takes one: the RDB now holds everybody."""
    client.bgsave()  # answers once the child forked: in progress from now until it is written
    while client.info("persistence")["rdb_bgsave_in_progress"]:
        time.sleep(0.05)
    assert client.info("persistence")["rdb_last_bgsave_status"] == "ok"


def test_forget_leaves_no_byte_of_the_person_under_the_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    rng = np.random.default_rng(17)
    items = [s for _, s in walk(prototypes(3, 256, rng), ["cam1", "cam2"], rng, noise=0.2, prefix="erase-me")]
    gallery = GalleryProcess(data, tmp_path / "gallery.log").wait_serving()
    try:
        with GalleryClient(gallery.address) as client:
            acks = {a.sighting_id: a.identity_id for a in client.publish(items)}
        victim = acks["erase-me-1-0"]
        victim_ids = sorted(sid for sid, i in acks.items() if i == victim)
        kept = {i: sorted(sid for sid, j in acks.items() if j == i) for i in set(acks.values()) - {victim}}
        assert len(victim_ids) == 2 and len(kept) == 2, acks
        store = redis.Redis(unix_socket_path=str(data / "redis.sock"))  # the bytes exactly as stored
        victim_runs = set().union(*(_runs(store.hget(f"{PREFIX}:s:{sid}", "emb")) for sid in victim_ids))
        _bgsave(store)
        store.close()
        # the check can fail: before the forget, the person is on disk
        assert _found(data, victim_runs, victim_ids), "the scan finds nothing even before the forget"

        out = subprocess.run([str(ANONREID), "forget", victim, "--address", gallery.address, "--reason", "test"],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and "2 sighting(s) erased" in out.stdout, out.stdout + out.stderr
        # once forget has answered, the files hold nothing of the person: a crash now loses no erasure
        assert _found(data, victim_runs, victim_ids) == {}
        assert gallery.terminate() == 0, gallery.output()[-3000:]
    finally:
        gallery.kill()
        kill_redis_servers(data)

    assert _found(data, victim_runs, victim_ids) == {}
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    modes = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in _files(data)}
    assert {"appendonly.aof", "anonreid.rdb"} <= set(modes) and set(modes.values()) == {"0o600"}, modes

    again = GalleryProcess(data, tmp_path / "again.log").wait_serving()
    try:
        with GalleryClient(again.address) as client:
            listed = {i.identity_id: i.num_sightings for i in client.list_identities()}
            assert listed == {i: len(ids) for i, ids in kept.items()}
            for identity, ids in kept.items():
                assert sorted(s for st in client.trajectory(identity).steps for s in st.sighting_ids) == ids
            # a camera replaying a forgotten sighting does not bring the person back
            replay = client.publish([s for s in items if s.sighting_id == victim_ids[0]])
            assert replay[0].duplicate and not replay[0].identity_id
        assert again.terminate() == 0
    finally:
        again.kill()
        kill_redis_servers(data)
    assert _found(data, victim_runs, victim_ids) == {}
