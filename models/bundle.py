"""The models a camera node runs: ``load_model_bundle(run_dir=None) -> ModelBundle``.

Where the weights come from, in order:
  1. ``run_dir`` (a training run directory, or its ``checkpoints/`` folder): ``anonymizer`` and
     ``reid`` checkpoints of stage 3 (``anonreid train``). A run_dir without them is an error, never
     a silent fallback.
  2. the default set shipped with the package (``anonreid/models/weights/default/``, fp16, made by
     ``anonreid train --config cpu`` on the default world; its JSON records how to reproduce it).
  3. random-initialised networks (seeded, so every camera node gets the *same* random models and
     their embeddings stay comparable) with ``version == "random-init"``: the pipeline runs, the
     numbers mean nothing.

``version`` names the weights (preset, data fingerprint and a hash of the weight files); every
Sighting carries it so the gallery never mixes embeddings of different models.

The shipped set also carries the raw-event ReId baseline (``reid_raw``, stage 2) when the run had it,
so ``anonreid evaluate --run models/weights/default`` (or no ``--run``) compares raw and anonymized
ReId on a user's data: :func:`run_view` presents a shipped set as the run directory the evaluator reads.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from anonreid.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from anonreid.models.identity_attack import PHOTO_TOWER, RAW_PHOTO_TOWER, RAW_VOXEL_TOWER, VOXEL_TOWER
from anonreid.models.registry import ModelCfg, create_model, model_cfg

DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "weights" / "default"
RANDOM_VERSION = "random-init"
#: alignment (px) of the regions the camera anonymizes: a multiple of the anonymizer's total downsampling
#: (anonymizer_resunet / _noisy: 4, anonymizer_paper: 1) keeps a region's output equal to the full frame's;
#: 8 covers every registered anonymizer
DEFAULT_STRIDE = 8
#: the anonymizer checkpoint's metadata key that records the bundle's stride (``anonreid train`` writes it;
#: checkpoints written before it was recorded load with :data:`DEFAULT_STRIDE`)
STRIDE_KEY = "region_stride"
#: the anonymizer checkpoint's metadata key that records the head redaction its input had in training
#: (``{"head": fraction, "margin": fraction}``, events/redaction.py); the camera redacts alike. Absent: none
REDACTION_KEY = "head_redaction"


@dataclass
class ModelBundle:
    anonymizer: nn.Module  # (N, B, H, W) voxel -> anonymized voxel, eval mode
    reid: nn.Module  # (N, B, h, w) anonymized crops -> (N, embed_dim) L2-normalised, eval mode
    version: str
    crop_hw: tuple[int, int]
    num_bins: int = 5
    embed_dim: int = 256
    metadata: dict[str, Any] = field(default_factory=dict)
    #: alignment (px) of the regions the camera anonymizes (:data:`DEFAULT_STRIDE`); recorded in the
    #: anonymizer checkpoint's metadata (:data:`STRIDE_KEY`)
    stride: int = DEFAULT_STRIDE
    #: ``(head, margin)`` of the head redaction the anonymizer was trained behind (:data:`REDACTION_KEY`):
    #: the camera drops the events in each person's head band before voxelising; None: no redaction
    redaction: tuple[float, float] | None = None


def _checkpoint_dir(run_dir: Path) -> Path | None:
    for candidate in (run_dir / "checkpoints", run_dir):
        if (candidate / "anonymizer.json").exists() and (candidate / "reid.json").exists():
            return candidate
    return None


def _stride(path: Path, metadata: dict[str, Any]) -> int:
    """The stride an anonymizer checkpoint records, :data:`DEFAULT_STRIDE` when it records none."""
    stride = metadata.get(STRIDE_KEY, DEFAULT_STRIDE)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise CheckpointError(f"{path}.json: metadata.{STRIDE_KEY} must be a positive integer, got {stride!r}")
    return stride


def _redaction(path: Path, metadata: dict[str, Any]) -> tuple[float, float] | None:
    """The ``(head, margin)`` an anonymizer checkpoint records under :data:`REDACTION_KEY`, None when absent."""
    spec = metadata.get(REDACTION_KEY)
    if spec is None:
        return None
    try:
        head, margin = float(spec["head"]), float(spec["margin"])
    except (TypeError, KeyError, ValueError) as err:
        raise CheckpointError(f"{path}.json: metadata.{REDACTION_KEY} must be {{head: float, margin: float}}, "
                              f"got {spec!r}") from err
    if not (0 < head <= 1 and 0 <= margin <= 0.5):
        raise CheckpointError(f"{path}.json: metadata.{REDACTION_KEY} needs 0 < head <= 1 and 0 <= margin <= 0.5, "
                              f"got head {head}, margin {margin}")
    return head, margin


def _version(ckpt_dir: Path, metadata: dict[str, Any], *cfgs: ModelCfg) -> str:
    """Names the embedding a bundle produces: its weights and the builder arguments that change what they
    compute (flip test-time augmentation), so a gallery never mixes the embeddings of two of them."""
    h = hashlib.sha256()
    for name in ("anonymizer", "reid"):
        h.update((ckpt_dir / f"{name}.safetensors").read_bytes())
    for cfg in cfgs:
        h.update(json.dumps(cfg.to_json(), sort_keys=True).encode())
    preset = metadata.get("preset", "custom")
    return f"{preset}-{metadata.get('data_fingerprint', 'unknown')[:8]}-{h.hexdigest()[:8]}"


def load_model_bundle(
    run_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
    anonymizer: str = "anonymizer_paper",
    reid: str = "reid_resnet18",
) -> ModelBundle:
    """Trained models from ``run_dir`` or the shipped defaults, else seeded random ones (see module doc).

    ``anonymizer`` / ``reid`` name the architectures used only for the random-init fallback.
    """
    ckpt_dir: Path | None
    if run_dir is not None:
        ckpt_dir = _checkpoint_dir(Path(run_dir))
        if ckpt_dir is None:
            raise FileNotFoundError(
                f"{run_dir}: no anonymizer/reid checkpoints (expected checkpoints/anonymizer.json and reid.json; "
                "run `anonreid train` through the joint stage)"
            )
    else:
        ckpt_dir = _checkpoint_dir(DEFAULT_WEIGHTS) if DEFAULT_WEIGHTS.exists() else None
    if ckpt_dir is not None:
        an = load_checkpoint(ckpt_dir / "anonymizer", device=device)
        re = load_checkpoint(ckpt_dir / "reid", device=device)
        if an.cfg.in_bins != re.cfg.in_bins:
            raise ValueError(f"{ckpt_dir}: anonymizer takes {an.cfg.in_bins} bins but reid {re.cfg.in_bins}")
        crop_hw = re.cfg.input_hw or (128, 64)
        return ModelBundle(
            an.model, re.model, _version(ckpt_dir, re.metadata, an.cfg, re.cfg), (int(crop_hw[0]), int(crop_hw[1])),
            an.cfg.in_bins, int(re.cfg.embed_dim or 256), {"anonymizer": an.metadata, "reid": re.metadata},
            stride=_stride(ckpt_dir / "anonymizer", an.metadata),
            redaction=_redaction(ckpt_dir / "anonymizer", an.metadata),
        )
    return random_model_bundle(anonymizer, reid, device)


def random_model_bundle(
    anonymizer: str = "anonymizer_paper", reid: str = "reid_resnet18", device: str | torch.device = "cpu"
) -> ModelBundle:
    """Seeded random-initialised networks of the named architectures (the same on every call).

    The fallback of :func:`load_model_bundle`, and what ``anonreid bench camera --architectures`` times:
    throughput depends on the architectures' shapes, not on the weights' values. The version names the
    architectures unless they are the default pair (``random-init``).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        an_model = create_model(anonymizer).to(device).eval()
        reid_model = create_model(reid).to(device).eval()
    crop = model_cfg(reid_model).input_hw or (128, 64)
    default = (anonymizer, reid) == ("anonymizer_paper", "reid_resnet18")
    version = RANDOM_VERSION if default else f"{RANDOM_VERSION}-{anonymizer}-{reid}"
    return ModelBundle(an_model, reid_model, version, (int(crop[0]), int(crop[1])),
                       model_cfg(an_model).in_bins, int(model_cfg(reid_model).embed_dim or 256))


