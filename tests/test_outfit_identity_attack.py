"""Training on a world filmed on several days (``world.outfit_days``): the identity attackers (the
min-max stage's live one and stage ``identity``) match every clip to the enrollment photo of the outfit
it wears, the same-day threat, not to a photo of another day's outfit (issue #16)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from anonreid.events.world import WorldDataset
from anonreid.events.world.dataset import simulate_dataset
from anonreid.models.config import load_train_config
from anonreid.models.identity_attack import photo_crops
from anonreid.models.registry import create_model
from anonreid.models.sources import TrainingDataError
from anonreid.models.train import prepare_context
from anonreid.orchestration.config import WorldConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DAYS = 3


@pytest.fixture(scope="module")
def outfit_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = WorldConfig(identities=6, train_identities=3, pass_seconds=0.8, resolution="128x96", seed=0,
                      outfit_days=DAYS)
    return simulate_dataset(tmp_path_factory.mktemp("outfit-world") / "world", cfg, progress=False)


def _cfg(**identity: int):  # type: ignore[no-untyped-def]
    cfg = load_train_config("tiny")
    return cfg.model_copy(update={"identity": cfg.identity.model_copy(update=identity)})


def test_every_clip_is_matched_to_the_photo_of_its_own_day(outfit_world: Path, tmp_path: Path) -> None:
    ctx = prepare_context(outfit_world, _cfg(), tmp_path / "run", progress=False)
    ds, hw = WorldDataset(outfit_world), tuple(_cfg().identity.crop_hw)
    n = ctx.train.num_classes
    assert ctx.photos is not None and ctx.photos.shape[:2] == (n * DAYS, 1)
    for c, ident in enumerate(ctx.train.identities):
        for d in range(DAYS):
            assert torch.equal(ctx.photos[c * DAYS + d, 0], photo_crops([ds.enrollment(ident, d)], hw)[0])
    b = ctx.train.batch(np.arange(len(ctx.train)))
    days = ds.pass_days()[np.asarray(ctx.train.passes)]
    assert len(set(days.tolist())) > 1
    assert torch.equal(ctx.photo_labels(b), b.labels * DAYS + torch.from_numpy(days))

    # the min-max stage's live identity attacker learns those photo classes, and its budget counts people
    from anonreid.models.train_joint import train_joint

    jc = ctx.cfg.joint
    ctx.cfg = ctx.cfg.model_copy(update={"joint": jc.model_copy(update={
        "steps": 2, "minmax": jc.minmax.model_copy(update={"enabled": True, "snapshot_every": 1, "pool_size": 2})})})
    torch.manual_seed(0)
    models = train_joint(ctx, create_model("firenet").requires_grad_(False).eval(), None)
    assert models.pool is not None and models.pool.updates == 2
    assert models.pool.live_id.voxel.classifier.out_features == n * DAYS  # type: ignore[union-attr]
    assert models.pool.identities == n

    # so does stage identity_raw (stage identity's towers, steps and batches, on raw events)
    from anonreid.models.train_attacks import train_identity

    ctx.cfg = ctx.cfg.model_copy(update={"identity": ctx.cfg.identity.model_copy(update={"steps": 2})})
    towers = train_identity(ctx, None)
    assert towers.voxel.classifier.out_features == n * DAYS  # type: ignore[union-attr]


def test_a_world_filmed_on_one_day_keeps_identity_labels(tiny_world: Path, tmp_path: Path) -> None:
    ctx = prepare_context(tiny_world, _cfg(), tmp_path / "run", progress=False)
    b = ctx.train.batch(np.arange(8))
    assert ctx.clip_days is None and ctx.photos is not None and len(ctx.photos) == ctx.train.num_classes
    assert ctx.photo_labels(b) is b.labels
    unindexed = copy.copy(b)
    unindexed.index = None
    assert ctx.photo_labels(unindexed) is b.labels


@pytest.mark.parametrize("identity", [{"photo_days": 2}, {"enrollment_day": 1}])
def test_another_days_photos_in_an_outfit_world_are_refused_naming_the_keys(
        outfit_world: Path, tmp_path: Path, identity: dict[str, int]) -> None:
    with pytest.raises(TrainingDataError, match=r"identity\.enrollment_day .* identity\.photo_days"):
        prepare_context(outfit_world, _cfg(**identity), tmp_path / "run", progress=False)


def test_evaluation_scores_reid_across_outfits_on_a_world_filmed_on_several_days(
        outfit_world: Path, tiny_world: Path, tmp_path: Path) -> None:
    """Table 4 gains a cloth-changing row (ground-truth boxes, only another outfit of the person counts)
    on a test world filmed on several days, kept through results.json and written in results.md."""
    from types import SimpleNamespace

    from anonreid.models.evaluation.report import reid_lines
    from anonreid.models.evaluation.results import ReidTable
    from anonreid.models.evaluation.tables import reid_table
    from anonreid.models.evaluation.testset import open_test_set

    cfg = _cfg()
    test = open_test_set("world", outfit_world, None, cfg.data, tmp_path / "cache", 2, False)
    assert test.days is not None
    assert np.array_equal(test.days, WorldDataset(outfit_world).pass_days()[np.asarray(test.clips.passes)])
    assert open_test_set("world", tiny_world, None, cfg.data, tmp_path / "cache", 2, False).days is None

    torch.manual_seed(0)
    reid = create_model("reid_resnet18", in_bins=cfg.data.num_bins, embed_dim=16, num_classes=4, crop_hw=(32, 16)).eval()
    ctx = SimpleNamespace(test=test, models={"reid_raw": reid, "reid": reid}, crop_hw=(32, 16), seed=0,
                          anon_last=test.clips.voxels[:, -1], unredacted_last=None)
    table = reid_table(ctx, detection=False)  # type: ignore[arg-type]
    assert set(table.boxes) == {"gt", "cloth_changing"}
    market, changing = table.row("gt", "raw"), table.row("cloth_changing", "raw")
    assert market is not None and changing is not None and table.row("cloth_changing", "anonymized") is not None
    assert changing.num_queries == market.num_queries  # the same queries; fewer of them keep a match
    assert changing.num_queries_without_match >= market.num_queries_without_match
    assert changing.chance["rank1"] != market.chance["rank1"]
    again = ReidTable.from_json(table.to_json())
    assert again.row("cloth_changing", "raw") == changing
    lines = "\n".join(reid_lines(SimpleNamespace(reid=again), "test"))  # type: ignore[arg-type]
    assert "raw (ground-truth boxes, another outfit only)" in lines and "cloth-changing protocol" in lines
