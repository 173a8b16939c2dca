"""Networks, losses, registry and checkpoints of anonreid.models (parametrised over the registry)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from anonreid.models.anonymizer import attacker_input, to_unit
from anonreid.models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from anonreid.models.losses import batch_hard_triplet, label_smoothing_ce, ssim, temporal_consistency
from anonreid.models.reconstruction import run_sequence
from anonreid.models.registry import ModelCfg, create_model, list_models, register_model
from anonreid.models.reid import PKSampler, ReidOutput, inflate_first_conv

pytestmark = pytest.mark.usefixtures("one_torch_thread")


SMALL = {"e2vid": {"base": 8}, "reid_resnet50": {"crop_hw": (32, 16), "embed_dim": 32}}


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, **SMALL.get(name, {}))


def _forward(model: torch.nn.Module, h: int = 37, w: int = 29) -> torch.Tensor:
    """Run a model on a small input of its family; returns the main output."""
    family = model.cfg.family
    if family == "reid":
        out = model(torch.randn(4, 5, 32, 16))
        return out.logits if isinstance(out, ReidOutput) else out
    x = torch.randn(2, 5, h, w)
    if family == "reconstruction":
        frames, _ = run_sequence(model, torch.stack([x, x * 0.5], dim=1))
        return frames
    return model(x)


def test_registry_lists_the_agreed_names() -> None:
    names = set(list_models())
    assert {"anonymizer_paper", "anonymizer_resunet", "reid_resnet18", "reid_resnet50", "e2vid", "firenet",
            "inversion"} <= names
    assert list_models("anonymizer") == ["anonymizer_noisy", "anonymizer_paper", "anonymizer_resunet"]


def test_registry_rejects_duplicates_and_unknown_arguments() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("firenet", family="reconstruction")(lambda: torch.nn.Identity())
    with pytest.raises(TypeError, match="no argument"):
        create_model("firenet", channels=3)
    with pytest.raises(KeyError, match="unknown model"):
        create_model("nope")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes(name: str) -> None:
    model = _build(name)
    assert isinstance(model.cfg, ModelCfg) and model.cfg.name == name
    with pytest.raises(Exception):  # noqa: B017 - frozen dataclass
        model.cfg.name = "x"  # type: ignore[misc]
    model.train()
    out = _forward(model)
    family = model.cfg.family
    expected = {
        "anonymizer": (2, 5, 37, 29),
        "inversion": (2, 5, 37, 29),
        "reconstruction": (2, 2, 1, 37, 29),
        "reid": (4, model.cfg.kwargs().get("num_classes")),
    }[family]
    assert tuple(out.shape) == expected
    assert torch.isfinite(out).all()
    out.float().square().mean().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads)


@pytest.mark.parametrize("name", list_models("reid"))
def test_reid_eval_embedding_is_l2_normalised(name: str) -> None:
    model = _build(name).eval()
    emb = model(torch.randn(3, 5, 32, 16))
    assert emb.shape == (3, model.cfg.embed_dim)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3), atol=1e-5)


def test_reid_flip_test_embeds_a_crop_and_its_mirror_alike() -> None:
    """``flip_test``: the eval embedding is the normalised mean of the post-BN features of the crop and of
    its horizontal mirror, so a mirrored crop embeds exactly as the crop; training mode is untouched and
    the model's config records the setting (the bundle's version names it: the test below)."""
    torch.manual_seed(0)
    plain = create_model("reid_resnet18", crop_hw=(32, 16), embed_dim=16)
    flipped = create_model("reid_resnet18", crop_hw=(32, 16), embed_dim=16, flip_test=True)
    plain.bnneck.running_mean.normal_()  # a BNNeck with statistics of its own: the post-BN mean is not trivial
    plain.bnneck.running_var.uniform_(0.5, 2)
    flipped.load_state_dict(plain.state_dict())
    plain.eval(), flipped.eval()
    x = torch.randn(3, 5, 32, 16)
    with torch.no_grad():
        emb, mirrored = flipped(x), flipped(x.flip(-1))
        neck = lambda t: plain.bnneck(plain.embed(plain.backbone(t)))  # noqa: E731
        expected = torch.nn.functional.normalize(neck(x) + neck(x.flip(-1)), dim=1)
        assert torch.allclose(emb, expected, atol=1e-5)
        assert torch.allclose(emb, mirrored, atol=1e-5)
        assert not torch.allclose(plain(x), plain(x.flip(-1)), atol=1e-3)  # the network alone is not symmetric
    flipped.train()
    assert isinstance(flipped(x), ReidOutput)
    assert flipped.cfg.kwargs()["flip_test"] is True and plain.cfg.kwargs()["flip_test"] is False


def test_bundle_version_names_the_flip_test_setting(tmp_path: Path) -> None:
    from anonreid.models.bundle import load_model_bundle

    ckpt = tmp_path / "run" / "checkpoints"
    torch.manual_seed(0)
    reid = create_model("reid_resnet18", embed_dim=32, crop_hw=(32, 16))
    save_checkpoint(ckpt / "anonymizer", create_model("anonymizer_paper"))
    save_checkpoint(ckpt / "reid", reid)
    before = load_model_bundle(tmp_path / "run")
    flipped = create_model("reid_resnet18", embed_dim=32, crop_hw=(32, 16), flip_test=True)
    flipped.load_state_dict(reid.state_dict())
    save_checkpoint(ckpt / "reid", flipped)  # the same weights, another embedding
    after = load_model_bundle(tmp_path / "run")
    assert after.reid.flip_test and not before.reid.flip_test
    assert after.version != before.version


def test_reid_last_stride_is_one() -> None:
    model = create_model("reid_resnet18", crop_hw=(64, 32)).eval()
    feats: dict[str, tuple[int, ...]] = {}

    def keep(module: torch.nn.Module, inputs: object, output: torch.Tensor) -> None:
        feats["l4"] = tuple(output.shape)

    model.backbone.layer4.register_forward_hook(keep)
    model(torch.randn(1, 5, 64, 32))
    assert feats["l4"][-2:] == (4, 2)  # 1/16, not 1/32


def test_reid_pretrained_weights_inflate_the_first_conv(tmp_path: Path) -> None:
    import torchvision

    rgb = torchvision.models.resnet18(weights=None)
    torch.save(rgb.state_dict(), tmp_path / "r18.pth")
    model = create_model("reid_resnet18", pretrained=str(tmp_path / "r18.pth"))
    w = model.backbone.conv1.weight
    assert w.shape[1] == 5
    assert torch.allclose(w, inflate_first_conv(rgb.conv1.weight, 5))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)
    # a uniform input gives the same response through the inflated filters
    assert torch.allclose(w.sum(1), rgb.conv1.weight.sum(1), atol=1e-6)
    assert "pretrained" not in model.cfg.kwargs()  # where weights came from is not the identity


@pytest.mark.parametrize("h,w", [(32, 32), (33, 47), (240, 320)])
def test_paper_anonymizer_keeps_height_and_width(h: int, w: int) -> None:
    model = create_model("anonymizer_paper")
    out = model(torch.randn(1, 5, h, w))
    assert out.shape == (1, 5, h, w)
    assert float(out.detach().min()) > 0 and float(out.detach().max()) < 1  # the paper's sigmoid
    layers = [type(m).__name__ for m in model.modules() if not isinstance(m, torch.nn.Sequential)]
    assert layers[1:] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "Conv2d",
                          "Sigmoid"]


def test_resunet_anonymizer_starts_near_identity_in_voxel_range() -> None:
    model = create_model("anonymizer_resunet")
    x = torch.randn(2, 5, 40, 24)
    out = model(x)
    assert model.cfg.output_range == "voxel"
    assert torch.allclose(out, 5 * torch.tanh(x / 5), atol=1e-6)


def test_noisy_anonymizer_draws_fresh_noise_at_every_call_in_eval_mode_too() -> None:
    """AnonyNoise-style: not a deterministic (invertible) filter; noise scale starts at noise_init and
    never goes below min_noise; a given draw is reproducible (``noise=``)."""
    torch.manual_seed(0)
    model = create_model("anonymizer_noisy", base=8, noise_init=0.5, min_noise=0.1).eval()
    x = torch.randn(2, 5, 40, 24)
    with torch.no_grad():
        a, b = model(x), model(x)
        n = torch.randn_like(x)
        assert model.cfg.output_range == "voxel" and not torch.allclose(a, b)
        assert torch.equal(model(x, noise=n), model(x, noise=n))
        assert torch.allclose(model(x, noise=n), 5 * torch.tanh((x + 0.5 * n) / 5), atol=1e-5)  # zero-init heads
        with torch.no_grad():
            model.scale.bias.fill_(-50.0)  # the learned scale driven to zero: the floor remains
        _, scale = model.heads(x, n)
        assert float(scale.min()) == pytest.approx(0.1, abs=1e-6)
    with pytest.raises(ValueError, match="min_noise"):
        create_model("anonymizer_noisy", noise_init=0.1, min_noise=0.2)


def test_linear_inverse_recovers_a_linear_anonymizer_in_closed_form() -> None:
    """A 5x5 B->B convolution applied to the logit of a unit-range output is found exactly."""
    from anonreid.models.inversion import fit_linear_inverse

    torch.manual_seed(0)
    truth = torch.nn.Conv2d(5, 5, 5, padding=2)
    z = [torch.randn(4, 5, 20, 16) for _ in range(3)]
    with torch.no_grad():
        pairs = [(torch.sigmoid(zi), truth(zi)) for zi in z]  # a = sigmoid(z) (unit range), X = W z + b
    model = create_model("linear_inverse", kernel=5, input_range="unit")
    fit = fit_linear_inverse(model, pairs, ridge=0.0)
    assert torch.allclose(model.conv.weight, truth.weight, atol=2e-3)
    assert torch.allclose(model.conv.bias, truth.bias, atol=2e-3)
    assert fit["rmse"] < 1e-3 * fit["target_rms"] and fit["pixels"] == 3 * 4 * 20 * 16
    with torch.no_grad():
        assert torch.allclose(model(pairs[0][0]), pairs[0][1], atol=5e-3)
    with pytest.raises(ValueError, match="got no"):
        fit_linear_inverse(model, [])


def test_residual_inversion_starts_as_the_plain_attack() -> None:
    """E_inv starts at to_voxel_range(a) (E_rec on the anonymized stream) and only learns a residual."""
    model = create_model("inversion_residual", input_range="unit")
    a = torch.rand(2, 5, 24, 16) * 0.98 + 0.01
    assert torch.allclose(model(a), attacker_input(a, create_model("anonymizer_paper").cfg), atol=1e-5)


def test_residual_inversion_can_start_as_the_linear_floor() -> None:
    """With ``linear_kernel`` (stage inv's default ``inv.init=linear``) E_inv starts exactly as the run's
    closed-form linear inverse, the floor every trained attack must beat, and learns a residual on top;
    its checkpoint builds the same network again (the builder argument is recorded)."""
    from anonreid.models.inversion import fit_linear_inverse

    torch.manual_seed(0)
    truth = torch.nn.Conv2d(5, 5, 5, padding=2)
    with torch.no_grad():
        pairs = [(torch.sigmoid(z), truth(z)) for z in (torch.randn(4, 5, 20, 16) for _ in range(2))]
    linear = create_model("linear_inverse", kernel=5, input_range="unit")
    fit_linear_inverse(linear, pairs, ridge=0.0)
    model = create_model("inversion_residual", input_range="unit", linear_kernel=5)
    model.linear.load_state_dict(linear.state_dict())
    a = torch.rand(2, 5, 24, 16) * 0.98 + 0.01
    with torch.no_grad():
        assert torch.allclose(model(a), linear(a), atol=1e-6)
    assert dict(model.cfg.params)["linear_kernel"] == 5 and model.input_affine is None
    assert create_model("inversion_residual", input_range="unit").linear is None  # earlier checkpoints


def test_range_adapters_invert_the_paper_sigmoid() -> None:
    x = torch.randn(2, 5, 8, 8)
    unit = torch.sigmoid(x)
    assert torch.allclose(attacker_input(unit, create_model("anonymizer_paper").cfg), x, atol=1e-3)
    assert torch.equal(to_unit(unit, "unit"), unit)
    assert torch.allclose(to_unit(x, "voxel"), unit)


def test_ssim_matches_scikit_image() -> None:
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((48, 40)).astype(np.float32)
    b = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1).astype(np.float32)
    ours = float(ssim(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]))
    _, full = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    assert ours == pytest.approx(float(full[5:-5, 5:-5].mean()), abs=1e-4)
    assert float(ssim(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None])) == pytest.approx(1.0, abs=1e-5)


def test_region_ssim_scores_the_masked_region_only() -> None:
    from anonreid.models.losses import box_masks, region_ssim

    torch.manual_seed(0)
    ref = torch.rand(2, 1, 40, 30)
    pred = ref.clone()
    pred[:, :, :, 15:] = torch.rand(2, 1, 40, 15)  # right half wrong, left half exact
    left = box_masks(torch.tensor([[0.0, 0.0, 9.0, 40.0]] * 2), (40, 30), margin=0.0)  # the window reaches x < 15
    right = box_masks(torch.tensor([[18.0, 0.0, 30.0, 40.0]] * 2), (40, 30), margin=0.0)
    assert int(left[0].sum()) == 40 * 9
    assert torch.allclose(region_ssim(pred, ref, left), torch.ones(2), atol=1e-5)
    assert float(region_ssim(pred, ref, right).max()) < 0.5
    none = torch.zeros_like(left)  # an empty region scores the whole image
    assert torch.allclose(region_ssim(pred, ref, none), ssim(pred, ref, reduction="none"))


def test_the_inversion_is_scored_on_the_person_not_on_the_static_background() -> None:
    """Stage inv's frame loss (``inv.region``): on the whole tile, a flat grey answer that gets the static
    background right beats a reconstruction of the person that is wrong elsewhere, and E_inv learned to
    answer grey (the 40th session's, under the linear inverse); on the person region (each clip's box
    grown by 10 %, every window) only the person counts."""
    from anonreid.models.train_attacks import frame_scores

    torch.manual_seed(0)
    frames = torch.full((2, 3, 1, 48, 32), 0.5)
    frames[..., 8:40, 10:22] = torch.rand(2, 3, 1, 32, 12)  # the person: texture on a grey background
    boxes = torch.tensor([[10.0, 8.0, 22.0, 40.0]] * 2)
    grey = torch.full_like(frames, 0.5)
    person = torch.rand_like(frames)  # everything wrong ...
    person[..., 5:43, 9:23] = frames[..., 5:43, 9:23]  # ... but the person region (the box grown by 10 %)
    l1_grey, ssim_grey = frame_scores(grey, frames, boxes, "frame")
    l1_person, ssim_person = frame_scores(person, frames, boxes, "frame")
    assert float(l1_grey) < float(l1_person)  # the tile's loss prefers grey
    l1_grey, ssim_grey = frame_scores(grey, frames, boxes, "person")
    l1_person, ssim_person = frame_scores(person, frames, boxes, "person")
    assert float(l1_person) == pytest.approx(0.0, abs=1e-6) and float(l1_grey) > 0.1
    assert float(ssim_person) > 0.8 > 0.5 > float(ssim_grey)  # (windows at the region edge see the rest)


def test_batch_hard_triplet_and_label_smoothing_ce() -> None:
    labels = torch.tensor([0, 0, 1, 1])
    separated = torch.tensor([[0.0, 0], [0.0, 0.1], [5.0, 0], [5.0, 0.1]])
    mixed = torch.tensor([[0.0, 0], [5.0, 0], [0.0, 0.1], [5.0, 0.1]])
    assert float(batch_hard_triplet(separated, labels)) == 0.0
    assert float(batch_hard_triplet(mixed, labels)) > 4.0
    logits = torch.tensor([[4.0, 0.0], [0.0, 4.0]], requires_grad=True)
    ce = label_smoothing_ce(logits, torch.tensor([0, 1]), 0.1)
    ce.backward()
    assert logits.grad is not None
    assert float(ce.detach()) > float(label_smoothing_ce(logits.detach(), torch.tensor([0, 1]), 0.0))
    with pytest.raises(ValueError, match="float logits"):
        label_smoothing_ce(torch.tensor([0, 1]), torch.tensor([0, 1]))  # argmax indices are refused


def test_temporal_consistency_is_zero_for_matching_changes() -> None:
    target = torch.rand(2, 3, 1, 8, 8)
    assert float(temporal_consistency(target + 0.2, target)) == pytest.approx(0.0, abs=1e-6)
    assert float(temporal_consistency(target[:, :1].expand_as(target), target)) > 0


def test_pk_sampler_is_identity_balanced_and_seeded() -> None:
    labels = np.repeat(np.arange(6), [5, 5, 5, 5, 5, 1])
    sampler = PKSampler(labels, p=3, k=4, seed=1)
    batches = sampler.batches(0)
    assert batches == PKSampler(labels, p=3, k=4, seed=1).batches(0)
    assert batches != sampler.batches(1)
    for batch in batches:
        ids, counts = np.unique(labels[batch], return_counts=True)
        assert len(ids) == 3 and (counts == 4).all()


def test_frozen_attacker_passes_gradients_to_the_anonymizer() -> None:
    torch.manual_seed(0)
    an, rec = create_model("anonymizer_paper"), create_model("firenet")
    rec.requires_grad_(False).eval()
    before = {k: v.clone() for k, v in rec.state_dict().items()}
    opt = torch.optim.Adam(an.parameters(), lr=1e-2)
    x, target = torch.randn(2, 2, 5, 24, 24), torch.rand(2, 2, 1, 24, 24)
    a = an(x.flatten(0, 1)).view_as(x)
    frames, _ = run_sequence(rec, attacker_input(a, an.cfg))
    ssim(frames.flatten(0, 1), target.flatten(0, 1)).backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in an.parameters())
    assert all(p.grad is None for p in rec.parameters())
    opt.step()
    assert all(torch.equal(v, rec.state_dict()[k]) for k, v in before.items())


@pytest.mark.parametrize("name", list_models())
@pytest.mark.parametrize("fp16", [False, True])
def test_checkpoint_round_trip(name: str, fp16: bool, tmp_path: Path) -> None:
    model = _build(name).eval()
    if fp16:  # make the float32 model exactly representable in float16 first
        with torch.no_grad():
            for p in model.state_dict().values():
                if p.is_floating_point():
                    p.copy_(p.half().float())
    path = save_checkpoint(tmp_path / name, model, {"seed": 3, "metrics": {"x": 1.0}}, fp16=fp16)
    loaded = load_checkpoint(path, expected_cfg=model.cfg)
    assert loaded.metadata["seed"] == 3 and "code_version" in loaded.metadata and "command" in loaded.metadata
    torch.manual_seed(1)
    a = _forward(model)
    torch.manual_seed(1)
    b = _forward(loaded.model)
    assert torch.equal(a, b)
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["dtype"] == ("float16" if fp16 else "float32")


def test_checkpoint_with_mismatched_config_fails_naming_the_field(tmp_path: Path) -> None:
    model = create_model("reid_resnet18", embed_dim=64, crop_hw=(32, 16))
    save_checkpoint(tmp_path / "reid", model)
    expected = create_model("reid_resnet18", embed_dim=256, crop_hw=(32, 16)).cfg
    with pytest.raises(CheckpointError, match=r"field 'embed_dim' is 64 in the checkpoint but 256 expected"):
        load_checkpoint(tmp_path / "reid", expected_cfg=expected)
    with pytest.raises(CheckpointError, match=r"'name' is 'reid_resnet18' in the checkpoint but 'firenet'"):
        load_checkpoint(tmp_path / "reid", expected_cfg={"name": "firenet"})
    (tmp_path / "reid.safetensors").unlink()
    with pytest.raises(CheckpointError, match="weights not found"):
        load_checkpoint(tmp_path / "reid")


def test_random_model_bundle_is_seeded_and_named_by_its_architectures() -> None:
    """Every camera node that falls back to random weights gets the same networks (comparable
    embeddings), whatever the global RNG did before; other architectures are named in the version."""
    from anonreid.models.bundle import RANDOM_VERSION, random_model_bundle

    torch.manual_seed(123)
    a = random_model_bundle()
    torch.rand(10)
    b = random_model_bundle()
    assert a.version == b.version == RANDOM_VERSION and a.crop_hw == (128, 64)
    for x, y in ((a.anonymizer, b.anonymizer), (a.reid, b.reid)):
        assert all(torch.equal(p, q) for p, q in zip(x.state_dict().values(), y.state_dict().values(), strict=True))
    big = random_model_bundle("anonymizer_paper", "reid_resnet50")
    assert big.version == f"{RANDOM_VERSION}-anonymizer_paper-reid_resnet50" and big.crop_hw == (384, 192)
    assert big.embed_dim == 256 and not big.reid.training


def test_a_bundle_loaded_from_disk_carries_the_stride_its_checkpoint_records(tmp_path: Path) -> None:
    """The camera reads num_bins, crop_hw, embed_dim and stride from the bundle: the first three are the
    networks' ModelCfg, the stride is the anonymizer checkpoint's metadata. A checkpoint written before the
    stride was recorded loads with the default; a bad value is refused naming the file and the key."""
    from anonreid.models.bundle import DEFAULT_STRIDE, STRIDE_KEY, load_model_bundle

    ckpt = tmp_path / "run" / "checkpoints"
    an = create_model("anonymizer_paper", in_bins=3)
    save_checkpoint(ckpt / "anonymizer", an, {STRIDE_KEY: 4})
    save_checkpoint(ckpt / "reid", create_model("reid_resnet18", in_bins=3, embed_dim=32, crop_hw=(32, 16)))
    bundle = load_model_bundle(tmp_path / "run")
    assert (bundle.stride, bundle.num_bins, bundle.crop_hw, bundle.embed_dim) == (4, 3, (32, 16), 32)

    save_checkpoint(ckpt / "anonymizer", an, {"stage": "joint"})  # the format before the stride was recorded
    assert load_model_bundle(tmp_path / "run").stride == DEFAULT_STRIDE == 8
    assert load_model_bundle().stride == DEFAULT_STRIDE  # the shipped set predates it

    save_checkpoint(ckpt / "anonymizer", an, {STRIDE_KEY: 0})
    with pytest.raises(CheckpointError, match=rf"anonymizer\.json: metadata\.{STRIDE_KEY} must be a positive integer"):
        load_model_bundle(tmp_path / "run")


def test_shipped_weights_record_the_world_and_the_command_that_made_them(tmp_path: Path) -> None:
    """A shipped set's ``reproduce`` line: the non-default settings (realism too) of the world the
    checkpoint's own command trained on, even when the run's later stages used another, and every stage
    of the run in one command, with WORLD and RUN for the paths."""
    from anonreid.models.bundle import reproduce_line
    from anonreid.orchestration.config import SensorRealismConfig, WorldConfig

    world_dir, run = tmp_path / "world", tmp_path / "run"
    world_dir.mkdir()
    run.mkdir()
    cfg = WorldConfig(identities=100, first_identity=34, train_identities=90,
                      realism=SensorRealismConfig(enabled=True, per_pass=True))
    (world_dir / "world.json").write_text(json.dumps({"config": cfg.model_dump(mode="json")}))
    (run / "env.json").write_text(json.dumps({"data_dir": str(world_dir)}))
    meta = {"command": f"anonreid train --data {world_dir} --config cpu --out {run} --stage joint --set reid.steps=900 "
                       "--resume", "data_fingerprint": "abc"}
    assert reproduce_line(run, meta) == (
        "anonreid simulate --out WORLD --set world.identities=100 --set world.first_identity=34 "
        "--set world.train_identities=90 --set world.realism.enabled=true --set world.realism.per_pass=true && "
        "anonreid train --data WORLD --config cpu --out RUN --set reid.steps=900 (world fingerprint abc)")
    # the run's last command trained on another world (attacks on a wider one): the checkpoint's own counts
    other = tmp_path / "other"
    other.mkdir()
    (other / "world.json").write_text(json.dumps({"config": WorldConfig(identities=300).model_dump(mode="json")}))
    (run / "env.json").write_text(json.dumps({"data_dir": str(other)}))
    assert reproduce_line(run, meta).startswith("anonreid simulate --out WORLD --set world.identities=100 ")
    assert reproduce_line(run, {"preset": "tiny"}).startswith("anonreid simulate --out WORLD --set world.identities=300 ")
    (run / "env.json").write_text(json.dumps({"data_dir": str(tmp_path / "gone")}))  # the world is not there
    assert reproduce_line(run, {"preset": "tiny"}).startswith(
        "anonreid simulate --out WORLD && anonreid train --data WORLD --config tiny")
