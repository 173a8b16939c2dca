"""The attacker the adversary node trains itself: the live adaptive reconstruction attacker.

A copy of the offline adaptive E_rec' (or of E_rec when the attacker run has none) is fine-tuned on
(anonymized, reference) person tiles the node collects from the audit tap (its calibration data): every
``every_s`` seconds a refresh of at most ``steps`` steps (or ``budget_s`` seconds) on batches of
``batch_size`` tiles of one shape, Adam at ``lr``. After a refresh it is scored only on samples read
after it (held out).

Its input is standardised per channel, as the offline attackers on anonymized events are
(:class:`~anonreid.models.layers.ChannelAffine` before the network, :func:`~anonreid.models.reconstruction.with_input_affine`):
at its first refresh under an anonymizer version the affine is fitted
(:func:`~anonreid.models.layers.fit_channel_affine`) so that each channel of that version's anonymized
tiles gets the raw voxels' per-channel mean and spread, ``target``: the statistics the attacker run
recorded when it fitted its own (``input_affine.target_*`` of a checkpoint's metadata), else zero mean
and unit spread. An anonymizer that emits the raw signal under per-channel offsets or gains would
otherwise saturate the network's first layer, the attacker would predict grey frames and the node would
read its failure as privacy. A base network whose family has no such input (``e2vid``) trains
unstandardised (logged, and said in its report entry); the attack stage's collapse guard still keeps a
grey-frame attacker from passing.

It is trained through one anonymizer version (:attr:`AdaptiveAttacker.version`, the samples'
``model_version``): it collects and is scored on that version's clips only, and when the cameras move
to another version (:meth:`AdaptiveAttacker.follow`) it drops the pairs of the old one and restarts from
its base weights, to be retrained on the new version's pairs at the next round. Its report entry names
the version, its budget under it (steps, samples) and how often it was retrained.
"""

from __future__ import annotations

import collections
import copy
import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from anonreid.nodes.adversary.samples import Box, Clip, output_range_of
from anonreid.orchestration.config import AdversaryConfig

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


