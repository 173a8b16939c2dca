"""The 38th session's probe of a head band that follows the top of the events in each column of a
camera box; since the 39th session the camera's own rule (events/redaction.py ``column_bands``, config
``camera.redact_columns_min_aspect``), so this script now only counts what it costs in events.

`anonreid bench redaction` showed where the narrow band (head 0.15, margin 0.05) leaks: a quarter of
the faces sit in camera boxes much wider than their person (a detection or track that spans two people
or a person and a neighbour), whose top, and so whose band, belongs to someone else. This script runs
the bench's own ``face_coverage`` on the demo's four cameras with the camera's column rule at
``--min-aspect`` and counts, at every window the camera redacts, the events seen, those the boxes' bands
drop and those the bands plus the column rule drop: the first proxy of what the rule costs the ReId.

    python docs/results/biometric/redaction/skyline_probe.py [--seconds 120] [--min-aspect 0.6]

``--min-aspect A`` applies the column rule to boxes at least ``A`` times as wide as they are high (0:
every box; omitted: the bands alone). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

import anonreid.events.redaction as redaction
from anonreid.orchestration import cli_common
from anonreid.orchestration.bench.redaction import face_coverage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--head", type=float, default=0.15)
    ap.add_argument("--margin", type=float, default=0.05)
    ap.add_argument("--min-aspect", type=float, default=None, help="column rule on boxes this wide (omit: off)")
    args = ap.parse_args()
    dropped = {"events": 0, "band": 0, "with_columns": 0}
    camera_rule = redaction.redact_window

    def counting(events: np.ndarray, boxes: np.ndarray, head: float, margin: float, **columns: object) -> np.ndarray:
        kept = camera_rule(events, boxes, head, margin, **columns)  # type: ignore[arg-type]
        if len(events) and len(boxes):
            dropped["events"] += len(events)
            dropped["band"] += len(events) - len(camera_rule(events, boxes, head, margin))
            dropped["with_columns"] += len(events) - len(kept)
        return kept

    redaction.redact_window = counting  # type: ignore[assignment]  # the camera imports it at each call
    aspect = "null" if args.min_aspect is None else str(args.min_aspect)
    cfg = cli_common.resolve_config(None, [f"camera.redact_columns_min_aspect={aspect}"])
    per = [face_coverage(cfg, c, args.seconds, (args.head, args.margin), clip_jitter=None)
           for c in cfg.demo.cameras]
    firing = sum(p["firing_without_redaction"] for p in per)
    full = sum(p["firing_faces_fully_redacted"] for p in per)
    print(json.dumps({"head": args.head, "margin": args.margin, "min_aspect": args.min_aspect,
                      "firing_faces": firing, "fully_redacted": full, "fully_redacted_pct": round(100 * full / firing, 1),
                      "faces_over_25pct_left": sum(p["faces_over_25pct_left"] for p in per),
                      "events_seen": dropped["events"], "dropped_by_the_band": dropped["band"],
                      "dropped_with_columns": dropped["with_columns"]}))


if __name__ == "__main__":
    main()
