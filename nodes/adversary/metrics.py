"""Prometheus collectors of the adversary node (labels ``camera`` and ``attack`` only)."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from anonreid.proto.v1 import audit_pb2

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

    def start_counting(self, cameras: list[str], attacks: list[str]) -> None:
        """Export the counters at 0 for every (camera, attack) before the first score, so that
        ``increase()`` sees the first alert and a quiet policy reads as 0 alerts, not as no data."""
        for camera in cameras:
            for attack in attacks:
                self.alerts.labels(camera=camera, attack=attack)
                self.checks.labels(camera=camera, attack=attack)

    def observe(self, record: audit_pb2.AuditRecord, breached: bool) -> None:
        labels = {"camera": record.camera_id, "attack": record.attack}
        gauge = self.gauges.get(record.metric)
        if gauge is not None:
            gauge.labels(**labels).set(record.value)
        if record.metric == "rank1":
            self.rank1_chance.labels(**labels).set(record.chance)
        self.checks.labels(**labels).inc()
        if breached:
            self.alerts.labels(**labels).inc()
