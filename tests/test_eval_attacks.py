"""The privacy attacks on inputs whose answer is known, and the ROC against scikit-learn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as sk_roc_curve

from anonreid.models.config import load_train_config
from anonreid.models.data import face_boxes
from anonreid.models.evaluation.attacks import (
    ENROLLMENT_WALL,
    AttackerCfg,
    AttackerSide,
    attacker_views,
    face_verification_attack,
    image_crops,
    load_attacker_net,
    one_per_identity_camera,
    photo_person_box,
    reconstruct,
    reconstruction_attack,
    retrieval_attack,
    retrieval_scores,
    roc_auc,
    roc_curve,
    train_attacker_net,
)
from anonreid.models.registry import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def smooth_frames(n: int, hw: tuple[int, int] = (32, 24), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.random((n, hw[0] // 4, hw[1] // 4))
    return np.kron(base, np.ones((4, 4))).astype(np.float64)


def test_identical_reconstructions_score_ssim_one_and_beat_the_floor() -> None:
    ref = smooth_frames(6).reshape(3, 2, 32, 24)
    score = reconstruction_attack(ref, ref, groups=["a", "a", "b"])
    assert score.ssim.value == pytest.approx(1.0) and score.psnr.value == pytest.approx(100.0)
    assert score.ssim_floor < 0.5 and score.psnr_floor < 30
    noisy = np.clip(ref + np.random.default_rng(1).normal(0, 0.2, ref.shape), 0, 1)
    worse = reconstruction_attack(noisy, ref, groups=["a", "a", "b"])
    assert worse.ssim.value < 0.8 and worse.ssim.ci_low <= worse.ssim.value <= worse.ssim.ci_high
    with pytest.raises(ValueError, match="differ in shape"):
        reconstruction_attack(ref[:, :1], ref)


def identity_crops(ids: np.ndarray, hw: tuple[int, int] = (16, 8)) -> torch.Tensor:
    """Crops whose mean grey level encodes the identity (and nothing else)."""
    levels = (ids.astype(np.float32) + 1) / (ids.max() + 2)
    return torch.from_numpy(np.broadcast_to(levels[:, None, None, None], (len(ids), 1, *hw)).copy())


def perfect_model(num_ids: int):
    """A 'perfect appearance model': one-hot of the identity read back from the grey level."""

    def run(x: torch.Tensor) -> torch.Tensor:
        level = (x.mean(dim=(1, 2, 3)) * 0.25 + 0.5) * (num_ids + 1) - 1  # undo normalise_images
        return torch.nn.functional.one_hot(level.round().long().clamp(0, num_ids - 1), num_ids).float()

    return run


def test_perfect_appearance_model_ranks_first_and_shuffled_is_near_chance() -> None:
    n_ids, per = 10, 8
    g_ids = np.repeat(np.arange(n_ids), per)
    g_cams = np.tile(np.arange(4), n_ids * per // 4)
    q_ids = np.arange(n_ids)
    q_cams = np.full(n_ids, 99)  # enrollment photos: a camera of their own
    model = perfect_model(n_ids)
    score = retrieval_attack(model, identity_crops(q_ids), q_ids, q_cams, identity_crops(g_ids), g_ids, g_cams)
    assert score.rank1.value == 1.0 and score.mAP.value == pytest.approx(1.0)
    assert score.chance["rank1"] == pytest.approx(0.1, abs=0.03)
    shuffled = np.random.default_rng(0).permutation(g_ids)
    worst = retrieval_attack(model, identity_crops(q_ids), q_ids, q_cams, identity_crops(shuffled), g_ids, g_cams)
    assert worst.rank1.value < 0.5 and worst.mAP.value < 0.3
    rng = np.random.default_rng(3)
    many_q = np.repeat(np.arange(n_ids), 30)
    rand = retrieval_scores(rng.normal(size=(len(many_q), 16)), many_q, np.full(len(many_q), 99),
                            rng.normal(size=(len(g_ids), 16)), g_ids, g_cams)
    assert abs(rand.rank1.value - rand.chance["rank1"]) < 0.06
    assert rand.rank1.ci_low <= rand.rank1.value <= rand.rank1.ci_high


def test_roc_matches_scikit_learn_with_ties() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(300) < 0.3
    scores = np.round(rng.normal(size=300) + labels, 1)  # rounded: many ties
    fpr, tpr = roc_curve(scores, labels)
    sk_fpr, sk_tpr, _ = sk_roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    assert roc_auc(scores, labels) == pytest.approx(roc_auc_score(labels, scores))
    with pytest.raises(ValueError, match="genuine and impostor"):
        roc_curve(scores, np.ones(300, bool))


def test_face_verification_perfect_and_random() -> None:
    ids = np.repeat(np.arange(6), 5)
    ref_ids = np.arange(6)
    eye = np.eye(6)
    perfect = face_verification_attack(eye[ids], ids, eye, ref_ids)
    assert perfect.auc.value == pytest.approx(1.0) and perfect.num_genuine == 30 and perfect.num_impostor == 150
    rng = np.random.default_rng(0)
    rand = face_verification_attack(rng.normal(size=(300, 8)), np.repeat(np.arange(6), 50), rng.normal(size=(6, 8)), ref_ids)
    assert abs(rand.auc.value - 0.5) < 0.08 and rand.auc.ci_low < 0.5 < rand.auc.ci_high


def test_person_and_face_boxes_and_queries() -> None:
    photo = np.full((64, 32), ENROLLMENT_WALL, np.uint8)
    photo[10:60, 8:20] = 40
    np.testing.assert_array_equal(photo_person_box(photo), [8, 10, 20, 60])
    face = face_boxes(np.array([[8, 10, 20, 60]]), 0.2)[0]
    assert face[1] == 10 and face[3] - face[1] == pytest.approx(50 * 0.2 * 1.15) and (face[0] + face[2]) / 2 == 14
    crops = image_crops(photo[None], photo_person_box(photo)[None], (16, 8))
    assert crops.shape == (1, 1, 16, 8) and float(crops.max()) < 0.2  # the crop holds the person, not the wall
    ids, cams = np.array([1, 1, 1, 2, 2, 1]), np.array([0, 0, 0, 0, 1, 1])
    q = one_per_identity_camera(ids, cams)
    assert sorted(zip(ids[q].tolist(), cams[q].tolist(), strict=True)) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert q[0] == 1  # the middle of the three (1, cam 0) samples


def test_reconstruct_and_views_shapes() -> None:
    torch.manual_seed(0)
    rec = create_model("firenet", in_bins=5).eval()
    anon = create_model("anonymizer_paper", in_bins=5).eval()
    inv = create_model("inversion", in_bins=5).eval()
    vox = np.random.default_rng(0).normal(size=(3, 2, 5, 24, 16)).astype(np.float16)
    frames = reconstruct(rec, vox)
    assert frames.shape == (3, 2, 24, 16) and frames.min() >= 0 and frames.max() <= 1
    views, last = attacker_views(vox, AttackerSide(rec, inv, rec), anon, batch=2)
    assert set(views) == {"raw", "anonymized", "inversion", "adaptive"}
    np.testing.assert_allclose(views["raw"], frames, atol=1e-5)  # batching does not change the result
    assert last is not None and last.shape == (3, 5, 24, 16) and last.dtype == np.float16


def test_attacker_net_trains_checkpoints_and_reloads(tmp_path: Path) -> None:
    labels = np.repeat(np.arange(4), 6)
    crops = identity_crops(labels, (32, 16)) + 0.05 * torch.rand(24, 1, 32, 16)
    tiny = AttackerCfg.from_config(load_train_config("tiny")).appearance  # 32 x 16 crops
    cfg = replace(tiny, steps=2, embed_dim=16, p=4, k=2)
    model = train_attacker_net(crops, labels, cfg, tmp_path, metadata={"data_fingerprint": "world-1"})
    assert (tmp_path / "appearance.safetensors").exists() and (tmp_path / "stages" / "appearance" / "log.jsonl").exists()
    again = load_attacker_net(tmp_path, cfg)
    assert again is not None
    x = torch.rand(3, 1, 32, 16)
    torch.testing.assert_close(again(x), model.eval()(x))
    assert load_attacker_net(tmp_path, replace(cfg, steps=5)) is None  # other config: retrain
    assert load_attacker_net(tmp_path, cfg, data_fingerprint="world-1") is not None
    assert load_attacker_net(tmp_path, cfg, data_fingerprint="world-2") is None  # another world: retrain
    assert load_attacker_net(tmp_path, cfg, enrollment_day=1) is None  # photos of another day: retrain
    assert load_attacker_net(tmp_path, cfg, photo_days=3) is None  # trained on photos of more days: retrain
    with pytest.raises(ValueError, match="at least 2 training identities"):
        train_attacker_net(crops[:6], labels[:6], cfg, tmp_path)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_user_supplied_face_embedder_is_loaded_from_torchscript(tmp_path: Path) -> None:
    """ArcFace-style weights: a TorchScript module on (N, 3, 112, 112) images in [-1, 1]."""
    from anonreid.models.evaluation.attacks import load_face_embedder

    class MeanFace(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            assert x.shape[1:] == (3, 112, 112)
            return torch.stack([x.mean(dim=(1, 2, 3)), x.amax(dim=(1, 2, 3)), x.amin(dim=(1, 2, 3))], dim=1)

    path = tmp_path / "arcface.pt"
    torch.jit.script(MeanFace()).save(str(path))
    run = load_face_embedder(path)
    out = run(torch.full((2, 1, 16, 16), 0.75))
    torch.testing.assert_close(out, torch.full((2, 3), 0.5))  # 0.75 -> 0.5 in [-1, 1]
    with pytest.raises(FileNotFoundError, match="face-embedding weights"):
        load_face_embedder(tmp_path / "missing.pt")
    (tmp_path / "bad.pt").write_bytes(b"not a module")
    with pytest.raises(ValueError, match="not a TorchScript module"):
        load_face_embedder(tmp_path / "bad.pt")