def person_tile(box: Box, hw: tuple[int, int], frame_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """A tile of ``hw`` centred on ``box``, shifted inside the frame (clipped when the frame is smaller):
    the tiles the attack stages train on (:mod:`anonreid.models.data`)."""
    from anonreid.models.data import _tile_origin

    th, tw = min(hw[0], frame_hw[0]), min(hw[1], frame_hw[1])
    x1 = _tile_origin((box[0] + box[2]) / 2, tw, frame_hw[1])
    y1 = _tile_origin((box[1] + box[3]) / 2, th, frame_hw[0])
    return x1, y1, x1 + tw, y1 + th


class AdaptiveAttacker:
    """The live adaptive reconstruction attacker (module docstring). ``base`` is the network it starts
    from, ``base_name`` its checkpoint name (``e_rec_adaptive`` or ``e_rec``)."""

    name = "adaptive"

    def __init__(
        self, base: nn.Module, base_name: str, *, steps: int, budget_s: float, every_s: float, max_pairs: int,
        tile_hw: tuple[int, int], lr: float, batch_size: int, target: tuple[list[float], list[float]] | None = None,
    ) -> None:
        self.base_name, self._base = base_name, base
        self.target = target  # the raw voxels' per-channel (mean, std) its input is standardised to
        self.model = self._fresh()
        if self.affine is None:
            log.warning("adversary: the live attacker's base %s has no per-channel input standardisation; it "
                        "trains on the anonymized voxels as they come", base_name)
        self.steps, self.budget_s, self.every_s = steps, budget_s, every_s
        self.tile_hw, self.lr, self.batch_size = tile_hw, lr, batch_size
        self.pairs: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque(maxlen=max_pairs)
        self.cutoff = -1  # samples with seq <= this were (possibly) trained on
        self.collected_upto = -1  # samples with seq <= this were collected as training pairs
        self.refreshes = 0  # under the current version
        self.steps_trained = 0  # optimizer steps and (anonymized, reference) pairs seen under it
        self.pairs_seen = 0
        self.last_refresh = time.monotonic()
        self.version: str | None = None  # the anonymizer version it is trained through (None: no sample yet)
        self.retrains = 0  # restarts from the base weights after a version change

    @classmethod
    def from_config(
        cls, cfg: AdversaryConfig, base: nn.Module, base_name: str, target: tuple[list[float], list[float]] | None = None,
    ) -> AdaptiveAttacker:
        return cls(base, base_name, steps=cfg.adaptive_steps, budget_s=cfg.adaptive_budget_s,
                   every_s=cfg.adaptive_every_s, max_pairs=cfg.adaptive_pairs, tile_hw=cfg.tile_hw,
                   lr=cfg.adaptive_lr, batch_size=cfg.adaptive_batch_size, target=target)

    def _fresh(self) -> nn.Module:
        """The base network again, with an unfitted input standardisation where its family has one."""
        from anonreid.models.reconstruction import with_input_affine

        return (with_input_affine(self._base) or copy.deepcopy(self._base)).eval()

    @property
    def affine(self) -> Any:
        """The :class:`~anonreid.models.layers.ChannelAffine` before the network (None: none)."""
        return getattr(self.model, "input_affine", None)

    def _standardise(self, anonymized: Any) -> None:
        """Fit the input affine on this version's anonymized voxels ``(N, B, h, w)`` (module docstring)."""
        import torch

        from anonreid.models.layers import fit_channel_affine

        channels = int(anonymized.shape[1])
        mean, std = self.target or ([0.0] * channels, [1.0] * channels)
        if len(mean) != channels or len(std) != channels:
            raise ValueError(f"adversary: the raw voxel statistics recorded for {self.base_name} have {len(mean)} "
                             f"channels, the anonymized voxels {channels}")
        fit_channel_affine(self.affine, anonymized, (torch.tensor(mean), torch.tensor(std)))

    def worth_running(self) -> bool:
        """An unrefreshed copy of E_rec would only repeat the plain reconstruction attack."""
        return self.base_name != "e_rec" or self.refreshes > 0

    def may_score(self, clip: Clip) -> bool:
        """Held out (read after the last refresh) and anonymized by the version it is trained through."""
        return clip.first.seq > self.cutoff and self._of_version(clip)

    def _of_version(self, clip: Clip) -> bool:
        return all(s.model_version == self.version for s in clip.samples)

    def due(self) -> bool:
        return time.monotonic() - self.last_refresh >= self.every_s

    def follow(self, version: str | None) -> bool:
        """Train through ``version`` from now on; True when that restarted it (module docstring): the
        pairs of the old version are dropped, the weights are the base's again, the budget counts from
        zero and the next round retrains it."""
        if version is None or version == self.version:
            return False
        first = self.version is None
        self.version = version
        if first:  # the base weights, nothing collected yet
            return False
        self.model = self._fresh()
        self.pairs.clear()
        self.cutoff = -1
        self.refreshes = self.steps_trained = self.pairs_seen = 0
        self.retrains += 1
        self.last_refresh = -float("inf")  # due at once: retrained as soon as the new version's pairs exist
        log.info("adversary: anonymizer version %s: the adaptive attacker restarts from %s (retrain %d)", version,
                 self.base_name, self.retrains)
        return True

    def collect(self, clips: list[Clip]) -> None:
        """(anonymized, reference) person tiles of clips not yet collected."""
        for clip in clips:
            if (clip.first.seq <= self.collected_upto or not self._of_version(clip)
                    or any(s.reference is None for s in clip.samples)):
                continue
            hw = clip.last.anonymized.shape[-2:]
            for box, _identity in clip.last.truth:
                x1, y1, x2, y2 = person_tile(box, self.tile_hw, (int(hw[0]), int(hw[1])))
                anon = np.stack([s.anonymized[:, y1:y2, x1:x2] for s in clip.samples]).astype(np.float16)
                ref = np.stack([s.reference[y1:y2, x1:x2] for s in clip.samples if s.reference is not None])
                self.pairs.append((anon, ref))
        if clips:
            self.collected_upto = max(self.collected_upto, max(c.last.seq for c in clips))

    def refresh(self, last_seq: int) -> dict[str, float]:
        """Fine-tune on the collected pairs: ``steps`` steps or ``budget_s`` seconds; samples up to
        ``last_seq`` count as seen. Empty (and still due) when there is nothing to train on."""
        import torch

        from anonreid.models.anonymizer import to_voxel_range
        from anonreid.models.losses import reconstruction_loss
        from anonreid.models.reconstruction import run_sequence

        by_shape: dict[tuple[int, ...], list[tuple[np.ndarray, np.ndarray]]] = collections.defaultdict(list)
        for a, r in self.pairs:
            by_shape[a.shape].append((a, r))
        if not by_shape:
            return {}
        self.last_refresh = time.monotonic()
        group = max(by_shape.values(), key=len)  # one tile shape per batch
        output_range = output_range_of(np.stack([a for a, _ in group]).astype(np.float32))
        rng = np.random.default_rng(self.refreshes)
        if self.refreshes == 0 and self.affine is not None:  # fitted once per version, before its first steps
            x = torch.from_numpy(np.stack([a for a, _ in group]).astype(np.float32))
            self._standardise(to_voxel_range(x.flatten(0, 1), output_range))
        model = self.model.train()
        opt = torch.optim.Adam(model.parameters(), lr=self.lr)
        t0, steps, loss_value = time.monotonic(), 0, float("nan")
        while steps < self.steps and time.monotonic() - t0 < self.budget_s:
            pick = rng.choice(len(group), size=min(self.batch_size, len(group)), replace=False)
            x = torch.from_numpy(np.stack([group[i][0] for i in pick]).astype(np.float32))
            y = torch.from_numpy(np.stack([group[i][1] for i in pick]).astype(np.float32) / 255.0)[:, :, None]
            pred, _ = run_sequence(model, to_voxel_range(x.flatten(0, 1), output_range).view_as(x))
            loss, _parts = reconstruction_loss(pred, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
            self.pairs_seen += len(pick)
            loss_value = float(loss.detach())
        model.eval()
        self.cutoff = last_seq
        self.refreshes += 1
        self.steps_trained += steps
        info = {"steps": steps, "loss": loss_value, "seconds": time.monotonic() - t0, "pairs": len(group)}
        log.info("adversary: adaptive attacker refreshed (%s)", info)
        return info

    def describe(self) -> dict[str, Any]:
        """The report's entry: what it is, what it trained on and its budget so far."""
        return {
            "name": "adaptive (live)",
            "role": f"adaptive reconstruction fine-tuned on this stream from {self.base_name}",
            "checkpoint": "in memory",
            "trained_on": "(anonymized, reference) pairs collected from the audit tap, anonymizer "
                          f"{self.version or 'not seen yet'}",
            "anonymizer_version": self.version, "retrains": self.retrains, "input": self._input(),
            "budget": {"steps": self.steps_trained, "batch_size": self.batch_size, "samples": self.pairs_seen,
                       "unit": "clips", "refreshes": self.refreshes, "init_from": self.base_name, "lr": self.lr,
                       "retrains": self.retrains, "source": "this adversary node"},
        }

    def _input(self) -> str:
        """What its network is given, for the report."""
        if self.affine is None:
            return f"anonymized voxels as they come ({self.base_name} has no per-channel input standardisation)"
        to = "the raw voxels' per-channel mean and spread" if self.target else "zero mean and unit spread"
        when = f"fitted on anonymizer {self.version}'s tiles" if self.refreshes else "fitted at the first refresh"
        return f"standardised per channel to {to} ({when})"
