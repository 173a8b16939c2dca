"""Where ``anonreid train`` reads its passes: the synthetic world, or real events (Event-ReId).

:func:`open_training_data` turns ``--data WORLD`` or an :class:`EventReidSource` (``--dataset event-reid
--root PATH``) into a :class:`TrainingData`: the datasets of passes and identities of the training and
validation splits, the fingerprint recorded in every checkpoint, the enrollment photos (the world's
only), and the reference frames of the clips. :func:`anonreid.models.train.prepare_context` builds its
clips from it with :func:`anonreid.models.data.build_clips` either way, so the stages do not know which
it is.

Real events have no reference frames, and the joint stage's privacy term needs one:
``beta SSIM(E_rec(E_an(X)), I)``. On Event-ReId, ``I`` is the **pseudo-reference** ``E_rec(X)``: the
frozen attacker's own reconstruction of the raw events (``--rec``, a world-trained E_rec; default the
shipped one), computed once per clip and cached. The term then asks E_an to make the attacker's
reconstruction of the anonymized events unlike what the same attacker recovers from the raw ones: what
the attacker would get without the anonymizer is the thing to deny it, which is the paper's setting on
Event-ReId (its E2VID was trained on synthetic events too). The E_rec is copied into the run's
``checkpoints/e_rec`` (so the joint stage, ``--resume`` and ``anonreid evaluate`` use the same one), and
its validation metric ``attacker_ssim_raw`` is 1 by construction there (the raw reconstruction against
itself, up to 8-bit rounding); ``attacker_ssim`` is the number to read.

Stages on real events: ``reid`` (the raw-event baseline) and ``joint`` (E_an + E_reid against the
frozen E_rec, ``--ablation`` too). ``rec`` needs reference frames, ``joint.minmax`` and the attack
stages need frames or enrollment photos: :data:`REAL_DATA_STAGES` and :func:`check_real_data_config`
refuse them with the reason.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from anonreid.models.config import TrainConfig
from anonreid.models.data import ClipSet

log = logging.getLogger(__name__)

#: the stages that train on real events (the rest need reference frames or enrollment photos)
REAL_DATA_STAGES = ("reid", "joint")
_WHY_NOT = {
    "rec": "E_rec learns raw events -> reference frames, and real events have none (give a world-trained one "
           "with --rec)",
    "inv": "the inversion attack is trained and judged through reconstructions against reference frames",
    "adaptive": "the adaptive attacker learns anonymized events -> reference frames",
    "finetune": "the fine-tuned attacker learns anonymized events -> reference frames",
    "linear": "the linear inverse attack is judged on reference frames",
    "identity": "the direct identity attack needs the identities' enrollment photos",
}


class TrainingDataError(ValueError):
    """The training data cannot be used as asked (a bad root, missing lists or --rec, a stage or config
    real events cannot train); ``anonreid train`` prints it and exits with code 2."""


@dataclass(frozen=True)
class EventReidSource:
    """``--dataset event-reid --root ROOT``: either layout of :mod:`anonreid.events.event_reid_dataset`;
    ``rec`` the frozen E_rec checkpoint (stem, ``.json`` / ``.safetensors`` path, or a folder holding
    ``e_rec.json``), ``time_unit`` / ``sensor`` as every command that reads event files takes them."""

    root: Path
    rec: Path
    time_unit: str | None = None
    sensor: str = ""


@dataclass
class TrainingData:
    """What the clip builder reads (see the module docstring)."""

    cfg: TrainConfig
    train_set: Any  # WorldDataset | EventReidDataset
    val_set: Any
    train_ids: list[str]
    val_ids: list[str]
    fingerprint: str
    path: Path  # the world directory or the Event-ReId root (env.json's data_dir)
    world: Any = None  # the WorldDataset (enrollment photos, the attack stages); None on real events
    rec: Path | None = None  # real events: the frozen E_rec giving the pseudo-reference frames
    splits: dict[str, str] = field(default_factory=dict)  # cache-key suffix per clip set ("train", "val")

    def photos(self, identities: Sequence[str], hw: tuple[int, int]) -> torch.Tensor | None:
        """Enrollment-photo crops of ``identities`` (None: real events have no enrollment photos)."""
        if self.world is None:
            return None
        from anonreid.models.identity_attack import photo_crops

        return photo_crops([self.world.enrollment(i) for i in identities], hw)

    def with_reference(self, clips: ClipSet, cache: Path, device: torch.device) -> ClipSet:
        """``clips`` with their reference frames: the world's own, or E_rec(X) on real events."""
        if self.rec is None:
            return clips
        return dataclasses.replace(clips, frames=pseudo_reference(clips, self.rec, cache, self.fingerprint, device))

    def identity_split(self) -> dict[str, list[str]]:
        """Recorded in every checkpoint of a real-data run (:mod:`anonreid.models.evaluation.protocol`)."""
        return {"train": sorted(self.train_ids), "val": sorted(self.val_ids)} if self.rec is not None else {}


def open_training_data(data: str | Path | EventReidSource, cfg: TrainConfig) -> TrainingData:
    """The world at ``data``, or the Event-ReId root of an :class:`EventReidSource`."""
    if isinstance(data, EventReidSource):
        try:
            return _open_event_reid(data, cfg)
        except TrainingDataError:
            raise
        except (ValueError, FileNotFoundError) as exc:  # EventFormatError is a ValueError
            raise TrainingDataError(f"--dataset event-reid --root {data.root}: {exc}") from exc
    from anonreid.events.world import WorldDataset
    from anonreid.models.data import dataset_fingerprint, split_identities

    path = Path(data)
    fingerprint = dataset_fingerprint(path)
    world = WorldDataset(path)
    train_ids, val_ids = split_identities(world, cfg.data)
    return TrainingData(cfg, world, world, train_ids, val_ids, fingerprint, path, world)


