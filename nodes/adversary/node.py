"""The adversary node: the attacker the system keeps running against its own anonymized output.

It reads the audit tap (Redis streams ``audit:<camera>`` of :class:`AuditSample`, bursts of consecutive
anonymized windows, plus reference frames and ground-truth boxes in simulation) with one last-id
cursor per camera, keeps a bounded sliding window of samples per camera, and every ``interval_s`` runs
the evaluation suite's attacks (:mod:`anonreid.models.evaluation.attacks`) on it:

* **reconstruction**: E_rec unrolled over the bursts; SSIM / PSNR of person tiles against the
  reference frames, the flat-grey floor as the chance level (needs ground truth);
* **retrieval**: the attacker's appearance model matches the enrollment photos against person crops of
  the reconstructions; rank-1 and mAP vs chance (needs identity labels, i.e. ground truth);
* **inversion**: the same on E_rec(E_inv(anonymized)) when the attacker run has E_inv;
* **adaptive**: a copy of E_rec (E_rec' when trained offline) fine-tuned every ``adaptive_every_s`` on
  the (anonymized, reference) pairs collected from the stream, a few steps in bounded time, and scored
  only on samples read after its last refresh (held out).

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
"""

from __future__ import annotations

import collections
import copy
import io
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from anonreid.models.evaluation.intervals import BREACH
from anonreid.nodes.adversary.attackers import Attackers, load_attackers, load_enrollment
from anonreid.nodes.adversary.metrics import AdversaryMetrics
from anonreid.nodes.adversary.policy import PrivacyPolicy
from anonreid.nodes.adversary.records import AuditLog, make_record
from anonreid.nodes.priority import lower_cpu_priority
from anonreid.orchestration.config import AdversaryConfig, WorldConfig
from anonreid.proto.v1 import audit_pb2

log = logging.getLogger(__name__)

ENROLLMENT_CAMERA = "enrollment"


def grids_key(camera: str) -> str:
    return f"audit:grids:{camera}"


@dataclass
class Sample:
    """One decoded audit-tap window (``seq``: read order, used to hold samples out of adaptive training)."""

    seq: int
    camera: str
    start_us: int
    end_us: int
    anonymized: np.ndarray  # (B, H, W) float32
    reference: np.ndarray | None  # (H, W) uint8, simulation / paired RGB only
    truth: list[tuple[tuple[float, float, float, float], str]]  # ground-truth boxes with identity
    model_version: str

    @classmethod
    def decode(cls, seq: int, stream: str, entry_id: str, payload: bytes) -> Sample:
        """Parse one stream entry; a malformed one raises ValueError naming the stream and entry."""
        try:
            s = audit_pb2.AuditSample.FromString(payload)
            shape = (int(s.bins), int(s.height), int(s.width))
            anon = np.frombuffer(s.anonymized_voxel, np.float16).reshape(shape).astype(np.float32)
            ref = np.frombuffer(s.reference_frame, np.uint8).reshape(shape[1:]) if s.reference_frame else None
        except Exception as exc:
            raise ValueError(f"{stream} entry {entry_id}: not a valid AuditSample ({exc})") from None
        truth = [((b.x1, b.y1, b.x2, b.y2), b.identity_id) for b in s.ground_truth if b.identity_id]
        return cls(seq, s.camera_id, s.window.start_us, s.window.end_us, anon, ref, truth, s.model_version)


@dataclass
class _Clip:
    """Consecutive samples of one camera, unrolled together through E_rec."""

    samples: list[Sample]

    @property
    def last(self) -> Sample:
        return self.samples[-1]


def _clips(samples: Iterable[Sample], length: int) -> list[_Clip]:
    """Runs of contiguous windows (end == next start), cut into clips of at most ``length`` windows."""
    out: list[_Clip] = []
    run: list[Sample] = []
    for s in sorted(samples, key=lambda s: s.start_us):
        if run and (s.start_us != run[-1].end_us or len(run) == length):
            out.append(_Clip(run))
            run = []
        run.append(s)
    if run:
        out.append(_Clip(run))
    return out


