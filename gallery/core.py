"""The gallery's domain logic: validate, associate, persist, index, answer operator queries.

No grpc here (the servicer translates protobuf; the server maps :mod:`~anonreid.gallery.errors` to
status codes). Order of work for a published sighting, chosen so that nothing acknowledged is ever lost
and a failure changes nothing:

1. validate (:mod:`~anonreid.gallery.validation`: a bad sighting raises :class:`InvalidInput` naming
   the field; nothing is touched);
2. a sighting id already stored (or erased by ``forget``) is acknowledged as a duplicate, unchanged;
3. decide the identity (pure: :class:`~anonreid.gallery.association.Associator`, on the tracklet's mean
   embedding (:mod:`~anonreid.gallery.tracklets`) and the learned transit times
   (:mod:`~anonreid.gallery.transit`); within the correction horizon it may move the tracklet to another
   identity: a correction, recorded in Redis with the identities and shown in their trajectories);
   each time stream time crosses a multiple of ``gallery.merge_every_s``, a merge pass joins identities
   seen lately that look alike as a whole and could be one person (:meth:`Gallery._merge_pass_locked`:
   corrections of kind merge, in the same transaction);
4. apply it to FAISS and the in-memory tables, and write it to Redis in one transaction (a batch of a
   publish stream goes in one transaction); a decision that splits an identity (a tracklet update that
   reveals a wrong merge, see :mod:`~anonreid.gallery.association`) relabels the moved sightings in the
   same transaction. If Redis fails, :class:`Unavailable` is raised and the memory changes (new rows and
   relabels) are rolled back, so the client retries and the id keeps it idempotent;
5. only then return the ack.

On start, :meth:`Gallery.load` rebuilds the index and the identity tables
(:mod:`~anonreid.gallery.tables`) from Redis.
One lock serialises mutations and queries (association is inherently sequential; FAISS releases the
GIL inside searches, so the gRPC threads still overlap their protobuf work).
"""

from __future__ import annotations

import bisect
import dataclasses
import heapq
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import numpy as np

from anonreid.gallery.association import Associator, CameraGraph, IdentityTrack
from anonreid.gallery.clocks import ClockBook
from anonreid.gallery.errors import InvalidInput, NotFound, Unavailable
from anonreid.gallery.index import BatchNeighbours, EmbeddingIndex
from anonreid.gallery.metrics import GalleryMetrics
from anonreid.gallery.snapshot import NoSnapshot, SnapshotFiles, SnapshotKeeper, SnapshotUnusable, replay
from anonreid.gallery.store import GalleryStore, forgotten_digest
from anonreid.gallery.tables import IdentityTables
from anonreid.gallery.tracklets import TrackletBook, TrackletScorer, observe, tracklet_rows
from anonreid.gallery.transit import TransitModel
from anonreid.gallery.types import (
    Ack,
    CameraOccupancy,
    Correction,
    IdentitySummary,
    Match,
    Sighting,
    Split,
    StoredSighting,
    Trajectory,
    TrajectoryStep,
)
from anonreid.gallery.validation import check_embedding, validate_sighting
from anonreid.orchestration.config import GalleryConfig

log = logging.getLogger(__name__)


def identity_name(n: int) -> str:
    return f"id-{n:06d}"


