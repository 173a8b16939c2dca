"""The live world: deterministic schedule, camera graph, wall-clock pacing, ground-truth side channel."""

from __future__ import annotations

import time
from itertools import pairwise

import numpy as np

from anonreid.events.types import validate_events
from anonreid.events.world.live import LiveWorld
from anonreid.orchestration.config import WorldConfig

CFG = WorldConfig(identities=12, train_identities=6, resolution="96x72", live_arrival_s=2.0)


def _take(stream, n):  # type: ignore[no-untyped-def]
    return [next(stream) for _ in range(n)]


def test_schedule_is_deterministic_and_follows_the_camera_graph() -> None:
    a, b = LiveWorld(CFG), LiveWorld(CFG)
    va = a.visits(0, 120_000_000)
    assert va == b.visits(0, 120_000_000)
    assert len(va) > 40
    assert {v.identity for v in va} <= set(a.world.people[i].identity for i in range(6, 12))  # test split
    edges = {(e.src, e.dst): e for e in a.camera_graph()}
    routes: dict[int, list] = {}
    for v in va:
        routes.setdefault(v.route_id, []).append(v)
    for legs in routes.values():
        legs.sort(key=lambda v: v.t_enter_us)
        for prev, nxt in pairwise(legs):
            e = edges[(prev.camera, nxt.camera)]
            gap = (nxt.t_enter_us - prev.t_exit_us) / 1e6
            assert e.min_transit_s - 1e-3 <= gap <= e.max_transit_s + 1e-3
    # nobody is in two places at once
    by_person: dict[str, list] = {}
    for v in va:
        by_person.setdefault(v.identity, []).append((v.t_enter_us, v.t_exit_us))
    for spans in by_person.values():
        spans.sort()
        assert all(s1[0] >= s0[1] for s0, s1 in pairwise(spans))
    # several people in one view at once, somewhere in the first two minutes
    most = max(len(a.walks(c, t, t + 1)) for c in ("cam1", "cam2", "cam3", "cam4")
               for t in range(0, 120_000_000, 250_000))
    assert most >= 2


def test_camera_stream_is_deterministic_and_chunking_independent() -> None:
    world = LiveWorld(CFG)
    t0 = next(v.t_enter_us for v in world.visits(0, 60_000_000, "cam2")) // 33_333 * 33_333
    small = np.concatenate(_take(world.camera_stream("cam2", start_us=t0, realtime=False, packet_us=10_000), 100))
    big = np.concatenate(_take(LiveWorld(CFG).camera_stream("cam2", start_us=t0, realtime=False,
                                                            packet_us=50_000), 20))
    assert np.array_equal(small, big)
    validate_events(small)
    assert small["t"].min() >= t0 and small["t"].max() < t0 + 1_000_000
    assert len(small) > 2000  # someone is walking through


def test_realtime_pacing_and_ground_truth_side_channel() -> None:
    world = LiveWorld(CFG)
    visit = world.visits(0, 60_000_000, "cam1")[0]
    start = (visit.t_enter_us + visit.t_exit_us) // 2 // 33_333 * 33_333
    stream = world.camera_stream("cam1", start_us=start, realtime=True, packet_us=10_000)
    t = time.monotonic()
    packets = _take(stream, 30)
    assert time.monotonic() - t >= 0.29
    assert all(p.dtype.names == ("t", "x", "y", "p") for p in packets)  # events only, no labels
    gt = world.ground_truth("cam1", start, start + 99_999)
    assert [g.start_us for g in gt] == [start, start + 33_333, start + 66_666]
    assert any(visit.identity in g.identities for g in gt)
    for g in gt:
        assert g.reference_frame is not None and g.reference_frame.shape == (72, 96)
        assert g.boxes.shape == (len(g.identities), 4)
    cheap = world.ground_truth("cam1", start, start + 99_999, with_frames=False)
    assert [(g.identities, g.boxes.tolist()) for g in cheap] == [(g.identities, g.boxes.tolist()) for g in gt]
    assert all(g.reference_frame is None for g in cheap)
    # the events of those windows sit inside the ground-truth boxes far more than elsewhere
    ev = np.concatenate(packets)
    b = gt[0].boxes[gt[0].identities.index(visit.identity)]
    sel = ev[(ev["t"] < start + 33_333)]
    inside = (sel["x"] >= b[0]) & (sel["x"] < b[2]) & (sel["y"] >= b[1]) & (sel["y"] < b[3])
    frac_area = (b[2] - b[0]) * (b[3] - b[1]) / (96 * 72)
    assert inside.mean() > 2 * frac_area


def test_ground_truth_of_a_batch_equals_window_by_window() -> None:
    """A batch of windows gets its boxes from one pose evaluation per person; it must give what
    asking for each window alone gives (same people, same boxes), with people entering and leaving."""
    world = LiveWorld(CFG)
    visit = world.visits(0, 60_000_000, "cam3")[0]
    start = visit.t_enter_us // 33_333 * 33_333 - 10 * 33_333
    end = visit.t_exit_us + 10 * 33_333
    batch = world.ground_truth("cam3", start, end, with_frames=False)
    single = [g for s in range(start, end, 33_333) for g in LiveWorld(CFG).ground_truth("cam3", s, s + 1, False)]
    assert [g.start_us for g in batch] == [g.start_us for g in single]
    assert [g.identities for g in batch] == [g.identities for g in single]
    assert any(not g.identities for g in batch) and any(visit.identity in g.identities for g in batch)
    for a, b in zip(batch, single, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)


def test_schedule_is_the_same_when_two_threads_extend_it() -> None:
    """A camera actor renders on one thread and reads ground truth on another; both extend the
    schedule on demand, and it must come out as if one thread had built it."""
    import threading

    world = LiveWorld(CFG)
    barrier = threading.Barrier(4)

    def read(cam: str) -> None:
        barrier.wait()
        for t in range(0, 400_000_000, 7_000_000):
            world.walks(cam, t, t + 1)

    threads = [threading.Thread(target=read, args=(c,)) for c in ("cam1", "cam2", "cam3", "cam4")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert world.visits(0, 400_000_000) == LiveWorld(CFG).visits(0, 400_000_000)
