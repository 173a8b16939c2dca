"""Event sources: file replay (paced and fast), Redis Streams ingest and the ``gateway push`` CLI."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from anonreid.events.types import SensorSize, concat_events, make_events
from anonreid.nodes.sources import FileSource, RedisStreamSource, SourceSpec, split_packets

SENSOR = SensorSize(320, 240)


def _events(seconds: float, rate_hz: float = 20_000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(seconds * rate_hz)
    t = np.sort(rng.integers(0, int(seconds * 1e6), n))
    return make_events(t, rng.integers(0, 320, n), rng.integers(0, 240, n), rng.choice([-1, 1], n), sensor=SENSOR)


def test_split_packets_cuts_at_packet_boundaries() -> None:
    ev = _events(0.1)
    packets = list(split_packets(ev, 10_000))
    assert len(packets) == 10
    assert all(len(np.unique(p["t"] // 10_000)) == 1 for p in packets)
    assert len(concat_events(packets)) == len(ev)


@pytest.mark.parametrize("suffix", ["h5", "npz"])
@pytest.mark.alone
def test_file_replay_fast_and_paced(tmp_path: Path, suffix: str) -> None:
    from anonreid.events import io

    ev = _events(1.0)
    path = tmp_path / f"cam.{suffix}"
    if suffix == "h5":
        io.write_hdf5(path, ev, SENSOR)
    else:
        io.write_npz(path, ev, SENSOR)
    fast = FileSource(SourceSpec(kind="file", camera_id="c", path=str(path), realtime=False, sensor="320x240"))
    t0 = time.monotonic()
    got = concat_events(fast.packets())
    assert time.monotonic() - t0 < 0.5
    np.testing.assert_array_equal(got, ev)
    assert fast.clock_anchor is None
    paced = FileSource(SourceSpec(kind="file", camera_id="c", path=str(path), realtime=True, speed=4.0, sensor="320x240"))
    t0 = time.monotonic()
    got = concat_events(paced.packets())
    elapsed = time.monotonic() - t0
    assert 0.2 <= elapsed <= 0.6, elapsed  # one second of events at 4x
    assert paced.clock_anchor is not None
    np.testing.assert_array_equal(got, ev)


@pytest.mark.alone
def test_a_paced_replay_ticks_through_a_gap_in_its_recording(tmp_path: Path) -> None:
    """A recording paused for 2 s: replayed at real time (x10 here) the source says, packet by packet
    through the gap, how far the clock has gone (its watermark, with an empty packet), so the node can
    close the gap's windows as they pass; every event still comes, once; read as fast as it goes, no tick."""
    from anonreid.events import io

    ev = _events(0.4)
    gapped = np.concatenate([ev[ev["t"] < 200_000], ev[ev["t"] >= 200_000]])
    gapped["t"][gapped["t"] >= 200_000] += 2_000_000  # nothing from 0.2 s to 2.2 s
    path = io.write_npz(tmp_path / "paused.npz", gapped, SENSOR)
    spec = SourceSpec(kind="file", camera_id="c", path=str(path), realtime=True, speed=10.0, sensor="320x240")
    paced = FileSource(spec)
    seen = [(len(p), paced.watermark_us) for p in paced.packets()]
    marks = [w for n, w in seen if n == 0]
    assert len(marks) > 50, len(marks)  # 2 s of gap in packets of 10 ms: a tick for (nearly) each
    assert all(a < b for a, b in itertools.pairwise(marks)), "the watermark only goes forward"
    # never past an event still to come (the first after the gap, at 2.2 s), and close behind it at the end
    assert marks[-1] < 2_200_000 <= marks[-1] + 3 * spec.packet_us, (marks[0], marks[-1])
    again = FileSource(spec)
    np.testing.assert_array_equal(concat_events(again.packets()), gapped)
    fast = FileSource(SourceSpec(kind="file", camera_id="c", path=str(path), realtime=False, sensor="320x240"))
    assert all(len(p) for p in fast.packets()) and fast.watermark_us is None


