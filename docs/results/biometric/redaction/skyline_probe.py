"""A probe, not a product feature (38th session): would a head band that follows the top of the events
in each column of a camera box cover the faces that the narrow band leaves firing in the live camera?

`anonreid bench redaction` showed where the narrow band (head 0.15, margin 0.05) leaks: a quarter of
the faces sit in camera boxes much wider than their person (a detection or track that spans two people
or a person and a neighbour), whose top, and so whose band, belongs to someone else. This probe swaps
the camera's ``redact_window`` for one that also drops, per pixel column of each box widened by the
margin, the events from ``margin`` of the box's height above the column's topmost event to ``head +
margin`` below it (the column tops min-filtered over +-``reach`` of the box height, so a column beside a
head takes the head's top), and runs the bench's own ``face_coverage`` on the demo's four cameras. It
also counts the events each rule drops, the first proxy of what it costs the ReId.

    python docs/results/biometric/redaction/skyline_probe.py [--seconds 120] [--min-aspect 0.6]

``--min-aspect A`` applies the column rule only to boxes at least ``A`` times as wide as they are high
(0: every box). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from scipy.ndimage import minimum_filter1d

import anonreid.events.redaction as redaction
from anonreid.orchestration import cli_common
from anonreid.orchestration.bench.redaction import face_coverage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--head", type=float, default=0.15)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--reach", type=float, default=0.05)
    ap.add_argument("--min-aspect", type=float, default=None, help="column rule on boxes this wide (omit: off)")
    args = ap.parse_args()
    dropped = {"events": 0, "band": 0, "with_columns": 0}
    band_only = redaction.redact_window

    def with_columns(events: np.ndarray, boxes: np.ndarray, head: float, margin: float) -> np.ndarray:
        if len(events) == 0 or len(boxes) == 0:
            return band_only(events, boxes, head, margin)
        x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
        drop = redaction.inside(events, redaction.head_bands(boxes, head, margin))
        dropped["events"] += len(events)
        dropped["band"] += int(drop.sum())
        for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4):
            w, h = x2 - x1, y2 - y1
            if args.min_aspect is None or w < args.min_aspect * h:
                continue
            lo, hi = int(np.floor(x1 - margin * w)), int(np.ceil(x2 + margin * w))
            sel = (x >= lo) & (x < hi) & (y >= y1 - margin * h) & (y < y2)
            if not sel.any():
                continue
            top = np.full(hi - lo, np.iinfo(np.int64).max // 2)
            np.minimum.at(top, x[sel] - lo, y[sel])
            top = minimum_filter1d(top, 2 * max(1, round(float(args.reach * h))) + 1, mode="nearest")
            t = top[np.clip(x - lo, 0, hi - lo - 1)]
            drop |= sel & (y >= t - margin * h) & (y < t + (head + margin) * h)
        dropped["with_columns"] += int(drop.sum())
        return events[~drop]

    redaction.redact_window = with_columns  # the camera imports it at each call
    cfg = cli_common.resolve_config(None, [])
    per = [face_coverage(cfg, c, args.seconds, (args.head, args.margin), clip_jitter=None)
           for c in cfg.demo.cameras]
    firing = sum(p["firing_without_redaction"] for p in per)
    full = sum(p["firing_faces_fully_redacted"] for p in per)
    print(json.dumps({"head": args.head, "margin": args.margin, "reach": args.reach, "min_aspect": args.min_aspect,
                      "firing_faces": firing, "fully_redacted": full, "fully_redacted_pct": round(100 * full / firing, 1),
                      "faces_over_25pct_left": sum(p["faces_over_25pct_left"] for p in per),
                      "events_seen": dropped["events"], "dropped_by_the_band": dropped["band"],
                      "dropped_with_columns": dropped["with_columns"]}))


if __name__ == "__main__":
    main()
