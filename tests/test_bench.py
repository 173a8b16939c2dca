"""Every ``anonreid bench`` command, run as a user runs it (its own process, ``--json FILE``) at sizes
of seconds: the benchmark commands that docs/BENCHMARKS.md quotes keep working, and what they report
is consistent with itself and with the world's ground truth."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from anonreid.orchestration.config import GalleryConfig

STAGES = ("window", "voxelize", "anonymize", "detect", "track", "embed", "publish", "audit")


def bench(tmp_path: Path, name: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run ``anonreid bench NAME ARGS --json FILE`` in a fresh interpreter; its JSON result."""
    out = tmp_path / f"{name}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "anonreid.orchestration.cli", "bench", name, *args, "--json", str(out)],
        capture_output=True, text=True, timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert json.loads(proc.stdout[proc.stdout.index("{"):]) == result  # printed and written alike
    return result


@pytest.mark.slow
def test_bench_camera_reports_every_stage_and_quality_against_ground_truth(tmp_path: Path) -> None:
    r = bench(tmp_path, "camera", "--camera", "cam3", "--start-s", "0", "--seconds", "4", "--set", "camera.device=cpu")
    assert r["device"] == "cpu" and r["cuda"] is None and r["resolution"] == "320x240"
    assert r["windows"] == round(r["stream_s"] * 1e6 / 33_333), r  # every window of the 4 s, none dropped
    assert math.isclose(r["realtime_factor"] / r["windows_per_s"], r["stream_s"] / r["windows"], rel_tol=1e-6)
    stages = r["stage_ms_per_window"]
    assert set(stages) == set(STAGES) and stages["audit"] == 0.0  # no Redis: no audit tap
    assert all(stages[s] > 0 for s in ("window", "voxelize", "anonymize", "detect", "track", "embed")), stages
    # two people cross cam3 from the start: the detector finds them and the tracker keeps them apart
    det = r["detection"]
    assert det["gt_boxes"] > 50 and det["precision"] > 0.9 and det["recall"] > 0.9, det
    assert r["tracking"]["num_gt_identities"] >= 1 and r["tracking"]["idf1"] > 0.8, r["tracking"]


