"""Recordings replayed through the live system: ``camera run --source FILE --time-unit --sensor``,
``gateway push --time-unit``, ``demo --source cam1=FILE,...``, and the sighting rules on a recording
with gaps (windows without any event: missing chunks, a list that keeps every 5th window, a recorder
paused for seconds).

The recordings are the live world's camera ``cam3`` (a person walks through from 0.5 s), written by the
project's own writers: headerless text in ticks of 100 us, EVT 3.0 ``.raw``, HDF5."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from event_file_encoders import encode_evt3
from typer.testing import CliRunner

from anonreid.events.detection import Detection
from anonreid.events.io import TimeUnitWarning, write_hdf5, write_npz
from anonreid.events.types import SensorSize, concat_events
from anonreid.nodes.tracking import Tracker
from anonreid.orchestration.cli import app
from anonreid.orchestration.config import CameraConfig, WorldConfig

CAMERA = "cam3"
SENSOR = SensorSize(320, 240)
WINDOW = 33_333
SECONDS = 4.0


@pytest.fixture(scope="module")
def recording() -> np.ndarray:
    """The first seconds of the live world's ``cam3``."""
    from anonreid.nodes.sources import SourceSpec, open_source

    spec = SourceSpec(kind="live", camera_id=CAMERA, realtime=False, world=WorldConfig().model_dump(),
                      end_us=int(SECONDS * 1e6))
    return concat_events(list(open_source(spec).packets()))


