"""The adversary node runs every attack of the evaluation suite that the attacker run has, and keeps its
live attacker tied to the anonymizer version the cameras run (issue #16 item 4).

Audit samples are written as real ``AuditSample`` entries into an embedded Redis and read by the node;
the attacker networks are tiny untrained ones saved with the project's checkpoint writer, so what is
checked is the wiring (which attacks run, records with intervals, budgets in the report, the version
logic), not attack strength.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from prometheus_client import CollectorRegistry

from anonreid.orchestration.config import AdversaryConfig
from anonreid.proto.v1 import audit_pb2, sighting_pb2

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W, BINS = 48, 64, 5
WINDOW_US = 33_333
PEOPLE = ("p0", "p1", "p2")
CAMERA = "cam1"


def _box(person: int) -> tuple[float, float, float, float]:
    x = 4 + 20 * person
    return float(x), 6.0, float(x + 14), 42.0


def _write(client: Any, version: str, start: int, n: int, level: float, seed: int = 0) -> None:
    """``n`` consecutive windows from window ``start``, anonymized by ``version`` (voxels in
    [level, level + 0.4]), each with its reference frame and two people in view (which two changes every
    3 windows, a clip: over 3 clips all three people are seen)."""
    rng = np.random.default_rng(seed)
    for k in range(start, start + n):
        anon = (level + 0.4 * rng.random((BINS, H, W))).astype(np.float16)
        ref = rng.integers(0, 255, (H, W), dtype=np.uint8)
        people = ((k // 3) % 3, (k // 3 + 1) % 3)
        truth = [audit_pb2.AuditBox(x1=b[0], y1=b[1], x2=b[2], y2=b[3], identity_id=PEOPLE[p])
                 for p in people for b in [_box(p)]]
        s = audit_pb2.AuditSample(camera_id=CAMERA, window=sighting_pb2.TimeSpan(start_us=k * WINDOW_US,
                                                                                  end_us=(k + 1) * WINDOW_US),
                                  bins=BINS, height=H, width=W, anonymized_voxel=anon.tobytes(),
                                  reference_frame=ref.tobytes(), model_version=version, ground_truth=truth)
        client.xadd(f"audit:{CAMERA}", {"sample": s.SerializeToString()})


def _enrollment() -> dict[str, np.ndarray]:
    """A grey photo per person: the plain wall and a person-shaped block of their own grey."""
    from anonreid.models.evaluation.attacks import ENROLLMENT_WALL

    photos = {}
    for i, person in enumerate(PEOPLE):
        photo = np.full((96, 48), ENROLLMENT_WALL, np.uint8)
        photo[10:90, 12:36] = 40 + 60 * i
        photos[person] = photo
    return photos


def _node(client: Any, attackers: Any, raw_windows: Any = None, **kw: Any) -> tuple[Any, CollectorRegistry]:
    from anonreid.models.evaluation.privacy_policy import PrivacyPolicy
    from anonreid.nodes.adversary.metrics import AdversaryMetrics
    from anonreid.nodes.adversary.node import AdversaryNode

    registry = CollectorRegistry()
    cfg = AdversaryConfig(**{"cameras": [CAMERA], "min_samples": 3, "enrollment": "", "crop_hw": (32, 16),
                             "tile_hw": (32, 24), "max_new_clips": 100, "adaptive_every_s": 3600, **kw})
    node = AdversaryNode(cfg, client, attackers=attackers, enrollment=_enrollment(), policy=PrivacyPolicy.load(),
                         metrics=AdversaryMetrics(registry), raw_windows=raw_windows)
    return node, registry


def _weights(root: Path, raw_towers: bool = False) -> Path:
    """A flat attacker weight set (the shipped layout) with every network of the suite but E_inv and the
    offline adaptive E_rec' (and, unless ``raw_towers``, the identity attack's raw-event control): tiny
    untrained networks, saved as the attack stages save them."""
    from anonreid.models.budget import Budget
    from anonreid.models.checkpoint import save_checkpoint
    from anonreid.models.config import IdentityCfg
    from anonreid.models.identity_attack import PHOTO_TOWER, VOXEL_TOWER, build_identity_attacker, tower_names
    from anonreid.models.registry import create_model

    torch.manual_seed(0)
    meta = {"preset": "tiny", "data_fingerprint": "0123456789abcdef"}
    save_checkpoint(root / "e_rec", create_model("firenet"), {**meta, "stage": "rec", "trained_on": "raw events",
                                                               "config": {"rec": {"steps": 50, "batch_size": 2}}})
    finetuned = Budget("e_rec_finetuned", "reconstruction", 30, 4, "e_rec", 100)
    save_checkpoint(root / "e_rec_finetuned", create_model("firenet"),
                    {**meta, "stage": "finetune", "budget": finetuned.as_dict()})
    save_checkpoint(root / "e_lin", create_model("linear_inverse", in_bins=BINS, kernel=3, input_range="unit"),
                    {**meta, "stage": "linear", "fitted": "closed-form least squares", "clips": 12})
    icfg = IdentityCfg(embed_dim=16, crop_hw=(32, 16))
    towers = build_identity_attacker(icfg, BINS, len(PEOPLE))
    identity = {**meta, "stage": "identity", "crop_hw": [32, 16], "budget": Budget(VOXEL_TOWER, "identity", 20, 8).as_dict()}
    save_checkpoint(root / VOXEL_TOWER, towers.voxel, identity)
    save_checkpoint(root / PHOTO_TOWER, towers.photo, identity)
    if raw_towers:
        raw = build_identity_attacker(icfg, BINS, len(PEOPLE))
        voxel_name, photo_name = tower_names(raw=True)
        save_checkpoint(root / voxel_name, raw.voxel, {**identity, "stage": "identity_raw"})
        save_checkpoint(root / photo_name, raw.photo, {**identity, "stage": "identity_raw"})
    app = create_model("reid_resnet18", in_bins=1, embed_dim=16, num_classes=len(PEOPLE), crop_hw=(32, 16))
    save_checkpoint(root / "attacker" / "appearance", app,
                    {**meta, "attacker_cfg": {"steps": 40, "p": 3, "k": 2, "crop_hw": [32, 16]}, "identities": 3})
    return root


def test_every_attack_of_the_run_is_run_scored_with_intervals_and_its_budget_reported(
    redis_service: Any, tmp_path: Path
) -> None:
    from anonreid.nodes.adversary.attackers import load_attackers
    from anonreid.nodes.adversary.report import render_html, report_data
    from anonreid.orchestration.infra.audit_log import AuditLog

    attackers = load_attackers(_weights(tmp_path / "weights"))
    assert attackers.side is not None and attackers.side.e_rec_finetuned is not None and attackers.side.e_lin is not None
    assert attackers.identity is not None and attackers.identity.crop_hw == (32, 16)
    # the shipped set's networks are "missing" when absent, the others only a full run trains are not
    assert any("e_inv.json" in m for m in attackers.missing) and attackers.identity_raw is None
    assert attackers.absent == [f"{tmp_path / 'weights' / 'attack_id_raw_voxel'}.json: no stage identity_raw in this "
                                "run: the direct identity attack runs without its positive control"]
    client = redis_service.client()
    _write(client, "an-v1", 0, 9, 0.1)
    node, registry = _node(client, attackers, adaptive_steps=2)
    assert node.poll() == 9
    records = node.attack_round()
    by = {(r.attack, r.metric): r for r in records}
    for attack in ("reconstruction", "finetuned", "linear"):
        assert {(attack, "ssim"), (attack, "psnr")} <= set(by), attack
    assert {("retrieval", "rank1"), ("finetuned", "rank1"), ("linear", "rank1")} <= set(by)
    for attack in ("retrieval", "finetuned", "linear"):  # each carries its positive control: the same retrieval
        assert by[(attack, "rank1")].HasField("control_low")  # on the clean reference frames, one for the round
    assert len({by[(a, "rank1")].control_low for a in ("retrieval", "finetuned", "linear")}) == 1
    assert not by[("identity", "rank1")].HasField("control_low")  # no raw events in the audit tap: none
    assert not any(r.attack == "adaptive" for r in records)  # an unrefreshed copy of E_rec is not run
    for metric in ("rank1", "map"):
        r = by[("identity", metric)]  # each anonymized person crop (2 per window) ranks the 3 enrolled photos
        assert r.num_samples == 2 * 3 and r.num_identities == 3 and "an-v1" in r.model_version
        assert r.ci_low <= r.value <= r.ci_high and r.interval_method
    assert by[("identity", "rank1")].chance == pytest.approx(1 / 3)
    assert by[("identity", "rank1")].interval_method.startswith("clopper-pearson")
    for attack in ("identity", "finetuned", "linear"):  # judged by the policy: one of the three states
        assert registry.get_sample_value("anonreid_privacy_state", {"camera": CAMERA, "attack": attack}) in (0, 1, 2)
    assert [r.record_id for r in AuditLog(client).records()] == [r.record_id for r in records]

    data = report_data(client, node.policy, [CAMERA])
    budgets = {a["name"]: a["budget"] for a in data.attackers}
    assert set(budgets) == {"e_rec", "e_rec_finetuned", "e_lin", "attack_id_voxel", "appearance", "adaptive (live)"}
    assert budgets["e_rec_finetuned"]["samples"] == 30 * 4 + 100 and budgets["e_rec_finetuned"]["init_from"] == "e_rec"
    assert budgets["attack_id_voxel"] == {**budgets["attack_id_voxel"], "steps": 20, "batch_size": 8,
                                          "unit": "person crops"}
    assert budgets["e_lin"]["samples"] == 12 and "closed-form" in budgets["e_lin"]["source"]
    assert budgets["e_rec"]["steps"] == 50 and budgets["appearance"]["samples"] == 40 * 6
    live = next(a for a in data.attackers if a["name"] == "adaptive (live)")
    assert live["anonymizer_version"] == "an-v1" and live["retrains"] == 0
    page = render_html(data)
    assert "attack_id_voxel" in page and "30 steps x batch 4 = 220 clips, from e_rec" in page
    statuses = {(v.attack, v.metric): v.status for v in data.verdicts}
    assert statuses[("identity", "rank1")] != "not checked" and statuses[("finetuned", "ssim")] != "not checked"


def test_a_new_anonymizer_version_restarts_and_retrains_the_live_attacker(redis_service: Any) -> None:
    """Pairs of the old version are dropped, the weights are the base's again, cached outputs of the
    live attacker are gone, and it is retrained on the new version's pairs only; the published entry
    names the version and its budget under it, and counts the restart."""
    from anonreid.models.evaluation.attacks import AttackerSide
    from anonreid.models.registry import create_model
    from anonreid.nodes.adversary.attackers import Attackers
    from anonreid.orchestration.infra.audit_log import AuditLog

    torch.manual_seed(0)
    base = create_model("firenet").eval()
    client = redis_service.client()
    node, _registry = _node(client, Attackers(AttackerSide(base)), adaptive_steps=2, adaptive_batch_size=2,
                            adaptive_lr=1e-2)
    live = node.adaptive
    assert live is not None and (live.lr, live.batch_size) == (1e-2, 2)  # from the config

    def same_as_base() -> bool:  # every weight of the base (the live copy has an input standardisation too)
        mine = live.model.state_dict()
        return all(torch.equal(mine[k], v) for k, v in base.state_dict().items())

    _write(client, "an-v1", 0, 9, 0.0, seed=1)  # the old version: voxels in [0, 0.4]
    node.poll()
    node.attack_round()
    assert live.version == "an-v1" and len(live.pairs) == 3 * 2  # 3 clips x 2 people
    assert node.refresh_adaptive()["steps"] == 2 and not same_as_base()
    _write(client, "an-v1", 9, 3, 0.0, seed=2)
    node.poll()
    assert any(r.attack == "adaptive" for r in node.attack_round())  # on the clip read after the refresh
    assert any(k[0] == "adaptive" for k in node._views) and len(live.pairs) == 4 * 2

    _write(client, "an-v2", 12, 9, 0.6, seed=3)  # the cameras move on: voxels in [0.6, 1.0]
    node.poll()
    records = node.attack_round()
    assert live.version == "an-v2" and live.retrains == 1 and same_as_base()
    assert not any(r.attack == "adaptive" for r in records)  # restarted from E_rec: nothing of its own yet
    assert not any(k[0] == "adaptive" for k in node._views)
    assert len(live.pairs) == 3 * 2 and all(a.min() >= 0.59 for a, _ref in live.pairs)  # the v2 clips only
    entry = next(a for a in AuditLog(client).attackers() if a["name"] == "adaptive (live)")
    assert entry["anonymizer_version"] == "an-v2" and entry["retrains"] == 1 and entry["budget"]["steps"] == 0

    records = node.attack_round()  # due at once after a restart: retrained on the v2 pairs
    assert live.refreshes == 1 and live.steps_trained == 2 and not same_as_base()
    assert not any(r.attack == "adaptive" for r in records)  # every v2 clip so far was read before it
    entry = next(a for a in AuditLog(client).attackers() if a["name"] == "adaptive (live)")
    assert entry["budget"]["steps"] == 2 and entry["budget"]["samples"] == 2 * 2 and entry["budget"]["batch_size"] == 2
    _write(client, "an-v2", 21, 3, 0.6, seed=4)
    node.poll()
    adaptive = [r for r in node.attack_round() if r.attack == "adaptive"]
    assert adaptive and all("an-v2" in r.model_version for r in adaptive)
    assert node.stats()["adaptive_retrains"] == 1 and node.stats()["adaptive_version"] == "an-v2"


def test_the_fleet_version_is_what_most_cameras_run() -> None:
    """A rolling update switches once most cameras run the new version; a tie keeps the current one."""
    from anonreid.nodes.adversary.samples import Sample, fleet_version

    def newest(*versions: str) -> list[Sample]:
        return [Sample(seq, f"cam{seq}", 0, 1, np.zeros((1, 1, 1), np.float32), None, [], v)
                for seq, v in enumerate(versions)]

    assert fleet_version([], "v1") == "v1" and fleet_version([], None) is None
    assert fleet_version(newest("v1", "v1", "v1", "v2"), "v1") == "v1"
    assert fleet_version(newest("v1", "v1", "v2", "v2"), "v1") == "v1"  # a tie keeps the current
    assert fleet_version(newest("v1", "v2", "v2", "v2"), "v1") == "v2"
    assert fleet_version(newest("v2", "v1", "v1", "v1"), "v2") == "v1"  # a rollback
    assert fleet_version(newest("v1", "v2"), None) == "v2"  # no current: the most recently read


def test_the_identity_attack_carries_its_raw_event_control_where_the_raw_windows_can_be_rendered(
    redis_service: Any, tmp_path: Path
) -> None:
    """With stage identity_raw's towers and a renderer of raw windows, each identity score carries the same
    ranking from the raw voxels of the same windows as its positive control (control_low), computed from the
    windows the scored clips end with; the policy never passes a score whose control is not clearly over
    the limit. Without a renderer (not a simulated world) the attack runs without it."""
    from anonreid.models.evaluation import attacks as suite
    from anonreid.models.evaluation.results import ENROLLMENT_CAMERA
    from anonreid.nodes.adversary.attackers import load_attackers
    from anonreid.nodes.adversary.report import report_data

    attackers = load_attackers(_weights(tmp_path / "weights", raw_towers=True))
    assert attackers.identity_raw is not None and not attackers.absent
    assert "attack_id_raw_voxel" in {a["name"] for a in attackers.described}
    rendered: dict[tuple[str, int, int], np.ndarray] = {}

    def raw_windows(camera: str, start_us: int, end_us: int, shape: tuple[int, int, int]) -> np.ndarray:
        voxel = np.random.default_rng(start_us).normal(0, 0.3, shape).astype(np.float32)
        rendered[(camera, start_us, end_us)] = voxel
        return voxel

    client = redis_service.client()
    _write(client, "an-v1", 0, 9, 0.1)
    node, _registry = _node(client, attackers, adaptive_steps=0, raw_windows=raw_windows)
    node.poll()
    by = {(r.attack, r.metric): r for r in node.attack_round()}
    # the clips end with windows 2, 5 and 8: each rendered once, at its span, in the samples' shape
    assert sorted(rendered) == [(CAMERA, k * WINDOW_US, (k + 1) * WINDOW_US) for k in (2, 5, 8)]
    assert {v.shape for v in rendered.values()} == {(BINS, H, W)}
    # the control: the raw towers' ranking of the enrolled photos from the same people in those windows
    towers = attackers.identity_raw
    q, ids = [], []
    for k in (2, 5, 8):
        people = ((k // 3) % 3, (k // 3 + 1) % 3)
        boxes = np.asarray([_box(p) for p in people], np.float32)
        voxel = rendered[(CAMERA, k * WINDOW_US, (k + 1) * WINDOW_US)]
        q.append(towers.voxel_embeddings(np.repeat(voxel[None], 2, axis=0), boxes).numpy())
        ids += [PEOPLE[p] for p in people]
    g = towers.photo_embeddings([_enrollment()[p] for p in PEOPLE]).numpy()
    expected = suite.retrieval_scores(np.concatenate(q), ids, [CAMERA] * len(ids), g, list(PEOPLE),
                                      [ENROLLMENT_CAMERA] * len(PEOPLE))
    for metric, est in (("rank1", expected.rank1), ("map", expected.mAP)):
        record = by[("identity", metric)]
        assert record.HasField("control_low") and record.control_low == pytest.approx(est.ci_low, abs=1e-6)
    verdict = next(v for v in report_data(client, node.policy, [CAMERA]).verdicts
                   if (v.attack, v.metric) == ("identity", "rank1"))
    assert verdict.status != "pass" or by[("identity", "rank1")].control_low > verdict.threshold, verdict

    # without a renderer of raw windows (no simulated world) the same towers give no control
    client.delete("audit:records")
    node, _registry = _node(client, attackers, adaptive_steps=0)
    node.poll()
    by = {(r.attack, r.metric): r for r in node.attack_round()}
    assert not by[("identity", "rank1")].HasField("control_low")


def test_raw_windows_render_the_scene_the_camera_films(tmp_path: Path) -> None:
    """The adversary's own raw windows of the live world: the same people as the camera's stream in that
    window (its voxel grid correlates with the camera's; a window a second away does not), and a world
    that does not match the samples is refused by name."""
    from anonreid.events.voxel import events_to_voxel
    from anonreid.events.world.live import LiveWorld
    from anonreid.nodes.adversary.raw_windows import RawWindows
    from anonreid.orchestration.config import WorldConfig

    cfg = WorldConfig()
    w = cfg.window_us
    packets = LiveWorld(cfg).camera_stream("cam3", 0, realtime=False, packet_us=w)
    camera = np.concatenate([next(packets) for _ in range(46)])  # 1.5 s: person 032 crosses cam3 from 0.5 s
    shape = (5, 240, 320)

    def camera_voxel(k: int) -> np.ndarray:
        s, e = k * w, (k + 1) * w
        return events_to_voxel(camera[(camera["t"] >= s) & (camera["t"] < e)], 5, 240, 320, normalize=True,
                               t_range=(s, e))

    raw = RawWindows(cfg)
    for k in (30, 45):
        mine = raw.voxel("cam3", k * w, (k + 1) * w, shape)
        same = float(np.corrcoef(mine.ravel(), camera_voxel(k).ravel())[0, 1])
        other = float(np.corrcoef(mine.ravel(), camera_voxel(k - 15 if k == 45 else k + 15).ravel())[0, 1])
        assert same > 0.3 and other < 0.15, (k, same, other)
    with pytest.raises(ValueError, match=r"\(world\.resolution\)"):
        raw.voxel("cam3", 0, w, (5, 480, 640))
