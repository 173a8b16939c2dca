"""Placement: a camera node as a plain service object, and the Ray actor that wraps it.

:class:`CameraService` wires one :class:`~anonreid.nodes.camera.CameraNode` to what it needs on the
machine it runs on: its event source (built from a picklable :class:`SourceSpec`), a gRPC
``GalleryClient``, a Redis client for the audit tap and a Prometheus endpoint. It holds no logic of
its own beyond starting and stopping, so the same tests run on the plain object and on the actor
(:func:`camera_actor_class`), and Ray only decides where it runs and restarts it when it dies
(``max_restarts``; a Redis-stream source then resumes from its pending entries).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from anonreid.nodes.sources import RedisStreamSource, SourceSpec, open_source
from anonreid.orchestration.config import CameraConfig, EventsConfig, SecurityConfig

log = logging.getLogger(__name__)


class CameraService:
    """One camera node with its source, gallery client, audit-tap Redis client and metrics endpoint."""

    def __init__(
        self,
        spec: SourceSpec,
        gallery_address: str | None,
        redis_url: str | None = None,
        redis_password: str | None = None,
        camera: CameraConfig | None = None,
        events: EventsConfig | None = None,
        metrics_port: int | None = None,
        security: SecurityConfig | None = None,
    ) -> None:
        """``security``: TLS / mutual TLS to the gallery and the camera's bearer token (``security.token``)."""
        from anonreid.nodes.camera import CameraNode
        from anonreid.nodes.metrics import serve_metrics

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.spec = spec
        self.camera_id = spec.camera_id
        self.source = open_source(spec)
        gallery = None
        if gallery_address:
            from anonreid.proto.gallery_client import GalleryClient

            gallery = GalleryClient(gallery_address, security=security)
        redis_client = None
        if redis_url:
            from anonreid.orchestration.redis_service import connect

            redis_client = connect(redis_url, redis_password)
        self.node = CameraNode(
            spec.camera_id,
            self.source.sensor,
            camera,
            events,
            gallery=gallery,
            redis=redis_client,
            ground_truth=self.source.ground_truth,
            window_t0_us=self.source.window_t0_us,
        )
        self.source.on_bad_input = self.node.metrics.bad_input
        self.node.clock_kind = self.source.clock_kind
        host = (camera or CameraConfig()).metrics_host
        self.port = serve_metrics(metrics_port, host) if metrics_port is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: dict[str, Any] | None = None
        self._error: str | None = None

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Process the source until it ends, :meth:`stop` is called or ``duration_s`` passes."""
        packets = self.source.packets()
        # the clock anchor is set when the stream starts; the node reads it through this hook
        self.node.clock_anchor = None

        def tracked() -> Any:
            for packet in packets:
                if self.node.clock_anchor is None:
                    self.node.clock_anchor = self.source.clock_anchor
                yield packet

        try:
            # a paced live / replayed stream drops the oldest windows when the node falls behind; a
            # stream that buffers durably (Redis, a file read as fast as possible) waits instead
            backpressure = self.spec.kind == "redis" or not self.spec.realtime
            stats = self.node.run(
                tracked(), duration_s=duration_s, stop=self._stop, on_processed=self.source.commit,
                backpressure=backpressure, watermark=lambda: self.source.watermark_us,
            )
            if isinstance(self.source, RedisStreamSource) and not self._stop.is_set():
                self.source.flush_acks()
            return stats
        finally:
            self.source.close()

    def start(self, duration_s: float | None = None) -> None:
        """Run in a background thread (the actor stays responsive to stats / stop)."""

        def target() -> None:
            try:
                self._result = self.run(duration_s)
            except BaseException as exc:
                log.exception("camera %s failed", self.camera_id)
                self._error = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=target, name=f"camera-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        """Stop (final sightings are published and acknowledged first); returns the final stats."""
        self._stop.set()
        self.wait(timeout)
        return self.stats()

    def wait(self, timeout: float | None = None) -> bool:
        """True once the background run has finished."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stats(self) -> dict[str, Any]:
        out = self.node.stats()
        out["metrics_port"] = self.port
        out["error"] = self._error
        out["running"] = self._thread is not None and self._thread.is_alive()
        out["node_id"] = _ray_node_id()
        # a live source rendered ahead of the clock: its CPU, set-up included (None: rendered in step)
        out["world_render_cpu_s"] = getattr(self.source, "render_cpu_s", None)
        return out

    def evaluation(self) -> dict[str, Any]:
        return self.node.evaluation()

    def metrics_port(self) -> int | None:
        return self.port

    def ping(self) -> float:
        return time.time()

    def close(self) -> None:
        self._stop.set()
        self.wait(10)
        self.node.close()


def _ray_node_id() -> str | None:
    """The Ray node this service runs on (None outside Ray)."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None


def camera_actor_class(
    num_cpus: float = 0.25, num_gpus: float = 0.0, max_restarts: int = 3, resources: dict[str, float] | None = None
) -> Any:
    """The Ray actor class wrapping :class:`CameraService` (threaded, so stats / stop answer while it runs)."""
    import ray

    remote: Any = ray.remote  # its typed overloads do not list max_concurrency
    return remote(
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        max_restarts=max_restarts,
        max_concurrency=4,
        resources=resources or {},
    )(CameraService)
