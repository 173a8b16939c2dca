"""Index snapshots: a restart loads the last snapshot and replays the Redis change log since it.

Rebuilding the gallery from Redis reads every sighting's hash, minutes at a million entries
(docs/BENCHMARKS.md). With ``gallery.snapshot_dir`` set, the gallery writes its FAISS index and its
in-memory rows there every ``snapshot_interval_s`` (sooner after ``snapshot_max_tail`` changes), and at
clean shutdown; and its store keeps a change log in Redis (the ``P:changes`` stream of
:mod:`~anonreid.gallery.store`: one entry per commit, forget and expiry, written in the same transaction).

Files in the directory:

- ``snapshot.json``: the manifest: format, Redis prefix, embedding size, the change-log entry the
  snapshot covers (a marker appended under the gallery lock as the snapshot was taken, with a random
  nonce), the counters, the index layout state, and the data files with their size and CRC-32;
- ``index-<gen>.faiss``: ``faiss.serialize_index`` bytes, read back with ``faiss.read_index``;
- ``rows-<gen>.npz``: the rows (sighting, FAISS id, camera, tracklet, span, identity, similarity,
  ingest time) as plain arrays (``np.savez``; loaded without pickle).

Data files are written under temporary names, flushed to disk and renamed; the manifest is replaced
last, then the files of older snapshots are removed, and the change log is trimmed to the marker.

Restore (:meth:`~anonreid.gallery.core.Gallery.load`): the manifest and the files must check out and
the change log must still hold the marker with its nonce (else the log was trimmed past it, or this is
another Redis): otherwise the gallery rebuilds from Redis. Then every entry after the marker is
replayed (:func:`replay_plan`): the sightings a commit wrote or relabelled are read again from Redis (the
truth), the FAISS ids a forget or an expiry erased are dropped; with a retention period, rows older
than it are dropped too (Redis expires their keys without an entry). The result equals a full rebuild
(``tests/test_gallery_snapshot.py``).

A snapshot is data on disk: a forget rewrites it before it returns (without the forgotten rows; if
that fails, the files are deleted), so no file keeps a forgotten person. A forget's change-log entry
names FAISS ids only, never a sighting id, and a gallery that crashed between the forget and the
rewrite drops the rows on restore and rewrites the snapshot at once.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
import uuid
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np

from anonreid.gallery.types import StoredSighting

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "snapshot.json"
_TEXT = ("sighting_id", "camera_id", "tracklet_id", "identity_id")
_INTS = ("fid", "start_us", "end_us", "ingested_at_us")


class SnapshotUnusable(Exception):
    """The snapshot cannot be used (missing, damaged, of another gallery); the message says why."""


class NoSnapshot(SnapshotUnusable):
    """None written yet."""


@dataclass(frozen=True)
class Captured:
    """What the gallery hands over for writing, taken under its lock."""

    seq: int  # grows with every capture of this process: a later capture is never overwritten
    index_bytes: np.ndarray
    index_state: dict[str, Any]
    rows: Sequence[StoredSighting]
    position: str  # the change-log marker entry id
    nonce: str
    next_fid: int
    next_identity: int


@dataclass(frozen=True)
class Loaded:
    manifest: dict[str, Any]
    index_path: Path
    rows: list[StoredSighting]


def rows_to_arrays(rows: Sequence[StoredSighting]) -> dict[str, np.ndarray]:
    """Rows as plain arrays: text columns as newline-joined UTF-8 (ids are printable, no newline)."""
    out: dict[str, np.ndarray] = {}
    for name in _TEXT:
        out[name] = np.frombuffer("\n".join(getattr(r, name) for r in rows).encode(), np.uint8)
    for name in _INTS:
        out[name] = np.fromiter((getattr(r, name) for r in rows), np.int64, len(rows))
    out["similarity"] = np.fromiter((r.similarity for r in rows), np.float64, len(rows))
    return out


def rows_from_arrays(arrays: Any, n: int) -> list[StoredSighting]:
    """The inverse of :func:`rows_to_arrays` (``n`` rows); repeated strings are shared."""
    text: dict[str, list[str]] = {}
    for name in _TEXT:
        values = bytes(arrays[name]).decode().split("\n") if n else []
        if len(values) != n:
            raise ValueError(f"column {name} has {len(values)} values, expected {n}")
        if name != "sighting_id":
            pool: dict[str, str] = {}
            values = [pool.setdefault(v, v) for v in values]
        text[name] = values
    ints = {name: arrays[name].tolist() for name in _INTS}
    sims = arrays["similarity"].tolist()
    if any(len(v) != n for v in (*ints.values(), sims)):
        raise ValueError(f"numeric columns do not all have {n} values")
    return [StoredSighting(*fields) for fields in zip(
        text["sighting_id"], ints["fid"], text["camera_id"], text["tracklet_id"], ints["start_us"],
        ints["end_us"], text["identity_id"], sims, ints["ingested_at_us"], strict=True)]


def replay_plan(changes: Iterable[tuple[str, str]]) -> tuple[set[int], list[str]]:
    """From change-log entries (op, data): the FAISS ids erased (forget, expiry) and the sighting ids
    written or relabelled (commits, first mention order, no repeats)."""
    gone: set[int] = set()
    touched: dict[str, None] = {}
    for op, data in changes:
        if op == "commit" and data:
            touched.update(dict.fromkeys(data.split("\n")))
        elif op == "gone" and data:
            gone.update(int(x) for x in data.split(","))
    return gone, list(touched)


@dataclass
class Replay:
    """A snapshot's rows brought up to date with the change log since it (see :func:`replay`)."""

    kept: list[StoredSighting]  # snapshot rows unchanged since, as they are in the index
    current: list[StoredSighting]  # rows a commit wrote or relabelled since, as Redis has them now
    dropped: list[int]  # FAISS ids to remove from the snapshot's index
    added: tuple[np.ndarray, np.ndarray]  # (FAISS ids, vectors) to add to it
    touched: int  # sightings written or relabelled since
    gone: int  # FAISS ids erased since (forget, expiry)
    erased: int  # snapshot rows dropped as erased: the file on disk still holds them


