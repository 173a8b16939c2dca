"""The training engine and the sign of every loss term, on small in-memory clip sets.

The clip sets here are built from smooth random frames and voxels derived from their temporal
changes (so an attacker can learn something); the end-to-end run on the real simulated world is in
tests/test_models_world.py.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from anonreid.models.config import load_train_config
from anonreid.models.data import ClipSet, pk_index
from anonreid.models.engine import seed_everything
from anonreid.models.reconstruction import run_sequence
from anonreid.models.registry import create_model
from anonreid.models.reid import ReidOutput, reid_loss
from anonreid.models.train import Context, train_reconstruction, train_reid
from anonreid.models.train_joint import JointModels, joint_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def synthetic_clips(n_ids: int = 6, per_id: int = 4, length: int = 2, hw: tuple[int, int] = (48, 32), seed: int = 0) -> ClipSet:
    rng = np.random.default_rng(seed)
    h, w = hw
    m = n_ids * per_id
    base = rng.random((n_ids, 1, h // 8, w // 8))
    frames = np.zeros((m, length, h, w), np.float32)
    for i in range(m):
        img = np.kron(base[i // per_id, 0], np.ones((8, 8)))
        for t in range(length):
            frames[i, t] = np.roll(img, shift=t + i % 3, axis=1) * 0.8 + 0.1
    diff = np.diff(np.log(frames + 0.05), axis=1, prepend=np.log(frames[:, :1] + 0.05) - 0.05)
    voxels = np.repeat(diff[:, :, None], 5, axis=2) * np.linspace(0.5, 1.5, 5)[None, None, :, None, None]
    voxels = (voxels - voxels.mean()) / voxels.std()
    boxes = np.tile(np.array([[w * 0.25, h * 0.1, w * 0.75, h * 0.9]], np.float32), (m, 1))
    return ClipSet(
        voxels=voxels.astype(np.float16),
        frames=(frames * 255).astype(np.uint8),
        boxes=boxes,
        labels=np.repeat(np.arange(n_ids), per_id),
        cameras=np.tile(np.arange(per_id), n_ids),
        passes=np.arange(m),
        identities=[f"{i:03d}" for i in range(n_ids)],
    )


def synthetic_photos(clips: ClipSet, hw: tuple[int, int]) -> torch.Tensor:
    """One "enrollment photo" per identity ``(C, 1 day, 1, h, w)``: the person crop of its first clip's last
    reference frame."""
    from anonreid.models.data import crop_boxes

    first = [int(np.flatnonzero(clips.labels == c)[0]) for c in range(clips.num_classes)]
    frames = torch.from_numpy(clips.frames[first, -1:].astype(np.float32) / 255.0)
    return crop_boxes(frames, torch.from_numpy(clips.boxes[first]), hw)[:, None]


@pytest.fixture
def ctx(tmp_path: Path) -> Context:
    cfg = load_train_config("tiny")
    train, val = synthetic_clips(), synthetic_clips(seed=1)
    return Context(cfg, tmp_path, train, val, np.arange(len(val)), "synthetic", torch.device("cpu"), progress=False,
                   photos=synthetic_photos(train, tuple(cfg.identity.crop_hw)))


def test_box_jitter_moves_and_scales_boxes_within_the_grid_and_zero_leaves_them() -> None:
    """The ReId crops' box jitter (``reid.box_jitter``): 0 returns the very boxes (the default: training
    unchanged); otherwise each box's size changes by at most the fraction and its centre moves by at most
    that fraction of its size, reproducibly from the rng, and every box stays on the grid, 2+ px wide."""
    from anonreid.models.data import jitter_boxes

    boxes = torch.tensor([[10.0, 20.0, 50.0, 120.0], [0.0, 0.0, 30.0, 40.0], [70.0, 100.0, 96.0, 160.0]])
    assert jitter_boxes(boxes, 0.0, np.random.default_rng(0), (160, 96)) is boxes
    a = jitter_boxes(boxes, 0.15, np.random.default_rng(1), (160, 96))
    assert torch.equal(a, jitter_boxes(boxes, 0.15, np.random.default_rng(1), (160, 96)))
    assert not torch.equal(a, boxes) and a.dtype == boxes.dtype
    assert (a[:, 0] >= 0).all() and (a[:, 1] >= 0).all() and (a[:, 2] <= 96).all() and (a[:, 3] <= 160).all()
    assert ((a[:, 2] - a[:, 0]) >= 2).all() and ((a[:, 3] - a[:, 1]) >= 2).all()
    size, centre = boxes[:, 2:] - boxes[:, :2], (boxes[:, :2] + boxes[:, 2:]) / 2
    inside = (boxes[:, 0] > 8) & (boxes[:, 2] < 88)  # the first box: nowhere near an edge, so not clipped
    moved = ((a[:, :2] + a[:, 2:]) / 2 - centre).abs() / size
    scaled = (a[:, 2:] - a[:, :2]) / size
    assert (moved[inside] <= 0.15 + 1e-6).all() and ((scaled[inside] - 1).abs() <= 0.15 + 1e-6).all()


def test_stage_writes_checkpoint_logs_plot_and_is_deterministic(ctx: Context, tmp_path: Path) -> None:
    rec = train_reconstruction(ctx, "rec")
    assert (tmp_path / "checkpoints" / "e_rec.safetensors").exists()
    meta = json.loads((tmp_path / "checkpoints" / "e_rec.json").read_text())["metadata"]
    assert meta["seed"] == 0 and meta["data_fingerprint"] == "synthetic" and "val_ssim" in meta["metrics"]
    stage = tmp_path / "stages" / "rec"
    assert (stage / "loss.png").stat().st_size > 1000
    lines = (stage / "log.jsonl").read_text().splitlines()
    assert len(lines) == ctx.cfg.rec.steps
    again = train_reconstruction(ctx, "rec")  # same seed, no resume: retrained from scratch
    assert all(torch.equal(a, b) for a, b in zip(rec.state_dict().values(), again.state_dict().values(), strict=True))


def test_resume_continues_with_the_same_batches(ctx: Context, tmp_path: Path) -> None:
    ctx.cfg = ctx.cfg.model_copy(update={"rec": ctx.cfg.rec.model_copy(update={"steps": 4})})
    full = train_reconstruction(ctx, "rec")
    half_cfg = ctx.cfg.model_copy(update={"rec": ctx.cfg.rec.model_copy(update={"steps": 2})})
    ctx.cfg = half_cfg
    train_reconstruction(ctx, "rec")
    ctx.cfg = ctx.cfg.model_copy(update={"rec": ctx.cfg.rec.model_copy(update={"steps": 4})})
    ctx.resume = True
    resumed = train_reconstruction(ctx, "rec")
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)
    assert len((tmp_path / "stages" / "rec" / "log.jsonl").read_text().splitlines()) == 4


def _reid_loss_of(model: torch.nn.Module, crops: torch.Tensor, labels: torch.Tensor) -> float:
    """The ReId loss of ``model`` on fixed crops (train mode, a fixed seed, no gradient)."""
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        out = model(crops)
    assert isinstance(out, ReidOutput)
    return float(reid_loss(out, labels)[0])


def test_stage2_lowers_the_reid_loss(ctx: Context) -> None:
    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"steps": 0})})
    seed_everything(0)
    batch = ctx.train.batch(pk_index(np.random.default_rng(5), ctx.train.labels, 4, 2))
    from anonreid.models.data import crop_boxes

    crops = crop_boxes(batch.voxels[:, -1], batch.boxes, tuple(ctx.cfg.data.crop_hw))

    untrained = train_reid(ctx)
    before = _reid_loss_of(untrained, crops, batch.labels)
    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"steps": 40, "lr": 1e-3})})
    trained = train_reid(ctx)
    assert _reid_loss_of(trained, crops, batch.labels) < before


def test_reid_anon_trains_a_reid_on_the_frozen_anonymizer_and_leaves_it_untouched(ctx: Context, tmp_path: Path) -> None:
    """Stage reid_anon: E_reid alone, on the output of the run's anonymizer, which is neither trained nor
    rewritten (its privacy numbers still hold); --resume knows the joint stage's E_reid from its own."""
    from anonreid.models.checkpoint import read_sidecar
    from anonreid.models.config import DEFAULT_STAGES, STAGES
    from anonreid.models.data import crop_boxes
    from anonreid.models.pipeline import _done

    assert "reid_anon" in STAGES and "reid_anon" not in DEFAULT_STAGES  # only when asked for
    torch.manual_seed(0)
    anonymizer = create_model(ctx.cfg.joint.anonymizer, in_bins=ctx.cfg.data.num_bins, **ctx.cfg.joint.anonymizer_args)
    ctx.save(ctx.ckpt_dir / "anonymizer", anonymizer, {"stage": "joint"})
    ctx.save(ctx.ckpt_dir / "reid", train_reid(ctx), {"stage": "joint"})  # as the joint stage leaves it
    ctx.resume = True
    assert not _done(ctx, "reid_anon")
    before = {k: v.clone() for k, v in anonymizer.state_dict().items()}
    saved = (ctx.ckpt_dir / "anonymizer.safetensors").read_bytes()
    batch = ctx.train.batch(pk_index(np.random.default_rng(5), ctx.train.labels, 4, 2))
    with torch.no_grad():
        crops = crop_boxes(anonymizer.eval()(batch.voxels[:, -1]), batch.boxes, tuple(ctx.cfg.data.crop_hw))

    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"steps": 0})})
    untrained = _reid_loss_of(train_reid(ctx, ctx.load("anonymizer")), crops, batch.labels)
    shutil.rmtree(ctx.run_dir / "stages" / "reid_anon")
    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"steps": 40, "lr": 1e-3})})
    trained = train_reid(ctx, anonymizer)
    assert _reid_loss_of(trained, crops, batch.labels) < untrained
    assert all(torch.equal(v, anonymizer.state_dict()[k]) for k, v in before.items())
    assert (ctx.ckpt_dir / "anonymizer.safetensors").read_bytes() == saved
    meta = read_sidecar(ctx.ckpt_dir / "reid")["metadata"]
    assert meta["stage"] == "reid_anon" and "frozen" in meta["trained_on"]
    assert _done(ctx, "reid_anon")


