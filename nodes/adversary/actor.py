"""The adversary node as a service: its own Redis connection and metrics endpoint, and the Ray actor
class that wraps it (Ray places and restarts it; the logic lives in :class:`AdversaryNode`)."""

from __future__ import annotations

import logging
import time
from typing import Any

from anonreid.orchestration.config import AdversaryConfig, WorldConfig


class AdversaryService:
    """The adversary node with its own Redis connection and metrics endpoint (what the Ray actor wraps)."""

    def __init__(
        self, config: AdversaryConfig, redis_url: str, redis_password: str | None = None,
        world: WorldConfig | None = None, metrics_port: int | None = None,
    ) -> None:
        from anonreid.nodes.adversary.node import AdversaryNode
        from anonreid.nodes.metrics import serve_metrics
        from anonreid.orchestration.redis_service import connect

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.node = AdversaryNode(config, connect(redis_url, redis_password), world=world)
        port = config.metrics_port if metrics_port is None else metrics_port
        self.port = serve_metrics(port, config.metrics_host)

    def start(self, duration_s: float | None = None) -> None:
        self.node.start(duration_s)

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.node.stop(timeout)

    def stats(self) -> dict[str, Any]:
        return {**self.node.stats(), "metrics_port": self.port}

    def ping(self) -> float:
        return time.time()


def adversary_actor_class(num_cpus: float = 0.5, num_gpus: float = 0.0, max_restarts: int = 3) -> Any:
    """The Ray actor class wrapping :class:`AdversaryService` (threaded: stats / stop answer while it runs)."""
    import ray

    remote: Any = ray.remote
    return remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_concurrency=4)(AdversaryService)
