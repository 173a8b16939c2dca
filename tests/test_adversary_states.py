"""The adversary node's three states, end to end from a score to Redis and Prometheus: few samples give
"insufficient evidence" (no alert), many samples of an attacker at chance "pass", many of an attacker
that recognises people "breach" (an alert); the state gauge, the upper-bound gauge, the audit records
(interval, its method, samples, people) and the console's status follow.

Scores come from the evaluation's own statistics (Clopper–Pearson over simulated retrieval hits, the
identity bootstrap over simulated SSIM), not from a trained network: the network part of the loop is
covered by tests/test_adversary_node.py."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from anonreid.models.evaluation.intervals import bootstrap_ci, proportion_ci
from anonreid.orchestration.config import AdversaryConfig

CHANCE = 1 / 33  # 33 enrolled people


def _node(client: Any) -> tuple[Any, CollectorRegistry]:
    from anonreid.models.evaluation.privacy_policy import PrivacyPolicy
    from anonreid.nodes.adversary.attackers import Attackers
    from anonreid.nodes.adversary.metrics import AdversaryMetrics
    from anonreid.nodes.adversary.node import AdversaryNode

    registry = CollectorRegistry()
    cfg = AdversaryConfig(cameras=["cam1", "cam2", "cam3"], enrollment="", adaptive_steps=0)
    node = AdversaryNode(cfg, client, attackers=Attackers(), enrollment={}, policy=PrivacyPolicy.load(),
                         metrics=AdversaryMetrics(registry))
    return node, registry


def _hits(people: int, per_person: int, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(people), per_person)
    return (rng.random(len(ids)) < rate).astype(float), ids


def test_few_samples_wait_many_good_pass_many_bad_breach(redis_service: Any) -> None:
    from anonreid.models.evaluation.privacy_policy import privacy_status
    from anonreid.orchestration.infra.audit_log import AuditLog

    client = redis_service.client()
    node, registry = _node(client)
    cases = {"cam1": (6, 2, CHANCE), "cam2": (40, 15, CHANCE), "cam3": (40, 15, 0.5)}  # people, queries each, rate
    for seed, (camera, (people, each, rate)) in enumerate(cases.items()):
        hits, ids = _hits(people, each, rate, seed)
        node._emit(camera, "retrieval", "rank1", proportion_ci(hits, ids), CHANCE, (0, 1), len(hits), "v1", people)
    gauge = {c: registry.get_sample_value("anonreid_privacy_state", {"camera": c, "attack": "retrieval"})
             for c in cases}
    assert gauge == {"cam1": 1.0, "cam2": 0.0, "cam3": 2.0}  # insufficient evidence, pass, breach
    records = {r.camera_id: r for r in AuditLog(client).records()}
    assert records["cam2"].num_identities == 40 and records["cam2"].num_samples == 600
    assert records["cam2"].interval_method.startswith("clopper-pearson")
    upper = registry.get_sample_value("anonreid_privacy_upper_bound",
                                      {"camera": "cam2", "attack": "retrieval", "metric": "rank1"})
    assert upper == pytest.approx(records["cam2"].ci_high) and upper <= CHANCE + 0.05
    alerts = AuditLog(client).alerts()
    assert [a.record.camera_id for a in alerts] == ["cam3"] and "[95% " in alerts[0].message
    assert registry.get_sample_value("anonreid_privacy_alerts_total", {"camera": "cam1", "attack": "retrieval"}) == 0
    status = privacy_status(AuditLog(client).records(), node.policy, list(cases))
    scored = {v["camera"]: v for v in status["verdicts"] if v["attack"] == "retrieval" and v["metric"] == "rank1"}
    assert {c: v["status"] for c, v in scored.items()} == {"cam1": "insufficient evidence", "cam2": "pass",
                                                           "cam3": "breach"}
    assert "cannot bound rank-1" in scored["cam1"]["reason"] and status["overall"] == "breach"


def test_one_person_can_show_a_breach_but_never_a_pass(redis_service: Any) -> None:
    """The reconstruction SSIM of one person's 30 clips: a flat-grey-level score stays "insufficient
    evidence" (one person says nothing about everyone else), a leaking one is a breach for that person."""
    client = redis_service.client()
    node, registry = _node(client)
    rng = np.random.default_rng(3)
    floor = 0.53
    private = bootstrap_ci(rng.normal(0.45, 0.02, 30), bounds=(-1.0, 1.0))
    leaking = bootstrap_ci(rng.normal(0.75, 0.02, 30), bounds=(-1.0, 1.0))
    node._emit("cam1", "reconstruction", "ssim", private, floor, (0, 1), 30, "v1", 1)
    node._emit("cam2", "reconstruction", "ssim", leaking, floor, (0, 1), 30, "v1", 1)
    state = {c: registry.get_sample_value("anonreid_privacy_state", {"camera": c, "attack": "reconstruction"})
             for c in ("cam1", "cam2")}
    assert state == {"cam1": 1.0, "cam2": 2.0}


def test_the_node_publishes_its_attackers_and_budgets(redis_service: Any) -> None:
    """The shipped attackers as the node loads them: each named with its training budget, read from the
    checkpoints' JSON sidecars, and published for the report."""
    from anonreid.models.bundle import DEFAULT_WEIGHTS
    from anonreid.nodes.adversary.attackers import load_attackers
    from anonreid.nodes.adversary.metrics import AdversaryMetrics
    from anonreid.nodes.adversary.node import AdversaryNode
    from anonreid.orchestration.infra.audit_log import AuditLog

    attackers = load_attackers(DEFAULT_WEIGHTS)
    by = {a["name"]: a for a in attackers.described}
    assert {"e_rec", "e_rec_adaptive", "appearance"} <= set(by)
    assert by["e_rec"]["budget"]["steps"] > 0 and by["e_rec"]["budget"]["samples"] > 0
    assert by["appearance"]["budget"]["unit"] == "person crops" and by["appearance"]["budget"]["identities"] > 0
    client = redis_service.client()
    cfg = AdversaryConfig(cameras=["cam1"], enrollment="", adaptive_steps=5)
    AdversaryNode(cfg, client, attackers=attackers, enrollment={}, metrics=AdversaryMetrics(CollectorRegistry()))
    published = {a["name"]: a for a in AuditLog(client).attackers()}
    assert published["e_rec"] == by["e_rec"]
    assert published["adaptive (live)"]["budget"]["steps"] == 0  # not refreshed yet: nothing trained on the stream