def test_a_frozen_anonymizer_runs_once_per_clip_and_gives_what_it_gives_per_step(ctx: Context) -> None:
    """``cache_frozen_anonymizer``: a stage on a frozen E_an reads its output on each training clip from the
    run's cache, computed once, equal to running E_an on the batch; another anonymizer gets its own cache;
    an altered (flipped) batch is refused; and reid_anon trains the same with the cache as without it."""
    import json

    from anonreid.models.train import flip_clips

    def anonymizer(seed: int) -> torch.nn.Module:
        torch.manual_seed(seed)
        return create_model(ctx.cfg.joint.anonymizer, in_bins=ctx.cfg.data.num_bins, **ctx.cfg.joint.anonymizer_args).eval()

    an, other = anonymizer(0), anonymizer(1)
    batch = ctx.train.batch(pk_index(np.random.default_rng(5), ctx.train.labels, 4, 2))
    with torch.no_grad():
        direct = an(batch.voxels[:, -1])
    assert ctx.cfg.cache_frozen_anonymizer  # the default
    assert torch.allclose(ctx.frozen_input(an)(batch), direct, atol=1e-6)
    cached = sorted((ctx.run_dir / "cache" / "anonymized").glob("*.npy"))
    assert len(cached) == 1 and np.load(cached[0]).shape == (len(ctx.train), *direct.shape[1:])
    written = cached[0].stat().st_mtime_ns
    assert torch.allclose(ctx.frozen_input(an)(batch), direct, atol=1e-6)
    assert cached[0].stat().st_mtime_ns == written  # read, not computed again
    with torch.no_grad():
        assert torch.allclose(ctx.frozen_input(other)(batch), other(batch.voxels[:, -1]), atol=1e-6)
    assert len(list((ctx.run_dir / "cache" / "anonymized").glob("*.npy"))) == 2
    with pytest.raises(ValueError, match="not plain rows"):
        ctx.frozen_input(an)(flip_clips(batch, torch.ones(len(batch.labels), dtype=torch.bool)))

    def reid_anon_losses(cache: bool) -> list[float]:
        ctx.cfg = ctx.cfg.model_copy(update={"cache_frozen_anonymizer": cache,
                                             "reid": ctx.cfg.reid.model_copy(update={"steps": 6, "lr": 1e-3})})
        shutil.rmtree(ctx.run_dir / "stages" / "reid_anon", ignore_errors=True)
        train_reid(ctx, an)
        log = (ctx.run_dir / "stages" / "reid_anon" / "log.jsonl").read_text().splitlines()
        return [json.loads(line)["loss"] for line in log]

    without = reid_anon_losses(False)
    assert len(without) == 6 and np.allclose(reid_anon_losses(True), without, rtol=1e-4, atol=1e-5)


