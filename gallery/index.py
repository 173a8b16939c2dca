"""FAISS index of L2-normalised embeddings keyed by int64 ids (inner product = cosine similarity).

Three layouts, chosen by configuration:

- ``flat``: ``IndexIDMap(IndexFlatIP)``, exact search; the default (a gallery of a few hundred
  thousand sightings is searched exactly in milliseconds).
- ``ivf``: ``IndexIVFFlat`` with inner product. IVF needs training data, which an online gallery does
  not have at start, so vectors first go to an exact staging index and the IVF is trained on them once
  ``39 * nlist`` are stored (FAISS's minimum per centroid); from then on everything lives in the IVF.
- ``hnsw``: ``IndexIDMap(IndexHNSWFlat)`` with inner product.

A GPU index is used when the installed faiss has GPUs (``faiss.get_num_gpus() > 0``) and the device is
``auto`` or ``gpu``; HNSW has no GPU implementation and stays on the CPU. Indexes that cannot delete in
place (HNSW, GPU indexes) keep a tombstone set: searches fetch extra neighbours and drop tombstoned ids,
and :attr:`EmbeddingIndex.needs_compaction` tells the owner to rebuild once tombstones pile up.

The index is not thread-safe; the gallery core serialises access.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import numpy as np

log = logging.getLogger(__name__)

IndexKind = Literal["flat", "ivf", "hnsw"]
IndexDevice = Literal["auto", "cpu", "gpu"]
IVF_POINTS_PER_CENTROID = 39  # FAISS warns below this many training points per list
COMPACTION_RATIO = 0.2  # rebuild once this fraction of stored vectors are tombstones


def gpu_count() -> int:
    """GPUs the installed faiss can use (0 for faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


class EmbeddingIndex:
    """Add, remove and search L2-normalised ``dim``-d float32 vectors by int64 id."""

    def __init__(
        self,
        dim: int,
        kind: IndexKind = "flat",
        device: IndexDevice = "auto",
        *,
        ivf_nlist: int = 256,
        ivf_nprobe: int = 16,
        hnsw_m: int = 32,
        hnsw_ef_search: int = 128,
        gpu_id: int = 0,
        threads: int = 0,
    ) -> None:
        """``threads``: OpenMP threads for each search/add (0 = faiss's default, all cores). One thread
        is fastest for the gallery's one-query searches: OpenMP over a single query costs more than it
        saves, much more on a busy machine. OpenMP's setting is per calling thread, so it is applied
        in every call (the gRPC handler threads search, not the thread that built the index)."""
        if kind not in ("flat", "ivf", "hnsw"):
            raise ValueError(f"unknown index kind {kind!r}: expected flat, ivf or hnsw")
        if device == "gpu" and gpu_count() == 0:
            raise ValueError("index device 'gpu' requested but the installed faiss sees no GPU")
        self.dim = dim
        self.kind: IndexKind = kind
        self.ivf_nlist = ivf_nlist
        self.ivf_nprobe = ivf_nprobe
        self.hnsw_m = hnsw_m
        self.hnsw_ef_search = hnsw_ef_search
        self.gpu_id = gpu_id
        self.threads = threads
        self.on_gpu = device != "cpu" and kind != "hnsw" and gpu_count() > 0
        self._gpu_resources: Any = None
        self._tombstones: set[int] = set()
        self._staging: list[tuple[np.ndarray, np.ndarray]] = []  # IVF before training: (ids, vectors)
        self._index: Any = None
        self._trained = kind != "ivf"
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
        """Drop every vector (the layout and settings stay)."""
        import faiss

        self._tombstones.clear()
        self._staging = []
        if self.kind == "hnsw":
            hnsw = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = self.hnsw_ef_search
            self._hnsw = hnsw  # the IDMap's sub-index, kept for efSearch
            self._index = faiss.IndexIDMap(hnsw)
        else:  # flat, and IVF before it is trained
            self._index = self._exact()
            self._trained = self.kind != "ivf"

    def _train_ivf(self) -> None:
        """Train the IVF on the staged vectors and move them into it."""
        import faiss

        ids = np.concatenate([i for i, _ in self._staging])
        vecs = np.concatenate([v for _, v in self._staging])
        quantizer = faiss.IndexFlatIP(self.dim)
        ivf = faiss.IndexIVFFlat(quantizer, self.dim, self.ivf_nlist, faiss.METRIC_INNER_PRODUCT)
        ivf.train(vecs)
        ivf.nprobe = self.ivf_nprobe
        index: Any = ivf
        if self.on_gpu:
            index = faiss.index_cpu_to_gpu(self._gpu(), self.gpu_id, ivf)
            index.nprobe = self.ivf_nprobe
        if self._tombstones:  # tombstoned staged vectors are simply not moved
            keep = ~np.isin(ids, np.fromiter(self._tombstones, np.int64))
            ids, vecs = ids[keep], vecs[keep]
            self._tombstones.clear()
        index.add_with_ids(vecs, ids)
        self._index, self._staging, self._trained = index, [], True
        self._quantizer = quantizer  # keep the Python object alive as long as the IVF uses it
        log.info("IVF index trained on %d vectors (%d lists)", len(ids), self.ivf_nlist)

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
        if len(id_arr) == 0:
            return
        self._index.add_with_ids(vecs, id_arr)
        if not self._trained:
            self._staging.append((id_arr.copy(), vecs.copy()))
            if self._index.ntotal - len(self._tombstones) >= IVF_POINTS_PER_CENTROID * self.ivf_nlist:
                self._train_ivf()

    def remove(self, ids: np.ndarray | list[int]) -> int:
        """Remove stored ids; returns how many were removed. Pass only ids that are in the index:
        tombstoning layouts (HNSW, GPU) cannot check, and an unknown id would skew ``len``."""
        import faiss

        id_arr = np.ascontiguousarray(ids, dtype=np.int64).reshape(-1)
        if len(id_arr) == 0:
            return 0
        if not self.on_gpu and self.kind != "hnsw":
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(id_arr)))
            if not self._trained:
                self._staging = [(i[~np.isin(i, id_arr)], v[~np.isin(i, id_arr)]) for i, v in self._staging]
            return removed
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
        if self.kind == "hnsw":
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

    def describe(self) -> str:
        where = f"GPU {self.gpu_id}" if self.on_gpu else "CPU"
        extra = {"ivf": f", nlist={self.ivf_nlist}, nprobe={self.ivf_nprobe}, trained={self._trained}",
                 "hnsw": f", M={self.hnsw_m}, efSearch={self.hnsw_ef_search}"}.get(self.kind, "")
        return f"{self.kind} inner-product index on {where} (dim={self.dim}{extra}), {len(self)} vectors"
