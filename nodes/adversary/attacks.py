"""The attack stage: every attack the node runs, on one camera's sliding window of audit samples, scored.

The camera's samples are cut into clips (:func:`~anonreid.nodes.adversary.samples.split_clips`). Every
attack the attacker side has runs on each clip, at most ``max_new_clips`` new ones per round (the
newest), the rest of the window scored from the cached outputs (a camera without ground truth, a real
sensor's, has nothing scored: only its newest clip is reconstructed, for the auditor's image grid):

* each reconstruction view of the evaluation suite
  (:func:`anonreid.models.evaluation.attacks.view_models`: E_rec on the anonymized stream, named
  ``reconstruction`` here, and the inversion, linear-inverse, adaptive and fine-tuned attacks), with the
  live attackers the node trains itself in place of their offline counterpart, is scored on the people
  (ground truth needed; reconstructed in tiles around them, :mod:`~anonreid.nodes.adversary.tiles`,
  the full frame's values inside their boxes): SSIM / PSNR of person crops of the clip's last frame
  against the reference frame beside the flat-grey floor, and retrieval, where the attacker's
  appearance model ranks the enrollment photos for each person crop (rank-1 and mAP against the chance
  of a random ranking; named ``retrieval`` for the plain reconstruction, by the view otherwise);
* the direct identity attack (:class:`anonreid.models.identity_attack.IdentityTowers`, no
  reconstruction): each anonymized person crop of the clip's last window ranks the enrollment photos
  (``identity`` rank-1 and mAP against chance). Its positive control, where the attacker has stage
  ``identity_raw``'s towers and the raw windows (``raw_windows``: rendered by the adversary from the
  simulated world it attacks, :mod:`~anonreid.nodes.adversary.raw_windows`), is the same ranking from
  the raw voxels of the same windows and people.

An attacker whose person crops hardly vary (spread under 10 % of the reference crops',
:func:`anonreid.models.evaluation.collapse.collapse_check`, the offline suite's check) collapsed: its
scores (SSIM, PSNR and the retrieval on its reconstructions) are recorded with the reason, and the policy
never lets them pass.

Every score goes to the :class:`Recorder` (the node's record / policy / metrics choke point).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from anonreid.models.evaluation.results import ENROLLMENT_CAMERA
from anonreid.nodes.adversary import tiles
from anonreid.nodes.adversary.attackers import Attackers
from anonreid.nodes.adversary.samples import Clip, Sample, output_range_of, split_clips
from anonreid.proto.v1 import audit_pb2

if TYPE_CHECKING:
    import torch
    from torch import nn

    from anonreid.models.evaluation.intervals import Estimate
    from anonreid.models.evaluation.results import RetrievalScore
    from anonreid.models.identity_attack import IdentityTowers

IDENTITY = "identity"
IDENTITY_RAW = "identity_raw"  # the identity attack's positive control (cached like an attack, never recorded)
#: ``(camera, start_us, end_us, (bins, height, width)) -> raw voxel grid`` of one window
RawWindowFn = Callable[[str, int, int, tuple[int, int, int]], np.ndarray]
#: the suite's name of a view -> the node's attack name (the policy's and the records')
NODE_NAMES = {"anonymized": "reconstruction"}

#: (attack, input range, first sample seq, clip length): one clip's output of one attack
ViewKey = tuple[str, str, int, int]


class Recorder(Protocol):
    """Records one score (audit record, policy judgement, gauges, alert)."""

    def __call__(
        self, camera: str, attack: str, metric: str, est: Estimate, chance: float, window_us: tuple[int, int],
        n: int, version: str, people: int, collapsed: str = "", control: Estimate | None = None,
    ) -> audit_pb2.AuditRecord: ...


class LiveAttacker(Protocol):
    """What the attack stage needs of an attacker the node trains itself (``name``: the view of the
    suite it replaces, :data:`~anonreid.models.evaluation.attacks.ATTACK_VIEWS`)."""

    name: str
    model: nn.Module

    def worth_running(self) -> bool: ...

    def may_score(self, clip: Clip) -> bool: ...


@dataclass
class CameraRound:
    """What one camera's attack round produced: its records, its clips, and the newest scored clip with
    the last frame of each attack's reconstruction of it (for the image grid)."""

    records: list[audit_pb2.AuditRecord] = field(default_factory=list)
    clips: list[Clip] = field(default_factory=list)
    grid: tuple[Clip, dict[str, np.ndarray]] | None = None