def test_a_per_clip_cache_cut_mid_way_leaves_nothing_to_read(tmp_path: Path) -> None:
    """``per_clip_array`` (the frozen anonymizer's output, the pseudo-reference): a computation that fails
    half-way leaves neither the array nor its partial file, and the next call computes it whole."""
    from anonreid.models.data import per_clip_array

    path = tmp_path / "cache" / "x.npy"
    calls: list[int] = []

    def rows(start: int, stop: int) -> np.ndarray:
        calls.append(start)
        if start >= 4 and len(calls) < 4:
            raise RuntimeError("cut")
        return np.arange(start, stop, dtype=np.uint8)[:, None].repeat(3, axis=1)

    with pytest.raises(RuntimeError, match="cut"):
        per_clip_array(path, 10, rows, batch=4)
    assert list(path.parent.iterdir()) == []
    got = per_clip_array(path, 10, rows, batch=4)
    assert got.dtype == np.uint8 and np.array_equal(got[:, 0], np.arange(10)) and got.shape == (10, 3)
    calls.clear()
    assert np.array_equal(per_clip_array(path, 10, rows, batch=4), got) and calls == []  # read, not computed


def test_reid_init_fine_tunes_a_given_checkpoint_and_refuses_another_architecture(ctx: Context, tmp_path: Path) -> None:
    """``reid.init``: the stage starts from the given checkpoint's weights (a new classifier when the
    number of training identities differs, the trunk and the BNNeck kept), and a checkpoint of another
    architecture is an error naming the file and what differs."""
    from anonreid.models.checkpoint import save_checkpoint

    torch.manual_seed(3)
    other = create_model(ctx.cfg.reid.model, in_bins=ctx.cfg.data.num_bins, embed_dim=ctx.cfg.reid.embed_dim,
                         num_classes=ctx.train.num_classes + 5, crop_hw=ctx.crop_hw)
    save_checkpoint(tmp_path / "given", other, {"stage": "reid"})
    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"steps": 0, "init": str(tmp_path / "given")})})
    started = train_reid(ctx)
    given, got = other.state_dict(), started.state_dict()
    assert got["classifier.weight"].shape[0] == ctx.train.num_classes  # a new head for this world's people
    assert all(torch.equal(v, got[k]) for k, v in given.items() if k != "classifier.weight")
    assert started.cfg.kwargs()["flip_test"] is ctx.cfg.reid.flip_test is True  # the run's setting, not the file's

    shutil.rmtree(ctx.run_dir / "stages" / "reid")
    narrow = create_model(ctx.cfg.reid.model, in_bins=ctx.cfg.data.num_bins, embed_dim=ctx.cfg.reid.embed_dim // 2,
                          num_classes=ctx.train.num_classes, crop_hw=ctx.crop_hw)
    save_checkpoint(tmp_path / "narrow", narrow, {"stage": "reid"})
    ctx.cfg = ctx.cfg.model_copy(update={"reid": ctx.cfg.reid.model_copy(update={"init": str(tmp_path / "narrow")})})
    with pytest.raises(ValueError, match=r"reid.init: .*narrow.*embed_dim"):
        train_reid(ctx)


