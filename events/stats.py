"""The event statistics that tell a simulated sensor from a real one, measured where the people are.

For every (window, person box) the kernel counts the events inside the box, the pixels inside it that
fired at least once (active pixels) and the ON events. :class:`EventStats` sums them over a recording,
and :meth:`EventStats.summary` reports:

* ``events_per_person_window``: events in a person's box per 33.3 ms window, averaged over person-windows;
* ``events_per_active_pixel``: events in the boxes / active pixels in the boxes (how often a pixel that
  fires fires again within the window);
* ``on_share``: ON events / events in the boxes;
* ``active_pixel_fraction``: active pixels / box area;

plus, over whole windows, ``events_per_window`` (people and background noise together). Boxes are
half-open pixel rectangles ``(x1, y1, x2, y2)``; whoever calls says where they come from (ground truth,
labels, a detector, or the extent of events already cleaned to the person).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["EventStats", "window_person_stats"]


def window_person_stats(events: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Per box of one window: ``(events, active pixels, ON events, box area)`` as an int64 ``(N, 4)``
    array (boxes clipped to non-negative pixels; an empty or NaN box counts nothing)."""
    out = np.zeros((len(boxes), 4), np.int64)
    x, y, on = events["x"].astype(np.int64), events["y"].astype(np.int64), events["p"] > 0
    for i, box in enumerate(np.asarray(boxes, np.float64).reshape(-1, 4)):
        if not np.isfinite(box).all():
            continue
        x1, y1 = (max(0, int(np.floor(v))) for v in box[:2])
        x2, y2 = (max(0, int(np.ceil(v))) for v in box[2:])
        width, height = max(x2 - x1, 0), max(y2 - y1, 0)
        inside = (x >= x1) & (x < x2) & (y >= y1) & (y < y2)
        n = int(inside.sum())
        active = len(np.unique((y[inside] - y1) * width + (x[inside] - x1))) if n else 0
        out[i] = (n, active, int(on[inside].sum()), width * height)
    return out


@dataclass
class EventStats:
    """Running sums over windows (``add`` one window at a time); ``summary()`` gives the ratios."""

    windows: int = 0
    events: int = 0
    person_windows: int = 0
    person_events: int = 0
    active_pixels: int = 0
    on_events: int = 0
    box_area: int = 0

    def add(self, events: np.ndarray, boxes: np.ndarray) -> None:
        """One window's events and its person boxes."""
        self.windows += 1
        self.events += len(events)
        per_box = window_person_stats(events, boxes)
        per_box = per_box[per_box[:, 3] > 0]
        self.person_windows += len(per_box)
        n, active, on, area = per_box.sum(axis=0) if len(per_box) else (0, 0, 0, 0)
        self.person_events += int(n)
        self.active_pixels += int(active)
        self.on_events += int(on)
        self.box_area += int(area)

    def extend(self, windows: Iterable[tuple[np.ndarray, np.ndarray]]) -> EventStats:
        for events, boxes in windows:
            self.add(events, boxes)
        return self

    def summary(self) -> dict[str, float | int | None]:
        def ratio(a: int, b: int) -> float | None:
            return a / b if b else None

        return {
            "events_per_person_window": ratio(self.person_events, self.person_windows),
            "events_per_active_pixel": ratio(self.person_events, self.active_pixels),
            "on_share": ratio(self.on_events, self.person_events),
            "active_pixel_fraction": ratio(self.active_pixels, self.box_area),
            "events_per_window": ratio(self.events, self.windows),
            **{f.name: getattr(self, f.name) for f in fields(self) if f.name in ("windows", "person_windows")},
        }
