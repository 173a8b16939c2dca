"""The console lists and searches as many as the gallery does by default (issue #20 item 3): one value in
the config tree, ``gallery.list_limit`` and ``gallery.query_k``, where the console had its own 200 and 10.

A real gallery (gRPC, embedded Redis), the console the config starts, and Debian's chromium for the page.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

import numpy as np

S = 1_000_000


def test_console_lists_and_searches_with_the_gallerys_defaults(redis_service: Any, browser_page: Any) -> None:
    from anonreid.gallery.client import GalleryClient
    from anonreid.gallery.console.server import start_console
    from anonreid.gallery.service import GalleryServer
    from anonreid.gallery.synthetic import prototypes, sighting
    from anonreid.orchestration.config import load_config

    cfg = load_config(None, ["gallery.port=0", "gallery.metrics_port=0", "console.port=0",
                             "gallery.list_limit=2", "gallery.query_k=1"])
    server = GalleryServer(cfg.gallery, redis_service.url, password=redis_service.password)
    address = server.start()
    console = None
    try:
        p = prototypes(3, 256, np.random.default_rng(0))  # three different people: three identities
        with GalleryClient(address) as client:
            acks = client.publish([sighting(f"s{i}", "cam1", f"t{i}", i * S, (i + 1) * S, p[i]) for i in range(3)])
        assert len({a.identity_id for a in acks}) == 3
        console = start_console(cfg, address, redis_service.url, redis_service.password)
        assert console is not None

        def get(path: str) -> dict[str, Any]:
            with urllib.request.urlopen(console.url + path, timeout=10) as resp:  # type: ignore[union-attr]
                return dict(json.load(resp))

        assert len(get("/api/identities")["identities"]) == 2  # gallery.list_limit (the console asked for 200)
        assert len(get("/api/identities?limit=3")["identities"]) == 3  # an explicit limit still counts
        assert len(get("/api/search?sighting=s0")["matches"]) == 1  # gallery.query_k (the console asked for 10)

        page = browser_page  # what the operator sees: the page asks without a limit of its own
        page.goto(console.url)
        page.wait_for_function("document.querySelectorAll('#identities tbody tr').length > 0", timeout=30_000)
        assert len(page.query_selector_all("#identities tbody tr")) == 2
    finally:
        if console is not None:
            console.stop()
        server.stop()
