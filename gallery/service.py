"""Wiring: Redis client -> store -> Gallery (rebuilt from Redis) -> servicer -> gRPC server + /metrics.

``GalleryServer(config, redis_url, password).start()`` returns the gRPC address; ``stop()`` stops
gracefully (health NOT_SERVING, in-flight RPCs get ``config.grace_s``) and closes Redis. Restarting a
server on the same Redis restores every identity and sighting.

Security (``security``, a :class:`SecurityConfig`): TLS or mutual TLS on the port, bearer tokens with
roles checked on every RPC (a camera token publishes only as its bound cameras), and the access log
of operator queries and refused calls (:mod:`anonreid.gallery.access`, written with or without tokens).
Publish streams are bounded in all, per client address and per token, and closed when idle
(:mod:`anonreid.gallery.streams`). Retention (``gallery.retention_s`` > 0): Redis expires the keys and a
sweeper thread erases expired sightings from FAISS and the tables every ``retention_sweep_s`` (or a
quarter of the retention period, when shorter). Index snapshots (``gallery.snapshot_dir``,
:mod:`anonreid.gallery.snapshot`): a thread writes one whenever it is due, and :meth:`GalleryServer.stop`
writes a last one once the RPCs have drained.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import grpc
import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from anonreid.gallery.access import AccessLog
from anonreid.gallery.core import Gallery
from anonreid.gallery.metrics import GalleryMetrics
from anonreid.gallery.server import GrpcServer
from anonreid.gallery.servicer import GalleryServicer
from anonreid.gallery.store import GalleryStore
from anonreid.gallery.streams import StreamLimiter
from anonreid.orchestration.config import GalleryConfig, SecurityConfig
from anonreid.orchestration.redis_service import connect

log = logging.getLogger(__name__)


def redis_client(url: str, password: str | None = None) -> redis.Redis:
    """A Redis client that retries a dropped connection with exponential backoff (Redis restarts)."""
    return connect(url, password, socket_timeout=10, socket_connect_timeout=5, health_check_interval=30,
                   retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), 5),
                   retry_on_error=[redis.ConnectionError, redis.TimeoutError])


class GalleryServer:
    """The whole gallery node: start, stop, and the objects in between for tests and the demo."""

    def __init__(self, config: GalleryConfig, redis_url: str, password: str | None = None, *,
                 serve_metrics: bool = True, interceptors: Sequence[grpc.ServerInterceptor] = (),
                 credentials: grpc.ServerCredentials | None = None, security: SecurityConfig | None = None) -> None:
        """``security`` sets TLS (unless ``credentials`` are given) and the token file; ``interceptors``
        run after access control."""
        from anonreid.orchestration.security.auth import load_tokens
        from anonreid.orchestration.security.roles import Role
        from anonreid.orchestration.security.tls import server_credentials

        self.config = config
        self.interceptors = tuple(interceptors)
        self.security = security or SecurityConfig()
        self.credentials = credentials if credentials is not None else server_credentials(self.security)
        self.tokens = load_tokens(self.security)
        for p in self.tokens.principals() if self.tokens is not None else ():
            if p.role is Role.CAMERA and not p.cameras:
                log.warning("%s: its publishes will be refused: %s", self.security.tokens_file, p.camera_refusal(""))
        self.streams = StreamLimiter(config.max_publish_streams, config.max_streams_per_peer,
                                     config.max_streams_per_token)
        self.access_log: AccessLog | None = None
        self._sweeper: threading.Thread | None = None
        self._snapshotter: threading.Thread | None = None
        self.redis_url = redis_url
        self.password = password
        self.serve_metrics = serve_metrics
        self.metrics = GalleryMetrics()
        self.gallery: Gallery | None = None
        self.grpc: GrpcServer | None = None
        self.address = ""
        self.metrics_port: int | None = None
        self._redis: redis.Redis | None = None
        self._stopped = threading.Event()

    def start(self) -> str:
        """Load the gallery from Redis, then listen; returns ``host:port``."""
        cfg = self.config
        self._redis = redis_client(self.redis_url, self.password)
        try:
            self._redis.ping()
        except redis.RedisError as exc:
            raise ConnectionError(f"gallery cannot reach Redis at {self.redis_url}: {exc}") from exc
        try:
            from anonreid.orchestration.security.auth import AuthInterceptor

            store = GalleryStore(self._redis, cfg.redis_prefix, cfg.embedding_dim, cfg.retention_s)
            self.gallery = Gallery(cfg, store, self.metrics)
            self.gallery.expire()
            self.access_log = AccessLog(self._redis, cfg.redis_prefix, cfg.access_log_maxlen)
            auth = AuthInterceptor(self.tokens, self.access_log.record, self.access_log.denied)
            servicer = GalleryServicer(self.gallery, streams=self.streams, idle_timeout_s=cfg.publish_idle_timeout_s,
                                       on_denied=self.access_log.denied)
            self.grpc = GrpcServer(servicer, self.metrics, host=cfg.host, port=cfg.port,
                                   max_message_bytes=cfg.max_message_bytes, max_workers=cfg.max_workers,
                                   publish_streams=cfg.max_publish_streams, grace_s=cfg.grace_s,
                                   keepalive_time_s=cfg.keepalive_time_s, keepalive_timeout_s=cfg.keepalive_timeout_s,
                                   interceptors=(auth, *self.interceptors), credentials=self.credentials)
            self.address = self.grpc.start()
            self._stopped.clear()
            if cfg.retention_s > 0:
                self._sweeper = threading.Thread(target=self._sweep, name="gallery-retention", daemon=True)
                self._sweeper.start()
            if cfg.snapshot_dir:
                self._snapshotter = threading.Thread(target=self._snapshot_when_due, name="gallery-snapshot",
                                                     daemon=True)
                self._snapshotter.start()
            if self.serve_metrics:
                self.metrics_port = self.metrics.serve(cfg.metrics_port, addr=cfg.host)
                log.info("gallery metrics on http://%s:%d/metrics", cfg.host, self.metrics_port)
        except BaseException:
            self.stop(0)
            raise
        return self.address

    def _sweep(self) -> None:
        """Erase expired sightings until :meth:`stop` (a Redis outage is logged; the next sweep retries)."""
        interval = max(0.05, min(self.config.retention_sweep_s, self.config.retention_s / 4))
        while not self._stopped.wait(interval):
            gallery = self.gallery
            if gallery is None:
                return
            try:
                gallery.expire()
            except Exception:
                log.exception("retention sweep failed; retrying in %.1f s", interval)

    def _snapshot_when_due(self) -> None:
        """Write an index snapshot whenever one is due, until :meth:`stop` (a failure is logged and
        retried after ``snapshot_interval_s``)."""
        while not self._stopped.wait(1.0):
            gallery = self.gallery
            if gallery is None:
                return
            try:
                if gallery.snapshot_due():
                    gallery.write_snapshot()
            except Exception:
                log.exception("index snapshot failed; retrying in %.0f s", self.config.snapshot_interval_s)
                if self._stopped.wait(self.config.snapshot_interval_s):
                    return

    def stop(self, grace_s: float | None = None, *, final_snapshot: bool = True) -> None:
        """Stop serving; with ``snapshot_dir``, write a last index snapshot once the RPCs have drained
        (``final_snapshot=False`` leaves the files as a crash would: for tests and the benchmark)."""
        self._stopped.set()
        for thread in (self._sweeper, self._snapshotter):
            if thread is not None:
                thread.join(60)
        self._sweeper = self._snapshotter = None
        if self.grpc is not None:
            self.grpc.stop(grace_s)
            self.grpc = None
        if final_snapshot and self.gallery is not None and self.gallery.snapshot_due(closing=True):
            try:
                self.gallery.write_snapshot()
            except Exception:
                log.exception("the index snapshot at stop failed; the next start replays more of the change log")
        self.metrics.stop()
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        self._stopped.set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until :meth:`stop` (e.g. from a signal handler); True once stopped."""
        return self._stopped.wait(timeout)

    def __enter__(self) -> GalleryServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