def _tile(box: tuple[float, float, float, float], hw: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """A tile of ``hw`` centred on ``box``, shifted inside the frame (clipped when the frame is smaller)."""
    th, tw = min(hw[0], frame_hw[0]), min(hw[1], frame_hw[1])
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x1 = int(np.clip(round(cx - tw / 2), 0, frame_hw[1] - tw))
    y1 = int(np.clip(round(cy - th / 2), 0, frame_hw[0] - th))
    return x1, y1, x1 + tw, y1 + th


def output_range_of(anonymized: np.ndarray) -> str:
    """``unit`` for a sigmoid anonymizer's output (all values in [0, 1]), else ``voxel``."""
    return "unit" if float(anonymized.min()) >= 0.0 and float(anonymized.max()) <= 1.0 else "voxel"


def grid_png(reference: np.ndarray | None, views: list[tuple[str, np.ndarray]]) -> bytes:
    """A labelled row of grey images: reference (when known) | each attacker view, as PNG."""
    from PIL import Image, ImageDraw

    panels = ([("reference", reference.astype(np.float32) / 255.0)] if reference is not None else []) + views
    h, w = panels[0][1].shape
    canvas = Image.new("L", (w * len(panels) + 4 * (len(panels) - 1), h + 14), 255)
    draw = ImageDraw.Draw(canvas)
    for i, (name, img) in enumerate(panels):
        x = i * (w + 4)
        canvas.paste(Image.fromarray((np.clip(img, 0, 1) * 255).astype(np.uint8)), (x, 14))
        draw.text((x + 2, 1), name, fill=0)
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


class AdversaryNode:
    """Reads the audit tap, attacks it per camera every interval, records, exports and alerts.

    ``redis`` a redis-py client; ``attackers`` / ``enrollment`` default to :func:`load_attackers` of
    ``config.model_dir`` and :func:`load_enrollment` of ``config.enrollment``; ``metrics`` defaults to
    collectors on the process-wide Prometheus registry.
    """

    def __init__(
        self,
        config: AdversaryConfig | None = None,
        redis: Any = None,
        *,
        attackers: Attackers | None = None,
        enrollment: dict[str, np.ndarray] | None = None,
        policy: PrivacyPolicy | None = None,
        metrics: AdversaryMetrics | None = None,
        world: WorldConfig | None = None,
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
        self.enrollment = enrollment if enrollment is not None else load_enrollment(cfg.enrollment, world)
        self.windows: dict[str, collections.deque[Sample]] = {
            c: collections.deque(maxlen=cfg.window_samples) for c in cfg.cameras
        }
        self.cursors = {f"audit:{c}": "0" for c in cfg.cameras}
        self.pairs: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque(maxlen=cfg.adaptive_pairs)
        self.adaptive: Any = None
        if cfg.adaptive_steps and self.attackers.side is not None:
            base = self.attackers.side.e_rec_adaptive or self.attackers.side.e_rec
            self.adaptive = copy.deepcopy(base).eval()
        self._adaptive_cutoff = -1  # samples with seq <= this were (possibly) trained on
        self._enrolled: tuple[list[str], Any] | None = None
        self._collected_upto = -1  # samples with seq <= this were collected as adaptive training pairs
        # (attack, input range, first sample seq, clip length) -> that clip's reconstructions: the attackers are fixed
        # between rounds (the adaptive one until its refresh), so a round reconstructs only new clips
        self._views: dict[tuple[str, str, int, int], np.ndarray] = {}
        self._adaptive_refreshes = 0
        self._last_refresh = time.monotonic()
        self._seq = 0
        self.rounds = 0
        self.bad_samples = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: str | None = None
        self._adaptive_trained = 0  # optimizer steps and (anonymized, reference) pairs seen by the live attacker
        self._adaptive_pairs_seen = 0
        self._publish_attackers()

    # -------------------------------------------------------------------------------- reading

    def poll(self, block_ms: int | None = None) -> int:
        """Read new samples of every camera into the sliding windows; returns how many were read."""
        cfg = self.config
        got = self.redis.xread(self.cursors, count=cfg.window_samples, block=block_ms)
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
        """Refresh the adaptive attacker when due, then attack every camera with enough samples."""
        cfg = self.config
        if self.adaptive is not None and time.monotonic() - self._last_refresh >= cfg.adaptive_every_s:
            self.refresh_adaptive()
        records = []
        for camera, window in self.windows.items():
            if len(window) >= cfg.min_samples:
                records.extend(self.attack_camera(camera))
        self.rounds += 1
        return records

    def attack_camera(self, camera: str) -> list[audit_pb2.AuditRecord]:
        """Every attack the camera's samples allow; each score recorded, exported and policy-checked."""
        import torch

        from anonreid.models.anonymizer import to_voxel_range
        from anonreid.models.evaluation import attacks

        samples = list(self.windows[camera])
        side = self.attackers.side
        if side is None or not samples:
            return []
        clips = _clips(samples, self.config.clip_windows)
        output_range = output_range_of(np.stack([s.anonymized for s in samples]))
        to_rec = lambda a: to_voxel_range(a, output_range)  # noqa: E731
        models: dict[str, tuple[Any, Any]] = {"reconstruction": (side.e_rec, to_rec)}
        if side.e_inv is not None:
            models["inversion"] = (side.e_rec, side.e_inv)
        if self.adaptive is not None and (side.e_rec_adaptive is not None or self._adaptive_refreshes):
            models["adaptive"] = (self.adaptive, to_rec)  # (an unrefreshed copy of E_rec would only repeat it)
        # reconstructions per attack and clip: (T, H, W) in [0, 1], cached per clip; a round reconstructs
        # at most `max_new_clips` new clips (the newest), the rest of the window is scored from the cache
        def key(attack: str, clip: _Clip) -> tuple[str, str, int, int]:
            return attack, output_range, clip.samples[0].seq, len(clip.samples)

        new = [c for c in clips if any(key(a, c) not in self._views for a in models)]
        with torch.inference_mode():
            for clip in new[-self.config.max_new_clips:]:
                x = np.stack([s.anonymized for s in clip.samples])[None]
                for attack, (rec, transform) in models.items():
                    if key(attack, clip) not in self._views:
                        self._views[key(attack, clip)] = attacks.reconstruct(rec, x, transform)[0]
        live = {s.seq for w in self.windows.values() for s in w}
        self._views = {k: v for k, v in self._views.items() if k[2] in live}  # clips still in some window
        scored = [c for c in clips if all(key(a, c) in self._views for a in models)]
        window_us = (min(s.start_us for s in samples), max(s.end_us for s in samples))
        an_version = samples[-1].model_version or "unknown"
        records = []
        for attack in models:
            use = [c for c in scored if attack != "adaptive" or c.samples[0].seq > self._adaptive_cutoff]
            records += self._score(camera, attack, use, [self._views[key(attack, c)] for c in use],
                                   window_us, f"anonymizer {an_version} / attacker {self.attackers.version}")
        self._collect_pairs(clips)
        if scored:
            self._keep_grid(camera, scored[-1], {a: self._views[key(a, scored[-1])][-1] for a in models})
        return records

    def _score(
        self, camera: str, attack: str, clips: list[_Clip], frames: list[np.ndarray], window_us: tuple[int, int],
        version: str,
    ) -> list[audit_pb2.AuditRecord]:
        from anonreid.models.evaluation import attacks

        cfg = self.config
        out = []
        # reconstruction quality on the people (box crops of the clip's last, best-informed frame): the
        # static background carries no events and would only measure how grey the scene is
        pred, ref, ids = [], [], []
        for clip, rec in zip(clips, frames, strict=True):
            reference = clip.last.reference
            if reference is None:
                continue
            for box, identity in clip.last.truth:
                pred.append(attacks.image_crops(rec[-1:], np.asarray([box], np.float32), cfg.crop_hw)[0, 0].numpy())
                ref.append(attacks.image_crops(reference[None], np.asarray([box], np.float32), cfg.crop_hw)[0, 0].numpy())
                ids.append(identity)
        if pred:
            people = len(set(ids))
            r = attacks.reconstruction_attack(np.stack(pred), np.stack(ref), groups=ids if people > 1 else None)
            out.append(self._emit(camera, attack, "ssim", r.ssim, r.ssim_floor, window_us, len(pred), version, people))
            out.append(self._emit(camera, attack, "psnr", r.psnr, r.psnr_floor, window_us, len(pred), version, people))
        # retrieval against the enrollment photos: each person crop of the reconstructed (last) frame
        # ranks every enrolled identity (chance ~ 1 / enrolled); the CI resamples identities
        app = self.attackers.appearance
        q_img, q_box, q_ids = [], [], []
        for clip, rec in zip(clips, frames, strict=True):
            for box, identity in clip.last.truth:
                if identity in self.enrollment:
                    q_img.append(rec[-1])
                    q_box.append(box)
                    q_ids.append(identity)
        if app is not None and q_ids:
            g_ids, g = self._enrollment_crops()
            q = attacks.image_crops(np.stack(q_img), np.asarray(q_box, np.float32), self.attackers.appearance_hw)
            r2 = attacks.retrieval_attack(app, q, q_ids, [camera] * len(q_ids), g, g_ids, [ENROLLMENT_CAMERA] * len(g_ids))
            name = "retrieval" if attack == "reconstruction" else attack  # retrieval on the plain reconstructions
            n, people = r2.num_queries, len(set(q_ids))
            out.append(self._emit(camera, name, "rank1", r2.rank1, r2.chance["rank1"], window_us, n, version, people))
            out.append(self._emit(camera, name, "map", r2.mAP, r2.chance["mAP"], window_us, n, version, people))
        return out

    def _enrollment_crops(self) -> tuple[list[str], Any]:
        """Identities and person crops of the enrollment photos (computed once)."""
        if self._enrolled is None:
            from anonreid.models.evaluation import attacks

            ids = sorted(self.enrollment)
            photos = np.stack([self.enrollment[i] for i in ids])
            boxes = np.stack([attacks.photo_person_box(p) for p in photos])
            self._enrolled = (ids, attacks.image_crops(photos, boxes, self.attackers.appearance_hw))
        return self._enrolled

    def _emit(
        self, camera: str, attack: str, metric: str, est: Any, chance: float, window_us: tuple[int, int], n: int,
        version: str, people: int,
    ) -> audit_pb2.AuditRecord:
        """One score -> audit record, policy judgement on its interval, gauges (the state included); a
        breach -> alert + WARNING log line. Every score the node makes needs ground truth (identities)."""
        record = make_record(attack, camera, metric, est.value, chance, (est.ci_low, est.ci_high), window_us, n,
                             version, True, people, est.method)
        self.log.append(record)
        judgements = self.policy.judge(camera, attack, metric, record.value, (record.ci_low, record.ci_high),
                                       record.chance, n, people)
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
            base = "e_rec_adaptive" if self.attackers.side.e_rec_adaptive is not None else "e_rec"
            described.append({
                "name": "adaptive (live)", "role": f"adaptive reconstruction fine-tuned on this stream from {base}",
                "checkpoint": "in memory", "trained_on": "(anonymized, reference) pairs collected from the audit tap",
                "budget": {"steps": self._adaptive_trained, "batch_size": 4, "samples": self._adaptive_pairs_seen,
                           "unit": "clips", "refreshes": self._adaptive_refreshes, "init_from": base,
                           "source": "this adversary node"},
            })
        self.log.set_attackers(described)

    # -------------------------------------------------------------------------------- adaptive attacker

    def _collect_pairs(self, clips: list[_Clip]) -> None:
        """(anonymized, reference) person tiles of clips not yet collected, for the adaptive attacker."""
        for clip in clips:
            if clip.samples[0].seq <= self._collected_upto or any(s.reference is None for s in clip.samples):
                continue
            hw = clip.last.anonymized.shape[-2:]
            for box, _identity in clip.last.truth:
                x1, y1, x2, y2 = _tile(box, self.config.tile_hw, (int(hw[0]), int(hw[1])))
                anon = np.stack([s.anonymized[:, y1:y2, x1:x2] for s in clip.samples]).astype(np.float16)
                ref = np.stack([s.reference[y1:y2, x1:x2] for s in clip.samples if s.reference is not None])
                self.pairs.append((anon, ref))
        if clips:
            self._collected_upto = max(self._collected_upto, max(c.last.seq for c in clips))

    def refresh_adaptive(self) -> dict[str, float]:
        """Fine-tune the adaptive attacker on the collected pairs: ``adaptive_steps`` steps or the time budget."""
        import torch

        from anonreid.models.anonymizer import to_voxel_range
        from anonreid.models.losses import reconstruction_loss
        from anonreid.models.reconstruction import run_sequence

        cfg = self.config
        self._last_refresh = time.monotonic()
        by_shape: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = collections.defaultdict(list)
        for a, r in self.pairs:
            by_shape[a.shape].append((a, r))
        if self.adaptive is None or not by_shape:
            return {}
        group = max(by_shape.values(), key=len)  # one tile shape per batch
        output_range = output_range_of(np.stack([a for a, _ in group]).astype(np.float32))
        rng = np.random.default_rng(self._adaptive_refreshes)
        model = self.adaptive.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        t0, steps, loss_value = time.monotonic(), 0, float("nan")
        while steps < cfg.adaptive_steps and time.monotonic() - t0 < cfg.adaptive_budget_s:
            pick = rng.choice(len(group), size=min(4, len(group)), replace=False)
            x = torch.from_numpy(np.stack([group[i][0] for i in pick]).astype(np.float32))
            y = torch.from_numpy(np.stack([group[i][1] for i in pick]).astype(np.float32) / 255.0)[:, :, None]
            pred, _ = run_sequence(model, to_voxel_range(x.flatten(0, 1), output_range).view_as(x))
            loss, _parts = reconstruction_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            self._adaptive_pairs_seen += len(pick)
            loss_value = float(loss.detach())
        model.eval()
        self._views = {k: v for k, v in self._views.items() if k[0] != "adaptive"}  # a new attacker
        self._adaptive_cutoff = self._seq - 1
        self._adaptive_refreshes += 1
        self._adaptive_trained += steps
        self._publish_attackers()
        info = {"steps": steps, "loss": loss_value, "seconds": time.monotonic() - t0, "pairs": len(group)}
        log.info("adversary: adaptive attacker refreshed (%s)", info)
        return info

    # -------------------------------------------------------------------------------- grids

    def _keep_grid(self, camera: str, clip: _Clip, last_frames: dict[str, np.ndarray]) -> None:
        png = grid_png(clip.last.reference, [(f"{a} attack", f) for a, f in last_frames.items()])
        key = grids_key(camera)
        pipe = self.redis.pipeline()
        pipe.lpush(key, png)
        pipe.ltrim(key, 0, self.config.grids_kept - 1)
        pipe.execute()

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
            "samples": {c: len(w) for c, w in self.windows.items()},
            "bad_samples": self.bad_samples,
            "adaptive_refreshes": self._adaptive_refreshes,
            "pairs": len(self.pairs),
            "attacker": self.attackers.version,
            "missing": list(self.attackers.missing),
            "error": self._error,
            "running": self._thread is not None and self._thread.is_alive(),
        }


class AdversaryService:
    """The adversary node with its own Redis connection and metrics endpoint (what the Ray actor wraps)."""

    def __init__(
        self, config: AdversaryConfig, redis_url: str, redis_password: str | None = None,
        world: WorldConfig | None = None, metrics_port: int | None = None,
    ) -> None:
        from anonreid.nodes.metrics import serve_metrics
        from anonreid.orchestration.redis_service import connect

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.node = AdversaryNode(config, connect(redis_url, redis_password), world=world)
        port = config.metrics_port if metrics_port is None else metrics_port
        self.port = serve_metrics(port, config.metrics_host)

    def start(self, duration_s: float | None = None) -> None:
        self.node.start(duration_s)

    def stop(self, timeout: float = 30.0) -> dict[str, Any]:
        return self.node.stop(timeout)

    def stats(self) -> dict[str, Any]:
        return {**self.node.stats(), "metrics_port": self.port}

    def ping(self) -> float:
        return time.time()


def adversary_actor_class(num_cpus: float = 0.5, num_gpus: float = 0.0, max_restarts: int = 3) -> Any:
    """The Ray actor class wrapping :class:`AdversaryService` (threaded: stats / stop answer while it runs)."""
    import ray

    remote: Any = ray.remote
    return remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts, max_concurrency=4)(AdversaryService)


def report_data(
    client: Any, policy: PrivacyPolicy | None = None, cameras: list[str] | None = None, since_us: int = 0
) -> Any:
    """The auditor's report from Redis: records and alerts since ``since_us``, the latest grid per camera.

    Cameras are those given plus every camera with a record; ground truth counts as available when any
    score that needs it was recorded (the verdicts then say per check what was not possible).
    """
    from anonreid.nodes.adversary.report import ReportData, compute_verdicts

    policy = policy or PrivacyPolicy.load()
    log_ = AuditLog(client)
    records = log_.records(since_us)
    alerts = log_.alerts(since_us)
    names = sorted(set(cameras or []) | {r.camera_id for r in records})
    grids = {}
    for camera in names:
        latest = client.lindex(grids_key(camera), 0)
        if latest:
            grids[camera] = bytes(latest)
    gt = any(r.needs_ground_truth for r in records)
    return ReportData(names, compute_verdicts(records, policy, names, gt), records, alerts, grids, gt,
                      log_.attackers(), policy.min_identities)
