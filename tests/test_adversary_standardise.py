"""The live adversary cannot be fooled by per-channel offsets, nor by its own collapse (issue #16 item 4).

An anonymizer that emits the raw events under large per-channel offsets and small gains (what the
large-world min-max E_an learned, see tests/test_attacker_standardise.py) hides nothing: its output is
an affine image of the raw voxels. The live adaptive attacker, trained by the node on its own
calibration pairs from the audit tap, must therefore reconstruct the people and the node must call it
a breach. Without a per-channel standardisation of its input, the offsets saturate it, it predicts one
grey frame, scores at the flat-grey floor and the node called that "pass". And an attacker whose output
hardly varies (spread under 10 % of the reference frames') is no evidence of privacy: "insufficient
evidence", whatever its interval.

Real audit samples through an embedded Redis, a real (tiny) FireNet trained by the node; a world of
six people small enough to train on in seconds: the reference frame of a window is a pixel-wise
function of its raw voxels, so a reconstruction attacker can learn it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry
from torch import nn

from anonreid.orchestration.config import AdversaryConfig
from anonreid.proto.v1 import audit_pb2, sighting_pb2

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W, BINS = 32, 48, 5
WINDOW_US = 33_333
PEOPLE = tuple(f"p{i}" for i in range(6))
CAMERA = "cam1"
BOXES = ((4.0, 4.0, 18.0, 28.0), (28.0, 4.0, 42.0, 28.0))  # two people in view, at fixed places


class OffsetAnonymizer(nn.Module):
    """Raw events under per-channel gains and large offsets: no privacy at all."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("gain", torch.tensor([0.05, 0.1, 0.1, 0.05, 0.08]).view(-1, 1, 1))
        self.register_buffer("offset", torch.tensor([-5.0, -4.3, 4.5, 4.9, -5.0]).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain + self.offset


def _window(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw voxels (sparse +-1 events inside the two boxes) and the reference frame they determine."""
    raw = np.zeros((BINS, H, W), np.float32)
    for x1, y1, x2, y2 in BOXES:
        ys, xs = slice(int(y1), int(y2)), slice(int(x1), int(x2))
        shape = (BINS, int(y2 - y1), int(x2 - x1))
        raw[:, ys, xs] = np.where(rng.random(shape) < 0.35, rng.choice([-1.0, 1.0], shape), 0.0)
    ref = 128 + 110 * np.tanh(0.6 * raw.sum(0))
    return raw, ref.astype(np.uint8)


def _write(client: Any, anonymizer: nn.Module, start: int, n: int, seed: int) -> None:
    """``n`` consecutive windows from window ``start``; which two people are in view changes every clip
    (3 windows), so that 6 clips show all six."""
    rng = np.random.default_rng(seed)
    for k in range(start, start + n):
        raw, ref = _window(rng)
        with torch.no_grad():
            anon = anonymizer(torch.from_numpy(raw)).numpy().astype(np.float16)
        pair = (2 * (k // 3) % 6, (2 * (k // 3) + 1) % 6)
        truth = [audit_pb2.AuditBox(x1=b[0], y1=b[1], x2=b[2], y2=b[3], identity_id=PEOPLE[p])
                 for p, b in zip(pair, BOXES, strict=True)]
        s = audit_pb2.AuditSample(camera_id=CAMERA, window=sighting_pb2.TimeSpan(start_us=k * WINDOW_US,
                                                                                  end_us=(k + 1) * WINDOW_US),
                                  bins=BINS, height=H, width=W, anonymized_voxel=anon.tobytes(),
                                  reference_frame=ref.tobytes(), model_version="offsets", ground_truth=truth)
        client.xadd(f"audit:{CAMERA}", {"sample": s.SerializeToString()})


def _node(client: Any, base: nn.Module, **kw: Any) -> tuple[Any, CollectorRegistry]:
    from anonreid.models.evaluation.attacks import AttackerSide
    from anonreid.models.evaluation.privacy_policy import PrivacyPolicy
    from anonreid.nodes.adversary.attackers import Attackers
    from anonreid.nodes.adversary.metrics import AdversaryMetrics
    from anonreid.nodes.adversary.node import AdversaryNode

    registry = CollectorRegistry()
    cfg = AdversaryConfig(**{"cameras": [CAMERA], "min_samples": 3, "enrollment": "", "crop_hw": (24, 14),
                             "tile_hw": (24, 16), "max_new_clips": 100, "window_samples": 120,
                             "adaptive_every_s": 3600, **kw})
    node = AdversaryNode(cfg, client, attackers=Attackers(AttackerSide(base)), enrollment={},
                         policy=PrivacyPolicy.load(), metrics=AdversaryMetrics(registry))
    return node, registry


def _state(registry: CollectorRegistry, attack: str) -> float | None:
    return registry.get_sample_value("anonreid_privacy_state", {"camera": CAMERA, "attack": attack})


def test_offsets_do_not_make_raw_events_pass_for_private(redis_service: Any) -> None:
    """The live attacker trained through the offset "anonymizer" reconstructs the people: a breach, and
    never a pass (before its input was standardised per channel, it collapsed to grey and passed)."""
    from anonreid.models.registry import create_model
    from anonreid.orchestration.infra.audit_log import AuditLog

    torch.manual_seed(0)
    client = redis_service.client()
    anonymizer = OffsetAnonymizer()
    node, registry = _node(client, create_model("firenet", base=8).eval(), adaptive_steps=40,
                           adaptive_budget_s=60, adaptive_batch_size=8, adaptive_lr=1e-2)
    _write(client, anonymizer, 0, 36, seed=0)  # calibration: 12 clips, 24 (anonymized, reference) tiles
    node.poll()
    node.attack_round()
    assert node.adaptive is not None and len(node.adaptive.pairs) == 24
    info = node.refresh_adaptive()
    assert info["steps"] == 40
    _write(client, anonymizer, 36, 36, seed=1)  # held out: read after the refresh
    node.poll()
    records = [r for r in node.attack_round() if r.attack == "adaptive" and r.metric == "ssim"]
    assert records and records[0].num_identities == len(PEOPLE)
    ssim = records[0]
    assert _state(registry, "adaptive") == 2.0, (ssim.value, ssim.ci_low, ssim.ci_high, ssim.chance)  # breach
    assert ssim.ci_low > ssim.chance + 0.10 and not ssim.collapsed
    entry = next(a for a in AuditLog(client).attackers() if a["name"] == "adaptive (live)")
    assert entry["input"].startswith("standardised per channel"), entry


def test_a_collapsed_attacker_is_no_evidence_of_privacy(redis_service: Any) -> None:
    """An attacker that answers one grey frame whatever it is given scores at the flat-grey floor, over
    six people, with a tight interval: a pass by the numbers. Its output spread is under 10 % of the
    reference frames', so the node records it as collapsed and the verdict is "insufficient evidence",
    in the node's gauge and in the report (which judges the records again)."""
    from anonreid.models.evaluation.privacy_policy import privacy_status
    from anonreid.models.registry import create_model
    from anonreid.orchestration.infra.audit_log import AuditLog

    torch.manual_seed(0)
    client = redis_service.client()
    grey = create_model("firenet", base=8).eval()
    with torch.no_grad():  # a constant output: sigmoid(0) = 0.5 everywhere
        grey.pred.weight.zero_()
        grey.pred.bias.zero_()
    node, registry = _node(client, grey, adaptive_steps=0)
    _write(client, OffsetAnonymizer(), 0, 36, seed=2)
    node.poll()
    records = {(r.attack, r.metric): r for r in node.attack_round()}
    ssim = records[("reconstruction", "ssim")]
    assert ssim.num_identities == len(PEOPLE) and ssim.ci_high <= ssim.chance + 0.05  # a pass by its interval
    assert "under 10%" in ssim.collapsed
    assert _state(registry, "reconstruction") == 1.0  # insufficient evidence
    assert not AuditLog(client).alerts()
    status = privacy_status(AuditLog(client).records(), node.policy, [CAMERA])
    verdict = next(v for v in status["verdicts"] if (v["attack"], v["metric"]) == ("reconstruction", "ssim"))
    assert verdict["status"] == "insufficient evidence" and "collapsed" in verdict["reason"]


def test_the_live_attacker_standardises_to_the_raw_statistics_the_run_recorded(tmp_path: Any) -> None:
    """An attacker run whose attack stage fitted an input standardisation records the raw voxels'
    per-channel statistics in its checkpoint; the live attacker maps each anonymizer version's tiles to
    those (not to unit spread), from the base weights plus an affine of its own. A family without such
    an input (e2vid) trains unstandardised and its report entry says so."""
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.layers import channel_stats, fit_channel_affine
    from anonreid.models.registry import create_model
    from anonreid.nodes.adversary.attackers import load_attackers
    from anonreid.nodes.adversary.training import AdaptiveAttacker

    rng = np.random.default_rng(0)
    raw = torch.from_numpy(np.stack([_window(rng)[0] for _ in range(8)]))
    adaptive = create_model("firenet", base=8, input_affine=True)
    fitted = fit_channel_affine(adaptive.input_affine, raw * 0.1 + 3.0, raw)  # as the adaptive stage records it
    save_checkpoint(tmp_path / "e_rec", create_model("firenet", base=8), {"stage": "rec"})
    save_checkpoint(tmp_path / "e_rec_adaptive", adaptive, {"stage": "adaptive", "input_affine": fitted})
    attackers = load_attackers(tmp_path)
    assert attackers.side is not None and attackers.side.e_rec_adaptive is not None
    assert attackers.voxel_stats == (fitted["target_mean"], fitted["target_std"])

    kw: dict[str, Any] = {"steps": 1, "budget_s": 30, "every_s": 1, "max_pairs": 8, "tile_hw": (H, W), "lr": 1e-3,
                          "batch_size": 2}
    live = AdaptiveAttacker(attackers.side.e_rec_adaptive, "e_rec_adaptive", target=attackers.voxel_stats, **kw)
    with torch.no_grad():  # another anonymizer version than the one the run fitted on, as the audit tap carries it
        anon = OffsetAnonymizer()(raw).half().float()
    for i in range(0, 8, 2):
        live.pairs.append((anon[i : i + 2].numpy().astype(np.float16), np.zeros((2, H, W), np.uint8)))
    assert live.refresh(0)["steps"] == 1
    with torch.no_grad():
        mean, std = channel_stats(live.affine(anon))
    assert torch.allclose(mean.flatten(), torch.tensor(fitted["target_mean"]), atol=1e-3)
    assert torch.allclose(std.flatten(), torch.tensor(fitted["target_std"]), rtol=1e-3)
    assert live.describe()["input"].startswith("standardised per channel to the raw voxels'")

    e2vid = AdaptiveAttacker(create_model("e2vid", base=4, num_encoders=2, num_res=1), "e_rec", **kw)
    assert e2vid.affine is None and "as they come" in e2vid.describe()["input"]