def replay(rows: Sequence[StoredSighting], store: Any, position: str, dim: int,
           retention_cutoff_us: int | None = None) -> Replay:
    """Apply the change-log entries after ``position`` to a snapshot's ``rows``: sightings a commit
    wrote or relabelled are read again from Redis (the truth), FAISS ids a forget or an expiry erased are
    dropped, and so are rows ingested at or before ``retention_cutoff_us`` (their keys expire in Redis
    without an entry)."""
    gone, touched = replay_plan(store.changes_after(position))
    touched_set = set(touched)
    snap_fid = {r.sighting_id: r.fid for r in rows if r.sighting_id in touched_set}
    current: dict[str, StoredSighting] = {}
    add_ids: list[int] = []
    add_vecs: list[np.ndarray] = []
    for fetched, embs in store.fetch_sightings(touched):
        for r, emb in zip(fetched, embs, strict=True):
            current[r.sighting_id] = r
            if snap_fid.get(r.sighting_id) != r.fid:
                add_ids.append(r.fid)
                add_vecs.append(emb)
    kept, dropped, erased = [], [], 0
    for r in rows:
        now = current.get(r.sighting_id)
        if now is not None:
            if now.fid != r.fid:
                dropped.append(r.fid)
        elif r.fid in gone or r.sighting_id in touched_set or (
                retention_cutoff_us is not None and r.ingested_at_us <= retention_cutoff_us):
            dropped.append(r.fid)
            erased += 1
        else:
            kept.append(r)
    vecs = np.stack(add_vecs) if add_vecs else np.empty((0, dim), np.float32)
    return Replay(kept, list(current.values()), dropped, (np.array(add_ids, np.int64), vecs), len(touched),
                  len(gone), erased)


class SnapshotKeeper:
    """A gallery's snapshot bookkeeping: its files, what changed since the last snapshot, when the next
    is due. The gallery calls :meth:`capture` under its lock and :meth:`write` after releasing it."""

    def __init__(self, files: SnapshotFiles, interval_s: float, max_tail: int) -> None:
        self.files = files
        self.interval_s = interval_s
        self.max_tail = max_tail
        self.seq = 0
        self.position: str | None = None  # change-log marker of the snapshot on disk (None: none)
        self.changes = 0  # sightings changed since it
        self.since = time.monotonic()
        self.stale = False  # it holds rows erased since (found on restore): rewrite it at once

    def due(self, *, closing: bool = False) -> bool:
        """None yet, it holds erased rows, ``max_tail`` changes since it, or ``interval_s`` passed with
        changes (``closing``: any change)."""
        if self.position is None or self.stale:
            return True
        if closing:
            return self.changes > 0
        return self.changes >= self.max_tail or (self.changes > 0 and time.monotonic() - self.since >= self.interval_s)

    def restored(self, position: str, r: Replay) -> None:
        self.position, self.since, self.changes, self.stale = position, time.monotonic(), r.touched + r.gone, r.erased > 0

    def capture(self, index: Any, rows: Sequence[StoredSighting], store: Any, next_fid: int,
                next_identity: int) -> tuple[Captured, tuple[int, bool]]:
        """Take a snapshot (under the gallery lock): the index bytes, the rows and a change-log marker;
        with what was pending before it (for :meth:`failed`)."""
        blob, state = index.serialize()
        nonce = uuid.uuid4().hex
        self.seq += 1
        captured = Captured(self.seq, blob, state, rows, store.mark_snapshot(nonce), nonce, next_fid, next_identity)
        before = (self.changes, self.stale)
        self.changes, self.stale, self.since = 0, False, time.monotonic()
        return captured, before

    def failed(self, before: tuple[int, bool]) -> None:
        """A captured snapshot was not written: what it covered is pending again (under the gallery lock)."""
        self.changes += before[0]
        self.stale = self.stale or before[1]

    def write(self, captured: Captured, store: Any) -> bool:
        """Write a capture (outside the gallery lock) and trim the change log to its marker."""
        written = self.files.write(captured)
        if written:
            self.position = captured.position
            store.trim_changes(captured.position)
        return written