@pytest.mark.slow
def test_bench_camera_times_other_architectures_and_names_a_bad_one(tmp_path: Path) -> None:
    r = bench(tmp_path, "camera", "--camera", "cam3", "--start-s", "0", "--seconds", "1",
              "--architectures", "anonymizer_paper,reid_resnet50")
    assert r["model_version"] == "random-init-anonymizer_paper-reid_resnet50"
    assert r["windows"] == round(r["stream_s"] * 1e6 / 33_333) and r["stage_ms_per_window"]["embed"] > 0

    proc = subprocess.run(
        [sys.executable, "-m", "anonreid.orchestration.cli", "bench", "camera", "--architectures", "reid_resnet50,e2vid"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "--architectures" in proc.stderr and "reid_resnet50,e2vid" in proc.stderr, proc.stderr


def test_bench_voxel_without_tonic(tmp_path: Path) -> None:
    r = bench(tmp_path, "voxel", "--sizes", "200000", "--repeats", "1", "--no-tonic")
    (row,) = r["results"]
    assert row["events"] == 200_000 and "tonic" not in row
    for impl in ("anonreid_numpy", "anonreid_torch_cpu", "np_add_at"):
        assert row[impl]["events_per_s"] > 0 and row[impl]["cpu_seconds"] > 0, row
    assert row["anonreid_numpy_vs_np_add_at"] == pytest.approx(
        row["anonreid_numpy"]["events_per_s"] / row["np_add_at"]["events_per_s"], rel=0.01)


@pytest.mark.slow
def test_bench_gallery_beside_faiss(tmp_path: Path) -> None:
    r = bench(tmp_path, "gallery", "--sizes", "2000", "--seconds", "1", "--real-seconds", "10")
    (size,) = r["sizes"]
    assert size["entries"] == 2000 and "2000 vectors" in size["index"], size  # rebuilt from Redis in full
    assert size["index"].startswith("auto: exact") and size["snapshot_write_s"] > 0  # below gallery.auto_ivf_min
    pub, one, search = size["publish"], size["publish_per_message"], size["search"]
    for phase in (pub, one):  # PublishBatches (50 a message), then Publish (one a message)
        assert phase["count"] > 0 and 0 <= phase["joined_existing"] <= phase["count"], phase
        assert phase["gallery_cpu_ms_per_sighting"] > 0
    assert (pub["sightings_per_message"], one["sightings_per_message"]) == (50, 1)
    assert pub["overhead_ratio"] == pytest.approx(pub["faiss_per_s"] / pub["per_s"], rel=1e-6)
    assert pub["speedup_over_per_message"] == pytest.approx(pub["per_s"] / one["per_s"], rel=1e-6)
    gallery, faiss = search["gallery"], search["faiss"]
    assert gallery["n"] == faiss["n"] > 0  # the same queries on both sides
    assert 0 < gallery["p50_ms"] <= gallery["p99_ms"] and 0 < faiss["p50_ms"] <= faiss["p99_ms"]
    assert search["ratio_p50"] == pytest.approx(gallery["p50_ms"] / faiss["p50_ms"], rel=1e-6)
    assert size["recall_at_10"] == 1.0  # exact search
    # restarts: from the snapshot written before publishing plus the published tail, then from the one
    # written at the clean stop; every entry back
    restart = size["restart"]
    published = pub["count"] + one["count"]
    assert restart["tail_sightings"] == published
    crash, clean = restart["after_crash"], restart["after_clean_stop"]
    assert crash["entries"] == clean["entries"] == 2000 + published
    assert f"({published} sighting(s) written, 0 erased)" in crash["loaded_from"]
    assert "(0 sighting(s) written, 0 erased)" in clean["loaded_from"] and crash["s"] > 0
    real = r["real_embeddings"]  # two people cross the cameras in the first 10 s
    assert real["sightings"] > 20 and real["tracklets"] >= 2 and real["queries"] > 0, real
    assert 0 < real["held_out_recall_at_10"] <= 1 and real["ivf_trained"], real


@pytest.mark.slow
def test_bench_simulate_offline_and_live(tmp_path: Path) -> None:
    r = bench(tmp_path, "simulate", "--seconds", "1", "--live-seconds", "2", "--resolutions", "160x120",
              "--live-resolution", "160x120", "--start-s", "2")
    assert [row["camera"] for row in r["offline"]] == ["cam1", "cam2", "cam3", "cam4"]
    assert all(row["resolution"] == "160x120" and row["single_pass"]["events_per_s"] > 0 for row in r["offline"])
    live = r["live"]
    assert [c["camera"] for c in live["cameras"]] == ["cam1", "cam2", "cam3", "cam4"]
    # (wall_s starts after each camera's first packet is built, which the clock already counts: not >= 2)
    assert all(c["events_per_s"] > 0 and c["wall_s"] > 0 and c["max_lag_ms"] >= c["final_lag_ms"]
               for c in live["cameras"]), live
    assert isinstance(live["keeps_up_with_real_time"], bool)


@pytest.mark.slow
@pytest.mark.alone
def test_bench_load_max_speed_and_paced(tmp_path: Path) -> None:
    r = bench(tmp_path, "load", "--cameras", "2", "--seconds", "3", "--paced-seconds", "2", "--record-s", "2")
    fast, paced = r["runs"]
    assert (fast["mode"], paced["mode"]) == ("max_speed", "realtime") and fast["cameras"] == paced["cameras"] == 2
    for run in (fast, paced):
        assert run["errors"] == [] and run["windows_per_s"] > 0 and run["sightings_pending"] == 0, run
        assert len(run["per_camera_stream_rate"]) == 2
    assert fast["gallery_sightings"] == fast["sightings_acked"]  # every acknowledged sighting is stored
    # replay as fast as it goes outruns the paced replay, which follows the clock
    assert min(fast["per_camera_stream_rate"]) > max(paced["per_camera_stream_rate"])
    assert all(0.5 < rate <= 1.05 for rate in paced["per_camera_stream_rate"]), paced
    # the camera actors share torch's libraries: the PSS sum (physical memory) is well under the RSS sum
    mem = fast["memory_mib"]
    assert mem["processes"] == 4 and 0 < mem["pss_peak"] < mem["rss_peak"] - 200, mem


@pytest.mark.slow
def test_bench_train_every_stage(tmp_path: Path) -> None:
    r = bench(tmp_path, "train", "--config", "tiny", "--device", "cpu", "--steps", "1", "--threads", "1")
    assert r["device"] == "cpu" and r["steps_timed"] == 1 and r["threads"] == 1
    assert set(r["stages"]) == {"rec", "reid", "joint", "inv", "adaptive", "finetune", "linear", "identity"}
    for name, stage in r["stages"].items():
        assert stage["samples_per_s"] > 0 and stage["step_s"] > 0 and stage["batch_size"] >= 1, (name, stage)
        assert stage["cpu_s_per_step"] > 0, (name, stage)


@pytest.mark.slow
def test_bench_association_replays_the_gallery_between_its_bounds(tmp_path: Path) -> None:
    saved = tmp_path / "recording.jsonl.gz"
    r = bench(tmp_path, "association", "--seconds", "12", "--thresholds", "1.0,0.6,-1", "--save-recording", str(saved))
    assert r["sightings"] > 0 and r["tracklets"] > 0 and 0 < r["covered_by_a_sighting"] <= 1, r
    assert [row["threshold"] for row in r["thresholds"]] == [1.0, 0.6, -1.0]
    assert r["configured_threshold"] == GalleryConfig().similarity_threshold
    oracle = r["oracle"]
    for row in (*r["thresholds"], r["hindsight"], r["separate"]):  # per-sighting majority identities
        scores = row.get("scores", row)  # maximise IDTP: no partition of the sightings beats them
        assert scores["idf1"] <= oracle["idf1"] + 1e-9, row
    assert r["tracklet_oracle"]["idf1"] <= oracle["idf1"] + 1e-9  # whole tracklets: never more than per sighting
    per_cut = r["hindsight"]["idf1_per_cut"]  # the reference is the best of its cuts, each kept
    assert len(per_cut) == 7 and max(per_cut.values()) == r["hindsight"]["scores"]["idf1"] == per_cut[str(r["hindsight"]["cut"])]
    for row in r["thresholds"]:  # where each replay loses IDF1: relabelled sightings, bounded by the oracle too,
        losses = row["losses"]  # and every junction between tracklets names a camera pair
        assert min(losses["idf1_no_fragmentation"], losses["idf1_no_false_merges"]) >= 0, row
        assert max(losses["idf1_no_fragmentation"], losses["idf1_no_false_merges"]) <= oracle["idf1"] + 1e-9, row
        assert all("->" in pair and n > 0 for kind in ("false_merges", "fragments") for pair, n in losses[kind].items())
    # nothing reaches similarity 1 across tracklets: every tracklet keeps its own identity
    never = r["thresholds"][0]
    assert never["identities"] == r["tracklets"] and never["scores"] == r["separate"]
    assert never["losses"]["false_merges"] == {}  # no identity holds two tracklets
    assert r["best_threshold"] in (1.0, 0.6, -1.0)
    # the saved recording replays to the same result without recording again
    again = bench(tmp_path, "association", "--recording", str(saved), "--thresholds", "1.0,0.6,-1")
    assert again["replayed_from"] == str(saved) and "record_s" not in again and again["seconds"] == 12.0
    assert {k: v for k, v in again.items() if k != "replayed_from"} == {k: v for k, v in r.items() if k != "record_s"}
    # ... and refuses another world than the one it was recorded on
    proc = subprocess.run([sys.executable, "-m", "anonreid.orchestration.cli", "bench", "association", "--recording",
                           str(saved), "--set", "world.seed=5"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "world seed 0" in proc.stderr and "world.seed=5" in proc.stderr, proc.stderr

    proc = subprocess.run([sys.executable, "-m", "anonreid.orchestration.cli", "bench", "association",
                           "--thresholds", "0.5,high"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--thresholds" in proc.stderr and "0.5,high" in proc.stderr, proc.stderr


def _redis_servers() -> list[str]:
    """Command lines of the redis-server processes running now."""
    out = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "redis-server" in text:
            out.append(text)
    return out


def test_bench_load_stops_what_it_started_when_ray_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A service that fails to start (Ray here) leaves no Redis server running and no files behind."""
    import tempfile

    from typer.testing import CliRunner

    from anonreid.orchestration import ray_cluster
    from anonreid.orchestration.cli import app

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("Ray refused to start (test)")

    monkeypatch.setattr(ray_cluster, "start_ray", refuse)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the bench's work folder lands here
    res = CliRunner().invoke(app, ["bench", "load", "--cameras", "1", "--seconds", "1", "--paced-seconds", "0",
                                   "--record-s", "0.5"])
    assert isinstance(res.exception, RuntimeError) and "Ray refused" in str(res.exception), res.output
    assert list(tmp_path.glob("anonreid-load-*")) == []
    assert not [c for c in _redis_servers() if str(tmp_path) in c]