def test_gateway_push_and_stream_ingest(tmp_path: Path, redis_service: Any) -> None:
    from anonreid.events import io
    from anonreid.orchestration.cli import app

    ev = _events(0.5)
    path = tmp_path / "cam.h5"
    io.write_hdf5(path, ev, SENSOR)
    result = CliRunner().invoke(app, ["gateway", "push", str(path), "--camera", "edge1", "--redis-url", redis_service.url])
    assert result.exit_code == 0, result.output
    assert f'"events": {len(ev)}' in result.output
    client = redis_service.client()
    assert client.xlen("events:edge1") == 50 + 1  # 10 ms packets + end of stream

    # a corrupt entry and a packet going back in time, between the good ones: counted, acked, skipped
    client.xadd("events:edge2", {"events": b"\x01" * 5})
    source = RedisStreamSource(SourceSpec(kind="redis", camera_id="edge1", redis_url=redis_service.url, block_ms=20))
    bad: list[str] = []
    source.on_bad_input = bad.append
    packets = list(source.packets())
    np.testing.assert_array_equal(concat_events(packets), ev)
    assert client.xpending("events:edge1", "camera")["pending"] == len(packets)
    source.commit(int(ev["t"][len(ev) // 2]))  # first half processed
    half = client.xpending("events:edge1", "camera")["pending"]
    assert 0 < half < len(packets)
    source.flush_acks()
    assert client.xpending("events:edge1", "camera")["pending"] == 0
    assert bad == []

    client.hset("events:edge2:meta", "sensor", "320x240")
    client.xadd("events:edge2", {"events": ev[:10].tobytes()})
    client.xadd("events:edge2", {"events": ev[:5].tobytes()})  # time goes backwards
    client.xadd("events:edge2", {"eos": b"1"})
    src2 = RedisStreamSource(SourceSpec(kind="redis", camera_id="edge2", redis_url=redis_service.url, block_ms=20))
    src2.on_bad_input = bad.append
    got = list(src2.packets())
    assert len(got) == 1 and len(got[0]) == 10
    assert bad == ["decode_error", "time_backwards"]


@pytest.mark.alone
def test_a_paced_push_carries_its_gap_ticks_to_the_camera_reading_the_stream(tmp_path: Path, redis_service: Any) -> None:
    """`gateway push --realtime` of a recording paused for 2 s (x10 here) puts the paced source's ticks on
    the Redis stream as ``watermark`` entries; the camera's stream source gives them back as ticks with
    the watermark raised, every event once. A watermark that is not a number, and events before a
    watermark already given (they would fall in windows the node has closed), are counted and skipped."""
    from anonreid.events import io
    from anonreid.nodes.sources import push_file

    ev = _events(0.4)
    ev["t"][ev["t"] >= 200_000] += 2_000_000
    path = io.write_npz(tmp_path / "paused.npz", ev, SENSOR)
    client = redis_service.client()
    push_file(client, path, "edge3", realtime=True, speed=10.0, end_of_stream=False)
    marks_on_stream = [int(f[b"watermark"]) for _, f in client.xrange("events:edge3") if b"watermark" in f]
    assert len(marks_on_stream) > 50 and max(marks_on_stream) < 2_200_000, marks_on_stream[-3:]
    last = int(ev["t"][-1])
    client.xadd("events:edge3", {"watermark": b"soon"})
    client.xadd("events:edge3", {"watermark": str(last + 1_000_000)})  # a producer's own mark past its events
    late = ev[:3].copy()
    late["t"] = last + 500_000  # after every event so far, but before that mark: refused
    client.xadd("events:edge3", {"events": late.tobytes()})
    client.xadd("events:edge3", {"eos": b"1"})
    source = RedisStreamSource(SourceSpec(kind="redis", camera_id="edge3", redis_url=redis_service.url, block_ms=20))
    bad: list[str] = []
    source.on_bad_input = bad.append
    seen = [(p, source.watermark_us) for p in source.packets()]
    assert [w for p, w in seen if not len(p)] == [*marks_on_stream, last + 1_000_000]
    np.testing.assert_array_equal(concat_events(p for p, _ in seen), ev)
    assert bad == ["decode_error", "time_backwards"]
    source.flush_acks()
    assert client.xpending("events:edge3", "camera")["pending"] == 0


def test_redis_source_needs_a_sensor(redis_service: Any) -> None:
    with pytest.raises(ValueError, match="no sensor size"):
        RedisStreamSource(SourceSpec(kind="redis", camera_id="nobody", redis_url=redis_service.url))


def test_gateway_push_reports_bad_files(tmp_path: Path, redis_service: Any) -> None:
    from anonreid.orchestration.cli import app

    missing = CliRunner().invoke(app, ["gateway", "push", str(tmp_path / "nope.h5"), "--camera", "x", "--redis-url", redis_service.url])
    assert missing.exit_code == 2 and "no such file" in missing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("320 240\n1 2 3\n")
    result = CliRunner().invoke(app, ["gateway", "push", str(bad), "--camera", "x", "--redis-url", redis_service.url])
    assert result.exit_code != 0 and "bad.txt" in result.output


def test_rendered_ahead_keeps_a_bounded_lead_and_passes_errors_on() -> None:
    from anonreid.nodes.sources import RenderedAhead

    made: list[int] = []
    asked = [0]  # packets the consumer has started to ask for
    overrun: list[tuple[int, int]] = []  # (packet rendered, packets asked for) beyond the lead

    def gen(n: int, fail_at: int = -1, lead: int | None = None) -> Any:
        for k in range(n):
            if k == fail_at:
                raise RuntimeError("renderer broke")
            if lead is not None and k > lead + asked[0]:
                overrun.append((k, asked[0]))
            np.linalg.svd(np.ones((40, 40)))  # a little rendering work, for cpu_s
            made.append(k)
            yield np.full(3, k)

    started = time.monotonic()
    # 20 packets ahead at most: the 21st is rendered, then the producer waits until one is taken
    ahead = RenderedAhead(gen(100, lead=20), packet_us=10_000, ahead_s=0.2, name="t")
    assert ahead.wait_filled(5)
    deadline = time.monotonic() + 5
    while len(made) < 21 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(made) == 21  # and no more while nobody takes one
    it = iter(ahead)
    taken = []
    for _ in range(100):
        asked[0] += 1
        taken.append(int(next(it)[0]))
    assert taken == list(range(100))
    assert list(it) == []  # then the end of the stream ends it
    assert not overrun, f"rendered beyond the 20-packet lead: {overrun[:5]}"
    assert 0 < ahead.cpu_s <= time.monotonic() - started  # the producer thread's own CPU time
    failing = RenderedAhead(gen(10, fail_at=5), packet_us=10_000, ahead_s=1.0, name="f")
    assert failing.wait_filled(5)  # the stream ended (by its error) before the buffer was full
    with pytest.raises(RuntimeError, match="renderer broke"):
        list(failing)
    endless = RenderedAhead(gen(10**9), packet_us=10_000, ahead_s=0.05, name="e")
    endless.wait_filled(5)
    endless.close()  # stops the producer thread
    assert not endless._thread.is_alive()


def test_live_source_rendered_ahead_is_the_same_stream_paced_by_the_clock() -> None:
    """Rendered ahead of the clock, the live world gives the same packets, released in real time,
    and stops at ``end_us``; the rendering happened before the source was ready."""
    from anonreid.nodes.sources import open_source
    from anonreid.orchestration.config import WorldConfig

    world = WorldConfig(resolution="96x72").model_dump()
    start, end = 1_000_000, 1_600_000
    fast = open_source(SourceSpec(kind="live", camera_id="cam3", realtime=False, world=world, start_us=start,
                                  end_us=end))
    expected = list(fast.packets())
    assert len(expected) == 60 and fast.render_cpu_s is None  # type: ignore[attr-defined]
    ahead = open_source(SourceSpec(kind="live", camera_id="cam3", world=world, start_us=start, end_us=end,
                                   render_ahead_s=10.0))
    rendered_cpu = ahead.render_cpu_s  # type: ignore[attr-defined]
    assert rendered_cpu is not None and rendered_cpu > 0
    t0 = time.monotonic()
    got = list(ahead.packets())
    wall = time.monotonic() - t0
    assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert 0.58 <= wall < 2.0  # 0.6 s of stream, paced by the wall clock
    assert ahead.clock_anchor is not None
    ahead.close()
    with pytest.raises(ValueError, match="end_us"):
        open_source(SourceSpec(kind="live", camera_id="cam3", world=world, start_us=start, end_us=start))
