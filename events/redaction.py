"""Head redaction: the camera drops every event inside each person's head band before anything else
sees the window, so no anonymizer, reconstruction or identity attack downstream has face events to work
from.

The min-max anonymizer alone does not hide faces from an attacker who adapts (docs/results/biometric:
an E_rec trained on E_an's output verifies faces at AUC 0.65-0.70 against another day's photo). The
camera already knows where people are (its detector's boxes), so it can remove the one region whose
biometric value is highest and whose value to re-identification is lowest, deterministically and with
nothing for an attacker to invert: an event that was never emitted cannot be reconstructed.

The band is the top ``head`` of the person box (the world's heads are 0.115-0.145 of a person's height,
the evaluation's face crop at most 1.15 times that), widened by ``margin`` of the box's width on each side
and of its height above and below, because a detector's box is looser, tighter and off-centre against
the truth. A face that the detector misses, or that falls outside a bad box, is not redacted: the
evaluation measures the redaction on detector-like boxes (the world's boxes jittered), never on the
truth alone.

A box much wider than a person (a detection or track that spans two people, or a person and a
neighbour) has the top of whoever is tallest, so its band can pass over another head: in the live camera
8 of the narrow band's 9 faces left over a quarter firing were in boxes over half a person width too wide
(docs/results/biometric/redaction/README.md). For such a box (``columns_min_aspect``: its width at least
that share of its height; the world's true person boxes are 0.29-0.71 of their height wide, 5th to 95th
percentile, 0.79 at the 99th) the band also follows the events: in each pixel column it spans from
``margin`` of the box's height above the column's topmost event to ``head + margin`` below it, the tops
min-filtered over +-``reach`` of the height so a column beside a head takes the head's top. A column's top
is its highest event with ``TOP_SUPPORT`` events around it, so that sensor noise above a head does not
lift the band off the face.
"""

from __future__ import annotations

import numpy as np


def head_bands(person_boxes: np.ndarray, head: float, margin: float) -> np.ndarray:
    """The regions to redact ``(N, 4)`` float32 ``(x1, y1, x2, y2)``: the top ``head`` of each person box
    ``(N, 4)``, widened by ``margin`` of the box's width left and right and of its height above and
    below."""
    if not 0 < head <= 1:
        raise ValueError(f"head must be a fraction of the box height in (0, 1], got {head}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    b = np.asarray(person_boxes, np.float32).reshape(-1, 4)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    return np.stack([b[:, 0] - margin * w, b[:, 1] - margin * h, b[:, 2] + margin * w,
                     b[:, 1] + (head + margin) * h], axis=1).astype(np.float32)