#: the adversary's networks shipped beside the cameras' models when the run has them (relative to the
#: run's checkpoint directory, or to the run directory for ``attacker/``): the reconstruction attacker,
#: the inversion net, the adaptive attacker and the retrieval attacker's appearance net
ATTACKER_WEIGHTS = ("e_rec", "e_inv", "e_rec_adaptive", "attacker/appearance")
#: the stronger post-hoc attacks (stages finetune, linear, identity of ``anonreid train``, and identity_raw:
#: the identity attack's positive control), shipped when the run trained them, so that the adversary node
#: runs the suite's strongest attacks on the shipped set too
STRONG_ATTACK_WEIGHTS = ("e_rec_finetuned", "e_lin", VOXEL_TOWER, PHOTO_TOWER, RAW_VOXEL_TOWER, RAW_PHOTO_TOWER)
#: shipped beside them when the run has it: the raw-event ReId baseline, for raw vs anonymized ReId
BASELINE_WEIGHTS = ("reid_raw",)


def ship_default_weights(run_dir: str | Path, dest: str | Path = DEFAULT_WEIGHTS) -> list[Path]:
    """Copy a run's anonymizer + reid, the raw-event ReId baseline and the attacker networks it has,
    into ``dest`` as float16 (the package's default set, read by the cameras, the adversary node and
    ``anonreid evaluate``).

    The metadata keeps the run's config, data fingerprint, metrics and command, plus a ``reproduce``
    line, so the shipped weights say how to make them again.
    """
    run = Path(run_dir)
    ckpt_dir = _checkpoint_dir(run)
    if ckpt_dir is None:
        raise FileNotFoundError(f"{run_dir}: no anonymizer/reid checkpoints to ship")
    dest = Path(dest)
    sources = {name: ckpt_dir / name for name in ("anonymizer", "reid")}
    for name in (*BASELINE_WEIGHTS, *ATTACKER_WEIGHTS, *STRONG_ATTACK_WEIGHTS):
        src = (run if name.startswith("attacker/") else ckpt_dir) / name
        if src.with_suffix(".json").exists():
            sources[name] = src
    return [ship_checkpoint(run, src, dest / name) for name, src in sources.items()]


