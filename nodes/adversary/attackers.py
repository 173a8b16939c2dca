"""The adversary node's attackers: loading them from a run or the shipped weights, naming them and their
training budgets (for the auditor's report), and the enrollment photos they match against.

Every attack network of the evaluation suite is loaded when the run (or weight set) has it, each one
optional: E_rec and the networks of the suite's other reconstruction views
(:data:`~anonreid.models.evaluation.attacks.ATTACK_VIEWS`: E_inv, the linear inverse, the adaptive and
the fine-tuned E_rec), the direct identity attack's two towers
(:func:`~anonreid.models.identity_attack.load_identity_towers`), their counterparts trained on raw
events (stage ``identity_raw``: the attack's positive control, :mod:`~anonreid.nodes.adversary.raw_windows`)
and the retrieval attacker's appearance net. A network the shipped weight set carries (:data:`~anonreid.models.bundle.ATTACKER_WEIGHTS`) is
*missing* when absent (logged as a warning); the others only a full training run has are *absent*.

Every attacker network carries a JSON sidecar (:mod:`anonreid.models.checkpoint`); its budget is read
from there: the ``budget`` record the attack stages write (:class:`anonreid.models.budget.Budget`:
steps x batch of its own, plus the weights it started from), else the stage's step count and batch in
the run config the checkpoint records, else the attacker net's own ``attacker_cfg`` (steps, P x K); a
closed-form fit (the linear inverse) records the clips it was fitted on.
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
    from anonreid.models.identity_attack import IdentityTowers

#: what each attacker network is, by checkpoint name
ATTACKER_ROLES = {
    "e_rec": "reconstruction (E_rec, trained on raw events)",
    "e_inv": "inversion (E_inv before E_rec)",
    "e_rec_adaptive": "adaptive reconstruction (E_rec retrained on anonymized events)",
    "e_rec_finetuned": "fine-tuned reconstruction (the raw E_rec fine-tuned on anonymized events)",
    "e_lin": "linear inverse before E_rec (closed-form least squares: the floor)",
    "attack_id_voxel": "direct identity attack (voxel tower on anonymized crops + photo tower on enrollment "
                       "photos, no reconstruction)",
    "attack_id_raw_voxel": "the direct identity attack on raw events (its positive control: the same towers "
                           "trained and run without the anonymizer)",
    "appearance": "retrieval (appearance ReId on reconstructions vs enrollment photos)",
}


@dataclass
class Attackers:
    """The attacker's trained networks: the reconstruction side (E_rec and the views' networks), the
    identity attack's towers and the appearance model."""

    side: AttackerSide | None = None
    appearance: nn.Module | None = None  # on (N, 1, h, w) grey crops
    appearance_hw: tuple[int, int] = (64, 32)
    version: str = "none"
    missing: list[str] = field(default_factory=list)  # what could not be loaded, and why
    identity: IdentityTowers | None = None
    identity_raw: IdentityTowers | None = None  # stage identity_raw's towers: the identity attack's control
    absent: list[str] = field(default_factory=list)  # optional attacks this run did not train
    described: list[dict[str, Any]] = field(default_factory=list)  # name, role, budget per loaded network
    #: the raw voxels' per-channel (mean, std) an attack stage standardised its input to (None: not recorded)
    voxel_stats: tuple[list[float], list[float]] | None = None


