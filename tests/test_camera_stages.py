"""The camera's stage objects on their own (nodes/camera/): the segment book, the audit schedule and the
background queue under the publisher and the audit tap. The whole pipeline's output is pinned by
tests/test_camera_equivalence.py; these check each stage's contract without a network or a server."""

from __future__ import annotations

import threading

import numpy as np

from anonreid.nodes.camera.audit_schedule import AuditSchedule
from anonreid.nodes.camera.background import BackgroundQueue
from anonreid.nodes.camera.segments import SegmentBook, SegmentPolicy
from anonreid.nodes.tracking import Track

W = 33_333


def _track(box: tuple[float, float, float, float] = (10.0, 20.0, 40.0, 100.0)) -> Track:
    return Track("1000.0", box, start_us=0, last_us=W, score=0.5)


def test_segment_book_schedules_embeddings_and_closes_segments_where_they_fall_due() -> None:
    book = SegmentBook("camX", 4, SegmentPolicy(embed_every=2, min_embeddings=2, publish_every=3, close_after_misses=0))
    tr = _track()
    jobs, closed = [], []
    for k in range(8):  # matched in every window
        new = book.observe(k % 4, k, k * W, [tr], 0.0)
        jobs += new
        closed += [(k, seg) for seg in book.close_due([tr], [], len(jobs), 0.0, 0.0)]
    assert [j.pos for j in jobs] == [0, 2, 0, 2]  # every 2nd window (positions in batches of 4)
    # first sighting once 2 embeddings are scheduled (window 2), then every 3 seen windows with an embedding
    assert [(k, seg.seq, seg.num_boxes, seg.jobs_before) for k, seg in closed] == [(2, 0, 3, 2), (5, 1, 3, 3)]
    assert book.current_id(tr) == "camX-1000.0-2" and book.last_id(tr) == "camX-1000.0-1"
    assert closed[0][1].mean_area == 30 * 80 and 0 <= closed[0][1].quality <= 1
    # the batch's embeddings reach each segment up to its own window only
    emb = np.eye(4)[[0, 1, 2, 3]]
    seg0, seg1 = (seg for _k, seg in closed)
    got = book.embeddings_at([seg0, seg1], jobs, emb)
    np.testing.assert_allclose(got[0], np.array([1, 1, 0, 0]) / np.sqrt(2))
    np.testing.assert_allclose(got[1], np.array([1, 1, 1, 0]) / np.sqrt(3))
    np.testing.assert_allclose(book.embedding(tr), np.full(4, 0.5))  # all four once the batch is in
    # a segment that needs none of the batch's jobs can go out before the batch's inference
    other = _track((0.0, 0.0, 5.0, 5.0))
    book.state(other).emb_count, book.state(other).seg_windows = 2, 1
    (ended,) = book.close_due([], [other], len(jobs), 0.0, 0.0)
    assert SegmentBook.ready([seg0, ended], jobs) == [ended]


def test_a_missed_track_closes_its_segment_at_once_when_asked() -> None:
    book = SegmentBook("camX", 2, SegmentPolicy(embed_every=1, min_embeddings=2, publish_every=100, close_after_misses=1))
    tr = _track()
    for k in range(2):
        book.observe(k, k, k * W, [tr], 0.0)
    (first,) = book.close_due([tr], [], 2, 0.0, 0.0)  # its first sighting, at two embeddings
    book.observe(2, 2, 2 * W, [tr], 0.0)
    assert book.close_due([tr], [], 1, 0.0, 0.0) == []  # the next one is due after 100 windows...
    tr.matched, tr.misses = False, 1
    assert book.observe(3, 3, 3 * W, [tr], 0.0) == []  # an unmatched track adds nothing
    (seg,) = book.close_due([tr], [], 1, 0.0, 0.0)  # ...or at once, when the track is missed
    assert (first.seq, seg.seq, seg.num_boxes) == (0, 1, 1)