def test_joint_and_reid_anon_start_from_a_raw_reid_of_other_people(
    ctx: Context, fitted_attacker: torch.nn.Module
) -> None:
    """``joint.init_reid_from_raw`` with a raw ReId trained on another number of people (a wider world's
    baseline beside an anonymizer trained on a few): both the joint stage and reid_anon take its trunk and
    BNNeck and give this run's people a fresh classifier, instead of failing on the classifier's shape."""
    from anonreid.models.train_joint import train_joint

    torch.manual_seed(5)
    wider = create_model(ctx.cfg.reid.model, in_bins=ctx.cfg.data.num_bins, embed_dim=ctx.cfg.reid.embed_dim,
                         num_classes=ctx.train.num_classes + 7, crop_hw=ctx.crop_hw)
    assert ctx.cfg.joint.init_reid_from_raw
    ctx.cfg = ctx.cfg.model_copy(update={"joint": ctx.cfg.joint.model_copy(update={"steps": 0}),
                                         "reid": ctx.cfg.reid.model_copy(update={"steps": 0})})
    given = wider.state_dict()
    joint = train_joint(ctx, copy.deepcopy(fitted_attacker), wider)
    ctx.save(ctx.ckpt_dir / "reid_raw", wider, {"stage": "reid"})
    anon = train_reid(ctx, joint.anonymizer)
    for started in (joint.reid, anon):
        got = started.state_dict()
        assert got["classifier.weight"].shape[0] == ctx.train.num_classes
        assert all(torch.equal(v, got[k]) for k, v in given.items() if k != "classifier.weight")


