"""Operators see real times: each sighting says which clock its span is on (proto ``StreamClock``), and the
console and ``anonreid trajectory`` read it: the wall clock for a live camera, the recording's own clock
for a replay, labelled as such. Before, a live world's "last seen" 36 s into its stream read 12:00:36 AM
(stream microseconds shown as if they were Unix time). The console also shows the live p95 of the
event-to-identity latency from the cameras' tiles.

A real gallery (gRPC, embedded Redis), the console server and Debian's chromium.
"""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any

import numpy as np
from typer.testing import CliRunner

S = 1_000_000
CAMERAS = ["cam1", "cam2", "cam3", "cam4"]
UNIX_US = 1_700_000_000 * S  # 2023-11-14: a recording whose timestamps are Unix times (as AEDAT4 records them)


def test_console_and_cli_show_times_on_each_sightings_clock(redis_service: Any, browser_page: Any) -> None:
    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.clocks import describe_time
    from anonreid.gallery.console.server import ConsoleBackend, ConsoleServer
    from anonreid.gallery.service import GalleryServer
    from anonreid.gallery.synthetic import prototypes, sighting
    from anonreid.gallery.types import StreamClock
    from anonreid.nodes.camera.tiles import publish_tile
    from anonreid.orchestration.cli import app
    from anonreid.orchestration.config import GalleryConfig

    anchor_us = int(time.time() * S) - 60 * S  # a live camera that started its stream a minute ago
    wall, rec, unix = StreamClock("wall", anchor_us), StreamClock("recording"), StreamClock("recording", 0)
    p = prototypes(3, 256, np.random.default_rng(0))  # three different people: three identities
    published = [
        dataclasses.replace(sighting("live-1", "cam1", "t1", 30 * S, 36 * S, p[0]), clock=wall),
        dataclasses.replace(sighting("rec-1", "cam2", "t1", 30 * S, 36 * S, p[1]), clock=rec),
        dataclasses.replace(sighting("unix-1", "cam3", "t1", UNIX_US, UNIX_US + 6 * S, p[2]), clock=unix),
    ]
    cfg = GalleryConfig(port=0, metrics_port=0, camera_ids=CAMERAS)
    server = GalleryServer(cfg, redis_service.url, password=redis_service.password)
    address = server.start()
    console = None
    try:
        with GalleryClient(address) as client:
            acks = client.publish(published)
        ids = {s.sighting_id: a.identity_id for s, a in zip(published, acks, strict=True)}
        assert len(set(ids.values())) == 3
        # a gallery restarted on the same Redis still knows every sighting's clock
        server.stop()
        server = GalleryServer(cfg, redis_service.url, password=redis_service.password)
        address = server.start()
        got = {i.identity_id: (i.last_seen_clock.kind, i.last_seen_clock.epoch_us) for i in server.gallery.list_identities()}
        assert got == {ids["live-1"]: ("wall", anchor_us), ids["rec-1"]: ("recording", None),
                       ids["unix-1"]: ("recording", 0)}

        # the cameras' tiles carry their recent latencies: the console pools them into the live p95
        latencies = {"cam1": [0.04] * 30 + [0.3], "cam2": [0.06] * 20}
        for cam, lat in latencies.items():
            publish_tile(redis_service.client(), cam, b"png", [], (320, 240), lat)
        pooled = np.percentile(latencies["cam1"] + latencies["cam2"], 95)
        backend = ConsoleBackend(address, redis_service.client(), CAMERAS)
        console = ConsoleServer(backend, "127.0.0.1", 0).start()

        page = browser_page
        page.goto(console.url)
        page.wait_for_function("document.querySelectorAll('#identities tbody tr').length === 3", timeout=30_000)
        shown = {row.get_attribute("data-identity"): row.query_selector("td:nth-child(4)").inner_text()
                 for row in page.query_selector_all("#identities tbody tr")}
        live_at = page.evaluate(f"new Date({(anchor_us + 36 * S) / 1000}).toLocaleTimeString()")
        unix_at = page.evaluate(f"new Date({(UNIX_US + 6 * S) / 1000}).toLocaleString()")
        assert shown[ids["live-1"]] == live_at  # the wall clock, not 12:00:36 AM
        assert shown[ids["rec-1"]] == "+0:00:36.0 (rec)"  # the recording's own clock, labelled
        assert shown[ids["unix-1"]] == f"{unix_at} (rec)"
        page.wait_for_function("document.querySelector('#latency').dataset.p95 !== ''", timeout=10_000)
        assert float(page.get_attribute("#latency", "data-p95")) == np.float64(pooled)
        assert f"p95 {round(pooled * 1000)} ms" in page.inner_text("#latency")
        page.click(f"#identities tbody tr[data-identity='{ids['live-1']}']")
        page.wait_for_selector("#steps li")
        assert page.inner_text("#steps li").startswith(
            f"cam1 {page.evaluate(f'new Date({(anchor_us + 30 * S) / 1000}).toLocaleTimeString()')}–{live_at}")

        # `anonreid trajectory` reads the same clocks
        runner = CliRunner()
        for sid, clock, (start, end) in (("live-1", wall, (30 * S, 36 * S)), ("rec-1", rec, (30 * S, 36 * S)),
                                         ("unix-1", unix, (UNIX_US, UNIX_US + 6 * S))):
            result = runner.invoke(app, ["trajectory", ids[sid], "--json", "--address", address])
            assert result.exit_code == 0, result.output
            (step,) = json.loads(result.stdout)["steps"]
            assert (step["start"], step["end"]) == (describe_time(start, clock), describe_time(end, clock))
        assert describe_time(36 * S, rec) == "+0:00:36.000 (recording)"
        assert describe_time(36 * S, wall).startswith(time.strftime("%Y-%m-%d", time.localtime((anchor_us + 36 * S) / S)))
    finally:
        if console is not None:
            console.stop()
        server.stop()
