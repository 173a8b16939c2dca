"""Redis persistence of the gallery: the source of truth the in-memory index is rebuilt from.

Keys (``P`` = the configured prefix, ``anonreid:gallery`` by default):

- ``P:s:<sighting_id>`` hash: one accepted sighting: camera, tracklet, span, the identity it was
  assigned, its similarity, quality, model version, publish / ingest times, the box summary (8 float32)
  and the embedding (``dim`` float32 bytes, little endian), plus its int64 FAISS id ``fid``.
- ``P:i:<identity_id>`` sorted set: the identity's sighting ids scored by start time.
- ``P:identities`` set: every live identity.
- ``P:meta`` hash: ``next_fid`` and ``next_identity`` counters (never reused, even after forget).
- ``P:forgotten`` set: digests (:func:`forgotten_digest`) of the sighting ids erased by ``forget``, so a
  camera replaying one does not bring the person back (no id, embedding, time or place is kept).
- ``P:forgotten_identities`` set: identity ids erased by ``forget`` (a repeated forget answers 0).
- ``P:e:<identity_id>`` list: the identity's corrections (JSON, oldest first): tracklets that merged into
  it, moved in or out, or split off (:class:`~anonreid.gallery.types.Correction`), written with the relabels
  they made; deleted with the identity (forget, an identity a merge emptied), expiring with it.
- ``P:transit`` hash: per camera link ``src>dst``, the transit gaps (us, JSON list) of confident matches
  that the transit model (:mod:`~anonreid.gallery.transit`) learned from.
- ``P:audit`` stream: forget operations (identity, count, reason, time), capped.
- ``P:access`` stream: who queried which identity and when (:mod:`anonreid.gallery.access`), capped.
- ``P:changes`` stream, only while the gallery keeps index snapshots (``change_log``): one entry per
  commit (the sighting ids it wrote or relabelled), forget and expiry (the FAISS ids they erased, never
  a sighting id), and snapshot marker, written in the same transaction as the change; trimmed to the
  marker of each snapshot written (:mod:`anonreid.gallery.snapshot`).

With a retention period (``retention_s`` > 0), every sighting hash expires in Redis ``retention_s``
after it was ingested and an identity's sorted set ``retention_s`` after its newest sighting, so the
data goes even when no gallery runs; the gallery's sweeper (:meth:`GalleryStore.expire`) removes the
same sightings from the sorted sets, the identity set, FAISS and its tables.

A forget also reaches the disk: :meth:`GalleryStore.erase_from_disk` has Redis rewrite its append-only
file and RDB snapshot (:mod:`anonreid.orchestration.infra.redis_persistence`), which otherwise keep the erased
values until their next rewrite.

A sighting, its identity membership and the counters are written in one MULTI/EXEC transaction before
the gallery acknowledges it, together with the relabels of any identity split that the batch made
(the moved sightings' ``identity`` field and their sorted-set membership); a failure raises
:class:`~anonreid.gallery.errors.Unavailable` and leaves nothing half-written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import redis

from anonreid.gallery.errors import Unavailable
from anonreid.gallery.types import Box, Correction, Sighting, StoredSighting
from anonreid.orchestration.infra.redis_persistence import PersistenceRewriteError, rewrite_persistence

log = logging.getLogger(__name__)

LOAD_BATCH = 2000
AUDIT_MAXLEN = 100_000
CHANGE_LOG_MAXLEN = 1_000_000  # entries (one per batch); trimmed past a snapshot's marker, it rebuilds instead
DIGEST_PREFIX = "h:"


def forgotten_digest(sighting_id: str) -> str:
    """What ``P:forgotten`` keeps of an erased sighting id: enough to recognise a replay, not the id."""
    return DIGEST_PREFIX + hashlib.sha256(sighting_id.encode()).hexdigest()[:32]


@dataclass
class StoreState:
    """What :meth:`GalleryStore.load_meta` finds: counters, the forgotten sighting ids (as
    :func:`forgotten_digest`) and the forgotten identity ids."""

    next_fid: int = 1
    next_identity: int = 1
    forgotten: set[str] = field(default_factory=set)
    forgotten_identities: set[str] = field(default_factory=set)


class GalleryStore:
    """Reads and writes the gallery's Redis keys (one client; redis-py pools connections)."""

    def __init__(self, client: redis.Redis, prefix: str = "anonreid:gallery", dim: int = 256,
                 retention_s: float = 0.0) -> None:
        self.client = client
        self.prefix = prefix
        self.dim = dim
        self.retention_ms = round(retention_s * 1000)  # 0 = keep forever
        self.corrupt_records = 0  # records skipped by iter_sightings (logged)
        self._identities = f"{prefix}:identities"
        self._meta = f"{prefix}:meta"
        self._forgotten = f"{prefix}:forgotten"
        self._forgotten_identities = f"{prefix}:forgotten_identities"
        self.audit_stream = f"{prefix}:audit"
        self.change_stream = f"{prefix}:changes"
        self.transit_key = f"{prefix}:transit"
        self.change_log = False  # set by a gallery that keeps snapshots
        self._disk_lock = threading.Lock()

    # -- keys -----------------------------------------------------------------------------------
    def sighting_key(self, sighting_id: str) -> str:
        return f"{self.prefix}:s:{sighting_id}"

    def identity_key(self, identity_id: str) -> str:
        return f"{self.prefix}:i:{identity_id}"

    def corrections_key(self, identity_id: str) -> str:
        return f"{self.prefix}:e:{identity_id}"

    def _run(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis unavailable while {what}: {exc}", reason="redis") from exc

    # -- writes ---------------------------------------------------------------------------------
    def _sighting_fields(self, row: StoredSighting, s: Sighting, embedding: np.ndarray,
                         ingested_at_us: int) -> dict[str, Any]:
        return {
            "fid": row.fid,
            "camera": row.camera_id,
            "tracklet": row.tracklet_id,
            "start": row.start_us,
            "end": row.end_us,
            "identity": row.identity_id,
            "similarity": repr(float(row.similarity)),
            "quality": repr(float(s.quality)),
            "model_version": s.model_version,
            "published_at": s.published_at_us,
            "ingested_at": ingested_at_us,
            "box": np.asarray(s.box.as_tuple(), dtype="<f4").tobytes(),
            "emb": np.ascontiguousarray(embedding, dtype="<f4").tobytes(),
        }

    def commit(self, rows: Iterable[tuple[StoredSighting, Sighting, np.ndarray]], next_fid: int,
               next_identity: int, moves: Sequence[tuple[str, StoredSighting]] = (),
               corrections: Sequence[Correction] = (), emptied: Sequence[str] = (),
               transit: dict[tuple[str, str], list[int]] | None = None) -> None:
        """Persist accepted sightings and the counters atomically (MULTI/EXEC); with a retention period
        the keys expire ``retention_s`` after the row's ingest time.

        ``moves``: (identity it is stored under, row now) of stored sightings a correction moved to
        another identity, relabelled in the same transaction, with the ``corrections`` themselves (in the
        lists of both identities); ``emptied``: identities the moves left without sightings (deleted);
        ``transit``: the transit model's gaps of the links that learned in this batch."""
        now = time.time_ns() // 1000

        def write() -> None:
            pipe = self.client.pipeline(transaction=True)
            expires: dict[str, int] = {}  # identity -> when its newest sighting written here expires
            for old, row in moves:
                key = self.sighting_key(row.sighting_id)
                pipe.hset(key, "identity", row.identity_id)
                pipe.zrem(self.identity_key(old), row.sighting_id)
                pipe.zadd(self.identity_key(row.identity_id), {row.sighting_id: row.start_us})
                pipe.sadd(self._identities, row.identity_id)
                if self.retention_ms:
                    expires_ms = (row.ingested_at_us or now) // 1000 + self.retention_ms
                    pipe.pexpireat(key, expires_ms)  # unchanged; deletes the hash at once if it had expired
                    expires[row.identity_id] = max(expires.get(row.identity_id, 0), expires_ms)
            written = []
            members: dict[str, dict[str, int]] = {}  # identity -> {sighting id: start}: one ZADD each
            for row, s, emb in rows:
                written.append(row.sighting_id)
                key = self.sighting_key(row.sighting_id)
                pipe.hset(key, mapping=cast(Any, self._sighting_fields(row, s, emb, row.ingested_at_us or now)))
                members.setdefault(row.identity_id, {})[row.sighting_id] = row.start_us
                if self.retention_ms:
                    expires_ms = (row.ingested_at_us or now) // 1000 + self.retention_ms
                    pipe.pexpireat(key, expires_ms)
                    expires[row.identity_id] = max(expires.get(row.identity_id, 0), expires_ms)
            for identity_id, m in members.items():
                pipe.zadd(self.identity_key(identity_id), cast(Any, m))
            if members:
                pipe.sadd(self._identities, *members)
            for identity_id, expires_ms in expires.items():  # after the ZADDs that create the keys
                pipe.pexpireat(self.identity_key(identity_id), expires_ms)
            for c in corrections:
                entry = json.dumps(dataclasses.asdict(c))
                for identity_id in dict.fromkeys((c.from_identity, c.to_identity)):
                    if identity_id not in emptied:
                        pipe.rpush(self.corrections_key(identity_id), entry)
            for identity_id in emptied:
                pipe.delete(self.identity_key(identity_id), self.corrections_key(identity_id))
                pipe.srem(self._identities, identity_id)
            for identity_id, expires_ms in expires.items():
                pipe.pexpireat(self.corrections_key(identity_id), expires_ms)
            if transit:
                pipe.hset(self.transit_key, mapping={f"{a}>{b}": json.dumps(g) for (a, b), g in transit.items()})
            pipe.hset(self._meta, mapping={"next_fid": next_fid, "next_identity": next_identity})
            self._log(pipe, "commit", "\n".join([*written, *(r.sighting_id for _, r in moves)]))
            pipe.execute()

        self._run("storing a sighting", write)

    def _log(self, pipe: Any, op: str, payload: str) -> None:
        """Append a change-log entry to a transaction (with the change log on)."""
        if self.change_log:
            pipe.xadd(self.change_stream, {"op": op, "data": payload}, maxlen=CHANGE_LOG_MAXLEN, approximate=True)

    def forget(self, identity_id: str, sighting_ids: list[str], reason: str, actor: str = "",
               fids: Sequence[int] = ()) -> None:
        """Erase an identity and all its sightings; remember the ids as forgotten; audit it. ``fids``
        (their FAISS ids) go to the change log, so a snapshot older than the forget drops them."""

        def erase() -> None:
            pipe = self.client.pipeline(transaction=True)
            for i in range(0, len(sighting_ids), 1000):
                chunk = sighting_ids[i : i + 1000]
                pipe.delete(*[self.sighting_key(s) for s in chunk])
                pipe.sadd(self._forgotten, *[forgotten_digest(s) for s in chunk])
            pipe.delete(self.identity_key(identity_id), self.corrections_key(identity_id))
            pipe.srem(self._identities, identity_id)
            pipe.sadd(self._forgotten_identities, identity_id)
            pipe.xadd(self.audit_stream, {"action": "forget", "identity": identity_id,
                                          "sightings": len(sighting_ids), "reason": reason, "actor": actor,
                                          "at_us": time.time_ns() // 1000},
                      maxlen=AUDIT_MAXLEN, approximate=True)
            self._log(pipe, "gone", ",".join(map(str, fids)))
            pipe.execute()

        self._run(f"forgetting identity {identity_id}", erase)

    def erase_from_disk(self) -> list[str]:
        """Have Redis rewrite its persistence files so that what was erased before this call is in none of
        them; returns what was rewritten ("aof", "rdb"). A Redis that refuses (a managed service that
        disables the commands) is logged as an error: its operator must rewrite them (docs/SECURITY.md)."""
        with self._disk_lock:  # one rewrite at a time; a forget that waited here gets its own
            try:
                return rewrite_persistence(self.client)
            except PersistenceRewriteError as exc:
                log.error("forget: erased from Redis's memory, but its files on disk may still hold the "
                          "erased sightings: %s. Rewrite the append-only file and the RDB snapshot of this "
                          "Redis and of its replicas (docs/SECURITY.md, 'Erasure on disk').", exc)
                return []

    def expire(self, rows: Iterable[tuple[str, str]], emptied_identities: Iterable[str],
               fids: Sequence[int] = ()) -> None:
        """Erase sightings past the retention period: ``rows`` are (identity id, sighting id) pairs;
        ``emptied_identities`` have no sighting left; ``fids`` (their FAISS ids) go to the change log.
        Unlike forget, the ids are not remembered."""
        rows, emptied = list(rows), list(emptied_identities)

        def erase() -> None:
            pipe = self.client.pipeline(transaction=True)
            for identity_id, sighting_id in rows:
                pipe.delete(self.sighting_key(sighting_id))
                pipe.zrem(self.identity_key(identity_id), sighting_id)
            for identity_id in emptied:
                pipe.delete(self.identity_key(identity_id), self.corrections_key(identity_id))
            if emptied:
                pipe.srem(self._identities, *emptied)
            if fids:
                self._log(pipe, "gone", ",".join(map(str, fids)))
            pipe.execute()

        self._run("expiring sightings past the retention period", erase)

    # -- reads ----------------------------------------------------------------------------------
    def load_meta(self) -> StoreState:
        def read() -> StoreState:
            meta = self.client.hgetall(self._meta)
            forgotten = {m.decode() for m in self.client.sscan_iter(self._forgotten, count=1000)}
            gone = {m.decode() for m in self.client.sscan_iter(self._forgotten_identities, count=1000)}
            return StoreState(int(meta.get(b"next_fid", 1)), int(meta.get(b"next_identity", 1)), forgotten, gone)

        state = self._run("reading the gallery counters", read)
        plain = sorted(m for m in state.forgotten if not m.startswith(DIGEST_PREFIX))
        if plain:  # written by a version that kept the ids themselves
            digests = [forgotten_digest(m) for m in plain]

            def migrate() -> None:
                pipe = self.client.pipeline(transaction=True)
                for i in range(0, len(plain), 1000):
                    pipe.sadd(self._forgotten, *digests[i : i + 1000])
                    pipe.srem(self._forgotten, *plain[i : i + 1000])
                pipe.execute()

            self._run("replacing forgotten sighting ids by their digests", migrate)
            state.forgotten = (state.forgotten - set(plain)) | set(digests)
            log.info("replaced %d forgotten sighting ids by their digests", len(plain))
            self.erase_from_disk()
        return state

    def _row(self, sighting_id: str, h: dict[bytes, bytes]) -> tuple[StoredSighting, np.ndarray]:
        emb = np.frombuffer(h[b"emb"], dtype="<f4")
        if emb.shape != (self.dim,):
            raise ValueError(f"Redis key {self.sighting_key(sighting_id)}: embedding has {emb.size} values, "
                             f"the gallery is configured for {self.dim}")
        row = StoredSighting(
            sighting_id=sighting_id,
            fid=int(h[b"fid"]),
            camera_id=h[b"camera"].decode(),
            tracklet_id=h[b"tracklet"].decode(),
            start_us=int(h[b"start"]),
            end_us=int(h[b"end"]),
            identity_id=h[b"identity"].decode(),
            similarity=float(h[b"similarity"]),
            ingested_at_us=int(h.get(b"ingested_at", 0)),
        )
        return row, emb

    def _fetch(self, keys: Sequence[bytes]) -> tuple[list[StoredSighting], np.ndarray]:
        """The rows and embeddings (n, dim) of the sighting keys that exist (one pipeline)."""
        prefix = self.sighting_key("")
        pipe = self.client.pipeline(transaction=False)
        for k in keys:
            pipe.hgetall(k)
        rows, embs = [], []
        for k, h in zip(keys, pipe.execute(), strict=True):
            if not h:  # erased (between SCAN and HGETALL, or since a change-log entry named it)
                continue
            try:
                row, emb = self._row(k.decode()[len(prefix):], h)
            except (KeyError, ValueError, UnicodeDecodeError) as exc:
                # one damaged record must not keep the gallery down: skip it, loudly
                log.error("skipping corrupt gallery record %s: %s: %s", k.decode(errors="replace"),
                          type(exc).__name__, exc)
                self.corrupt_records += 1
                continue
            rows.append(row)
            embs.append(emb)
        return rows, (np.stack(embs) if embs else np.empty((0, self.dim), np.float32))

    def iter_sightings(self, batch: int = LOAD_BATCH) -> Iterator[tuple[list[StoredSighting], np.ndarray]]:
        """Every stored sighting, in batches of (rows, embeddings (n, dim) float32)."""
        keys: list[bytes] = []
        try:
            for key in self.client.scan_iter(match=_glob_escape(self.sighting_key("")) + "*", count=batch):
                keys.append(key)
                if len(keys) >= batch:
                    yield self._fetch(keys)
                    keys = []
            if keys:
                yield self._fetch(keys)
        except redis.RedisError as exc:
            raise Unavailable(f"Redis unavailable while loading sightings: {exc}", reason="redis") from exc

    def fetch_sightings(self, sighting_ids: Sequence[str], batch: int = LOAD_BATCH
                        ) -> Iterator[tuple[list[StoredSighting], np.ndarray]]:
        """The named sightings that are still stored, in batches of (rows, embeddings)."""
        for i in range(0, len(sighting_ids), batch):
            keys = [self.sighting_key(s).encode() for s in sighting_ids[i : i + batch]]
            yield self._run("reading sightings", self._fetch, keys)

    # -- change log (index snapshots) ------------------------------------------------------------
    def mark_snapshot(self, nonce: str) -> str:
        """Append a snapshot marker to the change log; its entry id (the position a snapshot covers)."""
        entry = self._run("marking a snapshot", lambda: self.client.xadd(
            self.change_stream, {"op": "snapshot", "data": nonce}, maxlen=CHANGE_LOG_MAXLEN, approximate=True))
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def has_marker(self, entry_id: str, nonce: str) -> bool:
        """Whether the change log still holds the snapshot marker ``entry_id`` (with its nonce)."""
        found = self._run("reading the change log", lambda: self.client.xrange(self.change_stream, entry_id, entry_id))
        return bool(found) and found[0][1].get(b"op") == b"snapshot" and found[0][1].get(b"data") == nonce.encode()

    def changes_after(self, entry_id: str, batch: int = LOAD_BATCH) -> Iterator[tuple[str, str]]:
        """(op, data) of every change-log entry after ``entry_id``, in order."""
        start = "(" + entry_id
        while True:
            entries = self._run("reading the change log",
                                lambda after=start: self.client.xrange(self.change_stream, after, "+", count=batch))
            for _, fields in entries:
                yield fields[b"op"].decode(), fields[b"data"].decode()
            if len(entries) < batch:
                return
            start = "(" + entries[-1][0].decode()

    def trim_changes(self, entry_id: str) -> None:
        """Drop the change-log entries before ``entry_id`` (a snapshot covers them)."""
        self._run("trimming the change log", lambda: self.client.xtrim(self.change_stream, minid=entry_id, approximate=False))

    def drop_changes(self) -> None:
        """Delete the change log (a gallery without snapshots: no snapshot may replay a log it does not keep)."""
        self._run("deleting the change log", self.client.delete, self.change_stream)

    def get_embedding(self, sighting_id: str) -> np.ndarray | None:
        raw = self._run("reading an embedding", self.client.hget, self.sighting_key(sighting_id), "emb")
        return None if raw is None else np.frombuffer(raw, dtype="<f4").astype(np.float32)

    def get_sighting(self, sighting_id: str) -> dict[str, Any] | None:
        """The stored fields of one sighting (decoded; box as :class:`Box`), or None."""
        h = self._run("reading a sighting", self.client.hgetall, self.sighting_key(sighting_id))
        if not h:
            return None
        row, emb = self._row(sighting_id, h)
        return {"row": row, "embedding": emb, "quality": float(h[b"quality"]),
                "model_version": h[b"model_version"].decode(), "published_at_us": int(h[b"published_at"]),
                "ingested_at_us": int(h[b"ingested_at"]),
                "box": Box.from_tuple(np.frombuffer(h[b"box"], dtype="<f4").tolist())}

    def weighted_embeddings(self, sighting_ids: Sequence[str]) -> list[tuple[np.ndarray, float] | None]:
        """(embedding, quality) of each named sighting, None where it is no longer stored (one pipeline;
        tracklet prototypes are rebuilt from these)."""
        def read() -> list[Any]:
            pipe = self.client.pipeline(transaction=False)
            for sid in sighting_ids:
                pipe.hmget(self.sighting_key(sid), "emb", "quality")
            return cast(list[Any], pipe.execute())

        return [(np.frombuffer(emb, dtype="<f4"), float(quality or 0.0))
                if emb is not None and len(emb) == 4 * self.dim else None
                for emb, quality in self._run("reading embeddings", read)]

    def load_corrections(self) -> dict[str, list[Correction]]:
        """Every identity's recorded corrections, oldest first."""
        prefix = self.corrections_key("")

        def read() -> dict[str, list[Correction]]:
            out: dict[str, list[Correction]] = {}
            for key in self.client.scan_iter(match=_glob_escape(prefix) + "*", count=LOAD_BATCH):
                out[key.decode()[len(prefix):]] = [Correction(**json.loads(r)) for r in self.client.lrange(key, 0, -1)]
            return out

        return cast(dict[str, list[Correction]], self._run("reading corrections", read))

    def load_transit(self) -> dict[tuple[str, str], list[int]]:
        """The transit gaps stored per camera link (``src>dst``)."""
        raw = self._run("reading the transit model", self.client.hgetall, self.transit_key)
        out: dict[tuple[str, str], list[int]] = {}
        for name, value in raw.items():
            src, _, dst = name.decode().partition(">")
            try:
                out[(src, dst)] = [int(g) for g in json.loads(value)]
            except (ValueError, TypeError):
                log.error("skipping corrupt transit record %s in %s", name.decode(errors="replace"), self.transit_key)
        return out

    def identity_sighting_ids(self, identity_id: str) -> list[str]:
        raw = self._run("reading an identity", self.client.zrange, self.identity_key(identity_id), 0, -1)
        return [m.decode() for m in raw]

    def identity_ids(self) -> set[str]:
        raw = self._run("listing identities", self.client.smembers, self._identities)
        return {m.decode() for m in raw}


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so a prefix matches literally."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
