"""Prometheus collectors of the adversary node (labels ``camera`` and ``attack``, plus ``metric`` on the
interval bound: all three from fixed small sets), and ``anonreid_adversary_round_seconds``, how long its
attack rounds take.

``anonreid_privacy_state`` is the verdict of the latest scores of a camera's attack: 0 pass,
1 insufficient evidence, 2 breach (the worst over the attack's metrics); ``anonreid_privacy_upper_bound``
the 95% upper bound each verdict was judged by.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from anonreid.models.evaluation.intervals import STATES
from anonreid.proto.v1 import audit_pb2

#: the value of anonreid_privacy_state per verdict (pass, insufficient evidence, breach)
STATE_VALUES = {state: float(i) for i, state in enumerate(STATES)}

_GAUGES = {
    "ssim": ("anonreid_privacy_ssim", "SSIM of the attacker's reconstructions vs reference frames"),
    "psnr": ("anonreid_privacy_psnr_db", "PSNR (dB) of the attacker's reconstructions vs reference frames"),
    "rank1": ("anonreid_privacy_rank1", "attacker retrieval rank-1 (fraction)"),
    "map": ("anonreid_privacy_map", "attacker retrieval mAP (fraction)"),
    "auc": ("anonreid_privacy_face_auc", "face-verification attack ROC AUC"),
}


class AdversaryMetrics:
    """One gauge per metric, the chance level of rank-1, and the alert counter; recorded in :meth:`observe`."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        reg = registry if registry is not None else REGISTRY
        labels = ["camera", "attack"]
        self.gauges = {m: Gauge(name, doc, labels, registry=reg) for m, (name, doc) in _GAUGES.items()}
        self.rank1_chance = Gauge(
            "anonreid_privacy_rank1_chance", "chance level of the attacker's rank-1", labels, registry=reg
        )
        self.alerts = Counter("anonreid_privacy_alerts_total", "privacy policy breaches", labels, registry=reg)
        self.checks = Counter("anonreid_privacy_checks_total", "attack evaluations run", labels, registry=reg)
        self.state = Gauge("anonreid_privacy_state", "privacy verdict of the latest scores: 0 pass, "
                           "1 insufficient evidence, 2 breach (worst over the attack's metrics)", labels, registry=reg)
        self.upper = Gauge("anonreid_privacy_upper_bound", "95% upper bound of the latest score (what the verdict "
                           "compares with the threshold)", [*labels, "metric"], registry=reg)
        self.round_seconds = Histogram(
            "anonreid_adversary_round_seconds", "wall time of one attack round over every camera (a round due "
            "every adversary.interval_s: one taking longer delays the next)", registry=reg,
            buckets=(0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320))
        self._states: dict[tuple[str, str], dict[str, float]] = {}

    def start_counting(self, cameras: list[str], attacks: list[str]) -> None:
        """Export the counters at 0 for every (camera, attack) before the first score, so that
        ``increase()`` sees the first alert and a quiet policy reads as 0 alerts, not as no data."""
        for camera in cameras:
            for attack in attacks:
                self.alerts.labels(camera=camera, attack=attack)
                self.checks.labels(camera=camera, attack=attack)

    def observe(self, record: audit_pb2.AuditRecord, states: list[str]) -> None:
        """Export one score and its verdicts (one per policy rule covering it; none: no state)."""
        labels = {"camera": record.camera_id, "attack": record.attack}
        gauge = self.gauges.get(record.metric)
        if gauge is not None:
            gauge.labels(**labels).set(record.value)
        if record.metric in _GAUGES:
            self.upper.labels(**labels, metric=record.metric).set(record.ci_high)
        if record.metric == "rank1":
            self.rank1_chance.labels(**labels).set(record.chance)
        if states:
            per_metric = self._states.setdefault((record.camera_id, record.attack), {})
            per_metric[record.metric] = max(STATE_VALUES[s] for s in states)
            self.state.labels(**labels).set(max(per_metric.values()))
        self.checks.labels(**labels).inc()
        if any(s == STATES[-1] for s in states):
            self.alerts.labels(**labels).inc()