def test_joint_fine_tunes_a_given_anonymizer_and_reid(ctx: Context, fitted_attacker: torch.nn.Module, tmp_path: Path) -> None:
    """``joint.init`` starts E_an from a trained anonymizer (fine-tuning it on new sensors) and ``reid.init``
    starts the joint stage's E_reid from a given ReId (over the raw one); an anonymizer of other bins is an
    error naming the key, the file and what differs."""
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.train_joint import train_joint

    torch.manual_seed(7)
    trained = create_model(ctx.cfg.joint.anonymizer, in_bins=ctx.cfg.data.num_bins)
    save_checkpoint(tmp_path / "anonymizer", trained, {"stage": "joint"})
    given_reid = create_model(ctx.cfg.reid.model, in_bins=ctx.cfg.data.num_bins, embed_dim=ctx.cfg.reid.embed_dim,
                              num_classes=ctx.train.num_classes + 3, crop_hw=ctx.crop_hw)
    save_checkpoint(tmp_path / "reid", given_reid, {"stage": "reid_anon"})
    raw = create_model(ctx.cfg.reid.model, in_bins=ctx.cfg.data.num_bins, embed_dim=ctx.cfg.reid.embed_dim,
                       num_classes=ctx.train.num_classes, crop_hw=ctx.crop_hw)
    ctx.cfg = ctx.cfg.model_copy(update={
        "joint": ctx.cfg.joint.model_copy(update={"steps": 0, "init": str(tmp_path / "anonymizer")}),
        "reid": ctx.cfg.reid.model_copy(update={"init": str(tmp_path / "reid")})})
    joint = train_joint(ctx, copy.deepcopy(fitted_attacker), raw)
    assert all(torch.equal(v, joint.anonymizer.state_dict()[k]) for k, v in trained.state_dict().items())
    got = joint.reid.state_dict()
    assert all(torch.equal(v, got[k]) for k, v in given_reid.state_dict().items() if k != "classifier.weight")
    assert not torch.equal(raw.state_dict()["classifier.weight"], got["classifier.weight"])  # not the raw one's

    shutil.rmtree(ctx.run_dir / "stages" / "joint")
    other = create_model(ctx.cfg.joint.anonymizer, in_bins=ctx.cfg.data.num_bins + 2)
    save_checkpoint(tmp_path / "other", other, {"stage": "joint"})
    ctx.cfg = ctx.cfg.model_copy(update={"joint": ctx.cfg.joint.model_copy(update={"init": str(tmp_path / "other")})})
    with pytest.raises(ValueError, match=r"joint.init: .*other.*in_bins"):
        train_joint(ctx, copy.deepcopy(fitted_attacker), raw)


@pytest.fixture(scope="module")
def fitted_attacker() -> torch.nn.Module:
    """A FireNet briefly fitted on the synthetic clips, so the attacker term has something to lose."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    clips = synthetic_clips()
    rec = create_model("firenet")
    opt = torch.optim.Adam(rec.parameters(), lr=3e-3)
    for i in range(12):
        b = clips.batch(np.random.default_rng(i).choice(len(clips), 8))
        pred, _ = run_sequence(rec, b.voxels)
        loss = torch.nn.functional.l1_loss(pred, b.frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return rec.requires_grad_(False).eval()


def _joint_models(rec: torch.nn.Module) -> JointModels:
    torch.manual_seed(0)
    an = create_model("anonymizer_paper")
    reid = create_model("reid_resnet18", embed_dim=32, num_classes=6, crop_hw=(32, 16))
    return JointModels(an, reid, copy.deepcopy(rec))


@pytest.mark.parametrize(
    "weights,key,direction",
    [((0.0, 1.0, 0.0), "attacker_ssim", -1), ((1.0, 0.0, 0.0), "utility_ssim", +1), ((0.0, 0.0, 1.0), "reid", -1)],
)
def test_sign_of_each_joint_loss_term(
    ctx: Context, fitted_attacker: torch.nn.Module, weights: tuple[float, float, float], key: str, direction: int) -> None:
    """A few steps on one term move that term the right way on a fixed batch (stage 3)."""
    m = _joint_models(fitted_attacker)
    frozen = {k: v.clone() for k, v in m.rec.state_dict().items()}
    batch = ctx.train.batch(pk_index(np.random.default_rng(1), ctx.train.labels, 4, 2))
    opt = torch.optim.Adam([*m.anonymizer.parameters(), *m.reid.parameters()], lr=3e-3)

    def measure() -> float:
        torch.manual_seed(0)
        with torch.no_grad():
            return joint_loss(m, batch, *weights, (32, 16), 0.1, 0.3, 2)[1][key]

    before = measure()
    for _ in range(6):
        loss, _ = joint_loss(m, batch, *weights, (32, 16), 0.1, 0.3, 2)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = measure()
    assert (after - before) * direction > 0, (key, before, after)
    assert all(torch.equal(v, m.rec.state_dict()[k]) for k, v in frozen.items())


def _minmax_cfg(ctx: Context, steps: int) -> None:
    """The tiny preset's min-max joint stage with the stochastic anonymizer, a snapshot every step."""
    jc = ctx.cfg.joint
    ctx.cfg = ctx.cfg.model_copy(update={"joint": jc.model_copy(update={
        "steps": steps, "anonymizer": "anonymizer_noisy", "anonymizer_args": {"base": 8},
        "minmax": jc.minmax.model_copy(update={"enabled": True, "snapshot_every": 1, "pool_size": 2})})})