def every_nth_window(events: np.ndarray, n: int) -> np.ndarray:
    """Only the events of every ``n``-th window (the others become gaps without any event)."""
    return events[(events["t"] // WINDOW) % n == 0]


def write_ticks(path: Path, events: np.ndarray) -> Path:
    """Headerless ``t x y p`` text, t in ticks of 100 us (as Event-ReId's chunk files)."""
    rows = np.column_stack([events["t"] / 100.0, events["x"], events["y"], (events["p"] > 0).astype(int)])
    np.savetxt(path, rows, fmt=["%.2f", "%d", "%d", "%d"])
    return path


def test_tracker_bridges_windows_without_data_and_ends_tracks_after_a_long_gap() -> None:
    """A person seen every 5th window (the windows between hold no event at all: no data, not an
    absence) is one confirmed track; a gap longer than max_gap_windows ends it."""
    tracker = Tracker(max_gap_windows=10)
    seen = []
    for k in range(0, 40):
        start = k * WINDOW
        if k % 5:
            update = tracker.update([], start, start + WINDOW, observed=False)
            assert not update.ended and all(not t.matched for t in update.active)
            continue
        box = (100.0 + 2 * k, 50.0, 140.0 + 2 * k, 150.0)
        update = tracker.update([Detection(box, 0.9, 500)], start, start + WINDOW)
        seen += [t.track_id for t in update.active]
    assert len(set(seen)) == 1 and len(seen) == 6  # one track, confirmed at its 3rd observation (of 8)
    for k in range(40, 46):  # windows 36..45: ten without data since the last observation, bridged
        assert not tracker.update([], k * WINDOW, (k + 1) * WINDOW, observed=False).ended
    ended = tracker.update([], 46 * WINDOW, 47 * WINDOW, observed=False).ended  # the eleventh ends it
    assert [t.track_id for t in ended] == seen[:1] and tracker.tracks == []


def _sightings(events: np.ndarray) -> list[Any]:
    from anonreid.models.bundle import load_model_bundle
    from anonreid.nodes.camera import CameraNode
    from anonreid.nodes.sources import split_packets

    node = CameraNode(CAMERA, SENSOR, CameraConfig(torch_threads=1, metrics_port=0, queue_windows=100_000),
                      models=load_model_bundle(), window_t0_us=0)
    for packet in split_packets(events, 10_000):
        node.push(packet)
    node.end_of_stream()
    out = []
    while len(node.queue):
        out += node.process_batch(node.queue.get_batch(8, 0))
    return out + node.finish(timeout=0)


def test_a_recording_with_gaps_still_gives_the_person_one_tracklet_with_sightings(recording: np.ndarray) -> None:
    """Every 5th window only (4 of 5 windows without any event): the person walking through from 0.5 s
    gets sightings, all of one tracklet that starts within 2 s, as in the whole recording (where each
    empty window counted as a miss, the person's tracklets were cut up and started after 3 s)."""
    full = _sightings(recording)
    gapped = _sightings(every_nth_window(recording, 5))
    assert len({s.tracklet_id for s in full}) == 1
    assert gapped, "no sighting from the recording with gaps"
    assert len({s.tracklet_id for s in gapped}) == 1, [s.sighting_id for s in gapped]
    assert min(s.span.start_us for s in gapped) < 2_000_000


@pytest.mark.alone
def test_camera_run_replays_a_recording_in_its_own_time_unit(
    recording: np.ndarray, gallery_address: str, tmp_path: Path
) -> None:
    """`camera run --source FILE --time-unit 100us --sensor 320x240`, in real time, into a real gallery:
    a headerless recording in ticks of 100 us with gaps; without --sensor it is refused naming the
    flag; an Event-ReId chunk read in a unit its span contradicts is refused naming --time-unit."""
    from anonreid.gallery.client import GalleryClient

    path = write_ticks(tmp_path / "front-door.txt", every_nth_window(recording, 5))
    out = tmp_path / "stats.json"
    base = ["camera", "run", "--camera", CAMERA, "--source", str(path), "--gallery", gallery_address,
            "--metrics-port", "0", "--set", "camera.torch_threads=1"]
    res = CliRunner().invoke(app, [*base, "--time-unit", "100us", "--sensor", "320x240", "--json", str(out)])
    assert res.exit_code == 0, res.output
    stats = json.loads(out.read_text())
    assert stats["error"] is None and stats["sightings_acked"] > 0 and stats["sightings_pending"] == 0, stats
    assert stats["windows"] >= int(0.9 * SECONDS * 30)  # the recording's 4 s, not 100x less
    assert 0.7 < stats["stream_rate"] <= 1.1, stats  # replayed in real time
    client = GalleryClient(gallery_address)
    try:
        assert len(client.list_identities()) > 0
    finally:
        client.close()
    res = CliRunner().invoke(app, [*base, "--time-unit", "100us"])
    assert res.exit_code == 2 and "--sensor WxH" in res.output, res.output
    chunk = write_ticks(tmp_path / "032_c3_015.txt", recording[(recording["t"] // WINDOW) == 15])
    res = CliRunner().invoke(app, [*base[:5], str(chunk), "--time-unit", "ms", "--sensor", "320x240"])
    assert res.exit_code == 2 and "the time unit is wrong; give the unit with --time-unit" in res.output, res.output
    res = CliRunner().invoke(app, [*base[:5], str(chunk), "--time-unit", "fortnight"])
    assert res.exit_code == 2 and "--time-unit: unknown time unit" in res.output, res.output


def test_gateway_push_converts_the_time_unit(recording: np.ndarray, redis_service: Any, tmp_path: Path) -> None:
    from anonreid.events.types import EVENT_DTYPE

    path = write_ticks(tmp_path / "rec.txt", recording[: len(recording) // 4])
    res = CliRunner().invoke(app, ["gateway", "push", str(path), "--camera", "gw", "--redis-url", redis_service.url,
                                   "--time-unit", "1e-4", "--sensor", "320x240"])
    assert res.exit_code == 0, res.output
    entries = redis_service.client().xrange("events:gw")
    got = np.concatenate([np.frombuffer(f[b"events"], EVENT_DTYPE) for _, f in entries if b"events" in f])
    assert np.array_equal(got["t"], recording["t"][: len(recording) // 4])  # back in us
    res = CliRunner().invoke(app, ["gateway", "push", str(path), "--camera", "gw4", "--redis-url", redis_service.url,
                                   "--set", "events.time_unit=100us", "--set", "events.sensor=320x240"])  # config keys
    # stdout alone: a Ray connected earlier in this worker forwards its raylet's warnings to stderr (a CI run,
    # 2026-12-06: "(raylet) ... over 95% full" became the last line of the mixed output)
    assert res.exit_code == 0 and json.loads(res.stdout.splitlines()[-1])["events"] == len(got), res.output
    assert redis_service.client().xrange("events:gw4")[0][1][b"events"] == entries[0][1][b"events"]
    with pytest.warns(TimeUnitWarning, match=r"rec\.txt: time unit not given"):  # no unit: us, with a warning
        CliRunner().invoke(app, ["gateway", "push", str(path), "--camera", "gw2", "--redis-url", redis_service.url,
                                 "--sensor", "320x240"])
    res = CliRunner().invoke(app, ["gateway", "push", str(path), "--camera", "gw3", "--redis-url", redis_service.url,
                                   "--sensor", "320"])
    assert res.exit_code == 2 and "--sensor: sensor size must look like WIDTHxHEIGHT" in res.output


def test_demo_source_arguments_are_checked_before_anything_starts(recording: np.ndarray, tmp_path: Path) -> None:
    from anonreid.nodes.replay import parse_sources

    raw = tmp_path / "a.raw"
    raw.write_bytes(encode_evt3(recording[:1000], b"% evt 3.0\n% geometry 320x240\n% end\n"))
    assert parse_sources(f"cam1={raw}, lobby-2={raw}") == {"cam1": raw, "lobby-2": raw}
    for bad, message in ((f"cam1={raw},cam1={raw}", "given twice"), ("cam1", "not CAMERA=FILE"),
                         (f"cam1={tmp_path / 'nope.raw'}", "no such file"),
                         (",".join(f"c{i}={raw}" for i in range(5)), "at most 4")):
        with pytest.raises(ValueError, match=message):
            parse_sources(bad)
    txt = write_ticks(tmp_path / "b.txt", recording[:1000])
    res = CliRunner().invoke(app, ["demo", "--source", f"cam1={raw},cam2={txt}", "--time-unit", "100us"])
    assert res.exit_code == 2 and f"--source cam2={txt}" in res.output and "--sensor WxH" in res.output, res.output
    with pytest.warns(TimeUnitWarning, match=r"a\.raw: a raw file records its timestamps in us; .* not used"):
        res = CliRunner().invoke(app, ["demo", "--source", f"cam1={raw},cam2={txt}", "--time-unit", "100us",
                                       "--sensor", "64x48"])  # the first events are read: they do not fit 64x48
    assert res.exit_code == 2 and f"--source cam1={raw}" in res.output and "outside the 64x48 sensor" in res.output


@pytest.mark.slow
@pytest.mark.alone
def test_demo_replays_recordings_into_the_gallery(recording: np.ndarray, tmp_path: Path, ray_local: dict) -> None:
    """`anonreid demo --source cam1=A.raw,cam2=B.h5`: two camera actors replay the recordings in real time
    (one with a gap) into the gallery; the summary names those cameras and their sightings."""
    raw = tmp_path / "cam1.raw"
    order = np.lexsort((recording["x"], recording["p"], recording["y"], recording["t"]))  # the encoder's order
    raw.write_bytes(encode_evt3(recording[order], b"% evt 3.0\n% geometry 320x240\n% end\n"))
    h5 = tmp_path / "cam2.h5"
    write_hdf5(h5, every_nth_window(recording, 5), SENSOR)
    out = tmp_path / "summary.json"
    res = CliRunner().invoke(app, [
        "demo", "--source", f"cam1={raw},cam2={h5}", "--duration", "8", "--json", str(out),
        "--set", f"redis.embedded_dir={tmp_path / 'redis'}", "--set", "gallery.port=0",
        "--set", "gallery.metrics_port=0", "--set", "camera.metrics_port=0", "--set", "console.port=0",
    ])
    assert res.exit_code == 0, res.output
    summary = json.loads(out.read_text())
    assert set(summary["cameras"]) == {"cam1", "cam2"} and summary["privacy"] is None
    for cam, c in summary["cameras"].items():
        assert c["error"] is None and c["sightings"] > 0 and c["windows"] >= int(0.9 * SECONDS * 30), (cam, c)
        assert 0.7 < c["stream_rate"] <= 1.1, (cam, c)  # real time
    assert summary["global_identities"] >= 1


def test_camera_run_gives_sightings_on_both_sides_of_a_multi_second_gap(
    recording: np.ndarray, gallery_address: str, tmp_path: Path
) -> None:
    """A recording that stops for 5 s in the middle (the recorder paused: no event at all, not even
    noise) and goes on, replayed from a self-written ``.npz`` by `camera run --source FILE --fast` into a
    real gallery: the person gets sightings before the gap and after it, and the gallery's trajectory
    shows both visits; the stream is not cut at the gap, and nothing is left unacknowledged."""
    from anonreid.gallery.client import GalleryClient

    cut_us, gap_us = 2_000_000, 5_000_000
    after = recording[recording["t"] >= cut_us].copy()
    after["t"] += gap_us
    paused = np.concatenate([recording[recording["t"] < cut_us], after])
    path = write_npz(tmp_path / "paused.npz", paused, SENSOR)
    out = tmp_path / "stats.json"
    res = CliRunner().invoke(app, ["camera", "run", "--camera", CAMERA, "--source", str(path), "--fast",
                                   "--gallery", gallery_address, "--metrics-port", "0",
                                   "--set", "camera.torch_threads=1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    stats = json.loads(out.read_text())
    assert stats["error"] is None and stats["sightings_acked"] > 0 and stats["sightings_pending"] == 0, stats
    assert stats["stream_s"] > 8.5 and stats["windows"] >= int(0.9 * 9 * 30), stats  # all 9 s, gap included
    client = GalleryClient(gallery_address)
    try:
        steps = [step for ident in client.list_identities(camera_id=CAMERA)
                 for step in client.trajectory(ident.identity_id).steps if step.camera_id == CAMERA]
    finally:
        client.close()
    assert any(s.span.start_us < cut_us for s in steps), steps  # seen before the gap
    assert any(s.span.end_us > cut_us + gap_us for s in steps), steps  # and after it


@pytest.mark.slow
def test_paced_replay_publishes_the_track_before_a_gap_when_it_ends_not_after_the_gap(
    recording: np.ndarray, gallery_address: str, redis_service: Any, tmp_path: Path
) -> None:
    """The same recording paused for 5 s, replayed at real time (`camera run --source FILE`, paced): the
    source ticks through the gap, so the person's tracklet before it is closed and its last sighting
    published about a second (``tracking.max_gap_windows``) after the person was last seen, not when
    the recording resumes 5 s later (without the source's ticks it came 0.8-2.0 s before the first
    sighting after the gap, in two runs; with them about 5 s before)."""
    cut_us, gap_us = 2_000_000, 5_000_000
    after = recording[recording["t"] >= cut_us].copy()
    after["t"] += gap_us
    path = write_npz(tmp_path / "paused.npz", np.concatenate([recording[recording["t"] < cut_us], after]), SENSOR)
    out = tmp_path / "stats.json"
    res = CliRunner().invoke(app, ["camera", "run", "--camera", CAMERA, "--source", str(path),
                                   "--gallery", gallery_address, "--metrics-port", "0",
                                   "--set", "camera.torch_threads=1", "--json", str(out)])
    assert res.exit_code == 0, res.output
    stats = json.loads(out.read_text())
    assert stats["error"] is None and stats["sightings_pending"] == 0 and stats["windows_dropped"] == 0, stats
    client = redis_service.client()
    rows = [client.hmget(key, "start", "end", "published_at") for key in client.scan_iter("anonreid:gallery:s:*")]
    spans = [(int(s), int(e), int(p)) for s, e, p in rows]
    before = [p for s, e, p in spans if s < cut_us]
    later = [p for s, e, p in spans if s >= cut_us + gap_us]
    assert before and later, spans
    assert min(later) - max(before) > 3_000_000, spans  # published during the gap, not as it ends
