"""Audit records and alerts in Redis: two bounded streams of serialized protobufs.

``audit:records`` holds one :class:`AuditRecord` per score the adversary node computes (attack, camera,
metric, value, chance, 95% interval and its method, samples and distinct identities, window, model
versions); ``audit:alerts`` one :class:`PrivacyAlert` per policy breach; ``audit:attackers`` (JSON)
names the attackers the node runs and their training budgets. The report and the console read them back in time order.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import redis

from anonreid.proto.v1 import audit_pb2, sighting_pb2

RECORDS_STREAM = "audit:records"
ALERTS_STREAM = "audit:alerts"
ATTACKERS_KEY = "audit:attackers"
DEFAULT_MAXLEN = 200_000


def now_us() -> int:
    return time.time_ns() // 1000


def make_record(
    attack: str,
    camera: str,
    metric: str,
    value: float,
    chance: float,
    ci: tuple[float, float],
    window_us: tuple[int, int],
    num_samples: int,
    model_version: str,
    needs_ground_truth: bool,
    num_identities: int = 0,
    interval_method: str = "",
    collapsed: str = "",
    control_low: float | None = None,
    effective_samples: float | None = None,
) -> audit_pb2.AuditRecord:
    """One score as an audit record; ``control_low``: the positive control's lower bound (None: not
    measured, the field stays unset); ``effective_samples``: a proportion's effective sample size (None or
    0: not a proportion, unset)."""
    return audit_pb2.AuditRecord(
        record_id=uuid.uuid4().hex,
        attack=attack,
        camera_id=camera,
        metric=metric,
        value=float(value),
        chance=float(chance),
        ci_low=float(ci[0]),
        ci_high=float(ci[1]),
        window=sighting_pb2.TimeSpan(start_us=int(window_us[0]), end_us=int(window_us[1])),
        num_samples=int(num_samples),
        model_version=model_version,
        needs_ground_truth=needs_ground_truth,
        created_at_us=now_us(),
        num_identities=int(num_identities),
        interval_method=interval_method,
        collapsed=collapsed,
        **({} if control_low is None else {"control_low": float(control_low)}),
        **({"effective_samples": float(effective_samples)} if effective_samples else {}),
    )


@dataclass
class AuditLog:
    """Append and read audit records and alerts."""

    client: redis.Redis
    maxlen: int = DEFAULT_MAXLEN

    def append(self, record: audit_pb2.AuditRecord) -> str:
        return self._add(RECORDS_STREAM, record.SerializeToString())

    def alert(self, alert: audit_pb2.PrivacyAlert) -> str:
        return self._add(ALERTS_STREAM, alert.SerializeToString())

    def _add(self, stream: str, payload: bytes) -> str:
        entry = self.client.xadd(stream, {"pb": payload}, maxlen=self.maxlen, approximate=True)
        return entry.decode() if isinstance(entry, bytes) else str(entry)

    def set_attackers(self, described: list[dict[str, Any]]) -> None:
        """Name the attackers the adversary runs and their training budgets (replaces the previous list)."""
        self.client.set(ATTACKERS_KEY, json.dumps(described, default=str))

    def attackers(self) -> list[dict[str, Any]]:
        raw = self.client.get(ATTACKERS_KEY)
        return json.loads(raw) if raw else []

    def records(self, since_us: int = 0) -> list[audit_pb2.AuditRecord]:
        return [r for r in self._read(RECORDS_STREAM, audit_pb2.AuditRecord) if r.created_at_us >= since_us]

    def alerts(self, since_us: int = 0) -> list[audit_pb2.PrivacyAlert]:
        return [a for a in self._read(ALERTS_STREAM, audit_pb2.PrivacyAlert) if a.record.created_at_us >= since_us]

    def _read(self, stream: str, message_type: Any) -> Iterator:
        last = "-"
        while True:
            batch: Any = self.client.xrange(stream, min=last, max="+", count=1000)
            if last != "-":
                batch = batch[1:]  # xrange is inclusive of the last id already read
            if not batch:
                return
            for _entry_id, fields in batch:
                yield message_type.FromString(fields[b"pb"])
            last = batch[-1][0].decode()
