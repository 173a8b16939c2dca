"""Windowing is exact: every event in exactly one window, whatever the packet boundaries."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anonreid.events import EventFormatError, concat_events, make_events
from anonreid.events.windowing import FixedCountWindower, FixedDurationWindower, Window, iter_windows


def events_from_times(times):
    n = len(times)
    return make_events(np.asarray(times, dtype=np.int64), np.arange(n) % 7, np.arange(n) % 5, np.where(np.arange(n) % 2, 1, -1))


def split(ev, cuts):
    cuts = sorted({min(max(c, 0), len(ev)) for c in cuts})
    bounds = [0, *cuts, len(ev)]
    return [ev[a:b] for a, b in itertools.pairwise(bounds)]


def run(windower, packets):
    out: list[Window] = []
    for packet in packets:
        out.extend(windower.push(packet))
    out.extend(windower.flush())
    return out


times_strategy = st.lists(st.integers(0, 200), min_size=0, max_size=80).map(sorted)


@settings(max_examples=150, deadline=None)
@given(times=times_strategy, cuts=st.lists(st.integers(0, 80), max_size=10), window=st.integers(1, 40),
       t0=st.one_of(st.none(), st.integers(-30, 0)))
def test_duration_windows_are_exact_for_any_packet_split(times, cuts, window, t0):
    ev = events_from_times(times)
    windows = run(FixedDurationWindower(window, t0_us=t0), split(ev, cuts))
    if not len(ev):
        assert windows == []
        return
    start = ev["t"][0] if t0 is None else t0
    assert [w.index for w in windows] == list(range(len(windows)))
    for w in windows:
        assert w.start_us == start + w.index * window and w.end_us == w.start_us + window
        assert ((w.events["t"] >= w.start_us) & (w.events["t"] < w.end_us)).all()
        # exactly the events of the half-open interval, in order (no loss, no duplicate)
        expected = ev[(ev["t"] >= w.start_us) & (ev["t"] < w.end_us)]
        assert np.array_equal(w.events, expected)
    assert np.array_equal(concat_events(w.events for w in windows), ev)
    assert windows[-1].end_us > ev["t"][-1]


@settings(max_examples=100, deadline=None)
@given(times=times_strategy, cuts=st.lists(st.integers(0, 80), max_size=10), count=st.integers(1, 20))
def test_count_windows_are_exact_for_any_packet_split(times, cuts, count):
    ev = events_from_times(times)
    windows = run(FixedCountWindower(count), split(ev, cuts))
    assert np.array_equal(concat_events(w.events for w in windows), ev)
    assert all(len(w) == count for w in windows[:-1])
    assert all(0 < len(w) <= count for w in windows)
    for w in windows:
        assert w.start_us == w.events["t"][0] and w.end_us == w.events["t"][-1] + 1


def test_boundary_event_goes_to_later_window_and_empty_windows_are_reported():
    ev = events_from_times([0, 9, 10, 10, 45])
    windows = list(iter_windows(ev, window_us=10))
    assert [(w.start_us, len(w)) for w in windows] == [(0, 2), (10, 2), (20, 0), (30, 0), (40, 1)]


def test_windows_are_emitted_only_when_complete():
    windower = FixedDurationWindower(10)
    assert windower.push(events_from_times([0, 5])) == []
    assert windower.push(events_from_times([9])) == []  # t=9 < 10: window 0 may still grow
    out = windower.push(events_from_times([10]))
    assert [(w.index, len(w)) for w in out] == [(0, 3)]
    assert windower.push(events_from_times([])) == []
    assert [(w.index, len(w)) for w in windower.flush()] == [(1, 1)]
    assert windower.flush() == []


def test_a_watermark_completes_the_windows_a_gap_has_passed_and_later_events_still_land_exactly():
    """A paced source in a gap says "no event before t is still to come": the windows that ended by t
    come out (empty ones too) without waiting for the next event, and the stream goes on to the very
    windows it gives without the watermark."""

    def shape(windows):
        return [(w.index, w.start_us, len(w)) for w in windows]

    windower = FixedDurationWindower(10)
    assert windower.advance(50) == []  # no grid before the first event
    first = windower.push(events_from_times([0, 5, 12]))
    assert shape(first) == [(0, 0, 2)]
    out = windower.advance(47)  # the events before 47 are in: 10-19 holds 12 and is complete; 20-39 empty
    assert shape(out) == [(1, 10, 1), (2, 20, 0), (3, 30, 0)]
    assert windower.advance(47) == [] and windower.advance(45) == []  # nothing new; never backwards
    rest = run(windower, [events_from_times([48, 71])])
    assert shape(rest) == [(4, 40, 1), (5, 50, 0), (6, 60, 0), (7, 70, 1)]
    assert shape([*first, *out, *rest]) == shape(iter_windows(events_from_times([0, 5, 12, 48, 71]), window_us=10))
    late = FixedDurationWindower(10)
    late.push(events_from_times([0]))
    late.advance(30)
    with pytest.raises(EventFormatError):  # an event in a window the watermark closed
        late.push(events_from_times([25]))


def test_streaming_equals_offline_on_chunks():
    rng = np.random.default_rng(0)
    ev = events_from_times(np.sort(rng.integers(0, 1_000_000, 20_000)))
    offline = list(iter_windows(ev))
    chunked = list(iter_windows(split(ev, rng.integers(0, len(ev), 50).tolist())))
    assert len(offline) == len(chunked) == (int(ev["t"][-1]) - int(ev["t"][0])) // 33_333 + 1
    for a, b in zip(offline, chunked, strict=True):
        assert (a.index, a.start_us, a.end_us) == (b.index, b.start_us, b.end_us)
        assert np.array_equal(a.events, b.events)


def test_bad_streams_are_rejected():
    windower = FixedDurationWindower(10)
    windower.push(events_from_times([100, 120]))
    with pytest.raises(EventFormatError, match="backwards"):
        windower.push(events_from_times([110]))
    with pytest.raises(EventFormatError, match="before window"):
        FixedDurationWindower(10, t0_us=50).push(events_from_times([40]))
    with pytest.raises(ValueError):
        FixedDurationWindower(0)
    with pytest.raises(ValueError):
        FixedCountWindower(0)
