"""Fault injection with real components: Redis killed and restarted on its data directory, the gallery
process killed (SIGKILL) and restarted, a camera's Ray actor killed and restarted by Ray — each in the
middle of a stream, each followed by a check that every expected sighting arrived exactly once.

Sighting ids are idempotency keys: the expectation is the exact list of ids the publisher sent (for the
camera: the sighting ids a fault-free run of the same recorded stream publishes), and "exactly once"
is checked in Redis (one hash per id, nothing else) and in a gallery rebuilt from it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.synthetic import noisy, prototypes, sighting
from anonreid.gallery.types import Sighting
from anonreid.orchestration.config import GalleryConfig, RedisConfig, SecurityConfig
from anonreid.orchestration.redis_service import RedisService

S = 1_000_000
PREFIX = "anonreid:gallery"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _sightings(n: int, seed: int) -> list[Sighting]:
    rng = np.random.default_rng(seed)
    protos = prototypes(n, 256, rng)
    return [sighting(f"f{seed}-{i}", "cam1", f"t{i}", i * 100 * S, i * 100 * S + S, noisy(protos[i], 0.2, rng))
            for i in range(n)]


def _with_fault(items: list[Sighting], at: int, kill: Any, restart: Any, threads: list[threading.Thread],
                ready: Callable[[], bool], what: str) -> Iterator[Sighting]:
    """The items as the client pulls them; before item ``at`` is sent, once ``ready()`` (``what``: the state
    the fault must find), ``kill`` runs, then ``restart`` in a thread (appended to ``threads``), so the rest of
    the stream goes out while the component is down. Not ready in 30 s fails the publish (the source's error)."""
    for i, s in enumerate(items):
        if i == at:
            deadline = time.monotonic() + 30
            while not ready():
                assert time.monotonic() < deadline, f"not within 30 s: {what}"
                time.sleep(0.01)
            kill()
            threads.append(threading.Thread(target=restart, daemon=True))
            threads[-1].start()
        yield s


def assert_exactly_once(client: redis.Redis, expected: set[str], cfg: GalleryConfig, url: str,
                        password: str | None) -> None:
    """One Redis hash per expected id and nothing else; a gallery rebuilt from Redis holds exactly them."""
    keys = {k.decode().removeprefix(f"{PREFIX}:s:") for k in client.scan_iter(match=f"{PREFIX}:s:*")}
    assert keys == expected
    members = [m.decode() for i in client.smembers(f"{PREFIX}:identities") for m in client.zrange(f"{PREFIX}:i:" + i.decode(), 0, -1)]
    assert sorted(members) == sorted(expected)  # each sighting in exactly one identity, once
    srv = GalleryServer(cfg, url, password, serve_metrics=False)
    srv.start()
    try:
        assert srv.gallery is not None and len(srv.gallery) == len(srv.gallery.index) == len(expected)
    finally:
        srv.stop(0)


def test_redis_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    """SIGKILL the embedded Redis (password on) while a camera streams; restart it on the same data dir."""
    rcfg = RedisConfig(embedded_dir=str(tmp_path / "redis"), password="s3cret-pw")
    first = RedisService(rcfg).start()
    url = first.url
    with pytest.raises(redis.AuthenticationError):  # the password is enforced
        redis.Redis.from_url(url).set("x", 1)
    cfg = GalleryConfig(port=0, metrics_port=0, grace_s=0.5)
    gallery = GalleryServer(cfg, url, first.password, serve_metrics=False)
    address = gallery.start()
    restarted: list[RedisService] = []
    threads: list[threading.Thread] = []

    def kill() -> None:
        os.kill(first._embedded.pid, signal.SIGKILL)
        with contextlib.suppress(Exception):
            first.stop()

    def restart() -> None:
        # sightings keep coming while Redis is down: restart once the gallery has refused a stream for it
        deadline = time.monotonic() + 30
        while client.reconnects < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        restarted.append(RedisService(rcfg).start())

    probe = first.client()

    def written() -> bool:
        """The 20 sightings sent are stored, and written to the append-only file. With appendfsync everysec
        (the embedded Redis's) Redis keeps acknowledged writes in its AOF buffer, unwritten, for up to 2 s
        while a background fsync is pending, and a SIGKILL then loses them (seen: 20 acknowledged
        sightings, aof_buffer_length 31000, aof_pending_bio_fsync 1), so this test kills Redis only when
        its buffer is empty: it checks the gallery and the client across a Redis restart, not that window."""
        return len(gallery.gallery or []) == 20 and probe.info("persistence")["aof_buffer_length"] == 0

    items = _sightings(60, seed=1)
    try:
        with GalleryClient(address, retry_timeout_s=30) as client:
            acks = client.publish(_with_fault(items, 20, kill, restart, threads, written, "20 sightings in the AOF"))
            threads[0].join(30)
            assert restarted and restarted[0].url == url  # same address: the gallery reconnected by itself
            # each id acknowledged; a replayed one (stored, ack lost) comes back as a duplicate
            assert sorted({a.sighting_id for a in acks}) == sorted(s.sighting_id for s in items)
            assert len(client.list_identities(limit=1000)) == 60
        gallery.stop(0)
        assert_exactly_once(restarted[0].client(), {s.sighting_id for s in items}, cfg, url, rcfg.password)
    finally:
        probe.close()
        gallery.stop(0)
        for r in restarted:
            r.stop()


def _serve(port: int, redis_url: str, password: str, security: list[str], log: Path) -> subprocess.Popen:
    anonreid = Path(sys.executable).with_name("anonreid")
    args = [str(anonreid), "gallery", "serve", "--redis-url", redis_url, "--port", str(port),
            "--set", "gallery.metrics_port=0", "--set", "console.port=0", "--set", f"redis.password={password}"]
    for s in security:
        args += ["--set", s]
    return subprocess.Popen(args, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.mark.slow
def test_gallery_process_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    """``anonreid gallery serve`` (TLS + tokens) SIGKILLed mid-stream and started again on the same port."""
    from anonreid.orchestration.security.certs import generate_dev_pki
    from anonreid.orchestration.security.tokens import create_token

    pki = generate_dev_pki(tmp_path / "pki")
    tokens = tmp_path / "tokens.yaml"
    token = create_token(tokens, "cam1", "camera", cameras=("cam1",))
    create_token(tokens, "ops", "operator")
    server_sec = ["security.tls=true", f"security.ca_cert={pki.ca}", f"security.server_cert={pki.server_cert}",
                  f"security.server_key={pki.server_key}", f"security.tokens_file={tokens}"]
    client_sec = SecurityConfig(tls=True, ca_cert=str(pki.ca), token=token)
    rcfg = RedisConfig(embedded_dir=str(tmp_path / "redis"), password="pw")
    redis_service = RedisService(rcfg).start()
    port = _free_port()
    log = tmp_path / "gallery.log"
    procs = [_serve(port, redis_service.url, "pw", server_sec, log)]

    def kill() -> None:
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)

    def restart() -> None:
        procs.append(_serve(port, redis_service.url, "pw", server_sec, log))

    threads: list[threading.Thread] = []
    items = _sightings(50, seed=2)
    try:
        with GalleryClient(f"127.0.0.1:{port}", retry_timeout_s=90, security=client_sec) as client:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # the process imports faiss, torch-free; wait until it serves
                with contextlib.suppress(Exception):
                    if client.health() == "SERVING":
                        break
                time.sleep(0.3)
            store = redis_service.client()
            acks = client.publish(_with_fault(  # the gallery dies once it stored one; the rest are in flight or unsent
                items, 15, kill, restart, threads, lambda: any(store.scan_iter(match=f"{PREFIX}:s:*")),
                "a sighting stored"))
            assert len(procs) == 2 and procs[0].returncode == -signal.SIGKILL, log.read_text()[-2000:]
            assert client.reconnects >= 1
            assert sorted({a.sighting_id for a in acks}) == sorted(s.sighting_id for s in items)
        procs[1].send_signal(signal.SIGTERM)  # graceful this time
        assert procs[1].wait(30) == 0, log.read_text()[-2000:]
        assert_exactly_once(redis_service.client(), {s.sighting_id for s in items},
                            GalleryConfig(port=0, metrics_port=0), redis_service.url, "pw")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        redis_service.stop()


# -- a camera's Ray actor killed mid-stream ------------------------------------------------------------
STREAM_END_US = 3_000_000
CAMERA = "cam3"  # a person walks through it from 0.5 s


def _recording(path: Path) -> None:
    """The first seconds of the live world's camera, recorded to HDF5 (a finite, replayable stream)."""
    from anonreid.events.io import write_hdf5
    from anonreid.events.types import SensorSize, concat_events
    from anonreid.events.world import LiveWorld
    from anonreid.orchestration.config import WorldConfig

    packets = []
    for p in LiveWorld(WorldConfig()).camera_stream(CAMERA, start_us=0, realtime=False, packet_us=10_000):
        if len(p) and p["t"][0] >= STREAM_END_US:
            break
        packets.append(p)
    write_hdf5(path, concat_events(packets), SensorSize.parse(WorldConfig().resolution))


def _camera_config() -> Any:
    from anonreid.orchestration.config import CameraConfig

    return CameraConfig(publish_every=15, embed_every=5, metrics_port=0, torch_threads=1, audit_every_s=100)


@pytest.mark.slow
def test_camera_actor_killed_mid_stream_publishes_every_sighting_once(
        tmp_path: Path, redis_service: Any, ray_local: dict) -> None:
    import ray

    from anonreid.nodes.actors import CameraService, camera_actor_class
    from anonreid.nodes.sources import SourceSpec
    from anonreid.orchestration.config import EventsConfig

    path = tmp_path / f"{CAMERA}.h5"
    _recording(path)
    spec = SourceSpec(kind="file", camera_id=CAMERA, path=str(path), realtime=False)
    # the expectation: the ids a fault-free run of the same recording publishes (its own published-id log)
    ref_redis = RedisService(RedisConfig(embedded_dir=str(tmp_path / "ref-redis"))).start()
    ref_gallery = GalleryServer(GalleryConfig(port=0, metrics_port=0), ref_redis.url, serve_metrics=False)
    try:
        reference = CameraService(spec, ref_gallery.start(), None, None, _camera_config(), EventsConfig())
        ref_stats = reference.run()
        expected = set(reference.node.publisher.assignments)  # type: ignore[union-attr]
        reference.close()
    finally:
        ref_gallery.stop(0)
        ref_redis.stop()
    assert ref_stats["sightings_acked"] == len(expected) >= 3, ref_stats

    cfg = GalleryConfig(port=0, metrics_port=0)
    gallery = GalleryServer(cfg, redis_service.url, serve_metrics=False)
    address = gallery.start()
    store = redis_service.client()
    actor = camera_actor_class(num_cpus=0.5, max_restarts=1).remote(
        spec, address, None, None, _camera_config(), EventsConfig(), None)
    try:
        ray.get(actor.ping.remote(), timeout=120)
        ray.get(actor.start.remote(None))
        deadline = time.monotonic() + 120
        while not list(store.scan_iter(match=f"{PREFIX}:s:*")) and time.monotonic() < deadline:
            time.sleep(0.05)  # kill once the camera has published something, in the middle of its stream
        before = ray.get(actor.stats.remote())
        assert before["running"], "the stream ended before the fault: make it longer"
        ray.kill(actor, no_restart=False)  # the process dies; Ray restarts it (max_restarts=1)
        deadline = time.monotonic() + 120
        while True:  # until the new incarnation answers (kill is asynchronous: the old one may still)
            try:
                fresh = ray.get(actor.stats.remote(), timeout=30)
                if fresh["windows"] == 0 and not fresh["running"]:
                    ray.get(actor.start.remote(None))  # the restarted node replays its source from the start
                    break
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError, ray.exceptions.GetTimeoutError):
                pass
            assert time.monotonic() < deadline, "the camera actor did not come back"
            time.sleep(0.5)
        assert ray.get(actor.wait.remote(240), timeout=260)
        after = ray.get(actor.stop.remote())
        assert after["error"] is None and after["sightings_pending"] == 0
    finally:
        with contextlib.suppress(Exception):
            ray.get(actor.close.remote(), timeout=30)
        ray.kill(actor, no_restart=True)
        gallery.stop(0)
    assert_exactly_once(store, expected, cfg, redis_service.url, None)