def ship_checkpoint(run: Path, src: Path, dest: Path, note: str = "") -> Path:
    """One checkpoint of ``run`` (``src``, without suffix) stored at ``dest`` as float16, its metadata
    with the ``reproduce`` line, the run it was shipped from and ``note`` (when given)."""
    loaded = load_checkpoint(src)
    meta = dict(loaded.metadata) | ({"note": note} if note else {})
    meta["reproduce"] = reproduce_line(run, meta)
    meta["shipped_from"] = str(run.resolve())
    return save_checkpoint(dest, loaded.model, meta, fp16=True)


def reproduce_line(run: Path, meta: dict[str, Any]) -> str:
    """How to make a run's weights again: the world it trained on (``anonreid simulate`` with every
    setting of the run's ``world.json`` that differs from the defaults) and its training command, with
    the paths as WORLD and RUN."""
    import contextlib
    import json
    import shlex

    from anonreid.orchestration.config import WorldConfig

    simulate = ["anonreid", "simulate", "--out", "WORLD"]
    given = shlex.split(meta.get("command") or f"anonreid train --data WORLD --config {meta.get('preset', 'cpu')}")
    # the world of the command that trained this checkpoint, else env.json's: the run's last command's (a
    # run may train its stages on several worlds)
    worlds = [Path(given[i + 1]) for i, arg in enumerate(given[:-1]) if arg == "--data"]
    with contextlib.suppress(OSError, KeyError, TypeError, ValueError):
        worlds.append(Path(json.loads((run / "env.json").read_text())["data_dir"]))
    world = None  # the world is gone, or the run trained on real events: the fingerprint names the data
    for data_dir in worlds:
        try:
            world = json.loads((data_dir / "world.json").read_text())["config"]
            break
        except (OSError, KeyError, TypeError, ValueError):
            continue
    if world is not None:
        defaults = WorldConfig().model_dump(mode="json")
        for key, value in world.items():
            nested = value.items() if isinstance(value, dict) else [(None, value)]
            for sub, v in nested:
                default = defaults.get(key, {}).get(sub) if sub is not None else defaults.get(key)
                if v != default:
                    simulate += ["--set", f"world.{key}{'.' + sub if sub else ''}={json.dumps(v)}"]
    train: list[str] = []
    paths = {"--data": "WORLD", "--out": "RUN", "--root": "ROOT"}
    it = iter(given)
    for arg in it:  # every stage of the run, in one command: its --stage and --resume go
        if arg == "--stage":
            next(it, None)
        elif arg != "--resume":
            train += [arg, paths[arg]] if arg in paths and next(it, None) is not None else [arg]
    return (f"{shlex.join(simulate) if world is not None else 'anonreid simulate --out WORLD'} && {shlex.join(train)} "
            f"(world fingerprint {meta.get('data_fingerprint')})")


def run_view(path: str | Path | None, work: str | Path) -> Path:
    """The training run directory ``anonreid evaluate`` reads for ``path``: ``path`` itself when it is
    one (it has ``config.yaml``); for a shipped set (``None``: the package's default) a view of it
    made under ``work``: ``config.yaml`` from the checkpoints' metadata (the run's resolved config)
    and ``checkpoints/`` + ``attacker/`` linking to the shipped files (whatever the evaluator trains
    or caches goes into the view, never into the shipped set)."""
    import yaml

    src = Path(path) if path is not None else DEFAULT_WEIGHTS
    if (src / "config.yaml").is_file():
        return src
    ckpt = _checkpoint_dir(src)
    if ckpt is None:
        raise FileNotFoundError(
            f"{src}: neither a training run (no config.yaml) nor a shipped model set (no anonymizer.json and "
            "reid.json); give a run directory of `anonreid train` or models/weights/default"
        )
    from anonreid.models.checkpoint import read_sidecar

    config = read_sidecar(ckpt / "reid")["metadata"].get("config")
    if not isinstance(config, dict):
        raise FileNotFoundError(f"{ckpt}/reid.json: records no training config to evaluate it with")
    view = Path(work) / "shipped-run"
    for sub in ("checkpoints", "attacker"):
        (view / sub).mkdir(parents=True, exist_ok=True)
    (view / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (view / "source.txt").write_text(f"{src.resolve()}\n")
    for sub, folder in (("checkpoints", ckpt), ("attacker", ckpt / "attacker")):
        for file in sorted(folder.glob("*.json")) + sorted(folder.glob("*.safetensors")):
            link = view / sub / file.name
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(file.resolve())
    return view
