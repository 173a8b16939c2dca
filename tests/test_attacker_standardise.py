"""The reconstruction attackers on anonymized events standardise their input per channel (issue #16).

The min–max anonymizer of the large-world run learned to emit the raw signal under per-channel offsets
of about ±5 (residual spread 0.01-0.07, correlated 0.46 with the raw voxels): a FireNet fed that
saturated, predicted one grey frame (spread 3e-5) and passed for privacy. A fitted per-channel affine
in front of the attacker undoes any such per-channel gain and offset.
"""

from __future__ import annotations

from pathlib import Path

import torch

from anonreid.models.checkpoint import load_checkpoint, save_checkpoint
from anonreid.models.layers import ChannelAffine, fit_channel_affine
from anonreid.models.registry import create_model, model_cfg


def _raw(n: int = 16, bins: int = 5, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    sparse = torch.rand(n, bins, 24, 16, generator=g) < 0.05  # event voxels are mostly zeros
    return torch.randn(n, bins, 24, 16, generator=g) * sparse


def test_fit_gives_each_channel_the_target_mean_and_spread() -> None:
    raw = _raw()
    gains = torch.tensor([0.02, 0.1, 0.1, 0.05, 0.02]).view(1, -1, 1, 1)
    offsets = torch.tensor([-5.0, -4.3, 4.5, 4.9, -5.0]).view(1, -1, 1, 1)
    anon = raw * gains + offsets
    affine = ChannelAffine(5)
    fitted = fit_channel_affine(affine, anon, raw)
    out = affine(anon)
    # independent check: per-channel mean / std computed by hand
    for c in range(5):
        assert abs(float(out[:, c].mean()) - float(raw[:, c].mean())) < 1e-4
        assert abs(float(out[:, c].std()) - float(raw[:, c].std())) < 1e-4
    # an anonymizer that only rescales and shifts each channel is undone exactly
    assert torch.allclose(out, raw, atol=1e-4)
    assert [round(m, 3) for m in fitted["input_mean"]] == [round(float(anon[:, c].mean()), 3) for c in range(5)]


def test_unfitted_affine_is_the_identity_and_raw_attackers_are_unchanged() -> None:
    x = _raw()
    assert torch.equal(ChannelAffine(5)(x), x)
    plain = create_model("firenet", in_bins=5)
    assert plain.input_affine is None and "input_affine.scale" not in plain.state_dict()


def test_the_fitted_affine_is_saved_and_loaded_with_the_attacker(tmp_path: Path) -> None:
    rec = create_model("firenet", in_bins=5, input_affine=True)
    raw = _raw()
    fit_channel_affine(rec.input_affine, raw * 0.1 + 3.0, raw)
    save_checkpoint(tmp_path / "e_rec_adaptive", rec, {"stage": "adaptive"})
    loaded = load_checkpoint(tmp_path / "e_rec_adaptive").model.eval()
    assert dict(model_cfg(loaded).params)["input_affine"] is True
    assert torch.equal(loaded.input_affine.scale, rec.input_affine.scale)
    assert torch.equal(loaded.input_affine.shift, rec.input_affine.shift)
    with torch.no_grad():
        a, _ = rec.eval()(raw[:2] * 0.1 + 3.0)
        b, _ = loaded(raw[:2] * 0.1 + 3.0)
    assert torch.allclose(a, b)


def test_a_standardised_attacker_sees_through_offsets_that_saturate_a_plain_one() -> None:
    """The collapse the large-world run showed, in miniature: the same FireNet weights, fed the raw
    signal under ±5 offsets, answer almost the same frame for every input without the fitted affine,
    and answer as they do on raw voxels with it."""
    torch.manual_seed(0)
    rec = create_model("firenet", in_bins=5, input_affine=True).eval()
    raw = _raw(32)
    offsets = torch.tensor([-5.0, -4.3, 4.5, 4.9, -5.0]).view(1, -1, 1, 1)
    anon = raw * 0.05 + offsets
    with torch.no_grad():
        on_raw, _ = rec(raw)
        saturated, _ = rec(anon)  # identity affine: the plain attacker
        fit_channel_affine(rec.input_affine, anon, raw)
        standardised, _ = rec(anon)
    assert float((saturated - on_raw).abs().mean()) > 10 * float((standardised - on_raw).abs().mean())


def test_checkpoints_from_before_the_new_argument_still_load(tmp_path: Path) -> None:
    """A sidecar that predates ``input_affine`` (the shipped E_rec's) rebuilds at its default, the old
    network; a recorded convention that no longer matches is still refused."""
    import json

    import pytest

    from anonreid.models.checkpoint import CheckpointError

    rec = create_model("firenet", in_bins=5)
    save_checkpoint(tmp_path / "old", rec, {"stage": "rec"})
    sidecar = json.loads((tmp_path / "old.json").read_text())
    del sidecar["model_cfg"]["params"]["input_affine"]  # as written before the argument existed
    (tmp_path / "old.json").write_text(json.dumps(sidecar))
    loaded = load_checkpoint(tmp_path / "old").model
    assert loaded.input_affine is None
    assert torch.equal(loaded.state_dict()["pred.weight"], rec.state_dict()["pred.weight"])
    sidecar["model_cfg"]["output_range"] = "voxel"  # FireNet emits images: not what this network is
    (tmp_path / "old.json").write_text(json.dumps(sidecar))
    with pytest.raises(CheckpointError, match="rebuilt model differs"):
        load_checkpoint(tmp_path / "old")


def test_in_loop_attackers_see_through_per_channel_gains_and_offsets() -> None:
    """The min-max stage's batch standardisation (joint.minmax.standardise): E_an's output under any
    per-channel gain and offset reaches the pool's attackers as the raw voxels' statistics, and the
    privacy term keeps its gradient to E_an."""
    from anonreid.models.config import MinmaxCfg
    from anonreid.models.layers import standardise_like

    assert MinmaxCfg().standardise is True
    raw = _raw(8).view(2, 4, 5, 24, 16)  # (N, T, B, H, W) clips
    gains = torch.tensor([0.02, 0.1, 0.1, 0.05, 0.02]).view(1, 1, -1, 1, 1)
    offsets = torch.tensor([-5.0, -4.3, 4.5, 4.9, -5.0]).view(1, 1, -1, 1, 1)
    anon = (raw * gains + offsets).requires_grad_(True)
    seen = standardise_like(anon, raw)
    assert torch.allclose(seen, raw, atol=1e-4)
    seen.square().sum().backward()
    assert anon.grad is not None and float(anon.grad.abs().sum()) > 0
    tiles = standardise_like(anon[:, -1].detach(), raw[:, -1])  # (N, B, H, W) tiles of the identity attacker
    assert torch.allclose(tiles, raw[:, -1], atol=1e-3)
