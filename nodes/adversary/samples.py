"""What the adversary reads: audit-tap samples, cut into clips of consecutive windows.

A :class:`Sample` is one decoded ``audit:<camera>`` entry (an anonymized window, plus the reference
frame and ground-truth boxes where the world gives them); :func:`split_clips` cuts a camera's samples
into the clips the reconstruction attackers unroll. Pure data: no torch, no Redis.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from anonreid.proto.v1 import audit_pb2

Box = tuple[float, float, float, float]


@dataclass
class Sample:
    """One decoded audit-tap window (``seq``: read order, used to hold samples out of adaptive training)."""

    seq: int
    camera: str
    start_us: int
    end_us: int
    anonymized: np.ndarray  # (B, H, W) float32
    reference: np.ndarray | None  # (H, W) uint8, simulation / paired RGB only
    truth: list[tuple[Box, str]]  # ground-truth boxes with identity
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
class Clip:
    """Consecutive samples of one camera, unrolled together through E_rec."""

    samples: list[Sample]

    @property
    def first(self) -> Sample:
        return self.samples[0]

    @property
    def last(self) -> Sample:
        return self.samples[-1]


def split_clips(samples: Iterable[Sample], length: int) -> list[Clip]:
    """Runs of contiguous windows (end == next start) of one anonymizer version, cut into clips of at
    most ``length`` windows."""
    out: list[Clip] = []
    run: list[Sample] = []
    for s in sorted(samples, key=lambda s: s.start_us):
        if run and (s.start_us != run[-1].end_us or len(run) == length or s.model_version != run[-1].model_version):
            out.append(Clip(run))
            run = []
        run.append(s)
    if run:
        out.append(Clip(run))
    return out


def output_range_of(anonymized: np.ndarray) -> str:
    """``unit`` for a sigmoid anonymizer's output (all values in [0, 1]), else ``voxel``."""
    return "unit" if float(anonymized.min()) >= 0.0 and float(anonymized.max()) <= 1.0 else "voxel"


def fleet_version(newest: Iterable[Sample], current: str | None) -> str | None:
    """The anonymizer version the cameras run, from each camera's newest sample: the version most of
    them carry. A tie keeps ``current`` when it is among the tied, else goes to the most recently read
    sample's, so a rolling update switches once, when most cameras run the new version, and a rollback
    switches back the same way. ``current`` while there are no samples."""
    newest = list(newest)
    if not newest:
        return current
    counts = Counter(s.model_version for s in newest)
    top = max(counts.values())
    tied = {v for v, c in counts.items() if c == top}
    if current in tied:
        return current
    return max((s for s in newest if s.model_version in tied), key=lambda s: s.seq).model_version
