"""The GPU privacy run of issue #16: one prepared script that trains the min–max anonymizer on a lent GPU
inside a hard wall-clock budget and brings the checkpoint back (``orchestration/gpu_privacy_run.sh``
is its entry point; it sets up Python, then runs ``python -m anonreid.orchestration.gpu_privacy``).

Phases, each an ``anonreid`` subprocess given the time left (the budget counts from the script's start,
setup included, less a reserve for packaging the results):

  1. ``world``   the 90-identity evaluation world of docs/BENCHMARKS.md (``anonreid simulate``), unless
                 one is carried (``--data``) or an earlier call of this run made it;
  2. ``train``   stages rec, reid, joint of the ``minmax`` preset scaled up (:data:`PLANS`: more joint
                 steps, bigger batches, on CUDA), resumable (``--resume``), a state every ``ckpt_every``;
  3. ``attacks`` stages inv, adaptive, finetune, linear, identity on the frozen E_an, each sized to the
                 3x budget rule from the anonymizer's recorded attackers (:func:`attack_overrides`);
  4. ``evaluate`` ``anonreid evaluate`` of the run on the world's test identities.

A phase that reaches the deadline is stopped (SIGTERM, then SIGKILL) and the later ones are skipped;
the work directory keeps everything, so calling the script again (on the same, still warm machine)
resumes where it stopped. After every phase ``OUT`` gets (at most 8 files, each under 16 MiB, what the
device tool copies back): ``summary.json`` (phases, their status and wall time, the commands, the plan),
``log.txt``, ``results.md`` and ``results.tar.gz`` (``anonreid evaluate``'s output), and the run's
checkpoints as float16 safetensors + JSON sidecars in ``weights.tar.NN`` parts (``cat weights.tar.* |
tar -x``): the anonymizer, E_reid and the reconstruction attackers (the larger identity and appearance
nets stay behind; their numbers are in the results).

``--mode dry`` runs the same phases on CPU with the ``tiny`` preset and a 6-identity world, in about a
minute: what CI runs (tests/test_gpu_privacy_run.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

#: what comes back from the device machine: files of at most 16 MiB, 64 MiB in all, 8 files
PART_BYTES = 15 * 2**20
MAX_PARTS = 4
#: checkpoints brought back (the run's checkpoints/, as float16): the cameras' models and the
#: reconstruction attackers; the identity towers and the appearance net (ResNets) stay behind
BROUGHT_BACK = ("anonymizer", "reid", "e_rec", "e_inv", "e_rec_adaptive", "e_rec_finetuned", "e_lin")
#: seconds kept free at the end of the budget for packaging the results
RESERVE_S = 25.0


@dataclass(frozen=True)
class Plan:
    """One way to run the phases: the preset and its overrides, the world, the attack batches."""

    config: str
    device: str
    world: dict[str, Any]  # `anonreid simulate` options (without --out)
    sets: tuple[str, ...]  # `anonreid train --set` overrides of every train call
    attack_batches: dict[str, int] = field(default_factory=dict)  # stage -> batch size (identity: k; p from sets)
    evaluate: tuple[str, ...] = ()


PLANS = {
    # On one H100 the minmax shapes train at 72 (rec) to 345 (joint without its pool) clips/s
    # (docs/BENCHMARKS.md): the joint stage here, 800 steps of 64 clips against a pool of 4 snapshots
    # of live attackers updated on 8 clips / 32 crops a step, is estimated at 3-5 minutes.
    "gpu": Plan(
        config="minmax", device="cuda",
        world={"identities": 90, "train-identities": 50, "seed": 0, "workers": max(1, (os.cpu_count() or 2) - 1)},
        sets=("device=cuda", "threads=8", "log_every=20", "eval_every=200", "ckpt_every=100",
              "data.val_identities=10", "reid.p=16", "reid.k=4",
              "joint.steps=800", "joint.privacy_clips=0", "joint.minmax.rec_batch=8", "joint.minmax.id_p=16",
              "joint.minmax.snapshot_every=50", "identity.p=16", "identity.k=4"),
        attack_batches={"inv": 16, "adaptive": 16, "finetune": 16, "identity": 4},
    ),
    # the same phases in about a minute on a CPU (CI): the tiny preset on a 6-identity world, with E_rec
    # and the joint stage shortened so that the 3x rule asks the attacks for few clips (E_rec's 6 x 2 + the
    # live attacker's 2 x 1 x 2 = 16 -> 48 clips, 6 steps of 8), and every attack at that minimum
    "dry": Plan(
        config="tiny", device="cpu",
        world={"identities": 6, "train-identities": 4, "seconds": 1.0, "resolution": "128x96", "seed": 0},
        sets=("device=cpu", "threads=1", "data.val_identities=1", "rec.steps=6", "joint.steps=2",
              "inv.steps=1", "adaptive.steps=1", "finetune.steps=1", "identity.steps=1"),
        attack_batches={"inv": 8, "adaptive": 8, "finetune": 8, "identity": 4},
        evaluate=("--clips-per-pass", "1", "--no-encryption", "--no-detection"),
    ),
}
TRAIN_STAGES = ("rec", "reid", "joint")
ATTACK_STAGES = ("linear", "inv", "adaptive", "finetune", "identity")


def attack_overrides(run_dir: Path, world: Path, plan: Plan) -> list[str]:
    """``--set`` overrides that give every attack stage at least 3x the budget of the attackers the run's
    frozen anonymizer was trained against (its checkpoint records them), at the plan's batch sizes."""
    from anonreid.events.world import WorldDataset
    from anonreid.models.budget import required_samples, trained_against
    from anonreid.models.checkpoint import read_sidecar
    from anonreid.models.config import load_train_config
    from anonreid.models.data import split_identities

    against = trained_against(read_sidecar(run_dir / "checkpoints" / "anonymizer")["metadata"])
    cfg = load_train_config(plan.config, list(plan.sets))
    out = []
    for stage, batch in plan.attack_batches.items():
        if stage == "identity":  # P x K crops a step, P capped by the training identities there are
            p = min(cfg.identity.p, len(split_identities(WorldDataset(world), cfg.data)[0]))
            need, _ = required_samples("identity", against)
            steps = max(cfg.identity.steps, math.ceil(need / (p * batch)))
            out += [f"identity.k={batch}", f"identity.steps={steps}"]
            continue
        need, _ = required_samples("reconstruction", against)
        steps = max(getattr(cfg, stage).steps, math.ceil(need / batch))
        out += [f"{stage}.batch_size={batch}", f"{stage}.steps={steps}"]
    return out


