"""FAISS index of L2-normalised embeddings keyed by int64 ids (inner product = cosine similarity).

Layouts, chosen by configuration (``gallery.index_type``):

- ``auto`` (the default): exact below ``auto_ivf_min`` stored vectors, IVF from there on. A gallery
  grows online, so the IVF is retrained with more lists each time the gallery has grown fourfold since
  it was trained (until the largest list count).
- ``flat``: ``IndexIDMap(IndexFlatIP)``, exact search.
- ``ivf``: ``IndexIVFFlat`` with inner product. An online gallery has no training data at start, so
  vectors first go to an exact index and the IVF is trained on them once ``39 * nlist`` are stored
  (FAISS's minimum per centroid).
- ``hnsw``: ``IndexIDMap(IndexHNSWFlat)`` with inner product.

IVF lists: ``ivf_nlist``, or 0 for about 4 sqrt(N) (a power of two, 64 to 1024). IVF probes:
``ivf_nprobe``, or 0 to calibrate: when the IVF is trained, the smallest power of two whose recall@10
against exact search reaches ``ivf_recall`` is chosen, and the recall measured is kept
(:attr:`EmbeddingIndex.recall`). It is measured on a sample of the stored vectors as queries, each
query's own group (the gallery passes tracklets) left out of both answers: a new tracklet is searched
against the others, and a stored sighting's own tracklet (near-duplicates, in its own list) would make
the recall look far better than a new tracklet gets (on the world's embeddings: 0.96 leaving out only
the vector itself at nprobe 1, against 0.55 for held-out tracklets; leaving out the tracklet: 0.95 at
nprobe 4-8, held-out tracklets 0.99). The gallery's stored vectors are the embeddings the cameras
really produce, so the calibration is made on the data the index serves.

Layout changes happen only in :meth:`EmbeddingIndex.settle`, which the owner calls between batches:
a batch is searched once, against the index as it was before it (:class:`BatchNeighbours`).

A GPU index is used when the installed faiss has GPUs (``faiss.get_num_gpus() > 0``) and the device is
``auto`` or ``gpu``; HNSW has no GPU implementation and stays on the CPU. Indexes that cannot delete in
place (HNSW, GPU indexes) keep a tombstone set: searches fetch extra neighbours and drop tombstoned ids,
and :attr:`EmbeddingIndex.needs_compaction` tells the owner to rebuild once tombstones pile up.

The index is not thread-safe; the gallery core serialises access.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

IndexKind = Literal["auto", "flat", "ivf", "hnsw"]
IndexDevice = Literal["auto", "cpu", "gpu"]
Layout = Literal["exact", "ivf", "hnsw"]
IVF_POINTS_PER_CENTROID = 39  # FAISS warns below this many training points per list
TRAIN_POINTS_PER_CENTROID = 64  # training sample per list (k-means time grows with it)
NLIST_MIN, NLIST_MAX = 64, 1024
REGROW = 4  # an auto IVF is retrained with more lists once the gallery has grown this much
CALIBRATION_QUERIES = 300
RECALL_K = 10
MAX_GROUP_LEFT_OUT = 1000  # the calibration fetches a query's group size more than k (at most this many)
COMPACTION_RATIO = 0.2  # rebuild once this fraction of stored vectors are tombstones


def gpu_count() -> int:
    """GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


def auto_nlist(n: int) -> int:
    """IVF lists for ``n`` vectors: the power of two nearest 4 sqrt(n), at most n / 39 (FAISS's minimum
    training points per list), within 64..1024."""
    p = 2 ** round(math.log2(4 * math.sqrt(max(n, 1))))
    most = 2 ** math.floor(math.log2(max(n / IVF_POINTS_PER_CENTROID, 1)))
    return int(min(max(min(p, most), NLIST_MIN), NLIST_MAX))


