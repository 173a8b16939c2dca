"""The GPU privacy run's script (orchestration/gpu_privacy_run.sh, issue #16) in its CPU dry mode, as a
user (or the device tool) runs it: a real bash subprocess, a real tiny world, every phase.

A first call with too small a budget stops at it, reports what it did and what it could not, and leaves
nothing running; a second call resumes in the same work directory (the world is not simulated again),
trains the rest, attacks under the 3x budget rule, evaluates, and leaves in OUT what the device tool
copies back: at most 8 plain files under 16 MiB, among them the checkpoint in parts that reassemble into
loadable weights.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "orchestration" / "gpu_privacy_run.sh"

pytestmark = pytest.mark.slow


def _run(out: Path, work: Path, budget_s: float) -> tuple[int, dict]:
    env = {**os.environ, "OUT": str(out), "WORK": str(work), "BUDGET_S": str(budget_s)}
    proc = subprocess.run(["bash", str(SCRIPT), "--dry"], env=env, capture_output=True, text=True, timeout=budget_s + 120)
    summary = json.loads((out / "summary.json").read_text())
    return proc.returncode, summary


def test_dry_run_stops_at_its_budget_then_resumes_and_brings_the_checkpoint_back(tmp_path: Path) -> None:
    from anonreid.models.checkpoint import load_checkpoint

    work, out = tmp_path / "work", tmp_path / "out"
    # 7 s for the work (25 s are kept for packaging): the world, perhaps, but never the training (15 s were
    # once not enough either, but an idle 2-core machine now trains the tiny stages in 11 s)
    rc, first = _run(out, work, budget_s=32)
    statuses = [p["status"] for p in first["phases"].values()]
    assert rc == 3 and first["complete"] is False and "evaluate" not in first["phases"]
    assert statuses[-1].startswith(("stopped at the budget", "skipped: no time left")), statuses
    assert all(s == "done" for s in statuses[:-1]) and first["elapsed_s"] <= 32 + 10
    assert not list((work / "run" / "checkpoints").glob("anonymizer.*"))
    leftover = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True)
    assert leftover.stdout == "", leftover.stdout  # the stopped phase's processes are gone

    rc, summary = _run(out, work, budget_s=1800)
    assert rc == 0 and summary["complete"] is True, summary
    if first["phases"]["world"]["status"] == "done":  # resumed: the world is not simulated again
        assert summary["phases"]["world"]["status"] == "reused"
    assert [summary["phases"][p]["status"] for p in ("train", "attacks", "evaluate")] == ["done"] * 3
    assert summary["phases"]["train"]["command"].startswith("anonreid train --data")

    # the attacks were sized by the 3x rule against what E_an was trained with, and trained
    ckpt = work / "run" / "checkpoints"
    for name in ("e_inv", "e_rec_adaptive", "e_rec_finetuned", "attack_id_voxel"):
        rule = json.loads((ckpt / f"{name}.json").read_text())["metadata"]["budget_rule"]
        assert rule["ok"] is True, (name, rule)
    assert any(s.startswith("adaptive.steps=") for s in summary["attack_sets"])

    # what comes back: plain files, at most 8, each under 16 MiB, names the device tool accepts
    files = sorted(out.iterdir())
    assert 0 < len(files) <= 8 and all(f.is_file() and f.stat().st_size < 16 * 2**20 for f in files)
    assert all(set(f.name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") for f in files)
    assert {"summary.json", "log.txt", "results.md", "results.tar.gz"} <= {f.name for f in files}
    assert "anonreid evaluate --run" in (out / "results.md").read_text()
    with tarfile.open(out / "results.tar.gz") as tar:
        assert "results/results.json" in tar.getnames()
    parts = sorted(out.glob("weights.tar.*"))
    assert parts and summary["weights"][:2] == ["anonymizer", "reid"]
    # packed after the attacks and left alone by the evaluation, which changes no checkpoint
    assert max(p.stat().st_mtime_ns for p in parts) < (work / "results" / "results.json").stat().st_mtime_ns
    with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    anonymizer = load_checkpoint(tmp_path / "back" / "weights" / "anonymizer")
    assert anonymizer.metadata["stage"] == "joint"
    assert "reproduce" in anonymizer.metadata  # shipped-weights metadata: how to make them again


def test_gpu_mode_refuses_without_cuda(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the gpu mode would start training")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "WORK": str(tmp_path / "work")}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "needs CUDA" in proc.stderr
    bad = subprocess.run(["bash", str(SCRIPT), "--wet"], env=env, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "usage" in bad.stderr
