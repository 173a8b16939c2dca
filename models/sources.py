"""Where ``anonreid train`` reads its passes: the synthetic world, or real events (Event-ReId, or a
user's paired events + frames in HDF5).

:func:`open_training_data` turns ``--data WORLD``, an :class:`EventReidSource` (``--dataset event-reid
--root PATH``) or a :class:`PairedH5Source` (``--dataset paired-h5 --root FILE_OR_DIR``) into a
:class:`TrainingData`: the datasets of passes and identities of the training and
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

Paired events + frames (``--dataset paired-h5``, :mod:`anonreid.events.paired_h5_dataset`): the E2VID
family's HDF5 recordings with ``images/*`` frames train what needs exactly that: ``rec`` (E_rec, raw
events -> the frame at each window's end), and, against a frozen anonymizer given with ``--anonymizer``
(a run, a shipped model set or a checkpoint; copied into the run's ``checkpoints/anonymizer``), the
reconstruction attacks ``adaptive``, ``finetune``, ``linear`` and ``inv`` (the last three through the
run's own E_rec): a privacy auditor's attackers trained and judged on real events and real frames. They
have no identities, so nothing else (:data:`PAIRED_H5_STAGES`). The run's ``checkpoints/e_rec`` is also
an attacker trained on real data, for ``--dataset event-reid --rec RUN``.
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
from anonreid.models.data import ClipSet, per_clip_array

log = logging.getLogger(__name__)

#: the stages that train on real events (the rest need reference frames or enrollment photos)
REAL_DATA_STAGES = ("reid", "joint")
_WHY_NOT = {
    "rec": "E_rec learns raw events -> reference frames, and real events have none (give a world-trained one "
           "with --rec, or one trained on your paired events + frames: --dataset paired-h5)",
    "inv": "the inversion attack is trained and judged through reconstructions against reference frames",
    "adaptive": "the adaptive attacker learns anonymized events -> reference frames",
    "finetune": "the fine-tuned attacker learns anonymized events -> reference frames",
    "linear": "the linear inverse attack is judged on reference frames",
    "identity": "the direct identity attack needs the identities' enrollment photos",
    "identity_raw": "the direct identity attack's raw-event reference needs the identities' enrollment photos",
}


#: the stages that train on paired events + frames (``--dataset paired-h5``); the attacks need ``--anonymizer``
PAIRED_H5_ATTACKS = ("adaptive", "finetune", "linear", "inv")
PAIRED_H5_STAGES = ("rec", *PAIRED_H5_ATTACKS)
_WHY_NOT_PAIRED = {
    "reid": "recordings carry no identity labels",
    "joint": "E_an + E_reid learn identities, which recordings do not label (train them on Event-ReId with this "
             "run as --rec, or on the world)",
    "identity": "the direct identity attack needs identities and their enrollment photos",
    "identity_raw": "the direct identity attack's raw-event reference needs identities and their enrollment photos",
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


@dataclass(frozen=True)
class PairedH5Source:
    """``--dataset paired-h5 --root FILE_OR_DIR``: paired events + frames in HDF5
    (:mod:`anonreid.events.paired_h5_dataset`); ``time_unit`` / ``sensor`` as every command that reads
    event files takes them (the file's ``sensor_resolution`` attribute when not given); ``anonymizer``
    the frozen E_an of the attack stages (``--anonymizer``, :func:`anonymizer_checkpoint`)."""

    root: Path
    time_unit: str | None = None
    sensor: str = ""
    anonymizer: Path | None = None  # the frozen E_an the attack stages train against (its checkpoint stem)


#: what ``anonreid train`` reads real data from
RealSource = EventReidSource | PairedH5Source


def source_stages(source: RealSource) -> tuple[str, ...]:
    """The stages a real-data source trains by default: on paired recordings ``rec``, and the attacks
    but ``inv`` (its appearance loss needs enrollment photos: asked for by name) with an anonymizer."""
    if isinstance(source, PairedH5Source):
        return PAIRED_H5_STAGES[:-1] if source.anonymizer is not None else ("rec",)
    return REAL_DATA_STAGES


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
    anonymizer: Path | None = None  # paired recordings: the frozen E_an of the attack stages

    def photos(self, identities: Sequence[str], hw: tuple[int, int], day: int = 0, days: int = 1) -> torch.Tensor | None:
        """Enrollment-photo crops ``(len(identities), days, 1, h, w)`` of ``identities`` taken on days ``day``,
        ..., ``day + days - 1`` (0: the day the cameras film; see
        :meth:`~anonreid.events.world.WorldDataset.enrollment`); None: real events have no enrollment photos."""
        if self.world is None:
            return None
        from anonreid.models.identity_attack import photo_crops

        return torch.stack([photo_crops([self.world.enrollment(i, d) for d in range(day, day + days)], hw)
                            for i in identities]) if len(identities) else torch.zeros((0, days, 1, *hw))

    def outfit_photos(self, identities: Sequence[str], hw: tuple[int, int], clips: ClipSet,
                      day: int, days: int) -> tuple[torch.Tensor, np.ndarray] | None:
        """In a world filmed on several days (``world.outfit_days`` D > 1): the enrollment-photo crops of
        every identity on every day ``(len(identities) * D, 1, 1, h, w)``, row ``class * D + day``, and the
        day each clip of ``clips`` was filmed on, so that an identity attacker matches every clip to the
        photo of its own outfit (the same-day threat); None in a world filmed on one day. ``day`` and
        ``days`` (``identity.enrollment_day`` and ``identity.photo_days``) must keep their defaults there."""
        if self.world is None or self.world.outfit_days == 1:
            return None
        n_days = self.world.outfit_days
        if (day, days) != (0, 1):
            raise TrainingDataError(f"{self.path}: a world filmed on {n_days} days (world.outfit_days) matches each "
                                    "clip to the photo of its own day; leave identity.enrollment_day (0) and "
                                    f"identity.photo_days (1) at their defaults, got {day} and {days}")
        photos = self.photos(identities, hw, 0, n_days)
        assert photos is not None
        return photos.flatten(0, 1).unsqueeze(1), self.world.clip_days(clips.passes)

    def with_reference(self, clips: ClipSet, cache: Path, device: torch.device) -> ClipSet:
        """``clips`` with their reference frames: the world's own, or E_rec(X) on real events."""
        if self.rec is None:
            return clips
        return dataclasses.replace(clips, frames=pseudo_reference(clips, self.rec, cache, self.fingerprint, device))

    def identity_split(self) -> dict[str, list[str]]:
        """Recorded in every checkpoint of a real-data run (:mod:`anonreid.models.evaluation.protocol`)."""
        return {"train": sorted(self.train_ids), "val": sorted(self.val_ids)} if self.rec is not None else {}


def open_training_data(data: str | Path | RealSource, cfg: TrainConfig) -> TrainingData:
    """The world at ``data``, the Event-ReId root of an :class:`EventReidSource`, or the recordings of a
    :class:`PairedH5Source`."""
    if isinstance(data, (PairedH5Source, EventReidSource)):
        dataset = "paired-h5" if isinstance(data, PairedH5Source) else "event-reid"
        try:  # (isinstance again, for the type checker)
            return _open_paired_h5(data, cfg) if isinstance(data, PairedH5Source) else _open_event_reid(data, cfg)
        except TrainingDataError:
            raise
        except (ValueError, FileNotFoundError) as exc:  # EventFormatError is a ValueError
            raise TrainingDataError(f"--dataset {dataset} --root {data.root}: {exc}") from exc
    from anonreid.events.world import WorldDataset
    from anonreid.models.data import dataset_fingerprint, split_identities

    path = Path(data)
    fingerprint = dataset_fingerprint(path)
    world = WorldDataset(path)
    train_ids, val_ids = split_identities(world, cfg.data)
    return TrainingData(cfg, world, world, train_ids, val_ids, fingerprint, path, world)


def named_checkpoint(path: str | Path, name: str, option: str, made_by: tuple[str, str]) -> Path:
    """The ``name`` checkpoint stem an ``option`` names: a checkpoint path (with or without its suffix) or
    a folder holding ``<name>.json`` (a shipped model set, a run or its ``checkpoints/``); ``made_by`` = (what
    it is, what makes it) for the error."""
    path = Path(path)
    for stem in (path / name, path / "checkpoints" / name, path.with_suffix("") if path.suffix in
                 (".json", ".safetensors") else path):
        if stem.with_suffix(".json").is_file() and stem.with_suffix(".safetensors").is_file():
            return stem
    raise TrainingDataError(f"{option} {path}: no {made_by[0]} checkpoint there ({name}.json + {name}.safetensors, "
                            f"from {made_by[1]}, or models/weights/default)")


def rec_checkpoint(path: str | Path) -> Path:
    """The E_rec checkpoint ``--rec`` names (:func:`named_checkpoint`)."""
    return named_checkpoint(path, "e_rec", "--rec", ("E_rec", "`anonreid train --stage rec` on a world"))


def anonymizer_checkpoint(path: str | Path) -> Path:
    """The anonymizer checkpoint ``--anonymizer`` names (:func:`named_checkpoint`)."""
    return named_checkpoint(path, "anonymizer", "--anonymizer", ("anonymizer", "`anonreid train --stage joint`"))


def check_real_data_config(cfg: TrainConfig, stages: Sequence[str], source: RealSource | None = None) -> None:
    """Refuse, with the reason, what cannot train on real events (module docstring); ``source`` None is
    Event-ReId."""
    if isinstance(source, PairedH5Source):
        bad = [s for s in stages if s not in PAIRED_H5_STAGES]
        if bad:
            why = "; ".join(f"{s}: {_WHY_NOT_PAIRED.get(s, 'not a paired-data stage')}" for s in bad)
            raise TrainingDataError(f"--dataset paired-h5 trains the stages {', '.join(PAIRED_H5_STAGES)} (E_rec and "
                                    f"the reconstruction attacks) only, not {', '.join(bad)} ({why})")
        attacks = [s for s in stages if s in PAIRED_H5_ATTACKS]
        if attacks and source.anonymizer is None:
            raise TrainingDataError(f"--dataset paired-h5 --stage {' --stage '.join(attacks)}: the attacks train against "
                                    "a frozen anonymizer: give it with --anonymizer (a run, models/weights/default or "
                                    "an anonymizer checkpoint)")
        if "inv" in stages and cfg.inv.w_emb > 0:
            raise TrainingDataError(f"--dataset paired-h5 --stage inv: inv.w_emb = {cfg.inv.w_emb:g} asks for the "
                                    "appearance-embedding loss, whose net is trained on enrollment photos, which "
                                    "recordings do not have: --set inv.w_emb=0 (frames only: L1 + SSIM)")
        return
    bad = [s for s in stages if s not in REAL_DATA_STAGES]
    if bad:
        why = "; ".join(f"{s}: {_WHY_NOT.get(s, 'not a real-data stage')}" for s in bad)
        raise TrainingDataError(f"--dataset event-reid trains the stages {', '.join(REAL_DATA_STAGES)} only, not "
                         f"{', '.join(bad)} ({why}); train those on the world (--data)")
    if "joint" in stages and cfg.joint.minmax.enabled:
        raise TrainingDataError(f"joint.minmax (on in the {cfg.name!r} config) trains its attackers against reference frames "
                         "and enrollment photos, which real events do not have: --set joint.minmax.enabled=false "
                         "(or --config cpu)")


def _model_cfg_of(stem: Path) -> dict[str, Any]:
    from anonreid.models.checkpoint import read_sidecar

    return dict(read_sidecar(stem)["model_cfg"])


def _open_event_reid(src: EventReidSource, cfg: TrainConfig) -> TrainingData:
    from anonreid.events.event_reid_dataset import open_event_reid_dataset
    from anonreid.events.types import SensorSize

    rec = rec_checkpoint(src.rec)
    mcfg = _model_cfg_of(rec)
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


def _open_paired_h5(src: PairedH5Source, cfg: TrainConfig) -> TrainingData:
    from anonreid.events.paired_h5_dataset import VAL_FRACTION, open_paired_h5_dataset
    from anonreid.events.types import SensorSize

    sensor = SensorSize.parse(src.sensor) if src.sensor else None
    n_val = cfg.data.val_identities
    ds = open_paired_h5_dataset(src.root, src.time_unit, sensor, cfg.data.window_us, n_val)
    train_set, val_set = ds.split("train"), ds.split("val")
    min_hw = cfg.data.min_box_hw
    if ds.sensor.height < min_hw[0] or ds.sensor.width < min_hw[1]:
        raise TrainingDataError(f"--dataset paired-h5 --root {src.root}: the sensor {ds.sensor} is smaller than "
                                f"data.min_box_hw = {tuple(min_hw)} (h, w): no window would be used")
    for role, part in (("training", train_set), ("validation", val_set)):
        clips = sum(_clip_starts(ds.recordings[ds.segments[p.pass_id][0]].usable[slice(*ds.segments[p.pass_id][1:])],
                                 cfg.data.clip_len, cfg.data.clip_stride) for p in part.passes)
        if not clips:
            where = (f"the last {VAL_FRACTION:.0%} of each recording" if role == "validation" and not n_val
                     else f"the {role} recordings")
            raise TrainingDataError(
                f"--dataset paired-h5 --root {src.root}: no {role} clip: {where} holds no run of data.clip_len = "
                f"{cfg.data.clip_len} consecutive windows with a reference frame (longer recordings or more frames, "
                "a smaller data.clip_len, or data.val_identities=N to validate on N whole recordings)")
    ids = train_set.identities()
    log.info("paired HDF5 at %s: %d recordings (sensor %s, %s), validation on %s; E_rec against the frame at each "
             "window's end", src.root, len(ds.recordings), ds.sensor, ds.time_unit,
             f"{n_val} held-out recordings" if n_val else f"the last {VAL_FRACTION:.0%} of each recording")
    anonymizer = None
    if src.anonymizer is not None:
        anonymizer = anonymizer_checkpoint(src.anonymizer)
        mcfg = _model_cfg_of(anonymizer)
        if mcfg.get("family") != "anonymizer" or int(mcfg.get("in_bins") or 0) != cfg.data.num_bins:
            raise TrainingDataError(f"--anonymizer {anonymizer}.json: a {mcfg.get('family')} model {mcfg.get('name')!r} "
                                    f"with {mcfg.get('in_bins')} bins, not an anonymizer taking data.num_bins = "
                                    f"{cfg.data.num_bins}")
    return TrainingData(cfg, train_set, val_set, ids, val_set.identities(), ds.fingerprint, Path(src.root), None, None,
                        {"train": "train", "val": "val"}, anonymizer)


def _clip_starts(usable: Any, clip_len: int, stride: int) -> int:
    """How many clips :func:`anonreid.models.data.build_clips` can start in a pass with these usable windows."""
    return sum(1 for k in range(0, len(usable) - clip_len + 1, stride) if usable[k : k + clip_len].all())


def install_frozen(data: TrainingData, ckpt_dir: Path) -> None:
    """Copy a real-data run's frozen models into its ``checkpoints/``: the E_rec of Event-ReId training (the
    joint stage and evaluate load it), the anonymizer that paired-recording attacks train against."""
    for src, name in ((data.rec, "e_rec"), (data.anonymizer, "anonymizer")):
        if src is None:
            continue
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        for suffix in (".json", ".safetensors"):
            dst = ckpt_dir / f"{name}{suffix}"
            if src.with_suffix(suffix).resolve() != dst.resolve():
                shutil.copyfile(src.with_suffix(suffix), dst)


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
    model = None

    def rows(start: int, stop: int) -> np.ndarray:
        nonlocal model
        if model is None:
            model = load_checkpoint(rec, device=device).model.eval()
        x = torch.from_numpy(np.asarray(clips.voxels[start:stop], np.float32)).to(device)
        pred, _ = run_sequence(model, x)
        return (pred[:, :, 0].float().clamp(0, 1) * 255).round().byte().cpu().numpy()

    return per_clip_array(path, len(clips), rows, batch)