def test_a_tracklet_with_fewer_than_min_embeddings_is_never_published() -> None:
    """Missed or ended before its ``min_embeddings``-th embedding, a tracklet makes no sighting: on a noisy
    sensor such short tracks are mostly noise, each of which became an identity of its own."""
    book = SegmentBook("camX", 2, SegmentPolicy(embed_every=1, min_embeddings=3, publish_every=100, close_after_misses=1))
    tr = _track()
    for k in range(2):
        book.observe(k, k, k * W, [tr], 0.0)
    tr.matched, tr.misses = False, 1
    assert book.close_due([tr], [], 2, 0.0, 0.0) == []  # missed with two of three
    assert book.close_due([], [tr], 2, 0.0, 0.0) == []  # and ended so
    tr.matched, tr.misses = True, 0  # (had it come back, its third embedding makes its first sighting)
    book.observe(2, 2, 2 * W, [tr], 0.0)
    (seg,) = book.close_due([tr], [], 3, 0.0, 0.0)
    assert (seg.seq, seg.num_boxes) == (0, 3)


def test_a_track_held_inside_a_blob_keeps_its_segment_open_and_is_scored_there() -> None:
    """Windows held inside a blob are not misses for the segment (the person is there, one of a blob's
    two), and the ground truth credits the held box to the tracklet's sighting where it fits the person."""
    from types import SimpleNamespace

    from anonreid.nodes.camera.ground_truth import GroundTruth

    book = SegmentBook("camX", 2, SegmentPolicy(embed_every=1, min_embeddings=1, publish_every=100, close_after_misses=1))
    tr = _track()
    book.observe(0, 0, 0, [tr], 0.0)
    assert len(book.close_due([tr], [], 1, 0.0, 0.0)) == 1  # its first sighting
    book.observe(1, 1, W, [tr], 0.0)
    tr.matched, tr.misses, tr.held, tr.in_blob = False, 3, 3, True  # three windows inside a blob
    assert book.close_due([tr], [], 0, 0.0, 0.0) == []
    truth = GroundTruth("camX", None)
    person = SimpleNamespace(boxes=np.array([[10.0, 22.0, 40.0, 100.0]]), identities=["p1"])
    truth.score_window([], [tr], person, book.current_id)  # type: ignore[arg-type]
    assert list(truth.observations) == [("p1", "camX-1000.0-1")]
    tr.misses, tr.in_blob = 4, False  # out of the blob and missed: the segment closes at once
    (seg,) = book.close_due([tr], [], 0, 0.0, 0.0)
    assert seg.seq == 1


def test_audit_schedule_takes_bursts_on_stream_time_and_moves_on_when_one_is_skipped() -> None:
    answers = iter([True, False, True, True])
    asked: list[int] = []

    def begin(windows: int) -> bool:
        asked.append(windows)
        return next(answers)

    schedule = AuditSchedule(every_s=0.1, offset_s=0.05, burst=2, begin_burst=begin)
    sampled = [k for k in range(16) if schedule.sample(k * W)]
    # at once (windows 0, 1); the next burst 0.15 s later (window 5: skipped, nothing sampled); from then on
    # every 0.1 s after the previous burst's first window (9: 0.29997 s >= 0.16666 + 0.1 s; 13)
    assert sampled == [0, 1, 9, 10, 13, 14]
    assert asked == [2, 2, 2, 2]


class _Doubler(BackgroundQueue[int]):
    """Doubles each item on the background thread; the first try of item 3 fails and is retried."""

    def __init__(self, finish_on_close: bool) -> None:
        super().__init__("test-doubler")
        self.finish_on_close = finish_on_close
        self.out: list[int] = []
        self.gate = threading.Event()
        self.failed = False

    def _run(self) -> None:
        while (taken := self._take(everything=False)) is not None:
            self.gate.wait(10)
            if taken == [3] and not self.failed:
                self.failed = True
                self._requeue(taken, 0.0)
                continue
            self.out += [2 * x for x in taken]
            self._done()


def test_background_queue_drains_in_order_retries_in_front_and_closes_as_told() -> None:
    q = _Doubler(finish_on_close=False)
    assert q._put([1, 2, 3, 4]) == 4
    assert not q.drain(0.2) and q.pending() == 4  # one in flight, three queued
    q.gate.set()
    assert q.drain(10) and q.pending() == 0
    assert q.out == [2, 4, 6, 8] and q.failed  # the failed item went back in front of the queue
    q.close()

    for finish, expected in ((True, [2, 4, 6]), (False, [2])):
        q = _Doubler(finish_on_close=finish)
        q.failed = True
        q._put([1, 2, 3])
        while q.pending() != 3 or q._inflight != 1:  # the thread holds item 1 at the gate
            threading.Event().wait(0.01)
        with q._cond:
            q._closed = True  # closed while an item is in flight
        q.gate.set()
        q.close()
        assert q.out == expected  # the audit tap writes what is queued; the publisher stops at once
