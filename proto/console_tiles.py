"""The Redis contract of the console's live camera tiles, shared by the camera node that writes them
(:mod:`anonreid.nodes.camera.tiles`) and the console that reads them (:mod:`anonreid.gallery.console.tiles`).

Per camera, two keys that expire after :data:`TILE_TTL_S` (a stopped camera's tile disappears instead of
freezing): ``console:tile:<camera>`` holds a PNG of the camera's *anonymized* activity (never raw events
or a reconstruction), ``console:tracks:<camera>`` a JSON object ``{"camera", "updated_at" (unix s),
"sensor": [width, height], "tracks": [TrackView...], "latency": {"window_s", "samples_s": [...]}}`` that
the browser draws over the picture; ``latency`` holds the event-to-identity latencies (seconds) of the
sightings the camera had acknowledged in the last ``window_s`` seconds (at most :data:`LATENCY_SAMPLES`,
the newest), from which the console shows the live p95. The set ``console:cameras`` lists every camera
that has published a tile.
"""

from __future__ import annotations

from dataclasses import dataclass

TILE_TTL_S = 30
LATENCY_WINDOW_S = 60.0
LATENCY_SAMPLES = 500
CAMERAS_KEY = "console:cameras"


def tile_key(camera: str) -> str:
    return f"console:tile:{camera}"


def tracks_key(camera: str) -> str:
    return f"console:tracks:{camera}"


@dataclass(frozen=True)
class TrackView:
    """One confirmed track on a tile: its box in sensor pixels and the global identity, when known."""

    tracklet_id: str
    box: tuple[float, float, float, float]
    identity_id: str = ""