class Runner:
    """Runs the phases against one deadline and keeps ``OUT`` current (module docstring)."""

    def __init__(self, mode: str, out: Path, work: Path, data: Path | None, budget_s: float, started: float) -> None:
        self.plan, self.mode = PLANS[mode], mode
        self.out, self.work = out, work
        self.world = data or work / "world"
        self.run_dir, self.results = work / "run", work / "results"
        self.deadline = started + budget_s
        self.started, self.budget_s = started, budget_s
        self.log = work / "log.txt"
        self._packed: list[tuple[str, int, int]] = []  # the checkpoints in OUT's weights.tar.NN (_weights)
        self.summary: dict[str, Any] = {"mode": mode, "budget_s": budget_s, "plan": asdict(self.plan),
                                        "world": str(self.world), "phases": {}, "carried_world": data is not None}

    def left(self) -> float:
        return self.deadline - RESERVE_S - time.time()

    def cli(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "anonreid.orchestration.cli", *args]

    def phase(self, name: str, cmd: list[str]) -> bool:
        """Run one phase with the time left; True when it finished (exit 0)."""
        t0, left = time.time(), self.left()
        entry: dict[str, Any] = {"command": " ".join(cmd[2:]).replace("anonreid.orchestration.cli", "anonreid")}
        if left <= 5:
            entry.update(status="skipped: no time left in the budget")
        else:
            with self.log.open("a") as log:
                log.write(f"\n### {name}: {' '.join(cmd)} (timeout {left:.0f} s)\n")
                log.flush()
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    rc = proc.wait(timeout=left)
                    entry["status"] = "done" if rc == 0 else f"failed (exit {rc})"
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGTERM)
                    try:
                        proc.wait(timeout=15)
                    except subprocess.TimeoutExpired:
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                    entry["status"] = "stopped at the budget (resumable: run the script again)"
        entry["wall_s"] = round(time.time() - t0, 1)
        self.summary["phases"][name] = entry
        self.package()
        return entry["status"] == "done"

    def run(self) -> dict[str, Any]:
        self.work.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        self.summary["device"] = _device_name(self.plan.device)
        ok = True
        done = self.work / "world.done"
        if self.summary["carried_world"] or done.exists():
            self.summary["phases"]["world"] = {"status": "reused", "wall_s": 0.0}
        else:
            opts = [a for k, v in self.plan.world.items() for a in (f"--{k}", str(v))]
            ok = self.phase("world", self.cli("simulate", "--out", str(self.world), *opts))
            if ok:
                done.touch()
        train = ["train", "--data", str(self.world), "--config", self.plan.config, "--out", str(self.run_dir),
                 "--resume", "--no-progress", *[a for s in self.plan.sets for a in ("--set", s)]]
        ok = ok and self.phase("train", self.cli(*train, *[a for s in TRAIN_STAGES for a in ("--stage", s)]))
        if ok:
            sets = attack_overrides(self.run_dir, self.world, self.plan)
            self.summary["attack_sets"] = sets
            ok = self.phase("attacks", self.cli(*train, *[a for s in ATTACK_STAGES for a in ("--stage", s)],
                                                *[a for s in sets for a in ("--set", s)]))
        if ok:
            ok = self.phase("evaluate", self.cli("evaluate", "--run", str(self.run_dir), "--data", str(self.world),
                                                 "--out", str(self.results), "--no-progress", *self.plan.evaluate))
        self.summary["complete"] = ok
        self.package()
        return self.summary

    def package(self) -> None:
        """Refresh ``OUT``: summary, log, results and the checkpoints (module docstring)."""
        self.summary["weights"] = self._weights()
        if self.log.exists():
            text = self.log.read_bytes()[-PART_BYTES:]
            (self.out / "log.txt").write_bytes(text)
        if (self.results / "results.md").exists():
            shutil.copy(self.results / "results.md", self.out / "results.md")
            with tarfile.open(self.out / "results.tar.gz", "w:gz") as tar:
                tar.add(self.results, arcname="results")
        self.summary["elapsed_s"] = round(time.time() - self.started, 1)
        (self.out / "summary.json").write_text(json.dumps(self.summary, indent=2))

    def _weights(self) -> list[str]:
        """The run's checkpoints as float16 in ``weights.tar.NN`` parts; the names packed. Packed again only
        when a checkpoint changed since the last time (a phase that trains nothing leaves the parts)."""
        ckpt = self.run_dir / "checkpoints"
        names = [n for n in BROUGHT_BACK if (ckpt / f"{n}.json").exists()]
        signature = [(n, (ckpt / f"{n}.safetensors").stat().st_mtime_ns, (ckpt / f"{n}.json").stat().st_mtime_ns)
                     for n in names]
        if signature and signature == self._packed:
            return names
        for old in self.out.glob("weights.tar.*"):
            old.unlink()
        if not {"anonymizer", "reid"} <= set(names):
            return []
        from anonreid.models.bundle import ship_checkpoint

        shipped = self.work / "weights"
        shutil.rmtree(shipped, ignore_errors=True)
        tar_path = self.work / "weights.tar"
        with tarfile.open(tar_path, "w") as tar:
            for n in names:
                ship_checkpoint(self.run_dir, ckpt / n, shipped / n)
                for suffix in (".json", ".safetensors"):
                    tar.add(shipped / f"{n}{suffix}", arcname=f"weights/{n}{suffix}")
        data = tar_path.read_bytes()
        parts = math.ceil(len(data) / PART_BYTES)
        if parts > MAX_PARTS:
            self.summary["weights_error"] = f"{len(data)} bytes of checkpoints: over {MAX_PARTS} parts of {PART_BYTES}"
            return []
        for i in range(parts):
            (self.out / f"weights.tar.{i:02d}").write_bytes(data[i * PART_BYTES : (i + 1) * PART_BYTES])
        self._packed = signature
        return names


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("gpu_privacy: --mode gpu needs CUDA, and torch sees no GPU here (--mode dry runs on CPU)")
        return torch.cuda.get_device_name(0)
    return "cpu"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gpu_privacy_run.sh", description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(PLANS), default="gpu")
    ap.add_argument("--out", type=Path, required=True, help="where the results go (the device tool's $OUT)")
    ap.add_argument("--work", type=Path, required=True, help="work directory (kept between calls: resumes)")
    ap.add_argument("--data", type=Path, default=None, help="a carried world (world.json + world.h5)")
    ap.add_argument("--budget-s", type=float, default=540.0, help="hard wall-clock budget, setup included")
    ap.add_argument("--started", type=float, default=None, help="when the script started (epoch seconds)")
    args = ap.parse_args(argv)
    if args.data is not None and not (args.data / "world.json").exists():
        ap.error(f"--data {args.data}: no world.json")
    runner = Runner(args.mode, args.out, args.work, args.data, args.budget_s, args.started or time.time())
    summary = runner.run()
    print(json.dumps({k: summary[k] for k in ("mode", "device", "complete", "elapsed_s", "phases", "weights")}, indent=2))
    return 0 if summary["complete"] else 3


if __name__ == "__main__":
    sys.exit(main())