def test_minmax_joint_trains_against_a_pool_and_resumes_exactly(
    ctx: Context, fitted_attacker: torch.nn.Module, tmp_path: Path
) -> None:
    """The tiny min-max run: live attackers updated every step, snapshots pooled (capped), the
    stochastic anonymizer's output differs between calls, and --resume continues it exactly."""
    from anonreid.models.train_joint import train_joint

    _minmax_cfg(ctx, 4)
    # the head redaction the data config names is recorded for the camera (the clips are the fixture's)
    ctx.cfg = ctx.cfg.model_copy(update={"data": ctx.cfg.data.model_copy(update={"redact_head": 0.2})})
    full = train_joint(ctx, copy.deepcopy(fitted_attacker), None)
    pool = full.pool
    assert pool is not None and pool.updates == 4 and pool.snapshots_taken == 4
    assert len(pool.rec_snaps) == len(pool.id_snaps) == 2  # the oldest snapshots were dropped
    log = [json.loads(line) for line in (tmp_path / "stages" / "joint" / "log.jsonl").read_text().splitlines()]
    assert [e["rec_pool"] for e in log] == [2, 3, 4, 4]  # e_rec + snapshots + the live attacker
    assert all("privacy_rec" in e and "privacy_id" in e and "live_rec_loss" in e and "live_id_loss" in e for e in log)
    meta = json.loads((tmp_path / "checkpoints" / "anonymizer.json").read_text())["metadata"]
    budgets = {b["name"]: b for b in meta["attackers_in_training"]}
    assert budgets["live_rec"]["init_from"] == "e_rec" and budgets["live_rec"]["samples"] == 4 * 1 * 2
    assert budgets["live_identity"]["samples"] == 4 * 1 * min(2, ctx.train.num_classes) * 2
    assert meta["pool"] == {"snapshots_taken": 4, "attacker_updates": 4}
    # the camera's bundle, loaded from the run, carries the region stride and head redaction the stage recorded
    from anonreid.models.bundle import DEFAULT_STRIDE, REDACTION_KEY, STRIDE_KEY, load_model_bundle

    assert meta[STRIDE_KEY] == DEFAULT_STRIDE and load_model_bundle(tmp_path).stride == DEFAULT_STRIDE
    assert meta[REDACTION_KEY] == {"head": 0.2, "margin": 0.1} and load_model_bundle(tmp_path).redaction == (0.2, 0.1)

    # stochastic anonymization: fresh noise at every call, in eval mode too (documented, intended)
    anonymizer = full.anonymizer.eval()
    x = torch.from_numpy(ctx.val.voxels[:2, -1].astype(np.float32))
    with torch.no_grad():
        a, b = anonymizer(x), anonymizer(x)
        noise = torch.randn_like(x)
        assert not torch.allclose(a, b) and torch.equal(anonymizer(x, noise=noise), anonymizer(x, noise=noise))

    # an interrupted run resumed from its state (models, optimizers, RNG, pool) ends where the full one did
    final = {k: v.clone() for k, v in full.anonymizer.state_dict().items()}
    live = {k: v.clone() for k, v in pool.live_rec.state_dict().items()}
    stage = tmp_path / "stages" / "joint"
    _minmax_cfg(ctx, 2)
    train_joint(ctx, copy.deepcopy(fitted_attacker), None)
    state = torch.load(stage / "state.pt", weights_only=False)  # the pool is in the one atomic state file
    assert state["step"] == 2 and set(state["extras"]) == {"pool"} and not (stage / "pool.pt").exists()

    _minmax_cfg(ctx, 4)
    ctx.resume = True
    resumed = train_joint(ctx, copy.deepcopy(fitted_attacker), None)
    assert resumed.pool is not None and resumed.pool.snapshots_taken == 4
    for k, v in resumed.anonymizer.state_dict().items():
        assert torch.allclose(v, final[k], atol=1e-6), k
    for k, v in resumed.pool.live_rec.state_dict().items():
        assert torch.allclose(v, live[k], atol=1e-6), k
    # a stage state from before the pool moved into it resumes from the pool.pt of its own step, and a
    # pool.pt of another step (a run stopped between the two saves) is refused, naming the fix
    from types import SimpleNamespace

    from anonreid.models.minmax import PoolState

    saved = state["extras"]["pool"]
    assert saved["snapshots_taken"] == 2
    torch.save({"step": 2, "pool": saved}, stage / "pool.pt")
    legacy = SimpleNamespace(step=2, extras={}, resumed_extras={}, device=torch.device("cpu"))
    PoolState(pool, stage).before_train(legacy)  # type: ignore[arg-type]
    assert legacy.extras["pool"] is pool and pool.snapshots_taken == 2 and len(pool.rec_snaps) == 2
    torch.save({"step": 4, "pool": saved}, stage / "pool.pt")
    with pytest.raises(RuntimeError, match=r"holds no attacker pool and pool\.pt has step 4: remove the stage directory"):
        PoolState(pool, stage).before_train(legacy)  # type: ignore[arg-type]