def _within(x: np.ndarray, y: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pixels ``(x, y)`` inside boxes ``b[..., 4]`` (broadcast; a NaN box holds none)."""
    return np.asarray((x >= b[..., 0]) & (x < b[..., 2]) & (y >= b[..., 1]) & (y < b[..., 3]))


def inside(events: np.ndarray, bands: np.ndarray) -> np.ndarray:
    """Boolean mask: the events whose pixel lies in any of ``bands`` (one window's, ``(K, 4)``)."""
    x = events["x"].astype(np.float32)[:, None]
    y = events["y"].astype(np.float32)[:, None]
    return np.asarray(_within(x, y, np.asarray(bands, np.float32).reshape(1, -1, 4)).any(axis=1))


#: an event marks a column's top only where at least this many events fire in its 3x3 pixel neighbourhood
#: (itself included): a lone background-activity event above a head would otherwise lift the band of
#: every column within ``reach`` of it off the face (two of the narrow band's four heavy live leaks)
TOP_SUPPORT = 3


def column_tops(x: np.ndarray, y: np.ndarray, lo: int, width: int, support: int = TOP_SUPPORT) -> np.ndarray:
    """Per pixel column ``lo .. lo + width - 1``: the smallest ``y`` of an event with at least ``support``
    events in its 3x3 neighbourhood, or a huge number where none is (``x``, ``y``: the events' integer
    pixels, every ``x`` in that range)."""
    none = np.full(width, np.iinfo(np.int64).max // 2)
    if len(y) == 0:
        return none
    y0, height = int(y.min()), int(y.max() - y.min()) + 1
    counts = np.bincount((y - y0 + 1) * (width + 2) + (x - lo + 1), minlength=(height + 2) * (width + 2))
    counts = counts.reshape(height + 2, width + 2)
    near = sum(counts[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy in (-1, 0, 1) for dx in (-1, 0, 1))
    ok = (counts[1:-1, 1:-1] > 0) & (near >= support)
    return np.where(ok.any(0), ok.argmax(0) + y0, none)


def column_bands(events: np.ndarray, box: np.ndarray, head: float, margin: float, reach: float) -> np.ndarray:
    """Boolean mask: the events in the band that follows the topmost supported event (:func:`column_tops`)
    of each pixel column of ``box`` (widened by ``margin``; module docstring), for a box too wide to be
    one person."""
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    lo, hi = int(np.floor(x1 - margin * w)), int(np.ceil(x2 + margin * w))
    sel = (x >= lo) & (x < hi) & (y >= y1 - margin * h) & (y < y2)
    if hi <= lo or not sel.any():
        return sel
    top = column_tops(x[sel], y[sel], lo, hi - lo)
    r = max(1, round(reach * h))
    top = np.lib.stride_tricks.sliding_window_view(np.pad(top, r, mode="edge"), 2 * r + 1).min(axis=1)
    t = top[np.clip(x - lo, 0, hi - lo - 1)]
    return sel & (y >= t - margin * h) & (y < t + (head + margin) * h)


def redact_window(events: np.ndarray, person_boxes: np.ndarray, head: float, margin: float, *,
                  columns_min_aspect: float | None = None, reach: float = 0.05) -> np.ndarray:
    """One window's events without those in the head bands of its ``person_boxes`` (what the camera
    does with its detector's boxes before voxelising); a box at least ``columns_min_aspect`` times as
    wide as it is high also loses its column bands (``column_bands``; None: never)."""
    if len(events) == 0 or len(person_boxes) == 0:
        return events
    boxes = np.asarray(person_boxes, np.float32).reshape(-1, 4)
    drop = inside(events, head_bands(boxes, head, margin))
    if columns_min_aspect is not None:
        if columns_min_aspect < 0:
            raise ValueError(f"columns_min_aspect must be >= 0 or None, got {columns_min_aspect}")
        for box in boxes[(boxes[:, 2] - boxes[:, 0]) >= columns_min_aspect * (boxes[:, 3] - boxes[:, 1])]:
            drop |= column_bands(events, box, head, margin, reach)
    return events[~drop]


def redact_pass(events: np.ndarray, window_starts_us: np.ndarray, window_us: int, person_boxes: np.ndarray,
                head: float, margin: float) -> np.ndarray:
    """A recorded pass of one person without the events in the head band of the window they fall in:
    window ``k`` spans ``[start_k, start_k + window_us)`` and has the box ``person_boxes[k]`` (NaN where
    the person is not in view: nothing is redacted there). Events outside every window are kept."""
    starts = np.asarray(window_starts_us, np.int64)
    boxes = np.asarray(person_boxes, np.float32).reshape(-1, 4)
    if len(starts) != len(boxes):
        raise ValueError(f"{len(starts)} windows but {len(boxes)} boxes")
    if len(events) == 0 or len(starts) == 0:
        return events
    k = np.searchsorted(starts, events["t"], side="right") - 1
    in_window = (k >= 0) & (events["t"] < starts[np.clip(k, 0, None)] + window_us)
    bands = head_bands(boxes, head, margin)[np.clip(k, 0, len(boxes) - 1)]  # a NaN box gives a NaN band
    hit = in_window & _within(events["x"].astype(np.float32), events["y"].astype(np.float32), bands)
    return events[~hit]
