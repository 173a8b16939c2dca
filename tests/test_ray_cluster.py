"""The same code on a two-node Ray cluster: camera actors pinned to labelled nodes reach the gallery.

A real ``ray.cluster_utils.Cluster`` (two raylets on this machine, each with its own custom resource as
a node label) is joined by ``anonreid place-cameras --ray-address ...`` in a separate process, exactly
as on Kubernetes; the camera actors must land on the nodes their labels name and their sightings must
reach the gallery.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# alone: a second Ray instance on the machine (another test's) broke this cluster's connections under xdist
pytestmark = [pytest.mark.slow, pytest.mark.alone]


@pytest.fixture
def no_local_ray() -> Iterator[None]:
    """No Ray instance of this process while the cluster runs: started right after another test's local
    instance (the session's ``ray_local`` after the demo), the cluster's GCS did not answer its driver.
    The local instance starts again afterwards for the tests that use it."""
    import ray

    from anonreid.orchestration.config import RayConfig
    from anonreid.orchestration.ray_cluster import start_ray, stop_ray

    was_running = ray.is_initialized()
    resources = dict(ray.cluster_resources()) if was_running else {}
    stop_ray()
    yield
    if was_running:
        start_ray(RayConfig(num_cpus=int(resources.get("CPU", 2))))


@pytest.mark.usefixtures("no_local_ray")
def test_cameras_on_two_labelled_nodes_reach_the_gallery(redis_service: Any, gallery_address: str) -> None:
    from ray.cluster_utils import Cluster

    from anonreid.gallery.client import GalleryClient
    from anonreid.orchestration.ray_cluster import started_once_more

    # each node's start gets the one retry a local start gets when its raylet is late (ray_cluster._init_local)
    cluster = started_once_more(lambda: Cluster(initialize_head=True,
                                                head_node_args={"num_cpus": 1, "resources": {"zone-a": 1}}))
    worker = started_once_more(lambda: cluster.add_node(num_cpus=1, resources={"zone-b": 1}))
    cluster.wait_for_nodes()
    head_id, worker_id = cluster.head_node.node_id, worker.node_id
    host, port = gallery_address.rsplit(":", 1)
    try:
        out = subprocess.run(
            [sys.executable, "-m", "anonreid.orchestration.cli", "place-cameras", "--ray-address", cluster.address,
             "--duration", "25", "--poll", "1",
             "--set", f"redis.url={redis_service.url}", "--set", f"gallery.host={host}", "--set", f"gallery.port={port}",
             "--set", "gallery.camera_ids=[cam1, cam2]", "--set", "camera.placement={cam1: zone-a, cam2: zone-b}",
             "--set", "camera.metrics_port=0", "--set", "demo.actor_cpus=0.5", "--set", "world.live_arrival_s=2"],
            capture_output=True, text=True, timeout=420, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"},
        )
        assert out.returncode == 0, out.stderr[-3000:]
        stats = json.loads(out.stdout[out.stdout.index("{"):])
    finally:
        cluster.shutdown()
    assert stats["cam1"]["node_id"] == head_id, stats["cam1"]
    assert stats["cam2"]["node_id"] == worker_id, stats["cam2"]
    with GalleryClient(gallery_address) as client:
        identities = client.list_identities()
    cameras = {cam for ident in identities for cam in ident.cameras}
    assert {"cam1", "cam2"} <= cameras, f"sightings reached the gallery only from {cameras}"
