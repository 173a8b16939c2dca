"""Publish streams cannot starve the gallery: a real server on a localhost port, idle streams opened
against it, and the operator, the health check and the stream limits observed from outside."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from anonreid.gallery.client import GalleryClient
from anonreid.gallery.service import GalleryServer
from anonreid.gallery.synthetic import prototypes, sighting
from anonreid.orchestration.config import GalleryConfig, SecurityConfig
from anonreid.orchestration.security.tokens import create_token
from anonreid.proto.v1 import gallery_pb2, gallery_pb2_grpc

S = 1_000_000
CODE = grpc.StatusCode


def _server(redis_url: str, security: SecurityConfig | None = None, **gallery: Any) -> GalleryServer:
    cfg = GalleryConfig(**({"port": 0, "metrics_port": 0, "grace_s": 0.5} | gallery))
    srv = GalleryServer(cfg, redis_url, serve_metrics=False, security=security)
    srv.start()
    return srv


@dataclass
class IdleStream:
    """A Publish (or PublishBatches) stream that sends nothing until released; its outcome is recorded
    when it ends."""

    call: Any
    release: threading.Event
    opened: float = field(default_factory=time.monotonic)
    code: CODE | None = None
    details: str = ""
    ended: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


def _silent(release: threading.Event) -> Iterator[Any]:
    release.wait()
    yield from ()


def _open(stub: gallery_pb2_grpc.GalleryStub, metadata: tuple = (), batches: bool = False) -> IdleStream:
    release = threading.Event()
    rpc = stub.PublishBatches if batches else stub.Publish
    stream = IdleStream(rpc(_silent(release), metadata=metadata), release)

    def drain() -> None:
        try:
            for _ in stream.call:
                pass
            stream.code = CODE.OK
        except grpc.RpcError as err:
            stream.code, stream.details = err.code(), err.details() or ""
        stream.ended = time.monotonic()
        stream.done.set()

    threading.Thread(target=drain, daemon=True).start()
    return stream


def _open_settled(srv: GalleryServer, stub: gallery_pb2_grpc.GalleryStub, streams: list[IdleStream],
                  metadata: tuple = (), batches: bool = False) -> IdleStream:
    """Open one more idle stream and wait until the gallery admitted it or refused it."""
    before = srv.streams.open
    stream = _open(stub, metadata, batches)
    deadline = time.monotonic() + 10
    while srv.streams.open == before and not stream.done.is_set():
        assert time.monotonic() < deadline, "the gallery neither admitted nor refused a stream"
        time.sleep(0.005)
    streams.append(stream)
    return stream


def test_idle_streams_are_capped_closed_and_leave_the_operator_served(redis_url: str) -> None:
    # 4 handler threads for queries: before the stream limits, 4 idle streams froze every RPC
    srv = _server(redis_url, max_workers=4, max_publish_streams=16, max_streams_per_peer=64,
                  publish_idle_timeout_s=3.0)
    channel = grpc.insecure_channel(srv.address)
    streams: list[IdleStream] = []
    try:
        stub = gallery_pb2_grpc.GalleryStub(channel)
        for i in range(64):  # both publish RPCs count against the same limits
            _open_settled(srv, stub, streams, batches=i % 2 == 1)
        admitted = [s for s in streams if not s.done.is_set()]
        refused = [s for s in streams if s.done.is_set()]
        assert len(admitted) == 16 and srv.streams.open == 16
        assert len(refused) == 48 and {s.code for s in refused} == {CODE.RESOURCE_EXHAUSTED}
        assert all("gallery.max_publish_streams" in s.details and "16" in s.details for s in refused)
        # saturated publish path: health and an operator query still answer within a short deadline
        t0 = time.monotonic()
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        listing = stub.ListIdentities(gallery_pb2.ListIdentitiesRequest(), timeout=2)
        answered_s = time.monotonic() - t0
        assert health.status == health_pb2.HealthCheckResponse.SERVING and list(listing.identities) == []
        assert not any(s.done.is_set() for s in admitted), "the streams were still open while it answered"
        # each admitted stream is closed once it has sent nothing for publish_idle_timeout_s
        for s in admitted:
            assert s.done.wait(10)
        assert {s.code for s in admitted} == {CODE.DEADLINE_EXCEEDED}
        assert all("gallery.publish_idle_timeout_s" in s.details for s in admitted)
        lived = [s.ended - s.opened for s in admitted]
        assert min(lived) >= 2.9 and max(lived) < 3.0 + 5, lived
        assert srv.streams.open == 0
        with GalleryClient(srv.address, retry_timeout_s=2) as client:  # the slots are free again
            assert len(client.publish([sighting("a", "cam1", "t", 0, S, prototypes(1, 256, np.random.default_rng(1))[0])])) == 1
    finally:
        for s in streams:
            s.release.set()
        channel.close()
        srv.stop(0)
    print(f"health + ListIdentities answered in {answered_s * 1e3:.0f} ms with 16 idle streams open")


def test_streams_are_capped_per_token_and_per_peer(redis_url: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.yaml"
    cam_a = create_token(tokens, "cam-a", "camera", cameras=["cam1"])
    cam_b = create_token(tokens, "cam-b", "camera", cameras=["cam2"])
    srv = _server(redis_url, SecurityConfig(tokens_file=str(tokens)), max_streams_per_token=3,
                  max_streams_per_peer=5)
    channel = grpc.insecure_channel(srv.address)
    streams: list[IdleStream] = []
    try:
        stub = gallery_pb2_grpc.GalleryStub(channel)
        a = [_open_settled(srv, stub, streams, (("authorization", f"Bearer {cam_a}"),)) for _ in range(4)]
        b = [_open_settled(srv, stub, streams, (("authorization", f"Bearer {cam_b}"),)) for _ in range(3)]
        assert [s.done.is_set() for s in a] == [False, False, False, True]
        assert [s.done.is_set() for s in b] == [False, False, True]
        assert a[3].code == b[2].code == CODE.RESOURCE_EXHAUSTED
        assert "gallery.max_streams_per_token" in a[3].details and "'cam-a'" in a[3].details, a[3].details
        assert "gallery.max_streams_per_peer" in b[2].details and "127.0.0.1" in b[2].details, b[2].details
        assert srv.streams.open == 5
        for s in streams:
            s.release.set()  # a stream that ends normally gives its slot back
        assert all(s.done.wait(10) for s in streams) and srv.streams.open == 0
        assert {s.code for s in a[:3] + b[:2]} == {CODE.OK}
    finally:
        for s in streams:
            s.release.set()
        channel.close()
        srv.stop(0)


CLIENT = """
import sys, threading, grpc
from anonreid.proto.v1 import gallery_pb2_grpc
def silent():
    threading.Event().wait()
    yield from ()