class Gallery(IdentityTables):
    """Global identities over the sightings of all cameras, persisted in Redis, indexed in FAISS; the
    rows and identities in memory are its :class:`~anonreid.gallery.tables.IdentityTables`."""

    def __init__(self, config: GalleryConfig, store: GalleryStore, metrics: GalleryMetrics | None = None,
                 index: EmbeddingIndex | None = None) -> None:
        super().__init__(config.camera_ids)
        self.config = config
        self.graph = CameraGraph.from_config(config)
        self.transit = TransitModel.from_config(self.graph, config)
        self.associator = Associator(self.graph, config.similarity_threshold, self.transit,
                                     round(config.correction_horizon_s * 1_000_000), config.transit_confident,
                                     config.correction_threshold, config.association_candidates)
        self.store = store
        self.tracklets = TrackletBook(store.weighted_embeddings)  # tracklet mean embeddings, rebuilt from Redis
        self._history: dict[str, list[Correction]] = {}  # identity -> its corrections (trajectories show them)
        self.metrics = metrics if metrics is not None else GalleryMetrics()
        self.index = index if index is not None else EmbeddingIndex.from_config(config)
        self.clocks = ClockBook(store.client, store.prefix)  # how each sighting's times read as a time of day
        self.snapshots = (SnapshotKeeper(SnapshotFiles(config.snapshot_dir, config.redis_prefix, config.embedding_dim),
                                         config.snapshot_interval_s, config.snapshot_max_tail)
                          if config.snapshot_dir else None)
        store.change_log = self.snapshots is not None
        self._lock = threading.RLock()
        self.load()
        if self.snapshots is not None and self.snapshots.stale:  # the file holds people erased since
            self.write_snapshot()

    def load(self) -> int:
        """Rebuild the index and the identity tables: from the index snapshot and the change log since it
        (with ``snapshot_dir``: :mod:`~anonreid.gallery.snapshot`), else from every sighting in Redis;
        returns the sightings loaded."""
        t0 = time.perf_counter()
        with self._lock:
            self._clear()
            self.index.reset()
            meta = self.store.load_meta()
            self.clocks.load()
            self.tracklets.clear()
            self.transit.load(self.store.load_transit())
            self._history = self.store.load_corrections()
            source = self._restore() if self.snapshots is not None else None
            if source is None:
                source = "Redis"
                if self.snapshots is None:  # no snapshot may replay a change log this gallery does not keep
                    self.store.drop_changes()
                else:
                    self.snapshots.position = None
                loaded: list[StoredSighting] = []
                for rows, embs in self.store.iter_sightings():
                    self.index.add(np.fromiter((r.fid for r in rows), np.int64, len(rows)), embs)
                    loaded.extend(rows)
                self._remember_all(loaded)
            numbered = [int(i[3:]) for i in self._tracks if i.startswith("id-") and i[3:].isdigit()]
            self._next_fid = max(meta.next_fid, max(self._by_fid, default=0) + 1)
            self._next_identity = max(meta.next_identity, max(numbered, default=0) + 1)
            self._forgotten = meta.forgotten
            self._forgotten_identities = meta.forgotten_identities
            stale = self.store.identity_ids() - set(self._tracks)
            if stale:  # every sighting expired in Redis (retention TTL) while no gallery ran
                self.store.expire([], sorted(stale))
            self._settle_index()
            self._update_sizes()
            n = len(self._sightings)
            self.loaded_from = source
        log.info("gallery loaded %d sightings, %d identities from %s in %.2f s (%s)", n, len(self._tracks), source,
                 time.perf_counter() - t0, self.index.describe())
        return n

    def _restore(self) -> str | None:
        """Load the snapshot and replay the change log since it; what was loaded, or None when the
        snapshot cannot be used (the caller rebuilds from Redis)."""
        assert self.snapshots is not None
        files = self.snapshots.files
        try:
            snap = files.read()
            position = snap.manifest["position"]
            if not self.store.has_marker(position, snap.manifest["nonce"]):
                raise SnapshotUnusable(f"the Redis change log no longer holds its marker {position} "
                                       "(trimmed past it, or another Redis)")
            self.index.restore(str(snap.index_path), snap.manifest["index"])
        except (SnapshotUnusable, ValueError, RuntimeError) as exc:
            log.log(logging.INFO if isinstance(exc, NoSnapshot) else logging.WARNING,
                    "index snapshot in %s not used (%s); rebuilding from Redis", files.directory, exc)
            self.index.reset()
            return None
        retention_us = round(self.config.retention_s * 1_000_000)
        r = replay(snap.rows, self.store, position, self.config.embedding_dim,
                   time.time_ns() // 1000 - retention_us if retention_us > 0 else None)
        self.index.remove(np.array(r.dropped, np.int64))
        self.index.add(*r.added)
        self._remember_all([*r.kept, *r.current])
        if len(self.index) != len(self._sightings):
            log.error("index snapshot in %s not used: %d vectors for %d sightings after the replay; rebuilding "
                      "from Redis", files.directory, len(self.index), len(self._sightings))
            self._clear()
            self.index.reset()
            return None
        self.snapshots.restored(position, r)
        return (f"snapshot {snap.index_path.name} ({len(snap.rows)} rows) and the change log since it "
                f"({r.touched} sighting(s) written, {r.gone} erased)")

    def _settle_index(self) -> None:
        """Let the index change layout between batches (auto: IVF from its size on); a failure keeps the
        layout it had."""
        try:
            if self.index.settle(self._tracklet_codes) and self.snapshots is not None:
                self.snapshots.changes = max(self.snapshots.changes, self.snapshots.max_tail)  # snapshot it soon
        except Exception:
            log.exception("index layout change failed; kept %s", self.index.describe())

    # -- snapshots ------------------------------------------------------------------------------
    def write_snapshot(self) -> bool:
        """Write an index snapshot now (with ``snapshot_dir``); False when none is configured or a later
        one was written meanwhile. Taken under the lock, written to disk after it: publishing goes on."""
        if self.snapshots is None:
            return False
        with self._lock:
            captured, before = self.snapshots.capture(self.index, list(self._by_fid.values()), self.store,
                                                      self._next_fid, self._next_identity)
        try:
            return self.snapshots.write(captured, self.store)
        except BaseException:
            with self._lock:
                self.snapshots.failed(before)
            raise

    def snapshot_due(self, *, closing: bool = False) -> bool:
        """Whether a snapshot should be written now (:meth:`SnapshotKeeper.due`)."""
        return self.snapshots is not None and self.snapshots.due(closing=closing)

    def _rewrite_snapshot(self) -> None:
        """After a forget: rewrite the snapshot without the erased rows, or delete it if that fails (no
        file may keep a forgotten person; the next restart then rebuilds from Redis)."""
        if self.snapshots is None:
            return
        try:
            self.write_snapshot()
        except (OSError, Unavailable) as exc:
            log.error("forget: could not rewrite the index snapshot in %s (%s): deleted it instead",
                      self.snapshots.files.directory, exc)
            self.snapshots.files.delete()
            self.snapshots.position = None

    def _update_sizes(self) -> None:
        self.metrics.set_sizes(len(self.index), len(self._tracks))

    @contextmanager
    def _timed_search(self) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.metrics.observe_search(time.perf_counter() - t0)

    def _search(self, emb: np.ndarray, k: int) -> list[tuple[StoredSighting, float]]:
        with self._timed_search():
            sims, fids = self.index.search(emb, k)
        return [(self._by_fid[int(f)], float(s)) for f, s in zip(fids[0], sims[0], strict=True)
                if f >= 0 and int(f) in self._by_fid]

    # -- ingest ---------------------------------------------------------------------------------
    def ingest(self, s: Sighting) -> Ack:
        """Validate, associate and persist one sighting; the ack comes only after Redis has it."""
        acks, error = self.ingest_many([s])
        if error is not None:
            raise error
        return acks[0]

    def ingest_many(self, sightings: Sequence[Sighting]) -> tuple[list[Ack], InvalidInput | None]:
        """Ingest sightings in order, stopping before the first invalid one.

        Returns the acks of the sightings before it (all stored, in one Redis transaction) and the
        validation error, if any. The batch is searched in FAISS once (:class:`BatchNeighbours`); each
        sighting is associated knowing the ones before it in the batch, exactly as if they had come one
        by one. They are applied to memory as they are decided, added to FAISS together, and rolled back
        if the transaction fails (:class:`Unavailable` is raised then, and nothing of the batch is
        acknowledged or kept)."""
        t_start = time.perf_counter()
        t_persist: float | None = None  # the Redis transaction began (the metrics' associate / persist)
        checked: list[tuple[Sighting, np.ndarray]] = []
        error: InvalidInput | None = None
        for s in sightings:
            try:
                checked.append((s, validate_sighting(s, self.config)))
            except InvalidInput as exc:
                self.metrics.record_rejected(exc.reason)
                error = exc
                break
        acks: list[Ack] = []
        with self._lock:
            staged: dict[str, tuple[Sighting, np.ndarray]] = {}  # new rows of the batch, by sighting id
            splits: list[Split] = []  # as applied to memory, in order
            moves: list[tuple[str, StoredSighting]] = []
            counters = (self._next_fid, self._next_identity, self._latest_us)
            learned = {link: list(gaps) for link, gaps in self.transit.gaps.items()}
            corrections: list[Correction] = []
            merged: list[Correction] = []  # of them, the merge passes' (counted after the commit)
            indexed = False
            try:
                if checked:
                    with self._timed_search():
                        near = BatchNeighbours(self.index, np.stack([emb for _, emb in checked]),
                                               self.config.association_k)
                    self._prefetch_tracklets(checked, near)
                for n, (s, emb) in enumerate(checked):
                    latest = self._latest_us
                    ack, row = self._associate_locked(s, emb, splits, near, n)
                    acks.append(ack)
                    if ack.decision is not None:
                        corrections.extend(self._corrections(ack.decision.splits, s.end_us))
                    if row is not None:
                        staged[row.sighting_id] = (s, emb)
                    if self._merge_due(latest):
                        t_merge = time.perf_counter()
                        passed = self._merge_pass_locked(splits)
                        self.metrics.merge_pass.observe(time.perf_counter() - t_merge)
                        corrections.extend(passed)  # in order with the decisions', as one by one
                        merged.extend(passed)
                if staged:
                    # rows as they are now: a split later in the batch may have moved one of them
                    rows = [(self._sightings[sid], s, emb) for sid, (s, emb) in staged.items()]
                    self.index.add(np.fromiter((r.fid for r, _, _ in rows), np.int64, len(rows)),
                                   np.stack([emb for _, _, emb in rows]))
                    indexed = True
                    moves = self._stored_moves(splits, staged)
                    t_persist = time.perf_counter()
                    changed = {link: g for link, g in self.transit.gaps.items() if learned.get(link) != g}
                    emptied = sorted({c.from_identity for c in corrections} - set(self._tracks))
                    self.store.commit(rows, next_fid=self._next_fid, next_identity=self._next_identity, moves=moves,
                                      corrections=corrections, emptied=emptied, transit=changed)
            except BaseException:
                self._unremember([self._sightings[sid] for sid in staged if sid in self._sightings], indexed=indexed)
                for sp in reversed(splits):
                    self._relabel(sp.sighting_ids, sp.identity_id)
                self._next_fid, self._next_identity, self._latest_us = counters
                self.transit.gaps = learned
                self.tracklets.forget({(s.camera_id, s.tracklet_id) for s, _ in checked})
                raise
            for c in corrections:
                for identity_id in dict.fromkeys((c.from_identity, c.to_identity)):
                    if identity_id in self._tracks:
                        self._history.setdefault(identity_id, []).append(c)
            if self.snapshots is not None:
                self.snapshots.changes += len(staged) + len(moves)
            self._settle_index()
            self._update_sizes()
        t_end = time.perf_counter()
        associate_s = (t_end if t_persist is None else t_persist) - t_start
        persist_s = 0.0 if t_persist is None else t_end - t_persist
        for (s, _), ack in zip(checked, acks, strict=True):
            self.metrics.record_ack(s.camera_id, ack, associate_s, persist_s)
        for c in merged:
            self.metrics.corrections.labels(kind=c.kind).inc()
        return acks, error

    def _merge_due(self, latest_before_us: int) -> bool:
        """Whether the sighting just associated moved stream time across a multiple of
        ``merge_every_s`` (a function of stream time alone: a restarted gallery passes where it would have)."""
        every = int(self.config.merge_every_s * 1e6)
        return every > 0 and self._latest_us // every > latest_before_us // every

    def _merge_pass_locked(self, applied: list[Split]) -> list[Correction]:
        """One merge pass over the identities seen in the last ``merge_window_s`` of stream time: the most
        alike pair (cosine of the normalised sums of their tracklets' mean embeddings) at or above
        ``merge_threshold`` that could be one person (:meth:`Associator.mergeable`) becomes one, the
        identity first seen later moving tracklet by tracklet to the other (each a :class:`Split` of kind
        "merge", logged in ``applied`` before it is made, for the rollback), then the next most alike
        pair (a merged identity is scored again), until no such pair is left. Returns the corrections.

        Pairs over the bar are found block by block (memory linear in the identities) and taken from a
        heap, so a pair found impossible costs one check, not a new scan."""
        since = self._latest_us - int(self.config.merge_window_s * 1e6)
        recent: set[str] = set()
        for ends in self._ends.values():
            recent.update(self._sightings[sid].identity_id for _, sid in ends[bisect.bisect_left(ends, (since, "")):])
        tracks = sorted((self._tracks[i] for i in recent if i in self._tracks),
                        key=lambda t: (t.sightings[0].start_us, t.identity_id))
        if len(tracks) < 2:
            return []
        bar = self.config.merge_threshold
        sums = np.stack([self.tracklets.prototype_sum(t.by_tracklet, self._tracklet_ids) for t in tracks])
        units = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
        heap: list[tuple[float, int, int, int, int]] = []  # (-similarity, a, b, version of a, of b), a < b
        for lo in range(0, len(tracks), 1024):
            block = units[lo:lo + 1024] @ units.T
            rows, cols = np.nonzero(block >= bar)
            heap.extend((-float(block[r, c]), lo + r, c, 0, 0) for r, c in zip(rows.tolist(), cols.tolist(), strict=True)
                        if c > lo + r)
        heapq.heapify(heap)
        alive = np.ones(len(tracks), bool)
        version = [0] * len(tracks)
        out: list[Correction] = []
        while heap:
            neg, a, b, va, vb = heapq.heappop(heap)
            if not (alive[a] and alive[b] and version[a] == va and version[b] == vb):
                continue  # merged away, or scored again since
            into, other = tracks[a], tracks[b]
            if not self.associator.mergeable(into, other):
                continue
            moves = [Split(other.identity_id, camera_id, tracklet_id, into.identity_id,
                           tuple(r.sighting_id for r in rows), "merge", -neg)
                     for (camera_id, tracklet_id), rows in other.by_tracklet.items()]
            self._apply_splits(moves, applied)
            out.extend(self._corrections(moves, self._latest_us))
            alive[b] = False
            version[a] += 1
            sums[a] += sums[b]
            units[a] = sums[a] / max(float(np.linalg.norm(sums[a])), 1e-12)
            sim = units @ units[a]
            for c in np.nonzero(alive & (sim >= bar))[0].tolist():
                if c != a:
                    x, y = min(a, c), max(a, c)
                    heapq.heappush(heap, (-float(sim[c]), x, y, version[x], version[y]))
        return out

    def _apply_splits(self, splits: Sequence[Split], applied: list[Split]) -> None:
        """Move tracklets to their new identities (a decision's splits, a merge pass's moves); each is
        logged in ``applied`` before it is made, for the rollback."""
        for sp in splits:
            applied.append(sp)
            self._relabel(sp.sighting_ids, sp.new_identity_id)
            log.info("%s: tracklet %s on %s (%d sighting(s)) moved from identity %s to %s", sp.kind, sp.tracklet_id,
                     sp.camera_id, len(sp.sighting_ids), sp.identity_id, sp.new_identity_id)

    def _corrections(self, splits: Sequence[Split], at_us: int) -> list[Correction]:
        """Moves (a decision's splits, a merge pass's) as recorded corrections (Redis keeps them with the
        identities)."""
        now = time.time_ns() // 1000
        return [Correction(sp.kind, sp.camera_id, sp.tracklet_id, sp.identity_id, sp.new_identity_id,
                           len(sp.sighting_ids), round(sp.similarity, 4), at_us, now) for sp in splits]

    def _associate_locked(self, s: Sighting, emb: np.ndarray, splits: list[Split], near: BatchNeighbours,
                          n: int) -> tuple[Ack, StoredSighting | None]:
        """Decide the identity of the batch's ``n``-th sighting (its neighbours: ``near``) and apply the
        row, and any split the decision makes (logged in ``splits``), to memory (not yet in FAISS or
        stored: the caller adds and commits)."""
        known = self._sightings.get(s.sighting_id)
        if known is not None:
            if known.camera_id != s.camera_id or known.tracklet_id != s.tracklet_id:
                log.warning("sighting id %r republished with different camera/tracklet (%s/%s, stored %s/%s); "
                            "kept the stored one", s.sighting_id, s.camera_id, s.tracklet_id,
                            known.camera_id, known.tracklet_id)
            return Ack(s.sighting_id, known.identity_id, True, known.similarity, False), None
        if forgotten_digest(s.sighting_id) in self._forgotten:
            return Ack(s.sighting_id, "", True, 0.0, False), None
        key = (s.camera_id, s.tracklet_id)
        obs = observe(s, tracklet_rows(self._tracks.get(self._tracklets.get(key, "")), key))
        self.tracklets.add(key, emb, s.quality, lambda: self._tracklet_ids(key))
        by_fid = self._by_fid
        neighbours = [(row.identity_id, sim) for fid, sim in near.get(n) if (row := by_fid.get(fid)) is not None]
        minted: list[int] = []

        def new_identity() -> str:  # a decision may mint several (one per tracklet split off)
            minted.append(self._next_identity + len(minted))
            return identity_name(minted[-1])

        decision = self.associator.decide(obs, neighbours, self._tracks, self._tracklets.get(key), new_identity,
                                          TrackletScorer(self.tracklets, key, self._tracklet_ids,
                                                         self.config.identity_prototypes))
        self._apply_splits(decision.splits, splits)
        for src, dst, gap in decision.walks:
            self.transit.observe(src, dst, gap)
        row = StoredSighting(s.sighting_id, self._next_fid, s.camera_id, s.tracklet_id, s.start_us, s.end_us,
                             decision.identity_id, decision.similarity, time.time_ns() // 1000)
        self.clocks.note(s.camera_id, s.clock, row.fid)
        self._next_fid += 1
        self._next_identity += len(minted)
        near.stored(n, row.fid)
        self._remember(row)
        ack = Ack(s.sighting_id, decision.identity_id, False, decision.similarity, decision.new_identity, decision)
        return ack, row

    def _unremember(self, rows: Sequence[StoredSighting], *, indexed: bool = True) -> None:
        """Remove rows from FAISS (unless not ``indexed`` yet) and the in-memory tables (rollback, forget)."""
        if indexed and rows:
            self.index.remove(np.array([r.fid for r in rows], np.int64))
        super()._unremember(rows)
        self.tracklets.forget({(r.camera_id, r.tracklet_id) for r in rows})
        for identity_id in {r.identity_id for r in rows} - set(self._tracks):
            self._history.pop(identity_id, None)

    def _prefetch_tracklets(self, checked: Sequence[tuple[Sighting, np.ndarray]], near: BatchNeighbours) -> None:
        """Have the tracklet book hold what the batch's decisions will score: every tracklet of the
        identity each sighting's tracklet has, and of the identities a decision may compare it with (the
        ``association_candidates`` + 1 with the most similar neighbours: a tracklet's own identity is
        left out of them), the ones not held fetched from Redis in one pipeline (after a restart the
        book is empty). One missed here (brought in by a sighting earlier in the batch) is fetched when
        scored. A book that holds as many tracklets as the gallery has holds them all (it holds none the
        gallery lacks: forgetting or rolling back rows drops their tracklets from both), so it skips the
        walk over the candidates' tracklets (about a tenth of a warm gallery's batch)."""
        book = self.tracklets
        if len(book) >= len(self._tracklets):
            return
        by_fid, top = self._by_fid, self.associator.candidates + 1
        wanted = {i for s, _ in checked if (i := self._tracklets.get((s.camera_id, s.tracklet_id))) is not None}
        for n in range(len(checked)):
            best: dict[str, float] = {}
            for fid, sim in near.get(n):
                if (row := by_fid.get(fid)) is not None and sim > best.get(row.identity_id, -2.0):
                    best[row.identity_id] = sim
            wanted.update(i for i, _ in sorted(best.items(), key=lambda kv: (-kv[1], kv[0]))[:top])
        book.prefetch({key: [r.sighting_id for r in track.by_tracklet[key]] for identity_id in wanted
                       if (track := self._tracks.get(identity_id)) is not None
                       for key in book.missing(track.by_tracklet)})

    def _tracklet_ids(self, key: tuple[str, str]) -> list[str]:
        """The stored sighting ids of a (camera, tracklet)."""
        return [r.sighting_id for r in tracklet_rows(self._tracks.get(self._tracklets.get(key, "")), key)]

    # -- queries --------------------------------------------------------------------------------
    def _bounded(self, value: int, default: int, maximum: int, field: str) -> int:
        if value < 0 or value > maximum:
            raise InvalidInput(f"{field} {value} is outside 0..{maximum}", reason="bad_limit", field=field)
        return value or default

    def list_identities(self, limit: int = 0, seen_since_us: int = 0, camera_id: str = "") -> list[IdentitySummary]:
        """Identities, most recently seen first; optionally only those seen since a time / by a camera."""
        limit = self._bounded(limit, self.config.list_limit, self.config.max_list_limit, "limit")
        if camera_id and camera_id not in self.cameras:
            raise InvalidInput(f"unknown camera {camera_id!r} (known: {', '.join(self.cameras)})",
                               reason="unknown_camera", field="camera_id")
        with self._lock:
            out = [self._summary(t) for t in self._tracks.values()
                   if (not camera_id or camera_id in t.cameras)]
        out = [s for s in out if s.last_seen_us >= seen_since_us]
        out.sort(key=lambda s: (-s.last_seen_us, s.identity_id))
        return out[:limit]

    def identity(self, identity_id: str) -> IdentitySummary:
        with self._lock:
            return self._summary(self._track(identity_id))

    def _summary(self, track: IdentityTrack) -> IdentitySummary:
        """The track's summary with the clocks its first and last seen times read on."""
        summary = track.summary()
        if not track.sightings:
            return summary
        first, last = track.sightings[0], max(track.sightings, key=lambda r: r.end_us)
        return dataclasses.replace(summary, first_seen_clock=self.clocks.clock(first.camera_id, first.fid),
                                   last_seen_clock=self.clocks.clock(last.camera_id, last.fid))

    def trajectory(self, identity_id: str) -> Trajectory:
        """Time-ordered camera visits: consecutive sightings on one camera merge into one step."""
        with self._lock:
            rows = [(r, self.clocks.clock(r.camera_id, r.fid)) for r in self._track(identity_id).sightings]
            corrections = tuple(self._history.get(identity_id, ()))
        steps: list[TrajectoryStep] = []
        for r, clock in rows:  # a step is on one clock (a camera restarted mid-visit starts a new one)
            last = steps[-1] if steps else None
            if last is not None and last.camera_id == r.camera_id and last.clock == clock:
                steps[-1] = TrajectoryStep(r.camera_id, last.start_us, max(last.end_us, r.end_us),
                                           (*last.sighting_ids, r.sighting_id), clock)
            else:
                steps.append(TrajectoryStep(r.camera_id, r.start_us, r.end_us, (r.sighting_id,), clock))
        return Trajectory(identity_id, tuple(steps), corrections)

    def query_by_example(self, *, sighting_id: str = "", embedding: np.ndarray | Sequence[float] | None = None,
                         camera_id: str = "", k: int = 0, exclude_same_camera: bool = False) -> list[Match]:
        """The ``k`` stored sightings most similar to a stored sighting or to a supplied embedding.

        The example sighting itself is never returned; ``exclude_same_camera`` drops matches from the
        example's camera (the Market-1501 convention for cross-camera search)."""
        k = self._bounded(k, self.config.query_k, self.config.max_query_k, "k")
        with self._lock:
            if sighting_id:
                row = self.sighting(sighting_id)
                stored = self.store.get_embedding(sighting_id)
                if stored is None:  # erased between the two reads: treat as unknown
                    raise NotFound(f"no sighting {sighting_id!r} in the gallery", reason="unknown_sighting",
                                   sighting_id=sighting_id, field="sighting_id")
                emb, camera_id = stored, row.camera_id
            elif embedding is not None:
                try:
                    emb = check_embedding(embedding, self.config.embedding_dim)
                except InvalidInput as exc:
                    self.metrics.record_rejected(exc.reason)
                    raise
            else:
                raise InvalidInput("query needs a sighting_id or a sighting with an embedding",
                                   reason="empty_query", field="example")
            fetch = k + 1
            while True:
                hits = self._search(emb, min(fetch, len(self.index)))
                matches = [Match(r.sighting_id, r.identity_id, r.camera_id, r.start_us, r.end_us, sim,
                                 self.clocks.clock(r.camera_id, r.fid))
                           for r, sim in hits
                           if r.sighting_id != sighting_id and not (exclude_same_camera and r.camera_id == camera_id)]
                if len(matches) >= k or fetch >= len(self.index):
                    return matches[:k]
                fetch *= 4

    def occupancy(self, at_us: int = 0, window_us: int = 0) -> list[CameraOccupancy]:
        """Per camera, the identities with a sighting in [at_us - window_us, at_us]; at 0 = latest seen."""
        if at_us < 0 or window_us < 0:
            raise InvalidInput("at_us and window_us must not be negative", reason="negative_time", field="at_us")
        with self._lock:
            at = at_us or self._latest_us
            window = window_us or round(self.config.occupancy_window_s * 1_000_000)
            out = []
            for camera in self.cameras:
                ends = self._ends.get(camera, [])
                i = bisect.bisect_left(ends, (at - window, ""))
                ids = {self._sightings[sid].identity_id for _, sid in ends[i:]
                       if self._sightings[sid].start_us <= at}
                out.append(CameraOccupancy(camera, tuple(sorted(ids))))
        return out

    # -- forget ---------------------------------------------------------------------------------
    def forget(self, identity_id: str, reason: str = "", actor: str = "") -> int:
        """Erase an identity from Redis (its files on disk included), FAISS and every query; returns the
        sightings erased.

        Forgetting an identity that was already forgotten returns 0 (the call is idempotent). The files are
        rewritten after the lock is released: publishing goes on meanwhile. The index snapshot is a file
        too: it is rewritten without the identity (or deleted) before this returns."""
        with self._lock:
            if identity_id not in self._tracks and identity_id in self._forgotten_identities:
                return 0
            track = self._track(identity_id)
            rows = list(track.sightings)
            ids = [r.sighting_id for r in rows]
            self.store.forget(identity_id, ids, reason, actor, fids=[r.fid for r in rows])
            self._unremember(rows)
            if self.snapshots is not None:
                self.snapshots.changes += len(rows)
            self._forgotten.update(forgotten_digest(i) for i in ids)
            self._forgotten_identities.add(identity_id)
            if self.index.needs_compaction:
                self.load()
            self._update_sizes()
        self._rewrite_snapshot()  # first: the change log it trims is in Redis's files too
        rewritten = self.store.erase_from_disk()
        log.info("forgot identity %s (%d sightings; reason %r; rewritten on disk: %s)", identity_id, len(ids),
                 reason, ", ".join(rewritten) or "nothing")
        return len(ids)

    # -- retention ------------------------------------------------------------------------------
    def expire(self, now_us: int | None = None) -> int:
        """Erase every sighting ingested more than ``retention_s`` before ``now_us`` (default: now) from
        FAISS, the identity tables and Redis; an identity left without sightings disappears. Returns the
        sightings erased (0 when retention is off)."""
        retention_us = round(self.config.retention_s * 1_000_000)
        if retention_us <= 0:
            return 0
        cutoff = (time.time_ns() // 1000 if now_us is None else now_us) - retention_us
        with self._lock:
            rows = [r for r in self._sightings.values() if r.ingested_at_us <= cutoff]
            if not rows:
                return 0
            per_identity: dict[str, int] = {}
            for r in rows:
                per_identity[r.identity_id] = per_identity.get(r.identity_id, 0) + 1
            emptied = sorted(i for i, n in per_identity.items() if n >= len(self._tracks[i].sightings))
            # Redis first: if it fails nothing changes here and the next sweep tries again
            self.store.expire([(r.identity_id, r.sighting_id) for r in rows], emptied, fids=[r.fid for r in rows])
            self._unremember(rows)
            if self.snapshots is not None:
                self.snapshots.changes += len(rows)
            if self.index.needs_compaction:
                self.load()
            self._update_sizes()
        log.info("retention: erased %d sighting(s) older than %.0f s (%d identities gone)", len(rows),
                 self.config.retention_s, len(emptied))
        return len(rows)

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {"sightings": len(self._sightings), "identities": len(self._tracks),
                    "index": self.index.describe(), "latest_us": self._latest_us, "loaded_from": self.loaded_from}