class AttackStage:
    """Runs every loaded attack on a camera's samples and scores it (module docstring)."""

    def __init__(
        self, attackers: Attackers, enrollment: Mapping[str, np.ndarray], record: Recorder, *,
        clip_windows: int, max_new_clips: int, crop_hw: tuple[int, int], raw_windows: RawWindowFn | None = None,
    ) -> None:
        self.attackers, self.enrollment, self.record = attackers, enrollment, record
        self.raw_windows = raw_windows
        self.clip_windows, self.max_new_clips, self.crop_hw = clip_windows, max_new_clips, crop_hw
        # the attackers are fixed between rounds (a live one until it is retrained: :meth:`forget`), so a
        # round reconstructs only new clips
        self.views: dict[ViewKey, np.ndarray] = {}
        self._enrolled: tuple[list[str], torch.Tensor] | None = None
        self._enrolled_identity: dict[bool, tuple[list[str], np.ndarray]] = {}  # by raw towers or not
        #: this round's positive controls, by the clips scored (the offline attacks all score the same clips)
        self._controls: dict[tuple[tuple[int, int], ...], RetrievalScore | None] = {}
        #: each attack's receptive radius and stride multiple by clip length (:mod:`~anonreid.nodes.adversary.tiles`)
        self._reach: dict[tuple[str, int], tuple[int, int]] = {}

    def forget(self, attack: str) -> None:
        """Drop the cached outputs of ``attack`` (a retrained attacker is a new attacker)."""
        self.views = {k: v for k, v in self.views.items() if k[0] != attack}
        self._reach = {k: v for k, v in self._reach.items() if k[0] != attack}

    def run(self, camera: str, samples: list[Sample], live: Sequence[LiveAttacker], live_seqs: set[int]) -> CameraRound:
        """Every attack the camera's samples allow; ``live_seqs`` are the samples still in some window
        (outputs of clips that left every window are dropped from the cache)."""
        import torch

        from anonreid.models.evaluation import attacks as suite
        from anonreid.models.evaluation.attacks import ATTACK_VIEWS

        side = self.attackers.side
        if side is None or not samples:
            return CameraRound()
        clips = split_clips(samples, self.clip_windows)
        output_range = output_range_of(np.stack([s.anonymized for s in samples]))
        held_out = {a.name: a for a in live if a.worth_running()}
        # the live attackers replace their offline counterpart (an unrefreshed copy of E_rec is left out)
        own: dict[str, Any] = {ATTACK_VIEWS[a.name]: (a.model if a.worth_running() else None) for a in live}
        views = suite.view_models(replace(side, **own), output_range)
        outputs: dict[str, Callable[[Clip], np.ndarray]] = {
            NODE_NAMES.get(view, view): self._reconstructs(NODE_NAMES.get(view, view), rec, transform)
            for view, (rec, transform) in views.items()
        }
        frames = list(outputs)  # the attacks whose outputs are frames (the rest: identity embeddings)
        if self.attackers.identity is not None:
            outputs[IDENTITY] = self._identity_embeddings
            if self.attackers.identity_raw is not None and self.raw_windows is not None:
                outputs[IDENTITY_RAW] = self._identity_raw_embeddings

        def key(attack: str, clip: Clip) -> ViewKey:
            return attack, output_range, clip.first.seq, len(clip.samples)

        # per attack and clip: frames (T, H, W) in [0, 1] or identity embeddings; at most `max_new_clips` new clips
        new = [c for c in clips if any(key(a, c) not in self.views for a in outputs)]
        if all(c.last.reference is None for c in clips):  # a real sensor: nothing is scored, the grid shows the newest
            new = [c for c in new if c is clips[-1]]
        with torch.inference_mode():
            for clip in new[-self.max_new_clips:]:
                for attack, run in outputs.items():
                    if key(attack, clip) not in self.views:
                        self.views[key(attack, clip)] = run(clip)
        self.views = {k: v for k, v in self.views.items() if k[2] in live_seqs}
        scored = [c for c in clips if all(key(a, c) in self.views for a in outputs)]
        window_us = (min(s.start_us for s in samples), max(s.end_us for s in samples))
        version = f"anonymizer {samples[-1].model_version or 'unknown'} / attacker {self.attackers.version}"
        out = CameraRound(clips=clips)
        self._controls = {}
        for attack in outputs:
            use = [c for c in scored if attack not in held_out or held_out[attack].may_score(c)]
            if attack in frames:
                out.records += self._score(camera, attack, use, [self.views[key(attack, c)] for c in use], window_us,
                                           version)
            elif attack == IDENTITY:
                control = [self.views[key(IDENTITY_RAW, c)] for c in use] if IDENTITY_RAW in outputs else None
                out.records += self._score_identity(camera, use, [self.views[key(attack, c)] for c in use], control,
                                                    window_us, version)
        if scored:
            shown = next((c for c in reversed(scored) if c.last.truth), scored[-1])  # the newest with people
            out.grid = shown, {a: self.views[key(a, shown)][-1] for a in frames}
        return out

    def _reconstructs(self, attack: str, rec: nn.Module, transform: Callable[[torch.Tensor], torch.Tensor],
                      ) -> Callable[[Clip], np.ndarray]:
        """One clip's frames by ``attack``: in tiles around the people of its last window where the clip has
        ground truth (:mod:`~anonreid.nodes.adversary.tiles`: the same values inside their boxes, which are
        all that is scored), else the full frame."""
        from anonreid.models.evaluation import attacks as suite

        def run(clip: Clip) -> np.ndarray:
            voxels = np.stack([s.anonymized for s in clip.samples])
            if clip.last.reference is not None:
                reach = (attack, len(clip.samples))
                if reach not in self._reach:
                    self._reach[reach] = (tiles.receptive_radius(rec, transform, voxels.shape[1], len(clip.samples)),
                                          tiles.stride_multiple(transform, rec))
                radius, multiple = self._reach[reach]
                if radius <= tiles.MAX_RADIUS and not any(side % multiple for side in voxels.shape[-2:]):
                    boxes = [box for box, _identity in clip.last.truth]
                    cut = tiles.person_tiles(boxes, radius, voxels.shape[-2:], multiple)
                    return tiles.reconstruct_in_tiles(rec, transform, voxels, cut)
            return suite.reconstruct(rec, voxels[None], transform)[0]

        return run

    def _identity_embeddings(self, clip: Clip) -> np.ndarray:
        """The identity attack's embedding of each ground-truth person in the clip's last window."""
        assert self.attackers.identity is not None
        return self._tower_embeddings(self.attackers.identity, clip.last.anonymized, clip.last.truth)

    def _identity_raw_embeddings(self, clip: Clip) -> np.ndarray:
        """The control's embedding of the same people: stage identity_raw's towers on the raw window."""
        assert self.attackers.identity_raw is not None and self.raw_windows is not None
        last = clip.last
        raw = self.raw_windows(last.camera, last.start_us, last.end_us, last.anonymized.shape)
        return self._tower_embeddings(self.attackers.identity_raw, raw, last.truth)

    @staticmethod
    def _tower_embeddings(towers: IdentityTowers, voxel: np.ndarray, truth: list[tuple[Any, str]]) -> np.ndarray:
        boxes = np.asarray([box for box, _identity in truth], np.float32).reshape(-1, 4)
        return towers.voxel_embeddings(np.repeat(voxel[None], len(boxes), axis=0), boxes).numpy()

    def _score_identity(
        self, camera: str, clips: list[Clip], embeddings: list[np.ndarray], controls: list[np.ndarray] | None,
        window_us: tuple[int, int], version: str,
    ) -> list[audit_pb2.AuditRecord]:
        """Each anonymized person crop ranks the enrollment photos (chance ~ 1 / enrolled); with ``controls``
        (the raw towers' embeddings of the same people) each record carries the same ranking without the
        anonymizer as its positive control."""
        scored = self._identity_retrieval(camera, clips, embeddings, raw=False)
        if scored is None:
            return []
        r, people = scored
        control = self._identity_retrieval(camera, clips, controls, raw=True) if controls is not None else None
        c = control[0] if control is not None else None
        return [self.record(camera, IDENTITY, "rank1", r.rank1, r.chance["rank1"], window_us, r.num_queries, version,
                            people, "", c.rank1 if c else None),
                self.record(camera, IDENTITY, "map", r.mAP, r.chance["mAP"], window_us, r.num_queries, version,
                            people, "", c.mAP if c else None)]

    def _identity_retrieval(self, camera: str, clips: list[Clip], embeddings: list[np.ndarray], raw: bool,
                            ) -> tuple[RetrievalScore, int] | None:
        """The enrolled people's photos ranked for each person crop of the clips' last windows, by the
        identity attack's towers (``raw``: those of stage identity_raw), and how many people the crops
        show; None without an enrolled person."""
        from anonreid.models.evaluation import attacks as suite

        towers = self.attackers.identity_raw if raw else self.attackers.identity
        assert towers is not None
        q_emb, q_ids = [], []
        for clip, emb in zip(clips, embeddings, strict=True):
            for (_box, identity), e in zip(clip.last.truth, emb, strict=True):
                if identity in self.enrollment:
                    q_emb.append(e)
                    q_ids.append(identity)
        if not q_ids:
            return None
        if raw not in self._enrolled_identity:
            ids = sorted(self.enrollment)
            self._enrolled_identity[raw] = ids, towers.photo_embeddings([self.enrollment[i] for i in ids]).numpy()
        g_ids, g_emb = self._enrolled_identity[raw]
        return suite.retrieval_scores(np.stack(q_emb), q_ids, [camera] * len(q_ids), g_emb, g_ids,
                                      [ENROLLMENT_CAMERA] * len(g_ids)), len(set(q_ids))

    def _score(
        self, camera: str, attack: str, clips: list[Clip], frames: list[np.ndarray], window_us: tuple[int, int],
        version: str,
    ) -> list[audit_pb2.AuditRecord]:
        from anonreid.models.evaluation import attacks as suite
        from anonreid.models.evaluation.collapse import collapse_check

        out = []
        collapsed = ""
        # reconstruction quality on the people (box crops of the clip's last, best-informed frame): the
        # static background carries no events and would only measure how grey the scene is
        pred, ref, ids = [], [], []
        for clip, rec in zip(clips, frames, strict=True):
            reference = clip.last.reference
            if reference is None:
                continue
            for box, identity in clip.last.truth:
                pred.append(suite.image_crops(rec[-1:], np.asarray([box], np.float32), self.crop_hw)[0, 0].numpy())
                ref.append(suite.image_crops(reference[None], np.asarray([box], np.float32), self.crop_hw)[0, 0].numpy())
                ids.append(identity)
        if pred:
            people = len(set(ids))
            collapsed = "; ".join(collapse_check(attack, np.stack(pred), np.stack(ref)).reasons)
            r = suite.reconstruction_attack(np.stack(pred), np.stack(ref), groups=ids if people > 1 else None)
            for metric, est, floor in (("ssim", r.ssim, r.ssim_floor), ("psnr", r.psnr, r.psnr_floor)):
                out.append(self.record(camera, attack, metric, est, floor, window_us, len(pred), version, people, collapsed))
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
            r2 = self._retrieval(camera, q_img, q_box, q_ids)
            control = self._reference_retrieval(camera, clips)
            name = "retrieval" if attack == "reconstruction" else attack  # retrieval on the plain reconstructions
            n, people = r2.num_queries, len(set(q_ids))
            for metric, est, level, ctrl in (
                ("rank1", r2.rank1, r2.chance["rank1"], control.rank1 if control else None),
                ("map", r2.mAP, r2.chance["mAP"], control.mAP if control else None),
            ):
                out.append(self.record(camera, name, metric, est, level, window_us, n, version, people, collapsed, ctrl))
        return out

    def _retrieval(self, camera: str, images: list[np.ndarray], boxes: list[Any], ids: list[str]) -> RetrievalScore:
        """The appearance net's retrieval of the enrollment photos from the person crops of ``images``."""
        from anonreid.models.evaluation import attacks as suite

        assert self.attackers.appearance is not None
        g_ids, g = self._enrollment_crops()
        q = suite.image_crops(np.stack(images), np.asarray(boxes, np.float32), self.attackers.appearance_hw)
        return suite.retrieval_attack(self.attackers.appearance, q, ids, [camera] * len(ids), g, g_ids,
                                      [ENROLLMENT_CAMERA] * len(g_ids))

    def _reference_retrieval(self, camera: str, clips: list[Clip]) -> RetrievalScore | None:
        """The positive control of the retrieval attacks: the same retrieval on the clean reference frames
        of the same people (None without reference frames), once a round for the same clips. An attacker
        that cannot identify people there cannot show that the anonymized stream hides them."""
        key = tuple((c.first.seq, len(c.samples)) for c in clips)
        if key not in self._controls:
            self._controls[key] = self._retrieval_on_references(camera, clips)
        return self._controls[key]

    def _retrieval_on_references(self, camera: str, clips: list[Clip]) -> RetrievalScore | None:
        imgs, boxes, ids = [], [], []
        for clip in clips:
            if clip.last.reference is None:
                continue
            for box, identity in clip.last.truth:
                if identity in self.enrollment:
                    imgs.append(clip.last.reference)
                    boxes.append(box)
                    ids.append(identity)
        return self._retrieval(camera, imgs, boxes, ids) if ids else None

    def _enrollment_crops(self) -> tuple[list[str], torch.Tensor]:
        """Identities and person crops of the enrollment photos (computed once)."""
        if self._enrolled is None:
            from anonreid.models.evaluation import attacks as suite

            ids = sorted(self.enrollment)
            photos = np.stack([self.enrollment[i] for i in ids])
            boxes = np.stack([suite.photo_person_box(p) for p in photos])
            self._enrolled = (ids, suite.image_crops(photos, boxes, self.attackers.appearance_hw))
        return self._enrolled