def recorded_voxel_stats(metadata: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    """The raw voxels' per-channel ``(mean, std)`` a checkpoint's fitted input standardisation maps to
    (``input_affine.target_mean`` / ``target_std``, :func:`anonreid.models.layers.fit_channel_affine`)."""
    fitted = metadata.get("input_affine")
    if isinstance(fitted, dict) and "target_mean" in fitted and "target_std" in fitted:
        return [float(v) for v in fitted["target_mean"]], [float(v) for v in fitted["target_std"]]
    return None


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
    if metadata.get("fitted"):
        return {"samples": metadata.get("clips"), "unit": "clips",
                "source": f"{metadata['fitted']} on {metadata.get('clips')} clips (no steps)"}
    from anonreid.models.config import stage_section

    stage = stage_section(str(metadata.get("stage", "")))
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
    empty: the package's shipped weight set (``models/weights/default``, the same layout flat). Each
    network is optional (module docstring): an attack without its network is not run."""
    from anonreid.models.bundle import ATTACKER_WEIGHTS, DEFAULT_WEIGHTS
    from anonreid.models.checkpoint import CheckpointError, load_checkpoint, read_sidecar
    from anonreid.models.evaluation.attacks import ATTACK_VIEWS, AttackerSide
    from anonreid.models.identity_attack import RAW_VOXEL_TOWER, VOXEL_TOWER, load_identity_towers

    run = Path(model_dir) if model_dir else DEFAULT_WEIGHTS
    ckpt = run / "checkpoints" if (run / "checkpoints").is_dir() else run  # a run directory or a flat weights set
    out = Attackers(version=run.name)

    def not_there(path: Path, name: str, why: str) -> None:
        (out.missing if name in ATTACKER_WEIGHTS else out.absent).append(f"{path}.json: {why}")

    nets: dict[str, Any] = {}
    for name in ("e_rec", *ATTACK_VIEWS.values()):
        path = ckpt / name
        if not path.with_suffix(".json").exists():
            not_there(path, name, "not trained in this run")
            continue
        try:
            nets[name] = load_checkpoint(path).model.eval()
            metadata = read_sidecar(path)["metadata"]
            out.described.append(describe_attacker(name, path, metadata))
            out.voxel_stats = out.voxel_stats or recorded_voxel_stats(metadata)
        except (CheckpointError, OSError, ValueError) as exc:
            out.missing.append(f"{path}: cannot be loaded ({exc})")
    if "e_rec" in nets:
        out.side = AttackerSide(**nets)
        meta = read_sidecar(ckpt / "e_rec")["metadata"]
        out.version = f"{meta.get('preset', run.name)}-{str(meta.get('data_fingerprint', ''))[:8]}"

    def towers(raw: bool) -> IdentityTowers | None:
        name = RAW_VOXEL_TOWER if raw else VOXEL_TOWER
        try:
            loaded = load_identity_towers(ckpt, raw=raw)
        except (CheckpointError, OSError, ValueError) as exc:
            out.missing.append(f"{ckpt / name}: cannot be loaded ({exc})")
            return None
        if loaded is None:
            not_there(ckpt / name, name, "no stage identity_raw in this run: the direct identity attack runs without "
                      "its positive control" if raw else "no direct identity attack in this run")
        else:
            out.described.append(describe_attacker(name, ckpt / name, loaded.metadata))
        return loaded

    out.identity = towers(raw=False)
    if out.identity is not None:
        out.identity_raw = towers(raw=True)
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


def load_enrollment(source: str, world: WorldConfig | None = None, day: int = 0) -> dict[str, np.ndarray]:
    """Enrollment photos by identity, taken on ``day`` (0: the day the cameras film; ``d`` >= 1: another
    outfit, :meth:`~anonreid.events.world.people.Person.on_another_day`): ``world`` renders the live
    world's people, a path reads a dataset."""
    if not source:
        return {}
    if source == "world":
        from anonreid.events.world.build import build_world
        from anonreid.events.world.render import render_enrollment

        return {p.identity: render_enrollment(p.on_another_day(day)) for p in build_world(world or WorldConfig()).people}
    from anonreid.events.world.dataset import WorldDataset

    ds = WorldDataset(source)
    return {i: ds.enrollment(i, day) for i in ds.identities()}


def enrollment_day(attackers: Attackers) -> int:
    """The day of the enrollment photos the attackers hold: the one the direct identity attack trained
    on (``identity.enrollment_day`` of its run), else the day the cameras film."""
    return int(attackers.identity.metadata.get("enrollment_day", 0)) if attackers.identity is not None else 0
