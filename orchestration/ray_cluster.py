"""Ray bootstrap: start a local Ray instance or join a cluster (``--ray-address``).

Ray 2.60 turns token authentication on by default; we keep it on. A local instance generates its
token (``~/.ray/auth_token``); to join a cluster, provide the cluster's token through
``RAY_AUTH_TOKEN`` or that file, as Ray documents.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import ray

from anonreid.orchestration.config import RayConfig

log = logging.getLogger(__name__)


def start_ray(config: RayConfig, **kwargs: Any) -> dict[str, Any]:
    """Connect this process to Ray (idempotent); returns the cluster's resources."""
    if ray.is_initialized():
        return dict(ray.cluster_resources())
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    init_kwargs: dict[str, Any] = {
        "namespace": config.namespace,
        "include_dashboard": False,
        "log_to_driver": True,
        **kwargs,
    }
    if config.address:
        init_kwargs["address"] = config.address
    else:
        init_kwargs["num_cpus"] = config.num_cpus or os.cpu_count()
    ray.init(**init_kwargs)
    resources = dict(ray.cluster_resources())
    log.info("Ray %s: %s", "joined " + config.address if config.address else "started locally", resources)
    return resources


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