call = gallery_pb2_grpc.GalleryStub(grpc.insecure_channel(sys.argv[1])).Publish(silent())
print("open", flush=True)
for _ in call:
    pass
"""


def test_keepalive_closes_the_streams_of_a_peer_that_stopped_answering(redis_url: str) -> None:
    srv = _server(redis_url, keepalive_time_s=1.0, keepalive_timeout_s=1.0, publish_idle_timeout_s=600)
    proc = subprocess.Popen([sys.executable, "-c", CLIENT, srv.address], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        deadline = time.monotonic() + 10
        while srv.streams.open != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGSTOP)  # the peer's host still acknowledges TCP; its gRPC answers nothing
        t0 = time.monotonic()
        while srv.streams.open and time.monotonic() - t0 < 15:
            time.sleep(0.05)
        closed_s = time.monotonic() - t0
        assert srv.streams.open == 0, "the stream of a frozen peer was not closed"
        assert closed_s < 10, closed_s  # keepalive (about 2 s), not the 600 s idle timeout
    finally:
        proc.kill()
        proc.wait(10)
        srv.stop(0)


def test_a_client_whose_source_pauses_past_the_idle_timeout_loses_nothing(redis_url: str) -> None:
    srv = _server(redis_url, publish_idle_timeout_s=0.5)
    protos = prototypes(2, 256, np.random.default_rng(0))
    clients: list[GalleryClient] = []

    def slow() -> Iterator[Any]:
        yield sighting("p1", "cam1", "t1", 0, S, protos[0])
        # the source pauses until the gallery has closed the idle stream and the client has opened a new
        # one (an error raised here fails the publish, so a gallery that never closes it fails the test)
        deadline = time.monotonic() + 10
        while clients[0].reconnects < 1:
            assert time.monotonic() < deadline, "the gallery did not close the idle publish stream in 10 s"
            time.sleep(0.01)
        yield sighting("p2", "cam2", "t2", 100 * S, 101 * S, protos[1])

    try:
        with GalleryClient(srv.address, retry_timeout_s=1.0) as client:
            clients.append(client)
            acks = client.publish(slow())
            assert [a.sighting_id for a in acks] == ["p1", "p2"] and client.reconnects >= 1
        assert len(srv.gallery or []) == 2
    finally:
        srv.stop(0)
