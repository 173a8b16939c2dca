"""Ray bootstrap: start a local Ray instance or join a cluster (``--ray-address``).

Ray 2.60 turns token authentication on by default; we keep it on. A local instance generates its
token (``~/.ray/auth_token``); to join a cluster, provide the cluster's token through
``RAY_AUTH_TOKEN`` or that file, as Ray documents.

A local instance (no address: the demo, tests, embedded use) listens on 127.0.0.1 only. Ray takes the
node's address from the network (``ray.init(_node_ip_address="127.0.0.1")`` is replaced by it) and its
gRPC servers, agents and the autoscaler's metrics endpoint then listen on all interfaces; Ray's own
switch for a single-machine instance, the one it uses on macOS and Windows
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``), makes the node address 127.0.0.1, and each of those servers
binds to loopback. Nothing outside the machine can reach it, and no other node can join it: a cluster
is started with ``ray start`` and joined with ``ray.address``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import ray

from anonreid.orchestration.config import RayConfig

log = logging.getLogger(__name__)

SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


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
        ray.init(address=config.address, **init_kwargs)
    else:
        with _single_machine():
            _init_local(num_cpus=config.num_cpus or os.cpu_count(), **init_kwargs)
    resources = dict(ray.cluster_resources())
    log.info("Ray %s: %s", "joined " + config.address if config.address else "started locally", resources)
    return resources


#: what Ray 2.60 raises when a local node's raylet has not registered with its GCS within 30 s
RAYLET_START_TIMEOUT = "timed out during startup"

T = TypeVar("T")


def _init_local(**init_kwargs: Any) -> None:
    """``ray.init`` of a local instance, tried once more when its raylet did not come up.

    Twice on the 2-core machine (2026-12-04, under a loaded test suite) a local instance started its GCS
    but its raylet never registered (the session has no raylet log at all) and Ray gave up after its 30 s.
    Both waits are fixed in Ray 2.60: ``ray.init`` waits 30 s for the raylet to register
    (``ray/_private/node.py``), and the raylet waits 15 s for the dashboard agent's port file before it
    exits (ray-project/ray#65983). Load alone stretches them: with 40 busy processes on the 2 cores,
    ``ray.init`` took 39.7 s, the raylet's first log line came 16 s after its session began and the
    agent's 9.3 s after that (one-off run, 2026-12-04); with 12, 13.0 s in all. So a busier moment fails
    the start without anything being wrong. The failed attempt's processes end with this process (Ray's
    reaper); the retry is logged, so a recurring failure shows and its session's logs (Ray's temp dir,
    ``session_*/logs``) can be read."""
    started_once_more(lambda: ray.init(**init_kwargs), ray.shutdown)


def started_once_more(start: Callable[[], T], undo: Callable[[], None] = lambda: None) -> T:
    """``start()`` of a local Ray node (``ray.init``, a ``ray.cluster_utils.Cluster`` head or node), called
    once more, after ``undo()``, when its raylet did not come up in time (:data:`RAYLET_START_TIMEOUT`; why a
    loaded machine does that: :func:`_init_local`); any other error, or a second timeout, is raised."""
    try:
        return start()
    except Exception as exc:
        if RAYLET_START_TIMEOUT not in str(exc):
            raise
        log.warning("Ray: the local instance did not start (%s); starting it again", exc)
        undo()
        return start()


@contextlib.contextmanager
def _single_machine() -> Iterator[None]:
    """Ray's single-machine switch (see the module docstring), on while a local instance starts: this
    process reads it from ``ray_constants``, the Ray processes it starts from the environment."""
    from ray._private import ray_constants

    before_env, before = os.environ.get(SINGLE_MACHINE_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[SINGLE_MACHINE_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:  # joining a cluster later in this process works as before
        ray_constants.ENABLE_RAY_CLUSTER = before
        if before_env is None:
            os.environ.pop(SINGLE_MACHINE_ENV, None)
        else:
            os.environ[SINGLE_MACHINE_ENV] = before_env


def stop_ray() -> None:
    if ray.is_initialized():
        ray.shutdown()
