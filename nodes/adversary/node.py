"""The adversary node: the attacker the system keeps running against its own anonymized output.

It reads the audit tap (Redis streams ``audit:<camera>`` of :class:`AuditSample`, bursts of consecutive
anonymized windows, plus reference frames and ground-truth boxes in simulation) with one last-id
cursor per camera, keeps a bounded sliding window of samples per camera, and every ``interval_s`` runs
the evaluation suite's attacks (:mod:`anonreid.models.evaluation.attacks`) on it:

* **reconstruction**: E_rec unrolled over the bursts; SSIM / PSNR of person tiles against the
  reference frames, the flat-grey floor as the chance level (needs ground truth);
* **retrieval**: the attacker's appearance model matches the enrollment photos against person crops of
  the reconstructions; rank-1 and mAP vs chance (needs identity labels, i.e. ground truth);
* **inversion**, **linear**, **finetuned**: the same on the suite's other reconstruction views, when
  the attacker run has their networks (E_inv, the linear inverse, the fine-tuned E_rec);
* **identity**: the direct identity attack (no reconstruction) ranks the enrollment photos for each
  anonymized person crop, when the run has its two towers; with the towers of stage ``identity_raw``
  and a simulated world (``adversary.enrollment=world``), each score carries its positive control: the
  same ranking from the raw events of the same windows, which the node renders from the world itself
  (:mod:`~anonreid.nodes.adversary.raw_windows`; the cameras never send raw data);
* **adaptive**: a copy of E_rec (E_rec' when trained offline) fine-tuned every ``adaptive_every_s`` on
  the (anonymized, reference) pairs collected from the stream, a few steps in bounded time, and scored
  only on samples read after its last refresh (held out). It is trained through the anonymizer version
  the cameras run (the samples' ``model_version``): when that version changes it restarts from its base
  weights on the new version's pairs.

Each score becomes an :class:`AuditRecord` (chance level, 95% interval and its method, samples and
distinct identities) appended to ``audit:records``, sets the ``anonreid_privacy_*`` gauges, and is
judged by the :class:`PrivacyPolicy` on its interval: ``pass`` (upper bound under the threshold, over
enough people), ``insufficient evidence`` (the sample cannot decide yet) or ``breach`` (a
:class:`PrivacyAlert` on ``audit:alerts`` plus a WARNING log line naming camera, attack, metric, value,
interval and threshold); the state is exported per camera and attack (``anonreid_privacy_state``).
Intervals resample identities; with one person in the window they resample that person's clips, which
can show a breach for that person but never a pass (the policy's ``min_identities``). The attackers and
their training budgets are published in ``audit:attackers`` for the report. The latest image grids (reference | what the
attacker reconstructs from the anonymized stream) are kept per camera in ``audit:grids:<camera>``.

This module is the thin coordinator; the stages live beside it: ``samples`` (decoding, clips),
``attackers`` (loading the networks and their budgets), ``attacks`` (running and scoring the attacks on
a camera's window), ``training`` (the live attacker), ``grids``, ``report`` (the auditor's report from
Redis) and ``actor`` (the service and its Ray actor class).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np
from redis import Redis

from anonreid.models.evaluation.intervals import BREACH, Estimate
from anonreid.models.evaluation.privacy_policy import PrivacyPolicy, record_control, record_effective_samples
from anonreid.nodes.adversary.attackers import Attackers, enrollment_day, load_attackers, load_enrollment
from anonreid.nodes.adversary.attacks import AttackStage, RawWindowFn, ViewKey
from anonreid.nodes.adversary.grids import grid_png, keep_grid
from anonreid.nodes.adversary.metrics import AdversaryMetrics
from anonreid.nodes.adversary.raw_windows import RawWindows
from anonreid.nodes.adversary.samples import Clip, Sample, fleet_version
from anonreid.nodes.adversary.training import AdaptiveAttacker
from anonreid.nodes.priority import lower_cpu_priority
from anonreid.orchestration.config import AdversaryConfig, WorldConfig
from anonreid.orchestration.infra.audit_log import AuditLog, make_record
from anonreid.proto.v1 import audit_pb2

log = logging.getLogger(__name__)


class AdversaryNode:
    """Reads the audit tap, attacks it per camera every interval, records, exports and alerts.

    The stages: reading (:meth:`poll`, :mod:`~anonreid.nodes.adversary.samples`), attacking
    (:class:`~anonreid.nodes.adversary.attacks.AttackStage`), the live attacker's training
    (:class:`~anonreid.nodes.adversary.training.AdaptiveAttacker`), recording (:meth:`_emit`), image grids
    (:mod:`~anonreid.nodes.adversary.grids`). ``redis`` a redis-py client; ``attackers`` / ``enrollment``
    default to :func:`load_attackers` of ``config.model_dir`` and :func:`load_enrollment` of
    ``config.enrollment``; ``metrics`` defaults to collectors on the process-wide Prometheus registry.
    """

    def __init__(
        self,
        config: AdversaryConfig | None = None,
        redis: Redis | None = None,
        *,
        attackers: Attackers | None = None,
        enrollment: dict[str, np.ndarray] | None = None,
        policy: PrivacyPolicy | None = None,
        metrics: AdversaryMetrics | None = None,
        world: WorldConfig | None = None,
        raw_windows: RawWindowFn | None = None,
    ) -> None:
        import torch

        self.config = cfg = config or AdversaryConfig()
        if redis is None:
            raise ValueError("the adversary node needs a Redis client (the audit tap and the audit log live there)")
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        self.redis = redis
        self.log = AuditLog(redis)
        self.policy = policy or PrivacyPolicy.load(cfg.policy or None)
        self.metrics = metrics or AdversaryMetrics()
        self.metrics.start_counting(list(cfg.cameras), sorted({r.attack for r in self.policy.rules}))
        self.attackers = attackers if attackers is not None else load_attackers(cfg.model_dir)
        for why in self.attackers.missing:
            log.warning("adversary: %s", why)
        for why in self.attackers.absent:
            log.info("adversary: attack not run: %s", why)
        self.enrollment = enrollment if enrollment is not None else load_enrollment(
            cfg.enrollment, world, enrollment_day(self.attackers))
        self.windows: dict[str, deque[Sample]] = {c: deque(maxlen=cfg.window_samples) for c in cfg.cameras}
        self.cursors = {f"audit:{c}": "0" for c in cfg.cameras}
        if raw_windows is None and self.attackers.identity_raw is not None:
            if cfg.enrollment == "world":
                raw_windows = RawWindows(world or WorldConfig()).voxel
            else:
                log.info("adversary: the direct identity attack runs without its positive control: its raw windows "
                         "are rendered from the simulated world only (adversary.enrollment=world)")
        self.attacks = AttackStage(self.attackers, self.enrollment, self._emit, clip_windows=cfg.clip_windows,
                                   max_new_clips=cfg.max_new_clips, crop_hw=cfg.crop_hw, raw_windows=raw_windows)
        self.adaptive: AdaptiveAttacker | None = None
        side = self.attackers.side
        if cfg.adaptive_steps and side is not None:
            base, name = (side.e_rec_adaptive, "e_rec_adaptive") if side.e_rec_adaptive is not None else (side.e_rec, "e_rec")
            self.adaptive = AdaptiveAttacker.from_config(cfg, base, name, self.attackers.voxel_stats)
        self._seq = 0
        self.rounds = 0
        self.round_seconds: deque[float] = deque(maxlen=100)  # wall time of the latest rounds (the stats')
        self.bad_samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._publish_attackers()

    @property
    def _views(self) -> dict[ViewKey, np.ndarray]:
        """The attack stage's cached reconstructions (attack, input range, first sample seq, clip length)."""
        return self.attacks.views

    # -------------------------------------------------------------------------------- reading

    def poll(self, block_ms: int | None = None) -> int:
        """Read new samples of every camera into the sliding windows; returns how many were read."""
        cfg = self.config
        got: Any = self.redis.xread(self.cursors, count=cfg.window_samples, block=block_ms)  # type: ignore[arg-type]
        n = 0
        for stream, entries in got or []:
            key = stream.decode() if isinstance(stream, bytes) else str(stream)
            for entry_id, fields in entries:
                eid = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                self.cursors[key] = eid
                try:
                    sample = Sample.decode(self._seq, key, eid, fields[b"sample"])
                except (ValueError, KeyError) as exc:
                    self.bad_samples += 1
                    log.warning("adversary: skipping %s", exc if isinstance(exc, ValueError) else f"{key} entry {eid}: no 'sample' field")
                    continue
                self._seq += 1
                self.windows[key.split(":", 1)[1]].append(sample)
                n += 1
        return n

    # -------------------------------------------------------------------------------- attacking

    def attack_round(self) -> list[audit_pb2.AuditRecord]:
        """Follow the cameras' anonymizer version, refresh the adaptive attacker when due, then attack every
        camera with enough samples."""
        started = time.perf_counter()
        self.follow_version()
        if self.adaptive is not None and self.adaptive.due():
            self.refresh_adaptive()
        records = []
        for camera, window in self.windows.items():
            if len(window) >= self.config.min_samples:
                records.extend(self.attack_camera(camera))
        self.rounds += 1
        self.round_seconds.append(time.perf_counter() - started)
        self.metrics.round_seconds.observe(self.round_seconds[-1])
        return records

    def attack_camera(self, camera: str) -> list[audit_pb2.AuditRecord]:
        """Every attack the camera's samples allow; each score recorded, exported and policy-checked."""
        self.follow_version()
        live = [self.adaptive] if self.adaptive is not None else []
        seqs = {s.seq for w in self.windows.values() for s in w}
        done = self.attacks.run(camera, list(self.windows[camera]), live, seqs)
        if self.adaptive is not None:
            self.adaptive.collect(done.clips)
        if done.grid is not None:
            self._keep_grid(camera, *done.grid)
        return done.records

    def _emit(
        self, camera: str, attack: str, metric: str, est: Estimate, chance: float, window_us: tuple[int, int], n: int,
        version: str, people: int, collapsed: str = "", control: Estimate | None = None,
    ) -> audit_pb2.AuditRecord:
        """One score -> audit record, policy judgement on its interval, gauges (the state included); a
        breach -> alert + WARNING log line. Every score the node makes needs ground truth (identities).
        ``collapsed``: why the attacker's output says nothing about privacy (never a pass then); ``control``:
        the same attack's score without the anonymizer (the positive control; never a pass when its lower
        bound is not over the threshold)."""
        record = make_record(attack, camera, metric, est.value, chance, (est.ci_low, est.ci_high), window_us, n,
                             version, True, people, est.method, collapsed, None if control is None else control.ci_low,
                             est.n_eff or None)
        self.log.append(record)
        judgements = self.policy.judge(camera, attack, metric, record.value, (record.ci_low, record.ci_high),
                                       record.chance, n, people, collapsed, record_control(record),
                                       record_effective_samples(record))
        self.metrics.observe(record, [j.state for j in judgements])
        for b in (j for j in judgements if j.state == BREACH):
            self.log.alert(audit_pb2.PrivacyAlert(record=record, threshold=b.threshold, comparison="<=", message=b.message))
            log.warning("%s (camera=%s attack=%s metric=%s value=%.4f interval=[%.4f, %.4f] threshold=%.4f)", b.message,
                        camera, attack, metric, b.value, b.ci[0], b.ci[1], b.threshold)
        return record

    def _publish_attackers(self) -> None:
        """The attackers this node runs, with their training budgets, in ``audit:attackers`` (the report's)."""
        described = list(self.attackers.described)
        if self.adaptive is not None:
            described.append(self.adaptive.describe())
        self.log.set_attackers(described)

    def _keep_grid(self, camera: str, clip: Clip, last_frames: dict[str, np.ndarray]) -> None:
        png = grid_png(clip.last.reference, [(f"{a} attack", f) for a, f in last_frames.items()])
        keep_grid(self.redis, camera, png, self.config.grids_kept)

    # -------------------------------------------------------------------------------- live attacker

    def follow_version(self) -> None:
        """Tie the live attacker to the anonymizer version the cameras run (:func:`fleet_version` of each
        camera's newest sample): on a change it restarts from its base weights, drops the old version's
        pairs and cached outputs, and is retrained at the next round."""
        if self.adaptive is None:
            return
        version = fleet_version((w[-1] for w in self.windows.values() if w), self.adaptive.version)
        if version == self.adaptive.version:
            return
        if self.adaptive.follow(version):
            self.attacks.forget(self.adaptive.name)
        self._publish_attackers()  # the version it is trained through (and its budget, from zero again)

    def refresh_adaptive(self) -> dict[str, float]:
        """Fine-tune the adaptive attacker on the collected pairs (its steps or its time budget); it is then
        scored only on samples read after this refresh."""
        if self.adaptive is None:
            return {}
        info = self.adaptive.refresh(self._seq - 1)
        if info:
            self.attacks.forget(self.adaptive.name)  # a new attacker
            self._publish_attackers()
        return info

    # -------------------------------------------------------------------------------- running

    def run(self, duration_s: float | None = None) -> dict[str, Any]:
        """Poll continuously and attack every ``interval_s`` until :meth:`stop` or ``duration_s``.

        With ``background`` the loop runs at the lowest CPU priority (:func:`lower_cpu_priority`): where
        the adversary shares CPUs with cameras, their real-time work comes first and rounds take longer.
        """
        if self.config.background:
            lower_cpu_priority("adversary: attack loop")
        deadline = None if duration_s is None else time.monotonic() + duration_s
        next_round = time.monotonic() + self.config.interval_s
        while not self._stop.is_set() and (deadline is None or time.monotonic() < deadline):
            self.poll(block_ms=200)
            if time.monotonic() >= next_round:
                try:
                    self.attack_round()
                except Exception:  # one failed round must not stop the auditing
                    log.exception("adversary: attack round failed")
                next_round = time.monotonic() + self.config.interval_s
        return self.stats()

    def start(self, duration_s: float | None = None) -> None:
        def target() -> None:
            try:
                self.run(duration_s)
            except BaseException as exc:
                log.exception("adversary failed")
                self._error = f"{type(exc).__name__}: {exc}"

        self._thread = threading.Thread(target=target, name="adversary", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.stats()

    def stats(self) -> dict[str, Any]:
        return {
            "rounds": self.rounds,
            "round_s": ({"mean": float(np.mean(self.round_seconds)), "max": max(self.round_seconds)}
                        if self.round_seconds else None),
            "samples": {c: len(w) for c, w in self.windows.items()},
            "bad_samples": self.bad_samples,
            "adaptive_refreshes": self.adaptive.refreshes if self.adaptive is not None else 0,
            "pairs": len(self.adaptive.pairs) if self.adaptive is not None else 0,
            "attacker": self.attackers.version,
            "missing": list(self.attackers.missing),
            "absent": list(self.attackers.absent),
            "adaptive_version": self.adaptive.version if self.adaptive is not None else None,
            "adaptive_retrains": self.adaptive.retrains if self.adaptive is not None else 0,
            "error": self._error,
            "running": self._thread is not None and self._thread.is_alive(),
        }