def test_privacy_term_is_the_worst_member_of_the_pool(ctx: Context, fitted_attacker: torch.nn.Module) -> None:
    """The reconstruction privacy term equals the largest member score above the floor, and its gradient
    reaches E_an's output through that member only."""
    from anonreid.models.identity_attack import build_identity_attacker
    from anonreid.models.losses import box_masks, region_ssim
    from anonreid.models.minmax import AttackerPool, floor_region_ssim

    torch.manual_seed(0)
    blind = create_model("firenet")  # an untrained attacker: (nearly) flat output, below the floor
    ident = build_identity_attacker(ctx.cfg.identity, 5, ctx.train.num_classes)
    assert ctx.photos is not None
    live = copy.deepcopy(fitted_attacker).requires_grad_(True)
    pool = AttackerPool(ctx.cfg.joint.minmax, blind, live, ident, ctx.cfg.identity, ctx.photos)
    b = ctx.train.batch(np.arange(6))
    seq = b.voxels.clone().requires_grad_(True)
    term, logs = pool.rec_privacy(seq, b.frames, b.boxes)
    flat = b.frames.flatten(0, 1)
    masks = box_masks(b.boxes, tuple(flat.shape[-2:])).repeat_interleave(b.frames.shape[1], 0)
    floor = floor_region_ssim(flat, masks).mean()
    with torch.no_grad():
        scores = [float(region_ssim(run_sequence(m, b.voxels)[0].flatten(0, 1), flat, masks).mean() - floor)
                  for m in (blind, pool.live_rec)]
    assert logs["rec_worst"] == int(np.argmax(scores)) and float(term.detach()) == pytest.approx(max(0.0, max(scores)), abs=1e-5)
    if float(term.detach()) > 0:
        term.backward()
        assert seq.grad is not None and float(seq.grad.abs().sum()) > 0
        assert all(p.grad is None for p in pool.live_rec.parameters())  # the attacker is not trained by E_an's loss


