"""The training configuration: one commented defaults tree (this file), YAML presets in
``models/configs/{tiny,cpu,minmax,paper}.yaml``, ``--set key.path=value`` overrides, then frozen.

Constructors never see this tree: :mod:`anonreid.models.train` translates it into plain arguments
(``create_model(name, **args)``, step counts, learning rates) at one place per stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from anonreid.orchestration.config import Section, load_config
from anonreid.orchestration.infra.timebase import DEFAULT_WINDOW_US

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
PRESETS = ("tiny", "cpu", "minmax", "paper")
#: training stages in run order: the anonymizer's (rec, reid, joint), then the attacks on the frozen
#: anonymizer (inv, adaptive, finetune, linear, identity; :mod:`anonreid.models.train_attacks`) and the
#: identity attack's no-privacy reference on raw events (identity_raw); last, and only when asked for,
#: E_reid again on the frozen anonymizer (reid_anon: a ReId from a wider world for an anonymizer whose
#: privacy evaluation must stay valid)
STAGES = ("rec", "reid", "joint", "inv", "adaptive", "finetune", "linear", "identity", "identity_raw", "reid_anon")
#: what ``anonreid train`` runs without ``--stage``
DEFAULT_STAGES = STAGES[: STAGES.index("reid_anon")]
#: stages trained with another stage's config section
_SECTION_OF = {"identity_raw": "identity", "reid_anon": "reid"}


def stage_base(stage: str) -> str:
    """The :data:`STAGES` entry of a stage name (an ablation's ``joint_<tag>`` -> ``joint``)."""
    return "joint" if stage.startswith("joint_") else stage


def stage_section(stage: str) -> str:
    """The config section a stage trains with (``identity_raw`` -> ``identity``, ``joint_<tag>`` -> ``joint``)."""
    base = stage_base(stage)
    return _SECTION_OF.get(base, base)


class DataCfg(Section):
    """How passes of the world become training samples (clips of consecutive windows)."""

    num_bins: int = Field(5, gt=1, description="voxel bins B")
    window_us: int = Field(DEFAULT_WINDOW_US, gt=0, description="window length; frame k of a pass covers window k")
    clip_len: int = Field(3, ge=1, description="consecutive windows per sample (recurrent E_rec unrolls over them)")
    clip_stride: int = Field(4, ge=1, description="start a clip every N windows (window subsampling)")
    max_clips_per_pass: int = Field(16, ge=1, description="at most this many clips per pass, evenly spaced")
    tile_hw: tuple[int, int] | None = Field(
        (128, 96), description="sensor-scale tile centred on the person for E_an/E_rec; null = full frame"
    )
    crop_hw: tuple[int, int] = Field((128, 64), description="ReId crop size (h, w), resized from the box")
    min_box_hw: tuple[int, int] = Field((16, 8), description="skip windows whose box is smaller than this")
    redact_head: float = Field(0.0, ge=0, le=1, description="head redaction (events/redaction.py): the top fraction "
                               "of each person box whose events are dropped before voxelising, as the camera does "
                               "with its detector's boxes; recorded in the anonymizer checkpoint so the camera "
                               "redacts alike; 0 = off")
    redact_margin: float = Field(0.1, ge=0, le=0.5, description="head redaction: the band widened by this fraction "
                                 "of the box's width on each side and of its height above and below")
    redact_jitter: float = Field(0.1, ge=0, lt=0.5, description="head redaction in clips: the world's boxes "
                                 "jittered like a detector's (models.data.jitter_boxes) before the band is cut, so the "
                                 "redaction is measured on imperfect boxes, never on the truth")
    redact_box_errors: str = Field("", description="head redaction in clips: an .npy of (N, 4) box-edge errors "
                                   "measured on a camera (anonreid bench redaction --save-errors); each window's box is "
                                   "the world's moved by one row drawn from it (models.data.resample_box_errors), "
                                   "instead of redact_jitter, so the clips face the camera's real boxes; '' = jitter")
    val_identities: int = Field(0, ge=0, description="train identities held out for validation (0: use the test split)")
    val_clips: int = Field(64, ge=4, description="clips in the fixed validation set")

    def cache_exclude(self) -> set[str]:
        """Fields left out of the keys of caches derived from clips: the redaction's when it is off, and
        its box-error file when none is given, so the caches of configs without them keep the keys they had
        before they existed (a given file's content is keyed by :func:`models.data.build_clips`)."""
        off = {"redact_head", "redact_margin", "redact_jitter", "redact_box_errors"} if self.redact_head == 0 else set()
        return off | ({"redact_box_errors"} if not self.redact_box_errors else set())


class OptimCfg(Section):
    steps: int = Field(100, ge=0, description="optimizer steps of this stage")
    lr: float = Field(1e-3, gt=0, description="peak learning rate (Adam), cosine decay after warm-up")
    warmup: int = Field(10, ge=0, description="linear warm-up steps")
    weight_decay: float = Field(0.0, ge=0, description="Adam(W) weight decay")


class RecCfg(OptimCfg):
    model: str = Field("firenet", description="reconstruction attacker: firenet | e2vid")
    model_args: dict[str, Any] = Field({}, description="extra builder arguments")
    batch_size: int = Field(8, ge=1, description="clips per batch")
    w_l1: float = Field(1.0, ge=0, description="L1 weight")
    w_ssim: float = Field(1.0, ge=0, description="(1 - SSIM) weight")
    w_tc: float = Field(0.5, ge=0, description="temporal-consistency weight")


class ReidCfg(OptimCfg):
    model: str = Field("reid_resnet18", description="reid_resnet18 | reid_resnet50")
    pretrained: str | None = Field(None, description="local torchvision ImageNet .pth (never downloaded)")
    embed_dim: int = Field(256, gt=0, description="BNNeck embedding size")
    p: int = Field(8, ge=2, description="identities per batch")
    k: int = Field(4, ge=2, description="samples per identity")
    smoothing: float = Field(0.1, ge=0, lt=1, description="label smoothing")
    margin: float = Field(0.3, gt=0, description="triplet margin")
    flip: bool = Field(True, description="random horizontal flips")
    flip_test: bool = Field(True, description="embed a crop as the mean of its and its mirror's features (flip "
                            "test-time augmentation); recorded in the checkpoint, so the camera, `anonreid evaluate` "
                            "and training's validation all embed alike")
    init: str = Field("", description="a ReId checkpoint (path with or without its suffix) to fine-tune instead of "
                      "starting afresh (stage reid) or from reid_raw (stages reid_anon and joint), e.g. the shipped "
                      "reid on new data; same architecture, and its classifier is kept only when the number of "
                      "training identities matches; empty = off")
    box_jitter: float = Field(0.0, ge=0, lt=0.5, description="ReId crops: each box's width and height scaled by up "
                              "to 1 +- this and its centre shifted by up to this fraction of its size, at random "
                              "(the camera crops the detector's boxes, not the ground truth); 0 = off")


class IdentityCfg(OptimCfg):
    """The direct identity attack: a voxel tower on anonymized crops and a photo tower on clean crops
    (enrollment photos, reference frames), trained contrastively to match (no reconstruction step).
    The architecture is shared by the post-hoc attack (stage ``identity``) and the live identity
    attacker of the min-max joint stage."""

    model: str = Field("reid_resnet18", description="tower backbone (reid_resnet18 | reid_resnet50)")
    embed_dim: int = Field(128, gt=0, description="embedding size of both towers")
    crop_hw: tuple[int, int] = Field((64, 32), description="person crops of both modalities resized to (h, w)")
    temperature: float = Field(0.1, gt=0, description="InfoNCE temperature (cosine logits / temperature)")
    p: int = Field(8, ge=2, description="identities per batch (post-hoc attack)")
    k: int = Field(4, ge=1, description="anonymized clips per identity (post-hoc attack)")
    enrollment_day: int = Field(
        0, ge=0, description="the enrollment photos every identity attack trains and is tested with (world only): "
        "0 = the day the cameras film (the same outfit: identification by clothing, the cue ReId itself uses); "
        "d >= 1 = another day (another outfit, the same body, gait, hair and face: identification by biometrics)")
    photo_days: int = Field(
        1, ge=1, description="enrollment photos per *training* identity, of days enrollment_day, enrollment_day + 1, "
        "...; each batch draws one of them (the test identities' photos stay of enrollment_day). More than one "
        "shows the attacker the same person in several outfits, so it learns the cues that survive a change of "
        "clothes: the clothing-invariant attacker that identification from another day's photo needs")


class MinmaxCfg(Section):
    """The min-max joint stage (``joint.minmax.enabled``): reconstruction and identity attackers are
    trained in the loop on E_an's detached output, snapshots of them kept in a pool, and E_an's
    privacy term is the worst score over the pool and the live attackers, relative to the floor
    (flat grey for reconstruction, chance for identity); see :mod:`anonreid.models.minmax`."""

    enabled: bool = Field(False, description="train E_an against attackers updated in the loop")
    attacker_steps: int = Field(1, ge=1, description="k: updates of each live attacker per E_an step")
    snapshot_every: int = Field(25, ge=1, description="N: copy the live attackers into the pool every N steps")
    pool_size: int = Field(4, ge=0, description="M: snapshots kept per attacker kind (oldest dropped)")
    rec_batch: int = Field(4, ge=1, description="clips per live reconstruction-attacker update")
    rec_lr: float = Field(1e-3, gt=0, description="live reconstruction attacker learning rate (Adam)")
    init_rec_from_raw: bool = Field(True, description="the live reconstruction attacker starts from E_rec")
    id_p: int = Field(8, ge=2, description="identities per live identity-attacker update")
    id_k: int = Field(2, ge=1, description="clips per identity per live identity-attacker update")
    id_lr: float = Field(3e-4, gt=0, description="live identity attacker learning rate (Adam)")
    id_weight: float = Field(1.0, ge=0, description="identity privacy score weight (relative to reconstruction)")
    face_weight: float = Field(0.0, ge=0, description="weight of the face region's reconstruction score beside the "
                                                      "person region's (the head box of each person box, as the "
                                                      "evaluation's face crops); 0 = person region only")
    face_id_weight: float = Field(0.0, ge=0, description="weight of the face-identity score: how much closer a "
                                                         "reconstruction's face embedding is to its own reference "
                                                         "face than to other people's, under the defender's face "
                                                         "net (checkpoints/face_guard, trained on the run's world "
                                                         "first; the attacker.face architecture); 0 = off")
    standardise: bool = Field(True, description="the pool's attackers see E_an's output with each channel given the "
                                                "raw voxels' batch mean and spread, so E_an cannot beat them with "
                                                "per-channel gains or offsets that saturate them")


class JointCfg(OptimCfg):
    anonymizer: str = Field("anonymizer_paper", description="anonymizer_paper | anonymizer_resunet | anonymizer_noisy")
    anonymizer_args: dict[str, Any] = Field({}, description="extra builder arguments")
    alpha: float = Field(1.0, ge=0, description="utility weight: alpha * (1 - SSIM(E_an(X), X))")
    beta: float = Field(1.0, ge=0, description="privacy weight: beta * SSIM(E_rec(E_an(X)), I), or with minmax "
                                                "beta * the pool's worst score over its floor (the frontier knob)")
    gamma: float = Field(1.0, ge=0, description="ReId weight: gamma * L_reid")
    reid_lr: float = Field(3.5e-4, gt=0, description="E_reid learning rate in the joint stage")
    init_reid_from_raw: bool = Field(True, description="start E_reid from the stage-2 raw-event model")
    init: str = Field("", description="an anonymizer checkpoint (path with or without its suffix) to fine-tune "
                      "instead of starting afresh, e.g. the shipped anonymizer on new sensors; the same "
                      "architecture and bins; empty = off")
    privacy_windows: int = Field(2, ge=1, description="last windows of each clip scored by the frozen attacker")
    privacy_clips: int = Field(0, ge=0, description="clips per batch scored by the attacker (0 = all; CPU: fewer)")
    minmax: MinmaxCfg = MinmaxCfg()


class InvCfg(OptimCfg):
    """E_inv, trained end to end through the frozen raw E_rec: loss on its frames and on the retrieval
    attacker's appearance embedding of the person crop."""

    model: str = Field("inversion_residual", description="inversion network (inversion_residual | inversion)")
    batch_size: int = Field(8, ge=1, description="clips per batch")
    w_l1: float = Field(1.0, ge=0, description="L1 of E_rec(E_inv(E_an X)) vs the reference frames")
    w_ssim: float = Field(1.0, ge=0, description="(1 - SSIM) of the same")
    w_emb: float = Field(1.0, ge=0, description="(1 - cosine) of the appearance embeddings of the person crops")
    region: Literal["person", "frame"] = Field(
        "person", description="where the frame loss (L1 and SSIM) is taken: person = each clip's box grown by 10 %, "
        "the region the evaluation scores; frame = the whole tile, whose static background made E_inv answer with "
        "flat grey (the 40th session's shipped E_inv, under the linear inverse)")
    init: Literal["linear", "identity"] = Field(
        "linear", description="what E_inv starts as (its residual head starts at zero): linear = the run's "
        "closed-form linear inverse (checkpoint e_lin, fitted first when the run has none), the floor it must "
        "beat; identity = E_an's output in the voxel range (the plain E_rec-on-anonymized attack)")


class LinearCfg(Section):
    """The closed-form linear inverse: a kernel x kernel x B neighbourhood of the anonymized voxel (in
    the voxel range) -> the raw voxel, least squares with a ridge, fitted on training clips."""

    kernel: int = Field(5, ge=1, description="odd neighbourhood size")
    clips: int = Field(256, ge=1, description="training clips fitted on (evenly spaced)")
    ridge: float = Field(1e-3, ge=0, description="ridge, relative to the mean diagonal of the normal matrix")

    @field_validator("kernel")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(f"kernel must be odd (a centred neighbourhood), got {v}")
        return v


class AttackerNetSection(Section):
    """One embedding net of the attacker of ``anonreid evaluate`` (and of the inversion stage's appearance
    loss), trained on reference-frame crops and enrollment photos of the training identities under
    ``RUN_DIR/attacker/``: the appearance ReId net on person crops, or the face net on face crops."""

    crop_hw: tuple[int, int] = Field((64, 32), description="crops resized to (h, w)")
    steps: int = Field(150, ge=1, description="training steps (`anonreid evaluate --attacker-steps` overrides)")
    model: str = Field("reid_resnet18", description="embedding backbone (reid_resnet18 | reid_resnet50)")
    embed_dim: int = Field(128, gt=0, description="embedding size")
    p: int = Field(8, ge=2, description="identities per batch")
    k: int = Field(4, ge=1, description="crops per identity")
    lr: float = Field(5e-4, gt=0, description="peak learning rate (AdamW), cosine decay after warm-up")
    warmup: int = Field(10, ge=0, description="linear warm-up steps")
    seed: int = Field(0, description="seeds its initialisation and batches")
    augment: bool = Field(True, description="contrast, brightness, blur and flips (photos -> reconstructions)")


class FaceNetSection(AttackerNetSection):
    """The face net: square face crops. Its own class, not ``AttackerNetSection(crop_hw=...)`` as the field's
    default, so that overriding one of its keys (``--set attacker.face.steps=N``) keeps the others' defaults."""

    crop_hw: tuple[int, int] = Field((32, 32), description="face crops resized to (h, w)")


class AttackerSection(Section):
    """The attacker's nets. A run whose config.yaml predates this section gets its preset's."""

    appearance: AttackerNetSection = AttackerNetSection()
    face: FaceNetSection = FaceNetSection()


class AblationCfg(Section):
    """Loss-weight settings trained by ``--ablation`` (Table 5 of the paper), as [alpha, beta, gamma]."""

    settings: list[tuple[float, float, float]] = Field(
        [(0.0, 0.0, 1.0), (0.0, 1.0, 1.0), (1.0, 1.0, 1.0)], description="(alpha, beta, gamma) per run"
    )
    steps: int | None = Field(None, description="joint steps per ablation run (null = joint.steps)")


class TrainConfig(Section):
    name: str = Field("custom", description="preset name (recorded in checkpoints)")
    seed: int = Field(0, description="seeds torch, numpy and every sampler")
    threads: int = Field(0, ge=0, description="torch.set_num_threads (0 = leave torch's default)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto = CUDA when present")
    amp: bool = Field(True, description="bfloat16 autocast on CUDA")
    log_every: int = Field(10, ge=1, description="progress/log line every N steps")
    eval_every: int = Field(100, ge=1, description="validation metrics every N steps (and at the end)")
    ckpt_every: int = Field(100, ge=1, description="resumable state every N steps (and at the end)")
    fp16_weights: bool = Field(False, description="store final weights as float16 (shipped defaults)")
    cache_frozen_anonymizer: bool = Field(
        True, description="stages on a frozen E_an's output of the last window (reid_anon, identity) compute it "
        "once per training clip and read it from the run's cache (float32, M x B x h x w: 2.8 GB for 9k clips "
        "of 160x96) instead of running E_an every step; false: every step"
    )
    data: DataCfg = DataCfg()
    rec: RecCfg = RecCfg()
    reid: ReidCfg = ReidCfg()
    joint: JointCfg = JointCfg()
    inv: InvCfg = InvCfg()
    adaptive: RecCfg = RecCfg()
    finetune: RecCfg = Field(RecCfg(), description="E_rec fine-tuned from the raw E_rec on anonymized events "
                                                   "(its model is the raw E_rec's; `model` is ignored)")
    linear: LinearCfg = LinearCfg()
    identity: IdentityCfg = IdentityCfg()
    attacker: AttackerSection = AttackerSection()
    ablation: AblationCfg = AblationCfg()


def load_train_config(preset_or_path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> TrainConfig:
    """A preset name (tiny/cpu/paper) or a YAML path, then ``key=value`` overrides; validated and frozen."""
    path = CONFIG_DIR / f"{preset_or_path}.yaml" if str(preset_or_path) in PRESETS else Path(preset_or_path)
    return load_config(path, overrides, TrainConfig, what="training config")

