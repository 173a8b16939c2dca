"""The checks that keep the privacy evaluation honest: the 3x attack-budget rule and the collapse checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from anonreid.models.budget import (
    AttackBudgetError,
    Budget,
    budget_report,
    check_attack_budget,
    trained_against,
)
from anonreid.models.checkpoint import save_checkpoint
from anonreid.models.config import load_train_config
from anonreid.models.evaluation.collapse import collapse_check, collapsed_attacks, output_spread
from anonreid.models.registry import create_model
from anonreid.models.train import Context
from anonreid.models.train_attacks import train_adaptive, train_identity, train_inversion

pytestmark = pytest.mark.usefixtures("one_torch_thread")

E_REC = Budget("e_rec", "reconstruction", 300, 8)  # 2400 clips
LIVE_REC = Budget("live_rec", "reconstruction", 200, 4, "e_rec", 2400)  # 3200 in all
LIVE_ID = Budget("live_identity", "identity", 200, 16)  # 3200 crops


# --------------------------------------------------------------------------------------------- budgets


def test_budget_rule_needs_three_times_the_largest_attacker_of_the_same_kind() -> None:
    against = [E_REC, LIVE_REC, LIVE_ID]
    check_attack_budget(Budget("e_rec_adaptive", "reconstruction", 1200, 8), against)  # 9600 = 3 x 3200
    with pytest.raises(AttackBudgetError) as err:
        check_attack_budget(Budget("e_rec_adaptive", "reconstruction", 1199, 8), against, knobs="adaptive.steps")
    msg = str(err.value)
    assert "'e_rec_adaptive'" in msg and "9592" in msg and "'live_rec'" in msg and ">= 9600" in msg
    assert "adaptive.steps" in msg
    # the identity kind is compared with the identity attacker only (a crop is not a clip)
    check_attack_budget(Budget("attack_id_voxel", "identity", 300, 32), against)
    with pytest.raises(AttackBudgetError, match="live_identity"):
        check_attack_budget(Budget("attack_id_voxel", "identity", 299, 32), against)
    # the post-hoc attack's own training counts, not the weights it starts from
    with pytest.raises(AttackBudgetError):
        check_attack_budget(Budget("e_rec_finetuned", "reconstruction", 900, 8, "e_rec", 2400), against)
    report = budget_report(Budget("e_inv", "reconstruction", 100, 8), against)
    assert report["ok"] is False and report["required"] == 9600 and report["against"] == "live_rec"


def test_budgets_of_an_anonymizer_come_from_its_metadata_or_its_config() -> None:
    meta = {"attackers_in_training": [b.as_dict() for b in (E_REC, LIVE_REC)]}
    assert trained_against(meta) == [E_REC, LIVE_REC]
    old = {"config": {"rec": {"steps": 300, "batch_size": 8}}}  # a checkpoint made before budgets were recorded
    assert trained_against(old) == [Budget("e_rec", "reconstruction", 300, 8)]
    with pytest.raises(ValueError, match="bad attacker budget record"):
        trained_against({"attackers_in_training": [{"name": "x"}]})


def test_attack_stages_refuse_a_budget_below_the_rule_before_training(tmp_path: Path) -> None:
    from test_models_train import synthetic_clips, synthetic_photos

    cfg = load_train_config("tiny")
    train = synthetic_clips()
    ctx = Context(cfg, tmp_path, train, synthetic_clips(seed=1), np.arange(4), "synthetic", torch.device("cpu"),
                  progress=False, photos=synthetic_photos(train, tuple(cfg.identity.crop_hw)))
    anonymizer = create_model("anonymizer_paper")
    big = [Budget("e_rec", "reconstruction", 1000, 8), Budget("live_identity", "identity", 1000, 16)]
    save_checkpoint(ctx.ckpt_dir / "anonymizer", anonymizer, {"attackers_in_training": [b.as_dict() for b in big]})
    save_checkpoint(ctx.ckpt_dir / "e_rec", create_model("firenet"), {})
    for run in (lambda: train_adaptive(ctx, "adaptive", anonymizer), lambda: train_adaptive(ctx, "finetune", anonymizer),
                lambda: train_inversion(ctx, anonymizer, create_model("firenet"), create_model("reid_resnet18", in_bins=1)),
                lambda: train_identity(ctx, anonymizer)):
        with pytest.raises(AttackBudgetError, match="3x"):
            run()
    assert sorted(p.name for p in ctx.ckpt_dir.iterdir()) == ["anonymizer.json", "anonymizer.safetensors",
                                                              "e_rec.json", "e_rec.safetensors"]
    assert not (tmp_path / "stages").exists()  # refused before any training started


def test_the_raw_event_reference_is_not_held_to_the_rule_and_resumes_on_its_own(tmp_path: Path) -> None:
    """Stage identity_raw (the direct identity attack on raw events, the no-privacy reference) trains with
    no anonymizer and no 3x rule, records its budget, and is its own stage for --resume: the identity
    attack's checkpoints do not make it look done (its name once mapped to stage identity's)."""
    from test_models_train import synthetic_clips, synthetic_photos

    from anonreid.models.checkpoint import read_sidecar
    from anonreid.models.config import stage_base, stage_section
    from anonreid.models.pipeline import _done

    cfg = load_train_config("tiny")
    train = synthetic_clips()
    ctx = Context(cfg, tmp_path, train, synthetic_clips(seed=1), np.arange(4), "synthetic", torch.device("cpu"),
                  progress=False, photos=synthetic_photos(train, tuple(cfg.identity.crop_hw)), resume=True)
    assert (stage_base("identity_raw"), stage_section("identity_raw")) == ("identity_raw", "identity")
    assert (stage_base("joint_a1_b0_g1"), stage_section("joint_a1_b0_g1")) == ("joint", "joint")
    for name in ("attack_id_voxel", "attack_id_photo"):  # the identity attack is done, its reference is not
        save_checkpoint(ctx.ckpt_dir / name, create_model("reid_resnet18", in_bins=1), {})
    assert _done(ctx, "identity") and not _done(ctx, "identity_raw")
    raw = train_identity(ctx, None)  # no anonymizer checkpoint in the run: the reference needs none
    meta = read_sidecar(ctx.ckpt_dir / "attack_id_raw_voxel")["metadata"]
    assert meta["stage"] == "identity_raw" and "budget_rule" not in meta
    assert meta["budget"]["samples"] == cfg.identity.steps * cfg.identity.p * cfg.identity.k
    assert _done(ctx, "identity_raw")
    # the same initialisation and the very same batches as the attack: through an anonymizer that passes
    # the voxels on unchanged, stage identity trains exactly the reference's towers
    passthrough = create_model("anonymizer_paper")
    passthrough.forward = lambda x: x  # type: ignore[method-assign]
    save_checkpoint(ctx.ckpt_dir / "anonymizer", passthrough, {"attackers_in_training": []})
    ctx.resume = False
    attack = train_identity(ctx, passthrough)
    for (name, a), b in zip(attack.state_dict().items(), raw.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("preset", ["tiny", "cpu", "minmax", "paper"])
def test_every_preset_gives_its_attacks_the_budget_the_rule_asks(preset: str, tmp_path: Path) -> None:
    """`anonreid train --config PRESET` runs every stage: none of its attacks may be refused by the 3x rule
    (the cpu preset's were, after an hour of training, until its inv and adaptive budgets were raised)."""
    from test_models_train import synthetic_clips, synthetic_photos

    from anonreid.models.train_attacks import ATTACK_STAGES, check_budgets_up_front

    cfg = load_train_config(preset)
    train = synthetic_clips(n_ids=cfg.identity.p + 2)  # P x K sampling is not capped by the identities
    ctx = Context(cfg, tmp_path, train, synthetic_clips(seed=1), np.arange(4), "synthetic", torch.device("cpu"),
                  progress=False, photos=synthetic_photos(train, tuple(cfg.identity.crop_hw)))
    check_budgets_up_front(ctx, ATTACK_STAGES, joint_pending=lambda: True)


def test_a_run_is_refused_before_its_first_stage_when_an_attack_would_be(tmp_path: Path, tiny_world: Path) -> None:
    """The rule is checked up front: a run whose adaptive attack is too small fails before E_rec trains."""
    from anonreid.models.pipeline import run_training

    cfg = load_train_config("tiny", ["adaptive.steps=1"])
    with pytest.raises(AttackBudgetError, match=r"adaptive\.steps or adaptive\.batch_size"):
        run_training(tiny_world, cfg, tmp_path / "run", ["rec", "reid", "joint", "adaptive"], progress=False)
    assert not (tmp_path / "run" / "stages").exists() and not list((tmp_path / "run" / "checkpoints").glob("*.json"))


# -------------------------------------------------------------------------------------------- collapse


def _frames(n: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.kron(rng.random((n, 2, 8, 6)), np.ones((4, 4)))  # (N, T, 32, 24) textured frames


def test_a_deliberately_collapsed_attacker_output_is_flagged() -> None:
    target = _frames()
    flat = np.full_like(target, target.mean()) + np.random.default_rng(1).normal(0, 0.005, target.shape)
    verdict = collapse_check("inversion", flat, target)
    assert verdict.collapsed and "under 10%" in verdict.reasons[0]
    assert verdict.spread is not None and verdict.target_spread is not None
    assert verdict.spread < 0.1 * verdict.target_spread
    # a blurred but structured reconstruction is weak, not collapsed
    structured = 0.5 * target + 0.25
    assert not collapse_check("adaptive", structured, target).collapsed
    # per-image means alone are no spread: a different flat grey per image is still collapsed
    per_image = np.broadcast_to(target.mean(axis=(-1, -2), keepdims=True), target.shape)
    assert output_spread(per_image) == pytest.approx(0.0) and collapse_check("x", per_image, target).collapsed


def test_an_attack_clearly_below_the_linear_inverse_is_flagged() -> None:
    linear = {"ssim": {"value": 0.40, "ci_low": 0.38, "ci_high": 0.42},
              "enrollment_rank1": {"value": 0.30, "ci_low": 0.2, "ci_high": 0.4}}
    weak = {"ssim": {"value": 0.30, "ci_low": 0.28, "ci_high": 0.33},
            "enrollment_rank1": {"value": 0.05, "ci_low": 0.0, "ci_high": 0.12}}
    verdict = collapse_check("inversion", scores=weak, linear_scores=linear)
    assert verdict.collapsed and verdict.below_linear == {"enrollment_rank1": True, "ssim": True}
    assert "linear-inverse floor" in verdict.reasons[0]
    # below on one metric only, or within the interval's reach, is not collapse
    mixed = {**weak, "enrollment_rank1": {"value": 0.35, "ci_low": 0.2, "ci_high": 0.5}}
    assert not collapse_check("inversion", scores=mixed, linear_scores=linear).collapsed
    overlapping = {"ssim": {"value": 0.38, "ci_low": 0.30, "ci_high": 0.45}}
    assert not collapse_check("inversion", scores=overlapping, linear_scores=linear).collapsed
    # two test identities: 1/2 against the floor's 2/2 is not clearly worse (the intervals overlap)
    small = {"enrollment_rank1": {"value": 0.5, "ci_low": 0.0013, "ci_high": 0.9987}}
    floor = {"enrollment_rank1": {"value": 1.0, "ci_low": 0.158, "ci_high": 1.0}}
    assert not collapse_check("identity", scores=small, linear_scores=floor).collapsed


def test_collapsed_attacks_of_a_result() -> None:
    res = {"attacks": {"inversion": {"collapse": {"collapsed": True, "reasons": ["flat"]}},
                       "adaptive": {"collapse": {"collapsed": False, "reasons": []}}, "anonymized": {}}}
    assert collapsed_attacks(res) == {"inversion": ["flat"]}
    assert collapsed_attacks({}) == {}