def exact_neighbours(ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Ids of the ``k`` vectors most similar to each query by exact search, best first (n, k)."""
    import faiss

    _, rows = faiss.knn(np.ascontiguousarray(queries, np.float32), np.ascontiguousarray(vectors, np.float32),
                        int(min(k, len(ids))), metric=faiss.METRIC_INNER_PRODUCT)
    return np.where(rows >= 0, ids[np.maximum(rows, 0)], -1)


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = RECALL_K) -> float:
    """Mean recall@k of ``found`` against ``truth`` (both (n, >= k) ids, best first; -1 = none or left
    out): the share of each query's first ``k`` true ids among its first ``k`` found ones."""
    hits = total = 0
    for got_row, want_row in zip(found.tolist(), truth.tolist(), strict=True):
        want = [i for i in want_row if i >= 0][:k]
        got = set([i for i in got_row if i >= 0][:k])
        hits += len(got.intersection(want))
        total += len(want)
    return hits / total if total else 1.0


class EmbeddingIndex:
    """Add, remove and search L2-normalised ``dim``-d float32 vectors by int64 id."""

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "auto",
        device: IndexDevice = "auto",
        *,
        ivf_nlist: int = 0,
        ivf_nprobe: int = 0,
        ivf_recall: float = 0.95,
        auto_ivf_min: int = 10_000,
        hnsw_m: int = 32,
        hnsw_ef_search: int = 128,
        gpu_id: int = 0,
        threads: int = 0,
    ) -> None:
        """``threads``: OpenMP threads for each search/add (0 = faiss's default, all cores). One thread
        is fastest for the gallery's small searches: OpenMP over a few queries costs more than it
        saves, much more on a busy machine. OpenMP's setting is per calling thread, so it is applied
        in every call (the gRPC handler threads search, not the thread that built the index). IVF
        training uses every core."""
        if kind not in ("auto", "flat", "ivf", "hnsw"):
            raise ValueError(f"unknown index kind {kind!r}: expected auto, flat, ivf or hnsw")
        if device == "gpu" and gpu_count() == 0:
            raise ValueError("index device 'gpu' requested but the installed faiss sees no GPU")
        self.dim = dim
        self.kind: IndexKind = kind
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.ivf_recall = ivf_recall
        self.auto_ivf_min = auto_ivf_min
        self.hnsw_m = hnsw_m
        self.hnsw_ef_search = hnsw_ef_search
        self.gpu_id = gpu_id
        self.threads = threads
        self.on_gpu = device != "cpu" and kind != "hnsw" and gpu_count() > 0
        self._gpu_resources: Any = None
        self._hnsw: Any = None
        self._tombstones: set[int] = set()
        self._index: Any = None
        self.layout: Layout = "exact"
        self.nlist = self.nprobe = self.trained_size = 0
        self.recall: float | None = None  # IVF recall@10 measured when it was trained
        self.reset()

    @classmethod
    def from_config(cls, config: Any) -> EmbeddingIndex:
        """Build from a :class:`~anonreid.orchestration.config.GalleryConfig`."""
        return cls(
            config.embedding_dim,
            config.index_type,
            config.index_device,
            ivf_nlist=config.ivf_nlist,
            ivf_nprobe=config.ivf_nprobe,
            ivf_recall=config.ivf_recall,
            auto_ivf_min=config.auto_ivf_min,
            hnsw_m=config.hnsw_m,
            hnsw_ef_search=config.hnsw_ef_search,
            threads=config.faiss_threads,
        )

    # -- construction ---------------------------------------------------------------------------
    def _gpu(self) -> Any:
        import faiss

        if self._gpu_resources is None:
            self._gpu_resources = faiss.StandardGpuResources()
        return self._gpu_resources

    def _exact(self) -> Any:
        import faiss

        if self.on_gpu:
            cfg = faiss.GpuIndexFlatConfig()
            cfg.device = self.gpu_id
            return faiss.IndexIDMap(faiss.GpuIndexFlatIP(self._gpu(), self.dim, cfg))
        return faiss.IndexIDMap(faiss.IndexFlatIP(self.dim))

    def reset(self) -> None:
        """Drop every vector (the configured layout and settings stay; an IVF starts exact again)."""
        import faiss

        self._tombstones.clear()
        self.nlist = self.nprobe = self.trained_size = 0
        self.recall = None
        if self.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = self.hnsw_ef_search
            self._hnsw = hnsw  # the IDMap's sub-index, kept for efSearch
            self._index, self.layout = faiss.IndexIDMap(hnsw), "hnsw"
        else:  # flat, and auto / IVF before it is trained
            self._index, self.layout = self._exact(), "exact"

    def settle(self, groups: Callable[[np.ndarray], np.ndarray] | None = None) -> bool:
        """Train (or retrain with more lists) the IVF when the size calls for it; True when it did.
        Called by the owner between batches; may take seconds (k-means). ``groups`` maps an array of
        ids to a group number each (-1 = none) that the calibration leaves out with the query's own
        vector (default: each vector its own group)."""
        if self.kind not in ("auto", "ivf"):
            return False
        n = len(self)
        nlist = self.ivf_nlist or auto_nlist(n)
        if self.layout == "exact":
            due = n >= IVF_POINTS_PER_CENTROID * nlist and (self.kind == "ivf" or n >= self.auto_ivf_min)
        else:
            due = not self.ivf_nlist and n >= REGROW * self.trained_size and nlist > self.nlist
        if due:
            self._build_ivf(nlist, groups)
        return due

    def _all_threads(self) -> None:
        import faiss

        faiss.omp_set_num_threads(os.cpu_count() or 1)

    def _build_ivf(self, nlist: int, groups: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        """Train an IVF on a sample of the stored vectors, move every vector into it, choose nprobe."""
        import faiss

        t0 = time.perf_counter()
        ids, vecs = self.export()
        rng = np.random.default_rng(0)
        sample = TRAIN_POINTS_PER_CENTROID * nlist
        train = vecs if len(vecs) <= sample else vecs[np.sort(rng.choice(len(vecs), sample, replace=False))]
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, nlist, faiss.METRIC_INNER_PRODUCT)
        self._all_threads()
        try:
            ivf.train(train)
            ivf.add_with_ids(vecs, ids)
            nprobe, recall = self._calibrate(ivf, ids, vecs, rng, groups)
        finally:
            self._set_threads()
        ivf.nprobe = nprobe
        index: Any = ivf
        if self.on_gpu:
            index = faiss.index_cpu_to_gpu(self._gpu(), self.gpu_id, ivf)
            index.nprobe = nprobe
        self._index, self._quantizer = index, quantizer  # keep the quantizer alive as long as the IVF
        self._tombstones.clear()  # exported without them
        self.layout, self.nlist, self.nprobe, self.recall, self.trained_size = "ivf", nlist, nprobe, recall, len(ids)
        log.info("IVF index trained on %d of %d vectors (%d lists) in %.1f s; nprobe %d, recall@%d %.3f",
                 len(train), len(ids), nlist, time.perf_counter() - t0, nprobe, RECALL_K, recall)

    def _calibrate(self, ivf: Any, ids: np.ndarray, vecs: np.ndarray, rng: np.random.Generator,
                   groups: Callable[[np.ndarray], np.ndarray] | None) -> tuple[int, float]:
        """(nprobe, recall@10): the configured nprobe, or the smallest power of two reaching ``ivf_recall``;
        measured on a sample of the stored vectors (``ids`` sorted), each query's own group left out."""
        group = np.asarray(groups(ids), np.int64) if groups is not None else np.full(len(ids), -1, np.int64)
        group = np.where(group >= 0, group, -2 - np.arange(len(ids)))  # no group: the vector alone
        rows = np.sort(rng.choice(len(ids), min(len(ids), CALIBRATION_QUERIES), replace=False))
        _, first, sizes = np.unique(group, return_index=True, return_counts=True)
        size_of = dict(zip(group[first].tolist(), sizes.tolist(), strict=True))
        fetch = RECALL_K + min(max(size_of[g] for g in group[rows].tolist()), MAX_GROUP_LEFT_OUT)
        queries, own = vecs[rows], group[rows][:, None]

        def others(found: np.ndarray) -> np.ndarray:  # ids of the query's own group -> -1
            g = group[np.clip(np.searchsorted(ids, found), 0, len(ids) - 1)]
            return np.where((found >= 0) & (g != own), found, -1)

        truth = others(exact_neighbours(ids, vecs, queries, fetch))
        nprobe = self.ivf_nprobe or 1
        while True:
            ivf.nprobe = min(nprobe, ivf.nlist)
            _, found = ivf.search(queries, fetch)
            recall = recall_at_k(others(found), truth)
            if self.ivf_nprobe or recall >= self.ivf_recall or ivf.nprobe >= ivf.nlist:
                return int(ivf.nprobe), recall
            nprobe *= 2

    def _set_threads(self) -> None:
        if self.threads > 0:
            import faiss

            faiss.omp_set_num_threads(self.threads)

    # -- mutation -------------------------------------------------------------------------------
    def _check(self, vectors: np.ndarray, what: str) -> np.ndarray:
        arr = np.ascontiguousarray(vectors, dtype=np.float32)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ValueError(f"{what}: expected shape (n, {self.dim}), got {vectors.shape}")
        return arr

    def add(self, ids: np.ndarray | list[int], vectors: np.ndarray) -> None:
        """Add vectors under int64 ids (ids must be new: the gallery never reuses one)."""
        vecs = self._check(vectors, "add")
        self._set_threads()
        id_arr = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(id_arr) != len(vecs):
            raise ValueError(f"add: {len(id_arr)} ids for {len(vecs)} vectors")
        if len(id_arr):
            self._index.add_with_ids(vecs, id_arr)

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove stored ids; returns how many were removed. Pass only ids that are in the index:
        tombstoning layouts (HNSW, GPU) cannot check, and an unknown id would skew ``len``."""
        import faiss

        id_arr = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(id_arr) == 0:
            return 0
        if not self.on_gpu and self.layout != "hnsw":
            return int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))
        before = len(self._tombstones)
        self._tombstones.update(int(i) for i in id_arr)
        return len(self._tombstones) - before

    # -- queries --------------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._index.ntotal) - len(self._tombstones)

    @property
    def needs_compaction(self) -> bool:
        """True once tombstones make up a large share of the stored vectors (rebuild the index)."""
        total = int(self._index.ntotal)
        return bool(self._tombstones) and len(self._tombstones) >= COMPACTION_RATIO * max(total, 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` by inner product: (similarities float32 (n, k), ids int64 (n, k), -1 = none)."""
        q = self._check(queries, "search")
        self._set_threads()
        n = len(q)
        sims = np.full((n, k), -np.inf, dtype=np.float32)
        out = np.full((n, k), -1, dtype=np.int64)
        total = int(self._index.ntotal)
        if total == 0 or k <= 0 or n == 0:
            return sims, out
        fetch = min(k + len(self._tombstones), total)
        if self.on_gpu:
            fetch = min(fetch, 2048)  # GPU k limit; tombstones beyond it are compacted by the owner
        if self.layout == "hnsw":
            self._hnsw.hnsw.efSearch = max(self.hnsw_ef_search, fetch)
        d, i = self._index.search(q, fetch)
        if not self._tombstones:
            sims[:, : d.shape[1]], out[:, : i.shape[1]] = d[:, :k], i[:, :k]
            return sims, out
        dead = np.fromiter(self._tombstones, np.int64)
        for row in range(n):
            keep = (i[row] >= 0) & ~np.isin(i[row], dead)
            kd, ki = d[row][keep][:k], i[row][keep][:k]
            sims[row, : len(kd)], out[row, : len(ki)] = kd, ki
        return sims, out

    def probes(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """For a CPU IVF: (the lists a search of each query scans (n, nprobe), the list each query's
        vector goes to when added (n,)); None when every stored vector is a candidate (exact layouts)
        or the layout cannot tell (HNSW, GPU)."""
        if self.layout != "ivf" or self.on_gpu:
            return None
        q = self._check(queries, "probes")
        self._set_threads()
        _, scanned = self._index.quantizer.search(q, self.nprobe)
        return scanned, scanned[:, 0]  # the nearest list is where the vector goes

    def export(self) -> tuple[np.ndarray, np.ndarray]:
        """Every stored (id, vector), sorted by id: (ids int64 (n,), vectors float32 (n, dim))."""
        import faiss

        index: Any = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        if self.layout == "ivf":
            ivf: Any = faiss.extract_index_ivf(index)
            lists = ivf.invlists
            id_parts, vec_parts = [np.empty(0, np.int64)], [np.empty((0, self.dim), np.float32)]
            for n in range(ivf.nlist):
                size = lists.list_size(n)
                if size:
                    id_parts.append(faiss.rev_swig_ptr(lists.get_ids(n), size).copy())
                    codes = faiss.rev_swig_ptr(lists.get_codes(n), size * ivf.code_size)
                    vec_parts.append(codes.view(np.float32).reshape(size, self.dim).copy())
            ids, vecs = np.concatenate(id_parts), np.concatenate(vec_parts)
        else:
            ids = faiss.vector_to_array(index.id_map).astype(np.int64)
            vecs = faiss.downcast_index(index.index).reconstruct_n(0, len(ids)) if len(ids) else \
                np.empty((0, self.dim), np.float32)
        if self._tombstones:
            keep = ~np.isin(ids, np.fromiter(self._tombstones, np.int64))
            ids, vecs = ids[keep], vecs[keep]
        order = np.argsort(ids, kind="stable")
        return ids[order], np.ascontiguousarray(vecs[order], np.float32)

    # -- snapshots ------------------------------------------------------------------------------
    def serialize(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The index as FAISS's own bytes (``faiss.serialize_index``, a CPU copy) and the layout state
        :meth:`restore` needs with them."""
        import faiss

        cpu = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        state = {"kind": self.kind, "layout": self.layout, "dim": self.dim, "nlist": self.nlist,
                 "nprobe": self.nprobe, "recall": self.recall, "trained_size": self.trained_size,
                 "tombstones": sorted(self._tombstones)}
        return faiss.serialize_index(cpu), state

    def restore(self, path: str, state: dict[str, Any]) -> None:
        """Load an index written from :meth:`serialize` (``faiss.read_index``) with its state."""
        import faiss

        if state["dim"] != self.dim or state["kind"] != self.kind:
            raise ValueError(f"index file {path}: a {state['kind']} index of dim {state['dim']}, "
                             f"configured {self.kind} of dim {self.dim}")
        index: Any = faiss.read_index(path)
        if index.d != self.dim:
            raise ValueError(f"index file {path}: dimension {index.d}, configured {self.dim}")
        layout: Layout = state["layout"]
        if layout == "hnsw":
            self._hnsw = faiss.downcast_index(index.index)
        elif layout == "ivf":
            index.nprobe = int(state["nprobe"])
            if self.on_gpu:
                index = faiss.index_cpu_to_gpu(self._gpu(), self.gpu_id, index)
                index.nprobe = int(state["nprobe"])
        elif self.on_gpu:
            index = faiss.index_cpu_to_gpu(self._gpu(), self.gpu_id, index)
        self._index, self.layout = index, layout
        self.nlist, self.nprobe = int(state["nlist"]), int(state["nprobe"])
        self.recall, self.trained_size = state["recall"], int(state["trained_size"])
        self._tombstones = {int(i) for i in state["tombstones"]}

    def describe(self) -> str:
        where = f"GPU {self.gpu_id}" if self.on_gpu else "CPU"
        if self.layout == "ivf":
            extra = f", nlist={self.nlist}, nprobe={self.nprobe}, recall@{RECALL_K}={self.recall:.3f}"
        elif self.layout == "hnsw":
            extra = f", M={self.hnsw_m}, efSearch={self.hnsw_ef_search}"
        else:
            extra = ""
        kind = self.kind if self.kind == self.layout or self.layout == "hnsw" else f"{self.kind}: {self.layout}"
        return f"{kind} inner-product index on {where} (dim={self.dim}{extra}), {len(self)} vectors"


class BatchNeighbours:
    """The ``k`` nearest stored vectors of each query of a batch, from one search of the index.

    The batch is searched once, against the index as it was before the batch. As the owner stores the
    batch's vectors one by one (:meth:`stored`), each later query also sees them, exactly as a search
    made just before that query would have: the same top-``k``. An IVF search finds a vector only in
    the lists it scans, so a vector stored earlier in the batch counts only when its list is one of
    them (exact layouts: always; HNSW and GPU cannot tell and always count it, which can only find
    more)."""

    def __init__(self, index: EmbeddingIndex, queries: np.ndarray, k: int) -> None:
        self.k = k
        self.queries = np.ascontiguousarray(queries, np.float32)
        self.sims, self.ids = index.search(self.queries, k)
        self._found = [[(i, s) for i, s in zip(ids, sims, strict=True) if i >= 0]
                       for ids, sims in zip(self.ids.tolist(), self.sims.tolist(), strict=True)]
        probes = index.probes(self.queries) if len(index) else None
        self._scanned = None if probes is None else [set(r) for r in probes[0].tolist()]
        self._home = None if probes is None else probes[1].tolist()
        self._gram: list[list[float]] | None = None
        self._stored: list[tuple[int, int]] = []  # (query row, id it was stored under)

    def stored(self, row: int, vector_id: int) -> None:
        """Query ``row``'s vector is now in the index under ``vector_id``."""
        self._stored.append((row, vector_id))

    def get(self, row: int) -> list[tuple[int, float]]:
        """(id, similarity) of query ``row``'s ``k`` nearest, best first."""
        found = self._found[row]
        if not self._stored:
            return found
        if self._gram is None:
            self._gram = (self.queries @ self.queries.T).tolist()
        sims = self._gram[row]
        floor = found[-1][1] if len(found) >= self.k else -np.inf  # what an extra must beat to enter the top k
        scanned, home = self._scanned, self._home
        extra = [(vid, sims[j]) for j, vid in self._stored
                 if sims[j] > floor and (scanned is None or home is None or home[j] in scanned[row])]
        if extra:
            found = sorted(found + extra, key=lambda x: -x[1])[: self.k]
        return found