def _crc(data: bytes | memoryview) -> int:
    return zlib.crc32(data) & 0xFFFFFFFF


def _file_crc(path: Path, chunk: int = 1 << 24) -> int:
    crc = 0
    with path.open("rb") as f:
        while block := f.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc & 0xFFFFFFFF


def _write_durably(path: Path, data: bytes | memoryview) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class SnapshotFiles:
    """The snapshot files of one gallery (one Redis prefix) in one directory."""

    def __init__(self, directory: str | Path, prefix: str, dim: int) -> None:
        self.directory = Path(directory)
        self.prefix = prefix
        self.dim = dim
        self._lock = threading.Lock()
        self._written_seq = 0

    @property
    def manifest_path(self) -> Path:
        return self.directory / MANIFEST

    def write(self, c: Captured) -> bool:
        """Write a captured snapshot; False when a later capture was written (or tried) meanwhile: an
        older capture never replaces a newer one, nor reappears after the newer one failed and the
        files were deleted."""
        with self._lock:
            if c.seq <= self._written_seq:
                return False
            self._written_seq = c.seq
            t0 = time.perf_counter()
            self.directory.mkdir(parents=True, exist_ok=True)
            gen = f"{int(time.time() * 1000):x}-{c.nonce[:8]}"
            index_path, rows_path = self.directory / f"index-{gen}.faiss", self.directory / f"rows-{gen}.npz"
            index_data = memoryview(cast(Any, np.ascontiguousarray(c.index_bytes, np.uint8)))
            _write_durably(index_path, index_data)
            buf = io.BytesIO()
            cast(Any, np.savez)(buf, **rows_to_arrays(c.rows))
            rows_data = buf.getbuffer()
            _write_durably(rows_path, rows_data)
            manifest = {
                "format": FORMAT, "prefix": self.prefix, "dim": self.dim, "position": c.position,
                "nonce": c.nonce, "rows": len(c.rows), "next_fid": c.next_fid, "next_identity": c.next_identity,
                "written_at_us": time.time_ns() // 1000, "index": c.index_state,
                "files": {"index": {"name": index_path.name, "bytes": len(index_data), "crc32": _crc(index_data)},
                          "rows": {"name": rows_path.name, "bytes": len(rows_data), "crc32": _crc(rows_data)}},
            }
            _write_durably(self.manifest_path, json.dumps(manifest, indent=1).encode())
            self._fsync_directory()
            self._remove_files(keep={index_path.name, rows_path.name, MANIFEST})
        log.info("index snapshot written to %s: %d rows, %.0f MB, %.1f s (change log at %s)", self.directory,
                 len(c.rows), (len(index_data) + len(rows_data)) / 1e6, time.perf_counter() - t0, c.position)
        return True

    def read(self) -> Loaded:
        """The manifest, the index file and the rows, checked; :class:`SnapshotUnusable` otherwise."""
        path = self.manifest_path
        if not path.exists():
            raise NoSnapshot(f"no snapshot in {self.directory} yet")
        try:
            manifest = json.loads(path.read_text())
            for key, want in (("format", FORMAT), ("prefix", self.prefix), ("dim", self.dim)):
                if manifest.get(key) != want:
                    raise SnapshotUnusable(f"{path}: {key} is {manifest.get(key)!r}, this gallery has {want!r}")
            files = {}
            for role in ("index", "rows"):
                entry = manifest["files"][role]
                f = self.directory / Path(entry["name"]).name
                if not f.exists() or f.stat().st_size != entry["bytes"]:
                    raise SnapshotUnusable(f"{f}: missing or not {entry['bytes']} bytes")
                if _file_crc(f) != entry["crc32"]:
                    raise SnapshotUnusable(f"{f}: CRC-32 does not match the manifest (damaged)")
                files[role] = f
            with np.load(files["rows"], allow_pickle=False) as arrays:
                rows = rows_from_arrays(arrays, int(manifest["rows"]))
        except SnapshotUnusable:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SnapshotUnusable(f"{path}: {type(exc).__name__}: {exc}") from exc
        return Loaded(manifest, files["index"], rows)

    def delete(self) -> None:
        """Remove every snapshot file (the manifest first, so a half-deleted snapshot is never used)."""
        with self._lock:
            self.manifest_path.unlink(missing_ok=True)
            self._remove_files(keep=set())

    def _remove_files(self, keep: set[str]) -> None:
        if not self.directory.exists():
            return
        for f in self.directory.iterdir():
            if f.name not in keep and (f.name.startswith(("index-", "rows-")) or f.name.endswith(".tmp")):
                f.unlink(missing_ok=True)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
