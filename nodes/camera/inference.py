"""Stages 2, 3 and 6: voxelize, anonymize (E_an) and embed (E_reid), shaped by what the model bundle says.

Every shape comes from the :class:`~anonreid.models.bundle.ModelBundle`: the voxel grid has the
anonymizer's ``num_bins`` (its ``in_bins``), crops are resized to the ReId network's ``crop_hw``, an
embedding has its ``embed_dim``, and anonymized regions are aligned to the bundle's ``stride``.

E_an runs only where it is needed (``full_frame=False``): on each box to embed plus a halo at least as
wide as its receptive field, cut on the ``stride`` grid so a strided anonymizer stays shift-equivariant;
that gives the same values as cropping a full-frame anonymization (tested in tests/test_camera_node.py)
at a cost that follows the people's area. The full frame is anonymized only for the audit tap (on its
own thread, :meth:`Inference.anonymize_full`) or when ``full_frame``. All crops of a batch go through the
ReId network in one forward pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from anonreid.events.types import SensorSize
from anonreid.nodes.camera.segments import EmbedJob
from anonreid.nodes.camera.windows import WindowItem
from anonreid.nodes.tracking import Box

if TYPE_CHECKING:
    import torch

    from anonreid.models.bundle import ModelBundle


@dataclass
class Anonymized:
    """Stage 3's output for one batch."""

    crops: torch.Tensor | None  # (N, B, h, w) anonymized crops, one per embed job in job order; None: no job
    audit_frames: dict[int, np.ndarray] = field(default_factory=dict)  # position -> full anonymized frame
    regions: list[tuple[int, int, torch.Tensor]] = field(default_factory=list)  # (x1, y1, region) anonymized


class Inference:
    """One camera's networks on ``device``, for a ``sensor``-sized frame."""

    def __init__(self, models: ModelBundle, sensor: SensorSize, device: torch.device, *, halo_px: int,
                 full_frame: bool, columns_min_aspect: float | None = None) -> None:
        import torch

        # channels-last runs these convolutions ~3x (E_an) and ~1.1x (ReId) faster on CPU (oneDNN)
        self.anonymizer = models.anonymizer.to(device).to(memory_format=torch.channels_last).eval()
        self.reid = models.reid.to(device).to(memory_format=torch.channels_last).eval()
        self.device = device
        self.num_bins = int(models.num_bins)
        self.embed_dim = int(models.embed_dim)
        self.crop_hw = (int(models.crop_hw[0]), int(models.crop_hw[1]))
        self.stride = int(models.stride)
        self.width, self.height = sensor.width, sensor.height
        self.halo_px = halo_px
        self.full_frame = full_frame
        self.redaction = models.redaction  # (head, margin) of events/redaction.py, or None
        self.columns_min_aspect = columns_min_aspect  # boxes this wide also lose their column bands

    def voxelize(self, batch: list[WindowItem], positions: set[int],
                 people: dict[int, list[Box]] | None = None) -> dict[int, np.ndarray]:
        """Stage 2: the voxel grids of the windows at ``positions`` of the batch, normalised over the whole
        frame (as E_an was trained). When the bundle's anonymizer was trained behind a head redaction, the
        events in the head band of each of ``people[pos]`` (the window's detections and tracks) are dropped
        first (and, for a box too wide to be one person, the band under each column's topmost event:
        ``columns_min_aspect``): nothing downstream (E_an, the embedding, the audit tap, the console tile)
        sees them."""
        from anonreid.events.redaction import redact_window
        from anonreid.events.voxel import events_to_voxel

        def events(pos: int) -> np.ndarray:
            ev = batch[pos].events
            if self.redaction is None:
                return ev
            boxes = np.asarray((people or {}).get(pos, []), np.float32).reshape(-1, 4)
            return redact_window(ev, boxes, *self.redaction, columns_min_aspect=self.columns_min_aspect)

        return {
            pos: events_to_voxel(events(pos), self.num_bins, self.height, self.width, normalize=True,
                                 t_range=(batch[pos].start_us, batch[pos].end_us))
            for pos in sorted(positions)
        }

    def anonymize(self, voxels: dict[int, np.ndarray], jobs: list[EmbedJob], audit_pos: list[int]) -> Anonymized:
        """Stage 3: anonymized crops for the embed jobs, and the full anonymized frames of the audit
        windows that the pipeline anonymized anyway (``full_frame``)."""
        import torch

        from anonreid.events.voxel import crop_resize_voxel

        full: dict[int, torch.Tensor] = {}  # position in batch -> anonymized full frame
        out = Anonymized(None)
        crops = []
        if self.full_frame:
            with torch.inference_mode():
                for p in sorted({job.pos for job in jobs}):  # one frame at a time: a batch of full
                    # frames thrashes the CPU caches (3 frames: 0.47 s batched, 0.36 s one by one, measured)
                    full[p] = self.anonymizer(self._tensor(voxels[p][None]))[0]
        for pos, _tr, box in jobs:  # crops in job order (the embeddings are matched back by position)
            if pos in full:
                region, (ox, oy) = full[pos], (0, 0)
            else:
                # one region per box: cost follows the people's area, not the distance between them
                x1, y1, x2, y2 = self.region([box])
                with torch.inference_mode():
                    region = self.anonymizer(self._tensor(voxels[pos][None, :, y1:y2, x1:x2]))[0]
                ox, oy = x1, y1
                out.regions.append((x1, y1, region))
            bx1, by1, bx2, by2 = box
            crops.append(crop_resize_voxel(region, (bx1 - ox, by1 - oy, bx2 - ox, by2 - oy), self.crop_hw))
        out.audit_frames = {p: full[p].float().cpu().numpy() for p in audit_pos if p in full}
        out.crops = torch.stack(crops) if crops else None
        return out

    def embed(self, crops: torch.Tensor | None) -> np.ndarray:
        """Stage 6: L2-normalised embeddings (N, embed_dim) of the anonymized crops."""
        import torch

        if crops is None:
            return np.zeros((0, self.embed_dim), np.float32)
        with torch.inference_mode():
            feats = self.reid(crops.contiguous(memory_format=torch.channels_last))
        return torch.nn.functional.normalize(feats.float(), dim=1).cpu().numpy()

    def anonymize_full(self, voxel: np.ndarray) -> np.ndarray:
        """E_an on one full (B, H, W) voxel grid (the audit tap's thread calls it)."""
        import torch

        with torch.inference_mode():
            return self.anonymizer(self._tensor(voxel[None]))[0].float().cpu().numpy()

    def blank_frame(self) -> np.ndarray:
        """E_an's output for a frame without events: what "no activity" looks like after anonymization."""
        return self.anonymize_full(np.zeros((self.num_bins, self.height, self.width)))

    def region(self, boxes: list[Box]) -> tuple[int, int, int, int]:
        """Union of boxes plus the halo, aligned to the stride grid (strided anonymizers stay shift-equivariant)."""
        halo, s = self.halo_px, self.stride
        x1 = min(b[0] for b in boxes) - halo
        y1 = min(b[1] for b in boxes) - halo
        x2 = max(b[2] for b in boxes) + halo
        y2 = max(b[3] for b in boxes) + halo
        x1 = max(0, math.floor(x1 / s) * s)
        y1 = max(0, math.floor(y1 / s) * s)
        x2 = min(self.width, math.ceil(x2 / s) * s)
        y2 = min(self.height, math.ceil(y2 / s) * s)
        return x1, y1, x2, y2

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """(N, B, H, W) numpy -> channels-last float tensor on the device."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)
        return x.contiguous(memory_format=torch.channels_last)
