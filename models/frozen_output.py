"""A frozen anonymizer's output on a clip set's last windows, computed once and cached.

The stages that train on a frozen E_an's output of each clip's last window (``reid_anon`` and the
direct identity attack) would run E_an on the same clips step after step: on a CPU that forward is most
of such a step (the 30th session's profile of ``reid_anon``: 60 %). With ``cache_frozen_anonymizer`` the
output of every clip is computed once, in order, and kept as a float32 ``.npy`` in the run's cache
(memory-mapped), keyed by the clips and by the anonymizer's weights, so another anonymizer or another
world never reads it; a step then reads its batch's rows. E_an is fully convolutional and runs per
sample, so the rows equal the per-step forward up to float rounding (tests/test_models_train.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from anonreid.models.data import ClipSet, per_clip_array

log = logging.getLogger(__name__)


def weights_digest(model: nn.Module) -> str:
    """sha256 over a model's parameters and buffers (names, dtypes, shapes and bytes), 16 hex digits."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        a = t.detach().cpu().contiguous()
        h.update(f"{name}:{a.dtype}:{tuple(a.shape)}".encode())
        h.update(a.view(torch.uint8).numpy().tobytes() if a.numel() else b"")
    return h.hexdigest()[:16]


def cache_path(cache_dir: Path, clips: ClipSet, clips_key: str, anonymizer: nn.Module) -> Path:
    """Where the anonymizer's output on ``clips`` is kept: named by the clips (``clips_key``, the
    identities and the shape of the voxels) and the anonymizer's weights."""
    src = json.dumps({"clips": clips_key, "ids": list(clips.identities), "shape": list(clips.voxels.shape),
                      "anonymizer": weights_digest(anonymizer)}, sort_keys=True)
    return Path(cache_dir) / "anonymized" / f"{hashlib.sha256(src.encode()).hexdigest()[:16]}.npy"


def anonymized_last_windows(clips: ClipSet, anonymizer: nn.Module, path: Path, device: torch.device,
                            batch: int = 32) -> np.ndarray:
    """``anonymizer`` (frozen, eval mode) on every clip's last window, ``(M, B, h, w)`` float32, read from
    ``path`` when it is there, else computed in order and written there first."""
    def rows(start: int, stop: int) -> np.ndarray:
        last = torch.from_numpy(np.asarray(clips.voxels[start:stop, -1]).astype(np.float32)).to(device)
        with torch.no_grad():
            return anonymizer(last).float().cpu().numpy()

    fresh = not path.exists()
    out = per_clip_array(path, len(clips), rows, batch)
    if fresh:
        log.info("anonymized %d clips once for the frozen anonymizer's stages: %s", len(clips), path)
    return out
