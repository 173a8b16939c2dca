import os
import time
from pathlib import Path

import pytest
import ray

from anonreid.orchestration.config import RedisConfig
from anonreid.orchestration.redis_service import RedisService, connect


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_embedded_redis_ping_persist_and_stop(tmp_path: Path):
    cfg = RedisConfig(embedded_dir=str(tmp_path / "r"))
    with RedisService(cfg) as svc:
        pid = svc._embedded.pid
        client = svc.client()
        assert client.ping() is True
        client.set("k", "v")
        other = connect(svc.url)  # a second process would do the same with the URL
        assert other.get("k") == b"v"
        other.close()
        client.close()
    deadline = time.time() + 5
    while _alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "embedded redis-server still running after stop()"
    with RedisService(cfg) as again:  # data survives a restart
        assert again.client().get("k") == b"v"


def test_unreachable_redis_url_is_named():
    svc = RedisService(RedisConfig(url="redis://127.0.0.1:1/0"))
    try:
        svc.start()
    except ConnectionError as exc:
        assert "redis://127.0.0.1:1/0" in str(exc)
    else:
        raise AssertionError("expected ConnectionError")


def test_ray_bootstrap_runs_a_task(ray_local):
    assert ray_local["CPU"] == 2

    @ray.remote
    def square(v: int) -> int:
        return v * v

    assert ray.get(square.remote(7)) == 49


def test_a_local_ray_whose_raylet_did_not_come_up_is_started_once_more(monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Ray's "timed out during startup" (a raylet that never registered) gets one more start, logged; any
    other error of ray.init, or a second timeout, is raised as it is."""
    import logging

    from anonreid.orchestration import ray_cluster

    calls: list[dict] = []
    outcomes: list[Exception | None] = []

    def init(**kw: object) -> None:
        calls.append(kw)
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    timeout = Exception("The current node timed out during startup. This could happen because some of the raylet "
                        "failed to startup or the GCS has become overloaded.")
    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "shutdown", lambda: None)
    caplog.set_level(logging.WARNING, logger="anonreid.orchestration.ray_cluster")

    outcomes[:] = [timeout, None]
    ray_cluster._init_local(num_cpus=2)
    assert calls == [{"num_cpus": 2}] * 2 and "starting it again" in caplog.text

    calls.clear()
    outcomes[:] = [timeout, timeout]
    with pytest.raises(Exception, match="timed out during startup"):
        ray_cluster._init_local(num_cpus=2)
    assert len(calls) == 2

    calls.clear()
    outcomes[:] = [ValueError("bad resources")]
    with pytest.raises(ValueError, match="bad resources"):
        ray_cluster._init_local(num_cpus=2)
    assert len(calls) == 1