def rec_checkpoint(path: str | Path) -> Path:
    """The E_rec checkpoint stem ``--rec`` names: a checkpoint path (with or without its suffix) or a
    folder holding ``e_rec.json`` (a shipped model set, a run or its ``checkpoints/``)."""
    path = Path(path)
    for stem in (path / "e_rec", path / "checkpoints" / "e_rec", path.with_suffix("") if path.suffix in
                 (".json", ".safetensors") else path):
        if stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file():
            return stem
    raise TrainingDataError(f"--rec {path}: no E_rec checkpoint there (e_rec.json + e_rec.safetensors, from "
                            "`anonreid train --stage rec` on a world, or models/weights/default)")


def check_real_data_config(cfg: TrainConfig, stages: Sequence[str]) -> None:
    """Refuse, with the reason, what cannot train on real events (module docstring)."""
    bad = [s for s in stages if s not in REAL_DATA_STAGES]
    if bad:
        why = "; ".join(f"{s}: {_WHY_NOT.get(s, 'not a real-data stage')}" for s in bad)
        raise TrainingDataError(f"--dataset event-reid trains the stages {', '.join(REAL_DATA_STAGES)} only, not "
                         f"{', '.join(bad)} ({why}); train those on the world (--data)")
    if "joint" in stages and cfg.joint.minmax.enabled:
        raise TrainingDataError(f"joint.minmax (on in the {cfg.name!r} config) trains its attackers against reference frames "
                         "and enrollment photos, which real events do not have: --set joint.minmax.enabled=false "
                         "(or --config cpu)")


def _open_event_reid(src: EventReidSource, cfg: TrainConfig) -> TrainingData:
    from anonreid.events.event_reid_dataset import open_event_reid_dataset
    from anonreid.events.types import SensorSize
    from anonreid.models.checkpoint import read_sidecar

    rec = rec_checkpoint(src.rec)
    mcfg = read_sidecar(rec)["model_cfg"]
    if mcfg.get("family") != "reconstruction" or int(mcfg.get("in_bins") or 0) != cfg.data.num_bins:
        raise TrainingDataError(f"--rec {rec}.json: a {mcfg.get('family')} model {mcfg.get('name')!r} with "
                         f"{mcfg.get('in_bins')} bins, not an E_rec taking data.num_bins = {cfg.data.num_bins}")
    sensor = SensorSize.parse(src.sensor) if src.sensor else None
    window = cfg.data.window_us
    train_set = open_event_reid_dataset(src.root, "train", src.time_unit, sensor, window)
    ids = train_set.identities("train")
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"clip_len": 1, "clip_stride": 1})})
    n_val = cfg.data.val_identities
    if n_val:
        if n_val >= len(ids):
            raise ValueError(f"data.val_identities = {n_val}, but {src.root} has {len(ids)} training identities")
        train_ids, val_ids, val_set = ids[:-n_val], ids[-n_val:], train_set
    else:  # the test split validates (the unit found above, so that it is inferred and warned about once)
        try:
            val_set = open_event_reid_dataset(src.root, "test", train_set.time_unit, train_set.sensor, window)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{exc}; or validate on held-out training identities "
                                    "(--set data.val_identities=N)") from None
        train_ids, val_ids = ids, val_set.identities()
    log.info("Event-ReId %s layout at %s: %d training identities, %d validation; single-window clips "
             "(data.clip_len = 1); privacy against E_rec(X) of %s", train_set.layout, src.root, len(train_ids),
             len(val_ids), rec)
    return TrainingData(cfg, train_set, val_set, train_ids, val_ids, train_set.fingerprint, Path(src.root), None, rec,
                        {"train": "train", "val": "train" if n_val else "test"})


def install_rec(data: TrainingData, ckpt_dir: Path) -> None:
    """Copy a real-data run's frozen E_rec into its ``checkpoints/`` (the joint stage and evaluate load it)."""
    if data.rec is None:
        return
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):
        src, dst = data.rec.with_suffix(suffix), ckpt_dir / f"e_rec{suffix}"
        if src.resolve() != dst.resolve():
            shutil.copyfile(src, dst)


def _rec_key(rec: Path) -> str:
    h = hashlib.sha256(rec.with_suffix(".json").read_bytes())
    h.update(str(rec.with_suffix(".safetensors").stat().st_size).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def pseudo_reference(clips: ClipSet, rec: Path, cache: Path, fingerprint: str, device: torch.device,
                     batch: int = 16) -> np.ndarray:
    """``E_rec(X)`` of every clip (unrolled from a zero state), ``(M, L, h, w)`` uint8 like reference
    frames; cached under ``cache/reference/`` by E_rec, dataset and clips."""
    from anonreid.models.checkpoint import load_checkpoint
    from anonreid.models.reconstruction import run_sequence

    key_src = json.dumps({"rec": _rec_key(rec), "data": fingerprint, "ids": clips.identities,
                          "shape": list(clips.voxels.shape), "passes": hashlib.sha256(np.asarray(clips.passes).tobytes())
                          .hexdigest()}, sort_keys=True)
    path = cache / "reference" / f"{hashlib.sha256(key_src.encode()).hexdigest()[:16]}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    model = load_checkpoint(rec, device=device).model.eval()
    out = np.zeros(clips.frames.shape, np.uint8)
    for i in range(0, len(clips), batch):
        x = torch.from_numpy(np.asarray(clips.voxels[i : i + batch], np.float32)).to(device)
        pred, _ = run_sequence(model, x)
        out[i : i + batch] = (pred[:, :, 0].float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, out)
    tmp.replace(path)
    return np.load(path, mmap_mode="r")
