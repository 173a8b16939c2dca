"""The adversary node's attackers: loading them from a run or the shipped weights, naming them and their
training budgets (for the auditor's report), and the enrollment photos they match against.

Every attacker network carries a JSON sidecar (:mod:`anonreid.models.checkpoint`); its budget is read
from there: the ``budget`` record the attack stages write (:class:`anonreid.models.budget.Budget`:
steps x batch of its own, plus the weights it started from), else the stage's step count and batch in
the run config the checkpoint records, else the attacker net's own ``attacker_cfg`` (steps, P x K).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from anonreid.orchestration.config import WorldConfig

if TYPE_CHECKING:
    from torch import nn

    from anonreid.models.evaluation.attacks import AttackerSide

#: what each attacker network is, by checkpoint name
ATTACKER_ROLES = {
    "e_rec": "reconstruction (E_rec, trained on raw events)",
    "e_inv": "inversion (E_inv before E_rec)",
    "e_rec_adaptive": "adaptive reconstruction (E_rec retrained on anonymized events)",
    "appearance": "retrieval (appearance ReId on reconstructions vs enrollment photos)",
}


@dataclass
class Attackers:
    """The attacker's trained networks: E_rec (+ E_inv, E_rec') and the appearance model."""

    side: AttackerSide | None = None
    appearance: nn.Module | None = None  # on (N, 1, h, w) grey crops
    appearance_hw: tuple[int, int] = (64, 32)
    version: str = "none"
    missing: list[str] = field(default_factory=list)  # what could not be loaded, and why
    described: list[dict[str, Any]] = field(default_factory=list)  # name, role, budget per loaded network


def attacker_budget(metadata: dict[str, Any]) -> dict[str, Any]:
    """``{steps, batch_size, samples, unit, source, ...}`` of a checkpoint's training (module docstring);
    ``{"source": "not recorded"}`` when its sidecar says nothing about it."""
    budget = metadata.get("budget")
    if isinstance(budget, dict) and "steps" in budget and "batch_size" in budget:
        steps, batch = int(budget["steps"]), int(budget["batch_size"])
        init = int(budget.get("init_samples", 0))
        return {"steps": steps, "batch_size": batch, "samples": steps * batch + init, "init_from": budget.get("init_from"),
                "unit": "person crops" if budget.get("kind") == "identity" else "clips", "source": "checkpoint budget"}
    cfg = metadata.get("attacker_cfg")
    if isinstance(cfg, dict) and "steps" in cfg:
        steps, batch = int(cfg["steps"]), int(cfg.get("p", 0)) * int(cfg.get("k", 0))
        return {"steps": steps, "batch_size": batch, "samples": steps * batch, "unit": "person crops",
                "training_crops": metadata.get("train_samples"), "identities": metadata.get("identities"),
                "source": "attacker_cfg"}
    stage = str(metadata.get("stage", "")).split("_")[0]
    section = (metadata.get("config") or {}).get(stage)
    if isinstance(section, dict) and "steps" in section and "batch_size" in section:
        steps, batch = int(section["steps"]), int(section["batch_size"])
        return {"steps": steps, "batch_size": batch, "samples": steps * batch, "unit": "clips",
                "source": f"run config ({stage})"}
    return {"source": "not recorded"}


def describe_attacker(name: str, path: Path, metadata: dict[str, Any]) -> dict[str, Any]:
    """What the report says about one attacker network: role, checkpoint, what it saw, its budget."""
    return {"name": name, "role": ATTACKER_ROLES.get(name, name), "checkpoint": str(path),
            "trained_on": metadata.get("trained_on", ""), "data_fingerprint": metadata.get("data_fingerprint", ""),
            "created": metadata.get("created", ""), "budget": attacker_budget(metadata)}


def load_attackers(model_dir: str | Path | None) -> Attackers:
    """The attacker side of a training run directory (``checkpoints/e_rec`` etc. and ``attacker/``);
    empty: the package's shipped weight set (``models/weights/default``, the same layout flat)."""
    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.models.checkpoint import CheckpointError, load_checkpoint, read_sidecar
    from anonreid.models.evaluation.attacks import AttackerSide

    run = Path(model_dir) if model_dir else DEFAULT_WEIGHTS
    ckpt = run / "checkpoints" if (run / "checkpoints").is_dir() else run  # a run directory or a flat weights set
    out = Attackers(version=run.name)
    nets: dict[str, Any] = {}
    for name in ("e_rec", "e_inv", "e_rec_adaptive"):  # each one optional: an attack without its net is not run
        path = ckpt / name
        if not path.with_suffix(".json").exists():
            out.missing.append(f"{path}.json: not trained in this run")
            continue
        try:
            nets[name] = load_checkpoint(path).model.eval()
            out.described.append(describe_attacker(name, path, read_sidecar(path)["metadata"]))
        except (CheckpointError, OSError, ValueError) as exc:
            out.missing.append(f"{path}: cannot be loaded ({exc})")
    if "e_rec" in nets:
        out.side = AttackerSide(nets["e_rec"], nets.get("e_inv"), nets.get("e_rec_adaptive"))
        meta = read_sidecar(ckpt / "e_rec")["metadata"]
        out.version = f"{meta.get('preset', run.name)}-{str(meta.get('data_fingerprint', ''))[:8]}"
    app = run / "attacker" / "appearance"
    if app.with_suffix(".json").exists():
        out.appearance = load_checkpoint(app).model.eval()
        meta = read_sidecar(app)["metadata"]
        hw = meta.get("attacker_cfg", {}).get("crop_hw", [64, 32])
        out.appearance_hw = (int(hw[0]), int(hw[1]))
        out.described.append(describe_attacker("appearance", app, meta))
    else:
        out.missing.append(f"{app}.json: no attacker appearance model (retrieval attacks need it)")
    return out


def load_enrollment(source: str, world: WorldConfig | None = None) -> dict[str, np.ndarray]:
    """Enrollment photos by identity: ``world`` renders the live world's people, a path reads a dataset."""
    if not source:
        return {}
    if source == "world":
        from anonreid.events.world.build import build_world
        from anonreid.events.world.render import render_enrollment

        return {p.identity: render_enrollment(p) for p in build_world(world or WorldConfig()).people}
    from anonreid.events.world.dataset import WorldDataset

    ds = WorldDataset(source)
    return {i: ds.enrollment(i) for i in ds.identities()}
