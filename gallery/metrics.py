"""Every Prometheus collector of the gallery, in one place (names as agreed in .build/CONTRACTS.md).

Each :class:`GalleryMetrics` owns a registry (a fresh one by default, so several galleries can live in
one test process); the core records domain events through :meth:`record_ack`, :meth:`record_rejected`,
:meth:`observe_search` and :meth:`set_sizes`, and the server's interceptor records every RPC through
:meth:`record_rpc`. Labels are bounded: camera ids are validated against the configured cameras,
reasons and decisions are fixed words, methods are the service's RPC names.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from anonreid.gallery.types import Ack

# Search: tens of microseconds (small flat index) to a second (1M exact on a busy CPU).
SEARCH_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
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
        self.decisions = Counter("anonreid_gallery_association_decisions_total",
                                 "Association decisions for new sightings", ["decision"], registry=r)
        self.splits = Counter("anonreid_gallery_identity_splits_total",
                              "Tracklets moved out of an identity into a new one: an update showed them "
                              "overlapping another of its tracklets in time (a wrong merge undone)", registry=r)
        self.rejected = Counter("anonreid_gallery_rejected_total", "Requests rejected as bad input",
                                ["reason"], registry=r)
        self.rpc_requests = Counter("anonreid_grpc_requests_total", "gRPC requests by method and status code",
                                    ["method", "code"], registry=r)
        self.rpc_latency = Histogram("anonreid_grpc_request_latency_seconds", "gRPC handling time by method",
                                     ["method"], buckets=RPC_BUCKETS, registry=r)
        self._http: Any = None

    def record_ack(self, camera_id: str, ack: Ack) -> None:
        if ack.duplicate:
            self.duplicates.inc()
            return
        self.sightings.labels(camera=camera_id).inc()
        self.decisions.labels(decision="new" if ack.new_identity else "join").inc()
        if ack.decision is not None and ack.decision.splits:
            self.splits.inc(len(ack.decision.splits))

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

    def value(self, name: str, **labels: str) -> float:
        """Current value of one sample (tests and the bench read metrics through this)."""
        got = self.registry.get_sample_value(name, labels or None)
        return 0.0 if got is None else float(got)