def test_face_weight_adds_the_face_region_of_the_worst_member(ctx: Context, fitted_attacker: torch.nn.Module) -> None:
    """``joint.minmax.face_weight`` w: a member scores relu(person-region score) + w relu(face-region score),
    the face region being the evaluation's face box of each person box (inside it, a small part of it);
    the term is the largest member score and logs the worst member's face part."""
    from anonreid.models.data import face_boxes
    from anonreid.models.identity_attack import build_identity_attacker
    from anonreid.models.losses import box_masks, region_ssim
    from anonreid.models.minmax import AttackerPool, floor_region_ssim

    torch.manual_seed(0)
    blind = create_model("firenet")
    ident = build_identity_attacker(ctx.cfg.identity, 5, ctx.train.num_classes)
    assert ctx.photos is not None
    live = copy.deepcopy(fitted_attacker).requires_grad_(True)
    cfg = ctx.cfg.joint.minmax.model_copy(update={"face_weight": 2.0})
    pool = AttackerPool(cfg, blind, live, ident, ctx.cfg.identity, ctx.photos)
    b = ctx.train.batch(np.arange(6))
    term, logs = pool.rec_privacy(b.voxels, b.frames, b.boxes)

    flat = b.frames.flatten(0, 1)
    hw, per_clip = tuple(flat.shape[-2:]), b.frames.shape[1]
    person = box_masks(b.boxes, hw).repeat_interleave(per_clip, 0)  # type: ignore[arg-type]
    face = box_masks(torch.from_numpy(face_boxes(b.boxes.numpy())), hw).repeat_interleave(per_clip, 0)  # type: ignore[arg-type]
    assert bool((face <= person).all()) and 0 < face.sum() < 0.25 * person.sum()
    with torch.no_grad():
        parts = [[max(0.0, float(region_ssim(run_sequence(m, b.voxels)[0].flatten(0, 1), flat, mask).mean()
                                 - floor_region_ssim(flat, mask).mean())) for mask in (person, face)]
                 for m in (blind, pool.live_rec)]
    scores = [p + 2.0 * f for p, f in parts]
    worst = int(np.argmax(scores))
    assert logs["rec_worst"] == worst and float(term) == pytest.approx(scores[worst], abs=1e-5)
    assert logs["privacy_face"] == pytest.approx(parts[worst][1], abs=1e-5)
    assert max(f for _, f in parts) > 0  # the fitted attacker reconstructs faces above the floor: the term is live
    # without the weight the term is the person region's alone, and no face part is logged
    plain, plain_logs = AttackerPool(ctx.cfg.joint.minmax, blind, live, ident, ctx.cfg.identity, ctx.photos).rec_privacy(
        b.voxels, b.frames, b.boxes)
    assert float(plain) == pytest.approx(max(p for p, _ in parts), abs=1e-5) and "privacy_face" not in plain_logs


def test_face_identity_score_is_high_for_the_reference_and_zero_for_a_stranger_or_flat_face(ctx: Context) -> None:
    """The face-identity part of the min-max term (``face_id_weight``): under the defender's face net a
    reconstruction equal to its reference scores its full margin over strangers, the same frames shuffled
    between people score below 0, and one flat image for all scores 0; its gradient reaches the frames."""
    from anonreid.models.identity_attack import build_identity_attacker
    from anonreid.models.minmax import AttackerPool

    torch.manual_seed(0)
    net = create_model("reid_resnet18", in_bins=1, embed_dim=32, num_classes=4, crop_hw=(16, 16))
    cfg = ctx.cfg.joint.minmax.model_copy(update={"face_id_weight": 1.0})
    assert ctx.photos is not None
    ident = build_identity_attacker(ctx.cfg.identity, 5, ctx.train.num_classes)
    with pytest.raises(ValueError, match="face_id_weight needs the defender's face net"):
        AttackerPool(cfg, create_model("firenet"), create_model("firenet"), ident, ctx.cfg.identity, ctx.photos)
    pool = AttackerPool(cfg, create_model("firenet"), create_model("firenet"), ident, ctx.cfg.identity, ctx.photos,
                        face_net=(net, (16, 16)))
    b = ctx.train.batch(np.arange(len(ctx.train)))
    keep = np.flatnonzero(np.r_[True, b.labels.numpy()[1:] != b.labels.numpy()[:-1]])[:6]  # one clip a person
    frames, boxes, labels = b.frames[keep, -1:], b.boxes[keep], b.labels[keep]
    assert len(set(labels.tolist())) == len(keep) >= 3
    parts = {name: fn for name, _, fn in pool.rec_scores(frames, boxes, labels)}
    score = parts["face_id"]
    flat = frames.flatten(0, 1)
    same = score(flat)
    assert float(same) > 0.05
    shuffled = float(score(flat.roll(1, 0)))  # everyone reconstructed as the next person
    assert shuffled < float(same) and shuffled < 0.02
    assert abs(float(score(torch.full_like(flat, 0.5)))) < 1e-5  # one grey face for all: says nothing
    pred = flat.clone().requires_grad_(True)
    score(pred).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0 and all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="needs the clips' labels"):
        pool.rec_scores(frames, boxes)
