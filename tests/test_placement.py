"""Placing the camera nodes as Ray actors on a cluster (what the Helm chart's camera Job runs).

Real components: a local Ray instance, the gRPC gallery on localhost, an embedded Redis, and the
camera actors on the live synthetic world. The slow test places the cameras, places them again (the
named, detached actors are found, not duplicated), kills an actor's process (Ray restarts it and the
supervisor starts its camera loop again) and stops them.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from anonreid.orchestration.cli import app
from anonreid.orchestration.config import load_config
from anonreid.orchestration.placement import (
    PlacementError,
    place_cameras,
    source_spec,
    stop_cameras,
    supervise,
)


def test_bad_settings_are_named() -> None:
    cfg = load_config()
    with pytest.raises(PlacementError, match=r"redis\.url is empty"):
        place_cameras(cfg)
    with pytest.raises(PlacementError, match="unknown source 'kafka'"):
        source_spec(cfg, "cam1", "kafka")
    spec = source_spec(load_config(None, ["redis.url=redis://r:6379/0", "redis.password=pw"]), "cam2", "redis")
    assert (spec.kind, spec.camera_id, spec.redis_url, spec.redis_password) == ("redis", "cam2", "redis://r:6379/0", "pw")


def test_cli_needs_a_ray_cluster_and_a_known_source() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["place-cameras"])
    assert result.exit_code == 2 and "no Ray cluster to join" in result.output
    result = runner.invoke(app, ["place-cameras", "--ray-address", "ray://head:10001", "--source", "kafka"])
    assert result.exit_code == 2 and "--source kafka" in result.output


def _wait(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_place_find_restart_and_stop(
    redis_service: Any, gallery_address: str, ray_local: dict, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import ray

    caplog.set_level(logging.INFO, logger="anonreid.orchestration.placement")

    host, port = gallery_address.rsplit(":", 1)
    cfg = load_config(None, [
        f"redis.url={redis_service.url}", f"gallery.host={host}", f"gallery.port={port}",
        "gallery.camera_ids=[cam1]", "camera.metrics_port=0", "camera.torch_threads=1", "demo.actor_cpus=0.5",
    ])
    actors = place_cameras(cfg, "live", max_restarts=2)
    try:
        again = place_cameras(cfg, "live", max_restarts=2)
        assert again["cam1"]._actor_id == actors["cam1"]._actor_id  # found by name, not placed twice
        stop = threading.Event()
        result: dict[str, Any] = {}
        thread = threading.Thread(
            target=lambda: result.update(supervise(actors, poll_s=0.5, stop=stop)), daemon=True
        )
        thread.start()

        def windows() -> int:
            try:
                stats = ray.get(actors["cam1"].stats.remote(), timeout=5)
            except Exception:  # restarting
                return -1
            return int(stats["windows"]) if stats["running"] else -1

        _wait(lambda: windows() > 30, 90, "cam1 to process windows")
        assert ray.get(actors["cam1"].ping.remote()) > 0  # answers while running
        before = windows()
        ray.kill(actors["cam1"], no_restart=False)  # the process dies; Ray restarts it (max_restarts)
        seen: list[int] = []

        def restarted_and_running() -> bool:
            seen.append(windows())
            # a fresh process counts from zero: it was down (-1) or counts below `before`, then runs again
            return any(w == -1 or w < before for w in seen) and seen[-1] > 0

        _wait(restarted_and_running, 120, "cam1 to be restarted and running again")
        stop.set()
        thread.join(30)
        assert not thread.is_alive() and result["cam1"]["error"] is None
        starts = [r for r in caplog.records if r.getMessage().startswith("camera cam1 started")]
        assert len(starts) == 2, [r.getMessage() for r in caplog.records]  # placed, then after the restart
    finally:
        final = stop_cameras(actors)
    assert final["cam1"]["windows"] > 0 and final["cam1"]["running"] is False
    with pytest.raises(ValueError):
        ray.get_actor("camera-cam1")
