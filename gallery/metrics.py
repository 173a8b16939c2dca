"""Every Prometheus collector of the gallery, in one place (names as agreed in .build/CONTRACTS.md).

Each :class:`GalleryMetrics` owns a registry (a fresh one by default, so several galleries can live in
one test process); the core records domain events through :meth:`record_ack`, :meth:`record_rejected`,
:meth:`observe_search` and :meth:`set_sizes`, the servicer a published sighting's transport and ack
through :meth:`observe_stage`, and the server's interceptor records every RPC through :meth:`record_rpc`.

A published sighting's time in the gallery is cut into consecutive stages (:data:`SIGHTING_STAGES`),
the gallery's part of the camera's ``gallery`` stage (nodes/latency.py): ``transport`` from the
camera's hand-over (its ``published_at_us``) to the batch the servicer read it in, ``associate``
(validation, the lock, the batch's FAISS search, the decisions, the index add), ``persist`` (the Redis
transaction and the bookkeeping after it) and ``ack`` (converting and sending its ack). A sighting
counts its whole batch's associate and persist time: it waits for the batch. Labels are bounded: camera ids are validated against the configured cameras,
reasons and decisions are fixed words, methods are the service's RPC names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from anonreid.gallery.types import Ack

# Search: tens of microseconds (small flat index) to a second (1M exact on a busy CPU).
SEARCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SIGHTING_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 10.0)
SIGHTING_STAGES = ("transport", "associate", "persist", "ack")
RPC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)


class GalleryMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.sightings = Counter("anonreid_gallery_sightings_total", "Sightings accepted and stored",
                                 ["camera"], registry=r)
        self.duplicates = Counter("anonreid_gallery_duplicates_total",
                                  "Republished sightings acknowledged without change", registry=r)
        self.entries = Gauge("anonreid_gallery_entries", "Sightings in the FAISS index", registry=r)
        self.identities = Gauge("anonreid_gallery_identities", "Global identities held", registry=r)
        self.search_latency = Histogram("anonreid_gallery_search_latency_seconds",
                                        "FAISS search time per query (association and query-by-example)",
                                        buckets=SEARCH_BUCKETS, registry=r)
        self.merge_pass = Histogram("anonreid_gallery_merge_pass_seconds",
                                    "Time one identity merge pass (gallery.merge_every_s) held the gallery's lock",
                                    buckets=SEARCH_BUCKETS, registry=r)
        self.decisions = Counter("anonreid_gallery_association_decisions_total",
                                 "Association decisions for new sightings", ["decision"], registry=r)
        self.splits = Counter("anonreid_gallery_identity_splits_total",
                              "Tracklets moved out of an identity into a new one: an update showed them "
                              "overlapping another of its tracklets in time (a wrong merge undone)", registry=r)
        self.corrections = Counter("anonreid_gallery_identity_corrections_total",
                                   "Stored tracklets moved to another identity, by kind: split (overlapped another "
                                   "tracklet in time), and within the correction horizon merge, move, detach",
                                   ["kind"], registry=r)
        self.rejected = Counter("anonreid_gallery_rejected_total", "Requests rejected as bad input",
                                ["reason"], registry=r)
        self.sighting_stage = Histogram("anonreid_gallery_sighting_stage_seconds",
                                        "Time each stored sighting spent in each gallery stage, from the camera's "
                                        "hand-over to its ack (transport, associate, persist, ack)",
                                        ["camera", "stage"], buckets=SIGHTING_BUCKETS, registry=r)
        self.rpc_requests = Counter("anonreid_grpc_requests_total", "gRPC requests by method and status code",
                                    ["method", "code"], registry=r)
        self.rpc_latency = Histogram("anonreid_grpc_request_latency_seconds", "gRPC handling time by method",
                                     ["method"], buckets=RPC_BUCKETS, registry=r)
        self._http: Any = None
        # labelled children, looked up once: labels() costs more than the update itself, and every stored
        # sighting makes six of them (the label values are bounded, see the module doc)
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        """``metric.labels(*values)``, cached."""
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def record_ack(self, camera_id: str, ack: Ack, associate_s: float | None = None,
                   persist_s: float | None = None) -> None:
        """A sighting acknowledged, with its batch's associate and persist time (not for a duplicate)."""
        if ack.duplicate:
            self.duplicates.inc()
            return
        self._child(self.sightings, camera_id).inc()
        if associate_s is not None:
            self.observe_stage(camera_id, "associate", associate_s)
        if persist_s is not None:
            self.observe_stage(camera_id, "persist", persist_s)
        self._child(self.decisions, "new" if ack.new_identity else "join").inc()
        if ack.decision is not None:
            for sp in ack.decision.splits:
                self.corrections.labels(kind=sp.kind).inc()
                if sp.kind == "split":
                    self.splits.inc()

    def observe_stage(self, camera_id: str, stage: str, seconds: float) -> None:
        """Seconds a stored sighting of ``camera_id`` spent in ``stage`` (:data:`SIGHTING_STAGES`)."""
        if stage not in SIGHTING_STAGES:
            raise ValueError(f"unknown sighting stage {stage!r}; expected one of {SIGHTING_STAGES}")
        self._child(self.sighting_stage, camera_id, stage).observe(max(0.0, seconds))

    def record_rejected(self, reason: str) -> None:
        self.rejected.labels(reason=reason).inc()

    def observe_search(self, seconds: float) -> None:
        self.search_latency.observe(seconds)

    def set_sizes(self, entries: int, identities: int) -> None:
        self.entries.set(entries)
        self.identities.set(identities)

    def record_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_requests.labels(method=method, code=code).inc()
        self.rpc_latency.labels(method=method).observe(seconds)

    def serve(self, port: int, addr: str = "0.0.0.0") -> int:
        """Serve /metrics over HTTP (port 0 = any free port); returns the bound port."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """Per gallery stage of a sighting, over every camera: count and mean seconds (the demo's summary)."""
        totals = {stage: {"count": 0.0, "sum_s": 0.0} for stage in SIGHTING_STAGES}
        for metric in self.sighting_stage.collect():
            for sample in metric.samples:
                stage = sample.labels.get("stage", "")
                if stage in totals and sample.name.endswith("_count"):
                    totals[stage]["count"] += sample.value
                elif stage in totals and sample.name.endswith("_sum"):
                    totals[stage]["sum_s"] += sample.value
        return {stage: {"count": t["count"], "mean_s": t["sum_s"] / t["count"] if t["count"] else 0.0}
                for stage, t in totals.items()}

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (tests and the bench read metrics through this)."""
        got = self.registry.get_sample_value(name, labels or None)
        return 0.0 if got is None else float(got)
